"""Where the probe gradient enters: raw head tensors, the cut decode tail, seeded probes.

Decoded outputs are dominated by pixel-scale box rows and saturated class sigmoids, and
TopK/NMS are not differentiable in any useful sense, so the backward pass does not start at the
graph outputs. It starts at the **raw head tensors**: the outputs of the last weighted units
before the decode tail. :func:`raw_head_tensors` finds them with a structural rule on the layer
view (no names):

1. From each graph output, walk back through the layer view; stop at weighted units.
2. A weighted unit whose data input went through a ``Softmax`` folded into its producer (the
   DFL integral: softmax over bins, then a fixed 1×1 conv with ``arange`` weights) belongs to
   the tail: keep walking back through it.
3. Every other weighted unit reached is a raw head. Its tensor is the anchoring op's output
   (the Conv/Gemm/MatMul itself), extended only through ``BatchNormalization``/``Identity``:
   everything the layer view folded after it (reshape, sigmoid, grid and anchor arithmetic) is
   decode tail.
4. The tail of an output is every op downstream of its raw heads on the way to it; the report
   names its op types (``HeadCut.tail_ops``).

:func:`find_head_cuts` is the single seam: pass ``finder=`` another function with the same
signature (e.g. the head detector of :mod:`graphpath.blocks.heads`) to swap the rule.

This module does not import torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph
from graphpath.model.ops import carries_gradient

__all__ = ["HeadCut", "HeadFinder", "find_head_cuts", "probe_cotangents", "probe_inputs", "raw_head_tensors"]

#: Ops a raw head tensor is extended through (part of the layer, not of the decode).
_LAYER_PROPER = frozenset({"BatchNormalization", "Identity"})
#: The dequantising ops after an integer op that a raw head tensor also takes in.
_DEQUANT_TAIL = {"ConvInteger": frozenset({"Cast", "Mul", "Add"}), "MatMulInteger": frozenset({"Cast", "Mul", "Add"})}


@dataclass(frozen=True)
class HeadCut:
    """The raw heads feeding one graph output and the decode tail cut off after them.

    Attributes:
        output: the graph output's name.
        heads: raw head tensors (ONNX names) feeding it, in graph order.
        head_units: the layer-view unit ids producing them.
        tail_ops: ``(op_type, count)`` of every op between the heads and the output, sorted.
        tail_nodes: how many ONNX nodes the tail holds.
    """

    output: str
    heads: tuple[str, ...]
    head_units: tuple[str, ...]
    tail_ops: tuple[tuple[str, int], ...]
    tail_nodes: int

    def to_dict(self) -> dict[str, object]:
        return {"output": self.output, "heads": list(self.heads), "head_units": list(self.head_units),
                "tail_ops": {k: v for k, v in self.tail_ops}, "tail_nodes": self.tail_nodes}


HeadFinder = Callable[[ModelGraph, LayerGraph], tuple[HeadCut, ...]]


def _raw_tensor(graph: ModelGraph, layers: LayerGraph, uid: str) -> str:
    """The anchoring op's output, extended through BN/Identity folded right after it; in a
    quantized graph also through the dequantisation of that output (DequantizeLinear, or
    ConvInteger/MatMulInteger's Cast → scale Mul → bias Add), so the head is a float tensor."""
    unit = layers.unit(uid)
    anchor = graph.op(unit.nodes[0])
    tensor = anchor.outputs[0]
    proper = _LAYER_PROPER | _DEQUANT_TAIL.get(anchor.op_type, frozenset({"DequantizeLinear"}))
    for name in unit.nodes[1:]:
        op = graph.op(name)
        if op.op_type in proper and op.inputs and tensor in op.inputs[:2]:
            tensor = op.outputs[0]
        else:
            break
    return tensor


def _through_softmax(graph: ModelGraph, layers: LayerGraph, uid: str) -> bool:
    """Whether a weighted unit's data input comes out of a folded Softmax (a DFL integral)."""
    anchor = graph.op(layers.unit(uid).nodes[0])
    x = anchor.inputs[0] if anchor.inputs else ""
    seen: set[str] = set()
    stack = [x]
    # Walk up through single-input transparent ops (Reshape/Transpose …) to the Softmax.
    while stack:
        t = stack.pop()
        if t in seen or t not in graph.producer_of:
            continue
        seen.add(t)
        op = graph.op(graph.producer_of[t])
        if op.op_type in ("Softmax", "LogSoftmax", "QLinearSoftmax"):
            return True
        if op.op_type in ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast",
                          "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            stack.extend(i for pos, i in enumerate(op.inputs[:1]) if carries_gradient(op.op_type, pos))
    return False


def _ancestors_ops(graph: ModelGraph, tensor: str, stop: set[str]) -> set[str]:
    """ONNX ops on data paths from the ``stop`` tensors up to ``tensor`` (stops excluded)."""
    ops: set[str] = set()
    stack = [tensor]
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen or t in stop or t not in graph.producer_of:
            continue
        seen.add(t)
        name = graph.producer_of[t]
        op = graph.op(name)
        if graph.is_shape(t):
            continue
        ops.add(name)
        stack.extend(i for pos, i in enumerate(op.inputs) if i and carries_gradient(op.op_type, pos))
    return ops


def raw_head_tensors(graph: ModelGraph, layers: LayerGraph) -> tuple[HeadCut, ...]:
    """The raw head tensors of every graph output, by the rule of the module docstring.

    Outputs reached from no weighted unit (a pass-through input, a constant) get no cut.
    """
    cuts: list[HeadCut] = []
    rank = {u: i for i, u in enumerate(layers.topo_order())}
    for out_uid, info in zip(layers.outputs, graph.outputs, strict=True):
        heads: list[str] = []
        stack, seen = [out_uid], set()
        while stack:
            uid = stack.pop()
            if uid in seen:
                continue
            seen.add(uid)
            unit = layers.unit(uid)
            if unit.weighted and uid != out_uid and not _through_softmax(graph, layers, uid):
                heads.append(uid)
                continue
            stack.extend(layers.dag.predecessors(uid))
        if not heads:
            continue
        heads.sort(key=rank.__getitem__)
        tensors = tuple(dict.fromkeys(_raw_tensor(graph, layers, u) for u in heads))
        tail = _ancestors_ops(graph, info.name, set(tensors))
        hist = Counter(graph.op(n).op_type for n in tail)
        cuts.append(HeadCut(info.name, tensors, tuple(heads), tuple(sorted(hist.items())), len(tail)))
    return tuple(cuts)


def find_head_cuts(graph: ModelGraph, layers: LayerGraph, finder: HeadFinder | None = None) -> tuple[HeadCut, ...]:
    """The head cuts the backward pass uses: ``finder`` when given, else :func:`raw_head_tensors`."""
    return (finder or raw_head_tensors)(graph, layers)


def all_heads(cuts: Sequence[HeadCut]) -> tuple[str, ...]:
    """Every raw head tensor once, in cut order."""
    return tuple(dict.fromkeys(h for c in cuts for h in c.heads))


def probe_inputs(shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str], seed: int,
                 probe: int) -> dict[str, np.ndarray]:
    """Seeded random inputs for probe ``probe``: float inputs uniform in [0, 1) (an image
    scaled as the exporters expect), integer inputs zero."""
    rng = np.random.default_rng([seed, probe, 1])
    out: dict[str, np.ndarray] = {}
    for name in sorted(shapes):
        dt = dtypes.get(name, "FLOAT")
        if dt in ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16"):
            out[name] = rng.random(shapes[name]).astype(np.float16 if dt == "FLOAT16" else np.float32)
        else:
            out[name] = np.zeros(shapes[name], dtype=np.int64 if dt == "INT64" else np.int32)
    return out


def probe_cotangents(shapes: Mapping[str, tuple[int, ...]], heads: Sequence[str], seed: int,
                     probe: int) -> dict[str, np.ndarray]:
    """Seeded standard-normal cotangents, one per raw head tensor (float32).

    Only the direction matters: every reported gradient norm is divided by the probe norm
    ``sqrt(Σ_h ‖c_h‖²)``.
    """
    rng = np.random.default_rng([seed, probe, 2])
    return {h: rng.standard_normal(shapes[h]).astype(np.float32) for h in heads}
