"""Structural facts of a detector graph that no single block carries: the body's dominant
activation, the prediction convs and their channels, objectness, anchors per cell, DFL, the
stem, ConvTranspose upsampling, TopK/NMS, attention. Read from the layer view, never from names;
used by :mod:`graphpath.fingerprint.generation` and :mod:`graphpath.blocks.notes`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph, channel_gate
from graphpath.model.ops import float_op_type

#: Activations that characterise a body (sigmoid/softmax/tanh belong to heads and gates).
BODY_ACTIVATIONS = frozenset(
    {"leaky_relu", "mish", "silu", "relu", "hardswish", "gelu", "elu", "prelu", "selu", "celu", "clip"}
)


@dataclass(frozen=True)
class GraphFacts:
    """Structural facts the profiles read (everything from structure, nothing from names).

    Attributes:
        weighted: weighted units; convs: Conv units among them; linears: Gemm/MatMul-with-weight.
        activations: body activation → number of units carrying it (weighted units and merges).
        ops: ONNX op type → node count.
        pred_channels: output channels of each prediction conv (the last weighted units before
            the outputs; the fixed DFL conv is looked through).
        objectness: an objectness 1×1 conv (one channel) sits beside box and class convs.
        dfl: fixed DFL projections (softmax over bins → 1×1 conv to one channel).
        decoupled: the prediction convs split into box convs (4 or 4×bins channels) and
            class convs of another width.
        anchors: predictions per grid cell when the output size tells it (1 anchor-free, 3 …).
        levels: detection levels seen in the outputs (raw maps or flattened predictions).
        out_shapes: shapes of the graph outputs.
        focus: the image is sliced space-to-depth into ≥ 4 parts and concatenated (Focus).
        stem: kernel and stride of the first conv after the input.
        attention_merges: data×data MatMul units (attention products).
        maxpool_downsamples: stride-2 max pools (Darknet's tiny models downsample with them).
        half_splits: splits that take half of a conv's channels at its resolution (Darknet's
            ``route groups=2``, the CSP-tiny blocks of yolov4-tiny; C2f's Split too).
        pred_units: the layer-view ids of the prediction convs.
        dfl_bins: bins of the DFL projection (16 in Ultralytics heads; reg_max + 1 = 17 in
            PP-YOLOE, YOLO-NAS and YOLOv6-3.0 m/l).
        se_gates: channel-attention gates (squeeze-excitation / ESE): a feature multiplied by a
            sigmoid or hard-sigmoid of a 1×1 conv of its own global average.
        hard_se_gates: those gated by a hard sigmoid (PP-YOLOE's EffectiveSE).
        gfpn_merges: concatenations of ≥ 3 features at one resolution, at least two of them
            brought from other scales (upsampled, or downsampled by a strided conv or pool)
            beside a same-level one (RepGFPN's queen fusion; an FPN or PAN merge joins two).
        embedding_heads: prediction layers that are products with a static embedding matrix
            (Einsum/MatMul whose weight has rank ≥ 3, YOLO-World's text-embedding class head).
    """

    weighted: int = 0
    convs: int = 0
    linears: int = 0
    activations: tuple[tuple[str, int], ...] = ()
    ops: tuple[tuple[str, int], ...] = ()
    pred_channels: tuple[int, ...] = ()
    objectness: bool = False
    dfl: int = 0
    decoupled: bool = False
    anchors: int | None = None
    levels: int = 0
    out_shapes: tuple[tuple[Any, ...] | None, ...] = ()
    focus: bool = False
    stem: tuple[int, int] | None = None
    attention_merges: int = 0
    maxpool_downsamples: int = 0
    half_splits: int = 0
    pred_units: tuple[str, ...] = field(default=(), repr=False)
    dfl_bins: int = 0
    se_gates: int = 0
    hard_se_gates: int = 0
    gfpn_merges: int = 0
    embedding_heads: int = 0

    def op(self, op_type: str) -> int:
        return dict(self.ops).get(op_type, 0)

    @property
    def dominant_activation(self) -> tuple[str | None, float]:
        """The most frequent body activation and its share of activated units."""
        total = sum(n for _, n in self.activations)
        if not total:
            return None, 0.0
        name, n = max(self.activations, key=lambda kv: (kv[1], kv[0]))
        return name, n / total

    def share(self, activation: str) -> float:
        total = sum(n for _, n in self.activations)
        return dict(self.activations).get(activation, 0) / total if total else 0.0


def graph_facts(layers: LayerGraph, graph: ModelGraph) -> GraphFacts:
    """Read the structural facts of one model (linear in the size of the graph)."""
    if not layers.dag.number_of_nodes():
        return GraphFacts()
    acts: Counter[str] = Counter()
    weighted = convs = linears = attn = pools = halves = 0
    for u in layers.units():
        if u.kind in ("weighted", "merge") and u.activation in BODY_ACTIVATIONS:
            acts[u.activation] += 1
        if u.kind == "weighted":
            weighted += 1
            if u.op_type in ("Conv", "QLinearConv", "ConvInteger", "ConvTranspose", "DeformConv"):
                convs += 1
            else:
                linears += 1
        elif u.kind == "merge" and u.op_type in ("MatMul", "Einsum", "FusedMatMul"):
            attn += 1
        elif u.kind == "pool" and u.op_type == "MaxPool" and u.attr("strides") == (2, 2):
            pools += 1
        elif u.kind == "split" and _half_split(layers, u.id):
            halves += 1
    ops = Counter(float_op_type(op.op_type) for op in graph.ops())
    dfl, bins = _dfl_convs(layers, graph)
    preds = _prediction_units(layers, dfl)
    channels = tuple(c for c in (_cout(layers, u) for u in preds) if c is not None)
    out_shapes = tuple(_shape(layers.unit(o).attr("shape")) for o in layers.outputs)
    anchors, levels = _anchors(layers, out_shapes)
    se, hard_se = _se_gates(layers)
    return GraphFacts(
        dfl_bins=bins if dfl else 0, se_gates=se, hard_se_gates=hard_se, gfpn_merges=_gfpn_merges(layers),
        embedding_heads=sum(1 for u in preds if _embedding(layers, u)),
        weighted=weighted, convs=convs, linears=linears,
        activations=tuple(sorted(acts.items())), ops=tuple(sorted(ops.items())),
        pred_channels=channels, objectness=_objectness(channels), dfl=len(dfl),
        decoupled=_decoupled(channels, bins), anchors=anchors, levels=levels,
        out_shapes=out_shapes, focus=_focus(layers), stem=_stem(layers), attention_merges=attn,
        maxpool_downsamples=pools, half_splits=halves, pred_units=preds,
    )


def _shape(value: object) -> tuple[Any, ...] | None:
    return value if isinstance(value, tuple) else None


def _cout(layers: LayerGraph, uid: str) -> int | None:
    shape = layers.unit(uid).attr("weight_shape")
    if isinstance(shape, tuple) and shape:
        unit = layers.unit(uid)
        # Gemm/MatMul weights are (in, out) unless transposed; convs are (out, in, k, k).
        if unit.op_type in ("Conv", "QLinearConv", "ConvInteger"):
            return int(shape[0])
        if unit.op_type == "ConvTranspose" and len(shape) > 1:
            return int(shape[1]) * int(dict(layers.unit(uid).attrs).get("group", 1) or 1)  # type: ignore[call-overload]
        if unit.op_type == "Gemm":
            return None
        # a left-hand weight (``W @ x``, YOLO-World's text embeddings) emits its rows
        return int(shape[-2]) if unit.attr("weight_input") == 0 and len(shape) >= 2 else int(shape[-1])
    return None


def _half_split(layers: LayerGraph, uid: str) -> bool:
    """A split whose (first) output keeps half the channels of the conv feeding it, at the
    same resolution."""
    preds = list(layers.dag.predecessors(uid))
    if len(preds) != 1 or not layers.unit(preds[0]).weighted:
        return False
    part, whole = layers.unit(uid).attr("shape"), layers.unit(preds[0]).attr("shape")
    if not (isinstance(part, tuple) and isinstance(whole, tuple) and len(part) == len(whole) == 4):
        return False
    return isinstance(whole[1], int) and part[1] == whole[1] // 2 and whole[1] % 2 == 0 and part[2:] == whole[2:]


def dfl_product_bins(layers: LayerGraph, uid: str, graph: ModelGraph | None = None) -> int:
    """Bins of a DFL projection written as a product (0 when ``uid`` is none): a weighted
    MatMul with a ``(bins, 1)`` weight — the expected bin of each softmax over the bins, GFL's
    ``Integral`` (DAMO-YOLO's ZeroHead) — whose input went through a Softmax, folded into its
    producer or into every input of the Concat over levels that feeds it. (Ultralytics' DFL is
    the same projection as a fixed 1×1 conv.)"""
    unit = layers.unit(uid)
    shape = unit.attr("weight_shape")
    if unit.kind != "weighted" or unit.op_type not in ("MatMul", "FusedMatMul") or not isinstance(shape, tuple):
        return 0
    if len(shape) != 2 or shape[1] != 1 or not isinstance(shape[0], int) or shape[0] < 4:
        return 0
    preds = list(layers.dag.predecessors(uid))
    if len(preds) != 1:
        return 0
    feeds = [preds[0]]
    if layers.unit(preds[0]).kind == "merge" and layers.unit(preds[0]).op_type == "Concat":
        feeds = list(layers.dag.predecessors(preds[0]))

    def softmax(f: str) -> bool:
        if graph is None:
            return layers.unit(f).activation == "softmax"
        return any(float_op_type(graph.op(n).op_type) == "Softmax" for n in layers.unit(f).nodes if n in graph.dag)

    return int(shape[0]) if feeds and all(softmax(f) for f in feeds) else 0


def _dfl_convs(layers: LayerGraph, graph: ModelGraph) -> tuple[frozenset[str], int]:
    """The fixed DFL projections (1×1 convs from the bins to one channel whose producer folds
    a Softmax; the producer may be a Split that also folds other ops; or the same projection
    as a product, :func:`dfl_product_bins`) and the bin count."""
    found = set()
    bins = 0
    for uid in layers.dag.nodes:
        unit = layers.unit(uid)
        shape = unit.attr("weight_shape")
        product = dfl_product_bins(layers, uid, graph)
        if product:
            found.add(uid)
            bins = product
            continue
        if unit.op_type != "Conv" or not isinstance(shape, tuple) or len(shape) != 4:
            continue
        if shape[0] != 1 or shape[1] < 2 or tuple(shape[2:]) != (1, 1):
            continue
        for p in layers.dag.predecessors(uid):
            if any(float_op_type(graph.op(n).op_type) == "Softmax" for n in layers.unit(p).nodes if n in graph.dag):
                found.add(uid)
                bins = int(shape[1])
    return frozenset(found), bins


def _prediction_units(layers: LayerGraph, dfl: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Weighted units from which an output is reached through no other weighted unit (the
    fixed DFL conv does not count as one): the prediction convs of a detection head."""
    dag = layers.dag
    free: dict[str, bool] = {}
    for uid in reversed(layers.topo_order()):
        unit = layers.unit(uid)
        if unit.kind == "output":
            free[uid] = True
            continue
        through = False
        for s in dag.successors(uid):
            passable = not layers.unit(s).weighted or s in dfl
            if passable and free.get(s, False):
                through = True
                break
        free[uid] = through
    return tuple(u for u in layers.topo_order()
                 if layers.unit(u).weighted and free.get(u) and u not in dfl)


def _objectness(channels: Sequence[int]) -> bool:
    """Objectness: one-channel convs beside 4-channel box convs (no DFL) and class convs.

    YOLOX has per level a box conv (4), an objectness conv (1) and a class conv (classes); a
    single-class YOLOX has two one-channel convs per level. v6 has box + class only.
    """
    box = sum(1 for c in channels if c == 4)
    ones = sum(1 for c in channels if c == 1)
    rest = sum(1 for c in channels if c not in (1, 4))
    if not box:
        return False
    return (ones >= box and rest >= box) or ones >= 2 * box


def _decoupled(channels: Sequence[int], bins: int) -> bool:
    """Box convs (4 channels, or 4×bins with a DFL) beside class convs of another width."""
    box = [c for c in channels if c == 4 or (bins > 1 and c == 4 * bins)]
    other = [c for c in channels if c not in box]
    return bool(box) and len(other) >= len(box) // 2 and len(set(channels)) >= 2


def _static_hw(layers: LayerGraph) -> tuple[int, int] | None:
    for uid in layers.inputs:
        shape = layers.unit(uid).attr("shape")
        if isinstance(shape, tuple) and len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
            return int(shape[2]), int(shape[3])
    return None


def _cells(hw: tuple[int, int], strides: Sequence[int]) -> int:
    h, w = hw
    return sum(-(-h // s) * -(-w // s) for s in strides)


def _anchors(layers: LayerGraph, shapes: Sequence[Any]) -> tuple[int | None, int]:
    """Predictions per grid cell and detection levels, from the outputs' sizes.

    Flattened outputs ``(1, N, K)`` or ``(1, K, N)``: N is compared with the grid cells at
    strides 8/16/32(/64) of a static input, then 16/32 (v3/v4-tiny) and 32 alone (v2). Raw
    maps ``(1, C, H, W)``: one level each, and the anchors follow from equal channel counts
    C = A×(5+classes).
    """
    hw = _static_hw(layers)
    maps = [s for s in shapes if isinstance(s, tuple) and len(s) == 4 and all(isinstance(d, int) for d in s)]
    flat = [s for s in shapes if isinstance(s, tuple) and len(s) == 3]
    if flat and hw:
        for s in flat:
            dims = [d for d in s[1:] if isinstance(d, int)]
            for strides in ((8, 16, 32), (8, 16, 32, 64), (16, 32), (32,)):  # last two: tiny
                cells = _cells(hw, strides)
                for n in dims:
                    if n % cells == 0 and 1 <= n // cells <= 9 and n != min(dims):
                        return n // cells, len(strides)
    if maps:
        cs = {int(s[1]) for s in maps}
        if len(cs) == 1:
            c = cs.pop()
            for a in (3, 5):
                if c % a == 0 and c // a > 5:
                    return a, len(maps)
        return None, len(maps)
    return None, 0


def _focus(layers: LayerGraph) -> bool:
    """A Concat of ≥ 4 slices of the image input (space-to-depth stem), slices chained ≤ 2."""
    dag = layers.dag
    for inp in layers.inputs:
        frontier = {inp}
        slices: set[str] = set()
        for _ in range(2):
            frontier = {s for u in frontier for s in dag.successors(u) if layers.unit(s).kind == "split"}
            slices |= frontier
        for s in slices:
            for c in dag.successors(s):
                unit = layers.unit(c)
                if unit.op_type == "Concat" and sum(1 for p in dag.predecessors(c) if p in slices) >= 4:
                    return True
    return False


def _stem(layers: LayerGraph) -> tuple[int, int] | None:
    """(kernel, stride) of the first conv fed by the image input (through non-weighted units)."""
    for uid in layers.topo_order():
        unit = layers.unit(uid)
        if unit.weighted and unit.op_type == "Conv":
            k = unit.attr("kernel_shape") or ()
            s = unit.attr("strides") or (1,)
            if isinstance(k, tuple) and k and isinstance(s, tuple):
                return int(k[0]), int(max(s))
            return None
    return None


def _se_gates(layers: LayerGraph) -> tuple[int, int]:
    """(channel-attention gates, those with a hard sigmoid): see :func:`channel_gate`."""
    gates = hard = 0
    for uid in layers.dag.nodes:
        found = channel_gate(layers, uid)
        if found is not None:
            gates += 1
            hard += layers.unit(found[1]).activation == "hardsigmoid"
    return gates, hard


def _gfpn_merges(layers: LayerGraph) -> int:
    """Queen-fusion concats: ≥ 3 inputs, at least two of them brought from other scales — an
    upsampled feature (a resample unit) or a downsampled one (a strided conv or pool; a
    ConvTranspose upsamples and is neither) — beside the same-level feature. GiraffeNeckV2
    fuses ``[x1, down(x2), up(x3)]`` and ``[x3, down(x4), down(x7)]``; an FPN or PAN merge joins
    one resampled feature with one lateral, an SPP or ELAN concat none. The concat joins 4-D
    feature maps (PGI's CBFuse stacks resized chunks along a new axis to sum them)."""
    dag = layers.dag
    found = 0
    for uid in dag.nodes:
        unit = layers.unit(uid)
        if unit.kind != "merge" or unit.op_type != "Concat" or dag.in_degree(uid) < 3:
            continue
        shape = unit.attr("shape")
        if unit.attr("axis") == 0 or (isinstance(shape, tuple) and len(shape) != 4):
            continue  # a stack along a new axis, not a fusion of feature maps (PGI's CBFuse sums one)
        preds = [layers.unit(p) for p in dag.predecessors(uid)]
        scaled = sum(1 for p in preds if p.kind == "resample"
                     or (p.kind in ("weighted", "pool") and p.op_type != "ConvTranspose"
                         and _strided(p.attr("strides"))))
        found += scaled >= 2 and scaled < len(preds)
    return found


def _embedding(layers: LayerGraph, uid: str) -> bool:
    unit = layers.unit(uid)
    shape = unit.attr("weight_shape")
    return unit.op_type in ("Einsum", "MatMul") and isinstance(shape, tuple) and len(shape) >= 3


def _strided(strides: object) -> bool:
    return isinstance(strides, tuple) and any(isinstance(v, int) and v >= 2 for v in strides)
