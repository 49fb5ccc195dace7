"""Train-mode BatchNorm for the ``init`` condition: which convs get it, and whether it applies.

A network starts training with its BatchNorms in training mode: each normalises its input per
channel with the statistics of the current batch, and the gradient flows through those
statistics. Deploy exports fold every BN into the conv before it (``W' = γ/σ·W``,
``b' = β − γμ/σ``), so the graph no longer says where they were. Under ``--condition init`` the
torch evaluator puts them back (``Evaluator.forward(train_norm=...)``, never by rewriting the
ONNX): after each *BN-fused conv*, per-channel normalisation over ``(N, H, W)`` of the batch
with ``γ = 1``, ``β = 0``, ``eps = 1e-5``, differentiated through the batch statistics (what
``F.batch_norm(training=True)`` without running statistics computes); BatchNormalization nodes
still in the graph (training-form exports) switch to batch statistics with their own
``epsilon``, scale and bias.

**Which convs** (:func:`bn_fused_convs`). A ``Conv`` node is BN-fused when

1. it is in the raw heads' scope and is not a prediction conv (its output is not a raw head
   tensor: detectors' prediction convs carry no BN);
2. it has a bias input (folding a BN always leaves one, also on ``bias=False`` convs);
3. its output feeds no normalisation node (BatchNormalization, InstanceNormalization,
   LayerNormalization, GroupNormalization): a conv followed by a norm is normalised there.

``ConvTranspose``, ``Gemm`` and ``MatMul`` never get one (YOLOv6's transposed-conv upsampling and
fully connected heads carry no BN). A tensor with one element per channel (``N·H·W = 1``, e.g.
after global pooling at batch 1) is left as it is (batch statistics of one value are the value
itself: the output would be 0) and listed in :attr:`NormPlan.skipped`; the same holds for a
BatchNormalization node on such a tensor (it keeps its running statistics).

**Whether** (:func:`resolve_norm`, ``--norm auto``). Batch when

a. a BatchNormalization node is in the heads' scope (a training-form export), or
b. the graph carries the BN-fused signature: at least one conv passes rules 1–3, every conv in
   scope that passes rule 1 and 3 also has a bias (a bias-free conv without a norm after it
   says the network trained without BN), and the generation fingerprint is not one that
   trained without BN (:data:`NO_BN_GENERATIONS`: YOLOv1, whose paper predates BatchNorm).

Otherwise none. From the ONNX alone a conv + bias trained without BN cannot be told from a
folded conv + BN: (b) is the default for detector families that train with BN (YOLOv2 and
every later generation, YOLOX, RT-DETR's CNN backbone); pass ``--norm none`` for a network
that did not. ``--norm batch`` forces rules 1–3, ``--norm none`` turns it off. Under
``--condition weights`` ``auto`` is none: the file's weights already hold the trained
statistics.

This module does not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph, OpNode
from graphpath.model.loaded import LoadedModel

__all__ = ["BN_EPS", "NO_BN_GENERATIONS", "NORM_OPS", "NormPlan", "TrainNorm", "bn_fused_convs",
           "one_per_channel", "resolve_norm"]

#: The restored BatchNorm's epsilon (PyTorch's ``BatchNorm2d`` default).
BN_EPS = 1e-5
#: Generations (:mod:`graphpath.fingerprint.generation`) that trained without BatchNorm.
NO_BN_GENERATIONS = frozenset({"v1"})
#: Normalisation ops: a conv feeding one of them is already normalised.
NORM_OPS = frozenset({"BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization"})


@dataclass(frozen=True)
class TrainNorm:
    """The evaluator's ``train_norm=`` option: what it normalises with batch statistics.

    Attributes:
        tensors: tensors (conv outputs) normalised per channel over every axis but 1, with
            ``γ = 1``, ``β = 0`` and ``eps``, right after they are computed.
        bn_nodes: BatchNormalization nodes use the batch's statistics instead of their running
            ones (their scale, bias and epsilon stay).
        eps: the restored normalisation's epsilon.

    Both leave a tensor with one element per channel (:func:`one_per_channel`) as it is (a BN
    node keeps its running statistics there).
    """

    tensors: frozenset[str] = frozenset()
    bn_nodes: bool = False
    eps: float = BN_EPS


@dataclass(frozen=True)
class NormPlan:
    """Where train-mode BatchNorm is restored, and why (the report states it).

    Attributes:
        requested: ``auto`` | ``batch`` | ``none`` (``--norm``).
        mode: what applies: ``batch`` or ``none``.
        reason: the rule that decided (one sentence).
        convs: the BN-fused Conv nodes normalised (empty under ``none``).
        tensors: their output tensors.
        bn_nodes: BatchNormalization nodes switched to batch statistics.
        skipped: conv outputs (and BN node outputs) left alone: one element per channel.
        candidates: BN-fused convs found by rules 1–3 (whatever the mode).
    """

    requested: str
    mode: Literal["batch", "none"]
    reason: str
    convs: tuple[str, ...] = ()
    tensors: tuple[str, ...] = ()
    bn_nodes: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    candidates: int = 0
    eps: float = BN_EPS

    @property
    def train_norm(self) -> TrainNorm | None:
        """The evaluator option, or ``None`` when nothing is normalised."""
        if self.mode != "batch" or not (self.tensors or self.bn_nodes):
            return None
        return TrainNorm(tensors=frozenset(self.tensors), bn_nodes=bool(self.bn_nodes), eps=self.eps)

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "mode": self.mode, "reason": self.reason,
                "normalised_convs": len(self.convs), "bn_nodes_batch_stats": len(self.bn_nodes),
                "bn_fused_candidates": self.candidates, "skipped_one_per_channel": list(self.skipped),
                "eps": self.eps}


def one_per_channel(shape: Sequence[int]) -> bool:
    """Whether a tensor of ``shape`` holds one element per channel (axis 1), so that batch
    statistics are degenerate.

    >>> one_per_channel((1, 64, 1, 1)), one_per_channel((1, 64, 8, 8)), one_per_channel((2, 64))
    (True, False, False)
    """
    return len(shape) < 2 or math.prod(shape) == int(shape[1])


def _conv_rules(op: OpNode, heads: frozenset[str],
                consumers: Mapping[str, Sequence[OpNode]]) -> tuple[bool, bool, bool]:
    """(rule 1 without the scope test, rule 2, rule 3) of the module docstring for one Conv."""
    out = op.outputs[0] if op.outputs else ""
    not_head = out not in heads
    has_bias = len(op.inputs) > 2 and bool(op.inputs[2])
    no_norm_after = not any(c.op_type in NORM_OPS for c in consumers.get(out, ()))
    return not_head, has_bias, no_norm_after


def _consumers(graph: ModelGraph) -> dict[str, list[OpNode]]:
    out: dict[str, list[OpNode]] = {}
    for op in graph.ops():
        for t in op.inputs:
            if t:
                out.setdefault(t, []).append(op)
    return out


def bn_fused_convs(graph: ModelGraph, heads: Sequence[str], in_scope: Mapping[str, Sequence[int]]
                   ) -> tuple[tuple[OpNode, ...], bool]:
    """The Conv nodes that pass rules 1–3, and whether every in-scope non-head conv without a
    norm after it has a bias (the signature's second half).

    Args:
        graph: the op view.
        heads: the raw head tensors.
        in_scope: shapes of the tensors the evaluator computes (keys: tensor names).
    """
    head_set = frozenset(heads)
    consumers = _consumers(graph)
    fused: list[OpNode] = []
    all_biased = True
    for op in graph.ops():
        if op.op_type != "Conv" or not op.outputs or op.outputs[0] not in in_scope:
            continue
        not_head, has_bias, no_norm_after = _conv_rules(op, head_set, consumers)
        if not_head and no_norm_after:
            if has_bias:
                fused.append(op)
            else:
                all_biased = False
    return tuple(fused), all_biased


def _generation(model: LoadedModel) -> str:
    from graphpath.fingerprint.generation import fingerprint

    return fingerprint({}, model.layers, model.graph, model.blocks).generation


def resolve_norm(model: LoadedModel, heads: Sequence[str], in_scope: Mapping[str, Sequence[int]],
                 requested: str, condition: str, *, eps: float = BN_EPS) -> NormPlan:
    """Where train-mode BatchNorm goes for this model and condition (the module docstring's
    rules). ``in_scope`` maps every tensor the evaluator computes to its shape."""
    if requested not in ("auto", "batch", "none"):
        raise GraphpathError(f"unknown --norm {requested!r}; choose one of auto, batch, none")
    graph = model.graph
    fused, all_biased = bn_fused_convs(graph, heads, in_scope)
    bns = tuple(op for op in graph.ops() if op.op_type == "BatchNormalization"
                and op.outputs and op.outputs[0] in in_scope)
    candidates = len(fused)
    if requested == "none":
        return NormPlan("none", "none", "--norm none", candidates=candidates, eps=eps)
    if requested == "auto":
        if condition != "init":
            return NormPlan("auto", "none", "the file's own weights (BatchNorm statistics already folded in)",
                            candidates=candidates, eps=eps)
        if bns:
            reason = f"{len(bns)} BatchNormalization nodes in scope (a training-form export)"
        elif not fused:
            return NormPlan("auto", "none", "no conv with the BN-fused signature (no non-head conv with a bias)",
                            candidates=0, eps=eps)
        elif not all_biased:
            return NormPlan("auto", "none", "some non-head convs have no bias and no norm after them: "
                            "trained without BatchNorm", candidates=candidates, eps=eps)
        else:
            generation = _generation(model)
            if generation in NO_BN_GENERATIONS:
                return NormPlan("auto", "none", f"generation {generation} trained without BatchNorm",
                                candidates=candidates, eps=eps)
            reason = (f"BN-fused signature: {len(fused)} non-head convs, every one with a bias and no norm "
                      f"after it (generation {generation})")
    else:
        reason = "--norm batch"
    skipped = tuple(op.outputs[0] for op in fused if one_per_channel(in_scope[op.outputs[0]]))
    bn_skipped = tuple(op.outputs[0] for op in bns if one_per_channel(in_scope[op.outputs[0]]))
    kept = tuple(op for op in fused if op.outputs[0] not in skipped)
    return NormPlan(requested, "batch", reason, convs=tuple(op.name for op in kept),
                    tensors=tuple(op.outputs[0] for op in kept), bn_nodes=tuple(op.name for op in bns),
                    skipped=skipped + bn_skipped, candidates=candidates, eps=eps)
