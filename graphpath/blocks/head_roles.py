"""Head roles: which of the detection heads found by :mod:`graphpath.blocks.heads` is the
auxiliary head (``aux_head``: PGI's auxiliary head in v9, v7's auxiliary head, v10's
one-to-many head) and which the NMS-free one-to-one head (``one2one_head``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from graphpath.blocks.base import BlockMatch, DetectionContext, register
from graphpath.blocks.heads import (
    BODY_KINDS,
    Head,
    HeadAnalysis,
    Level,
    analyze_heads,
    branch,
    detection_heads,
    nms_ops,
)
from graphpath.model.layers import unit_depths


def _level_features(ctx: DetectionContext, lv: Level) -> set[str]:
    """The units a level starts from (the units behind its branches)."""
    feats: set[str] = set()
    for r in lv.raw:
        chain = branch(ctx, r)
        feats.update(p for u in chain for p in ctx.preds(u) if p not in lv.units)
        if lv.root is not None and lv.root not in lv.units:
            feats.add(lv.root)
    return feats


def _same_features(ctx: DetectionContext, first: Head, second: Head) -> bool:
    """Every level of each head reads a feature that a level of the other reads (v10's pair;
    v7's lead and auxiliary heads share only their largest level)."""
    a = [_level_features(ctx, lv) for lv in first.levels]
    b = [_level_features(ctx, lv) for lv in second.levels]
    return all(any(x & y for y in b) for x in a) and all(any(y & x for x in a) for y in b)


def _feature_depth(ctx: DetectionContext, head: Head, depths: Mapping[str, int]) -> int:
    """Weighted units on the longest input path to the deepest feature a head reads."""
    feats = {f for lv in head.levels for f in _level_features(ctx, lv)}
    return max((depths.get(f, 0) for f in feats), default=0)


def _stems(ctx: DetectionContext, head: Head) -> int:
    """How many weighted units read a graph input among the head's ancestors."""
    anc: set[str] = set()
    for lv in head.levels:
        anc |= nx.ancestors(ctx.layers.dag, lv.raw[0])
    return sum(1 for u in anc if ctx.is_weighted(u) and any(p in ctx.layers.inputs for p in ctx.preds(u)))


@dataclass(frozen=True)
class HeadRoles:
    """Which detection head is auxiliary and which is one-to-one, with the reason."""

    aux: Head | None
    one2one: Head | None
    why_aux: str = ""
    why_one2one: str = ""


def head_roles(ctx: DetectionContext, analysis: HeadAnalysis) -> HeadRoles:
    """Assign the auxiliary and one-to-one roles.

    * Two heads on the same features (levels start from the same units): the one-to-many and
      one-to-one heads of a v10 training graph; detaching is invisible in ONNX, so the official
      output order decides: the first is the auxiliary one-to-many head, the second one-to-one.
    * Two heads on different features: the auxiliary one is fed by the branch with more stems
      reading the image (PGI's second backbone); on one backbone, the one reading shallower
      features (v7's auxiliary head on the neck's middle layers); then output order (first).
    * One head whose decode tail selects with TopK and a graph without NMS: the NMS-free
      one-to-one head of an end-to-end export.
    """
    heads = detection_heads(analysis)
    if len(heads) >= 2:
        first, second = heads[0], heads[1]
        if _same_features(ctx, first, second):
            return HeadRoles(
                aux=first, one2one=second,
                why_aux="first of two complete heads on the same features (one-to-many)",
                why_one2one="second of two complete heads on the same features (one-to-one copy)",
            )
        stems = _stems(ctx, first), _stems(ctx, second)
        if stems[0] != stems[1]:
            aux = first if stems[0] > stems[1] else second
            why = "a second complete head fed by its own branch, with its own output"
        else:
            depths = unit_depths(ctx.layers)
            aux = second if _feature_depth(ctx, second, depths) < _feature_depth(ctx, first, depths) else first
            why = "a second complete head on shallower features of the same backbone, with its own outputs"
        return HeadRoles(aux=aux, one2one=None, why_aux=why)
    if len(heads) == 1 and not nms_ops(ctx.graph):
        ops = {ctx.graph.op(n).op_type for u in heads[0].tail for n in ctx.unit(u).nodes}
        if "TopK" in ops:
            return HeadRoles(aux=None, one2one=heads[0],
                             why_one2one="a single head whose decode selects with TopK and no NMS op")
    return HeadRoles(aux=None, one2one=None)


# --------------------------------------------------------------------------- detectors


def _head_match(ctx: DetectionContext, kind: str, head: Head | None, why: str) -> list[BlockMatch]:
    """The match of a head that has a role (none when no head has it)."""
    if head is None:
        return []
    return [ctx.make_match(kind, head.units, evidence=why, structure={
        "levels": len(head.levels), "outputs": [ctx.unit(o).tensor for o in head.outputs]})]


class AuxHeadDetector:
    """The auxiliary detection head: a second complete head with its own graph outputs, on its
    own branch (PGI's auxiliary backbone, v9 training), on shallower features of the same
    backbone (v7's auxiliary head in the W6/E6/E6E training graphs), or on the same features as
    the main head (v10's one-to-many head, the first of the pair in output order).

    Evidence: why the head is auxiliary (see :func:`head_roles`).
    """

    kind = "aux_head"
    after: tuple[str, ...] = BODY_KINDS

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        roles = head_roles(ctx, analyze_heads(ctx))
        return _head_match(ctx, self.kind, roles.aux, roles.why_aux)


class One2OneHeadDetector:
    """The NMS-free one-to-one head (v10): the second of two complete heads on the same
    features in a training graph, or the only head of an end-to-end export whose decode
    selects with TopK/GatherElements and holds no NMS op.

    Evidence: why the head is one-to-one (see :func:`head_roles`).
    """

    kind = "one2one_head"
    after: tuple[str, ...] = BODY_KINDS

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        roles = head_roles(ctx, analyze_heads(ctx))
        return _head_match(ctx, self.kind, roles.one2one, roles.why_one2one)


for _detector in (AuxHeadDetector(), One2OneHeadDetector()):
    register(_detector)
