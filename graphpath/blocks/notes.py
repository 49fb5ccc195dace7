"""What a deploy export hides: training-time structure that the export fused or dropped.

:func:`export_notes` reads the block counts, both views of the graph and the fingerprinted
generation, and returns one :class:`ExportNote` per finding, in the order of :data:`CODES`:

==================  ========================================================================
``repvgg-fused``    a v6/v7/v9 graph (v10 with a C2fCIB) without training-form RepVGG blocks
                    and without BatchNormalization: RepVGG/RepConv/RepConvN (RepVGGDW in
                    v10) branches were fused
``pgi-dropped``     GELAN (or a v9 fingerprint) without PGI and without an auxiliary head
``one2many-dropped``  a one-to-one head without the one-to-many head beside it (v10 end-to-end)
``nms-embedded``    a NonMaxSuppression op (or an ``nms`` block) after the head
``bn-fused``        no BatchNormalization node although the generation trains with BN
``decode-in-graph`` grid/anchor/stride arithmetic or a DFL projection after the prediction convs
``quantized``       integer weights (QDQ or QOperator form): the note names the form, the bit
                    widths and the granularity; structure is read as the float graph's
==================  ========================================================================

This module registers no detector; it only reads what the detectors and the fingerprint found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphpath.fingerprint.facts import GraphFacts, graph_facts
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph
from graphpath.model.quantization import quantization_info

#: Note codes, in report order.
CODES = ("repvgg-fused", "pgi-dropped", "one2many-dropped", "nms-embedded", "bn-fused", "decode-in-graph",
         "quantized")

#: Generations whose convs train with BatchNormalization (YOLOv1 predates BN).
BN_GENERATIONS = frozenset({"v2", "v3", "v4", "v5", "yolox", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "rtdetr"})

#: Answers that are detectors (a decode tail means something only for them).
DETECTORS = BN_GENERATIONS | {"v1"}

#: What the fused re-parameterised unit is called in each generation.
_REP_NAMES = {
    "v6": "RepVGG blocks",
    "v7": "RepConv units of the head (YOLOv7 and v7x; W6, E6, D6 and E6E have none)",
    "v9": "RepConvN units inside GELAN",
    "v10": "the C2fCIB's RepVGGDW units (large-kernel ‖ 3×3 depth-wise)",
}

#: Elementwise ops a decode tail uses with grid, anchor or stride constants.
_DECODE_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})
#: Ops that only move or retype a tensor.
_LAYOUT_OPS = frozenset({"Transpose", "Cast", "Identity", "QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class ExportNote:
    """One thing the export form hides.

    Attributes:
        code: stable id (one of :data:`CODES`).
        message: one sentence: what is hidden and how to see it.
        evidence: the structure that triggered the note.
    """

    code: str
    message: str
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "evidence": self.evidence, "message": self.message}


def export_notes(
    counts: Mapping[str, int], layers: LayerGraph, graph: ModelGraph, generation: str,
) -> tuple[ExportNote, ...]:
    """The notes that apply to this export, in :data:`CODES` order.

    Args:
        counts: flat block counts by id.
        layers, graph: the layer view and the op view.
        generation: the fingerprinted generation (:data:`graphpath.fingerprint.generation.GENERATIONS`).
    """
    n = {k: int(v) for k, v in counts.items()}
    facts = graph_facts(layers, graph)
    found: list[ExportNote] = []

    rep = _REP_NAMES.get(generation)
    # Re-parameterising folds BatchNormalization first: where BN is left nothing was fused, and
    # a graph without RepVGG blocks never had them (YOLOv7-W6/E6/E6E). Nor has the leaky-ReLU
    # v7-tiny.
    if rep and not n.get("repvgg") and (generation != "v10" or n.get("c2fcib")) \
            and not facts.op("BatchNormalization") \
            and not (generation == "v7" and facts.dominant_activation[0] == "leaky_relu"):
        found.append(ExportNote(
            "repvgg-fused",
            f"{rep[0].upper() + rep[1:]} are fused into single convs: the training-form parallel "
            "branches (3×3 ‖ 1×1 ‖ identity) are gone; export the unfused model to analyse them.",
            f"{generation} graph without training-form RepVGG blocks",
        ))
    if (n.get("gelan") or generation == "v9") and not n.get("pgi") and not n.get("aux_head"):
        found.append(ExportNote(
            "pgi-dropped",
            "The PGI auxiliary branch (second backbone, CBLinear/CBFuse and the auxiliary head) "
            "was removed by the deploy conversion; export the unconverted training checkpoint "
            "to analyse it.",
            f"{n.get('gelan', 0)} GELAN blocks, no PGI branch and no auxiliary head",
        ))
    nms_free = facts.op("TopK") > 0 and not facts.op("NonMaxSuppression")
    if (n.get("one2one_head") or (generation == "v10" and nms_free)) and not n.get("aux_head"):
        found.append(ExportNote(
            "one2many-dropped",
            "Only the one-to-one (NMS-free) head is exported and the one-to-many head it trains "
            "with is dropped; export the training graph with both heads to analyse it.",
            "one-to-one head with TopK selection and no one-to-many output",
        ))
    if n.get("nms") or facts.op("NonMaxSuppression"):
        found.append(ExportNote(
            "nms-embedded",
            "NonMaxSuppression is embedded after the head, so the outputs are selected boxes and "
            "gradient analysis stops at the raw head tensors; export without NMS to see the raw "
            "predictions.",
            f"{facts.op('NonMaxSuppression') or n.get('nms', 0)} NonMaxSuppression op(s)",
        ))
    if (generation in BN_GENERATIONS and facts.convs and not facts.op("BatchNormalization")
            and 2 * _affine_after_conv(layers, graph) < facts.convs):
        found.append(ExportNote(
            "bn-fused",
            "BatchNormalization is folded into the conv weights and biases, so the per-channel "
            "normalisation of training is gone; export in training mode (BN unfused) to analyse it.",
            f"no BatchNormalization node among {facts.convs} convs",
        ))
    decode = _decode_tail(graph, layers, facts) if generation in DETECTORS else ""
    if decode:
        found.append(ExportNote(
            "decode-in-graph",
            "The box decode runs inside the graph, so the outputs are pixel-scale boxes and "
            "scores and gradients are probed at the raw head tensors before it; export the raw "
            "head (no decode) to see them directly.",
            decode,
        ))
    quant = quantization_info(graph)
    if quant is not None:
        found.append(ExportNote(
            "quantized",
            "The weights are quantized to integers; structure is read as the float graph it "
            "computes, and the numeric pass evaluates it in float32 with the weights dequantized "
            "and activation fake-quantization differentiated with the straight-through estimator.",
            quant.describe(),
        ))
    return tuple(found)


def _decode_tail(graph: ModelGraph, layers: LayerGraph, facts: GraphFacts) -> str:
    """Evidence of a decode after the prediction convs, or ``""``.

    A decode is a DFL projection, or elementwise arithmetic with a grid/anchor/stride constant
    (an initializer or Constant of two or more elements) on the data flowing from the
    prediction convs to the outputs. Scalar constants (``x * 2``) alone are not a decode.
    """
    if facts.dfl:
        return f"{facts.dfl} DFL projection(s) after the prediction convs"
    start = [layers.unit(u).nodes[0] for u in facts.pred_units if layers.unit(u).nodes]
    seen = set(start)
    todo = list(start)
    # a prediction conv and what it reaches through layout-only ops (the Keras torch backend
    # transposes NCHW → NHWC and casts before adding the bias)
    near = set(start)
    hits = 0
    while todo:
        node = todo.pop()
        for succ in graph.dag.successors(node):
            if graph.dag.edges[node, succ].get("kind", "data") != "data" or succ in seen:
                continue
            seen.add(succ)
            todo.append(succ)
            op = graph.op(succ)
            implicit = node in near  # a learned per-channel scale or bias straight on a prediction conv
            if implicit and op.op_type in _LAYOUT_OPS:
                near.add(succ)
            if op.op_type in _DECODE_OPS and any(_const_size(graph, t) != 1 and not (implicit and _per_channel(graph, t))
                                                 for t in op.inputs if t and _static(graph, t)):
                hits += 1
    return f"{hits} grid/anchor/stride op(s) after the prediction convs" if hits else ""


def _affine_after_conv(layers: LayerGraph, graph: ModelGraph) -> int:
    """Conv units whose first folded arithmetic is a per-channel Sub or Mul by a static
    tensor: inference BatchNormalization written as elementwise ops ((x − mean) · scale + shift,
    the Keras torch backend), not folded into the conv."""
    found = 0
    for unit in layers.units():
        if not unit.weighted or unit.op_type != "Conv":
            continue
        for name in unit.nodes[1:]:
            op = graph.op(name)
            if op.op_type in _LAYOUT_OPS:
                continue
            if op.op_type in ("Sub", "Mul") and any(_static(graph, t) and _per_channel(graph, t) and _const_size(graph, t) > 1
                                                            for t in op.inputs[1:]):
                found += 1
            break
    return found


def _per_channel(graph: ModelGraph, tensor: str) -> bool:
    """A learned per-channel tensor: ``(1, C, 1, 1)`` (v7's ImplicitM scales each prediction
    channel), or a bias added apart from the conv, ``(C,)`` or channels-last ``(1, 1, 1, C)``
    (the Keras torch backend): not grid, anchor or stride arithmetic."""
    param = graph.params.get(tensor)
    shape = param.shape if param is not None else graph.value_shapes.get(tensor) or ()
    if len(shape) == 1:
        return True
    return len(shape) == 4 and (shape[0] == shape[2] == shape[3] == 1 or shape[0] == shape[1] == shape[2] == 1)


def _static(graph: ModelGraph, tensor: str) -> bool:
    return tensor in graph.params or graph.is_shape(tensor)


def _const_size(graph: ModelGraph, tensor: str) -> int:
    """Elements of a static tensor (initializer, Constant, or computed from shapes and
    constants, like the anchor grid of a dynamic export); -1 when its size is unknown."""
    param = graph.params.get(tensor)
    if param is not None:
        return math.prod(param.shape) if param.shape else 1
    if not graph.is_shape(tensor):
        return 0
    producer = graph.producer_of.get(tensor)
    if producer and producer in graph.dag:
        op = graph.op(producer)
        size = getattr(op.attrs.get("value"), "size", None)
        if op.op_type == "Constant" and size is not None:
            return int(size)
    shape = graph.value_shapes.get(tensor)
    if shape and all(isinstance(d, int) for d in shape):
        return math.prod(d for d in shape if isinstance(d, int))
    return -1
