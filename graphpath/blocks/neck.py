"""Neck detectors: top-down ``fpn`` and bottom-up ``pan`` merges (see GUIDE.md).

Both are one channel Concat. A top-down merge concatenates an upsampled coarse feature
(nearest/bilinear Resize, or a stride-2 ConvTranspose as in v6's BiFusion) with a lateral
feature that is not computed from that coarse feature. A bottom-up merge concatenates a
stride-2 downsample of a fine feature (a stride-2 conv, MP, ADown or SCDown) with a top-down
feature that is not computed from that fine feature; the second condition tells a PAN merge
from the Concat inside an MP or ADown block, whose inputs are all downsamples of one tensor.
A Concat with an upsampled input is an FPN merge only (v6's BiFusion also takes a downsampled
finer feature).
"""

from __future__ import annotations

import networkx as nx

from graphpath.blocks.base import BlockMatch, DetectionContext, register
from graphpath.model.graph import OpNode
from graphpath.model.ops import carries_gradient, float_op_type

#: Layer-view resampling ops that upsample (DepthToSpace/SpaceToDepth are reorganisations);
#: a Tile/Expand is a resample unit only when it repeats a feature map along a spatial axis
#: (``graphpath.model.layers.REPEAT_OPS``: Keras' nearest upsampling as exported).
UPSAMPLE_OPS = frozenset({"Resize", "Upsample", "Tile", "Expand"})

#: Block kinds that implement a bottom-up downsample; their units nest in the ``pan``.
DOWNSAMPLE_KINDS = ("mp", "adown", "scdown")


def channel_concat(ctx: DetectionContext, uid: str) -> bool:
    """A Concat merge along the channel axis (a stack along axis 0 is a sum, as in CBFuse)."""
    unit = ctx.unit(uid)
    if unit.kind != "merge" or unit.op_type != "Concat" or len(ctx.preds(uid)) < 2:
        return False
    if any(ctx.graph.op(n).op_type.startswith("Reduce") for n in unit.nodes[1:]):
        return False
    axis = unit.attr("axis")
    shape = unit.attr("shape")
    rank = len(shape) if isinstance(shape, tuple) else 4
    if not isinstance(axis, int):
        return True
    if axis in (1, 1 - rank):
        return True
    # channels last (tf2onnx without its transpose optimiser, the Keras torch backend): the
    # channel axis is the last one when the merged features were transposed NCHW → NHWC
    return rank == 4 and axis in (3, -1) and _channels_last(ctx, unit.nodes[0])


#: Ops a layout walk passes through: elementwise, activations, casts, the repeat upsample's
#: Unsqueeze/Tile/Expand/Reshape, Pad.
_LAYOUT_PASS = frozenset(
    """Identity Cast Mul Add Sub Div Sigmoid Relu LeakyRelu HardSigmoid HardSwish Tanh Softplus Mish
    Clip Elu Selu Gelu Unsqueeze Tile Expand Reshape Pad QuantizeLinear DequantizeLinear""".split()
)


def _channels_last(ctx: DetectionContext, node: str, hops: int = 64) -> bool:
    """Every data input of op ``node`` was last transposed NCHW → NHWC (perm 0, 2, 3, 1) since
    the conv or pool that made it (ONNX convs and pools compute in NCHW)."""
    graph = ctx.graph
    op = graph.op(node)
    verdicts = []
    for tensor in _data_inputs(op):
        src, seen = graph.producer_of.get(tensor), 0
        verdict = False
        while src is not None and seen < hops:
            cur = graph.op(src)
            if cur.op_type == "Transpose":
                verdict = tuple(cur.attrs.get("perm", ())) == (0, 2, 3, 1)
                break
            data = _data_inputs(cur)
            if float_op_type(cur.op_type) not in _LAYOUT_PASS or not data:
                break
            src, seen = graph.producer_of.get(data[0]), seen + 1
        verdicts.append(verdict)
    return bool(verdicts) and all(verdicts)


def _data_inputs(op: OpNode) -> list[str]:
    """The inputs of ``op`` that carry data (not a QOperator op's scales and zero points)."""
    return [t for pos, t in enumerate(op.inputs) if t and carries_gradient(op.op_type, pos)]


def _stride(ctx: DetectionContext, uid: str) -> int:
    strides = ctx.unit(uid).attr("strides")
    return max((int(s) for s in strides), default=1) if isinstance(strides, tuple) else 1


def upsample_source(ctx: DetectionContext, uid: str) -> str | None:
    """The coarse unit that ``uid`` upsamples, when ``uid`` is an upsample."""
    unit = ctx.unit(uid)
    preds = ctx.preds(uid)
    if len(preds) != 1:
        return None
    if unit.kind == "resample" and unit.op_type in UPSAMPLE_OPS:
        before, after = ctx.spatial(preds[0]), ctx.spatial(uid)
        if before is not None and after is not None and after[0] <= before[0]:
            return None
        return preds[0]
    if unit.kind == "weighted" and unit.op_type == "ConvTranspose" and _stride(ctx, uid) >= 2:
        return preds[0]
    return None


def downsample_source(ctx: DetectionContext, uid: str, depth: int = 3) -> tuple[str, set[str]] | None:
    """The fine unit that ``uid`` downsamples by a stride, and the units on the way.

    A stride-2 conv or pool; a 1×1 conv after one (MP's and ADown's pool branch); or a Concat
    whose inputs all are downsamples (an MP or ADown block's own Concat).
    """
    unit = ctx.unit(uid)
    preds = ctx.preds(uid)
    if depth <= 0 or not preds:
        return None
    if unit.kind in ("weighted", "pool") and len(preds) == 1:
        if _stride(ctx, uid) >= 2 and unit.op_type != "ConvTranspose":
            return preds[0], {uid}
        if unit.kind == "weighted":
            inner = downsample_source(ctx, preds[0], depth - 1)
            if inner is not None and ctx.kind(preds[0]) == "pool":
                return inner[0], inner[1] | {uid}
        return None
    if channel_concat(ctx, uid):
        parts = [downsample_source(ctx, p, depth - 1) for p in preds]
        if all(p is not None for p in parts):
            way = {uid}
            for p in parts:
                assert p is not None
                way |= p[1]
            return parts[0][0], way  # type: ignore[index]
    return None


def _exclusive_feed(ctx: DetectionContext, uid: str, limit: int = 2) -> set[str]:
    """Weighted units feeding ``uid`` only (up to ``limit``): the merge's own convs."""
    units: set[str] = set()
    cur = uid
    while len(units) < limit:
        preds = ctx.preds(cur)
        if len(preds) != 1 or not ctx.is_weighted(preds[0]) or len(ctx.succs(preds[0])) != 1:
            break
        cur = preds[0]
        units.add(cur)
    return units


def _own_convs(ctx: DetectionContext, merge: str, uid: str, limit: int = 2) -> set[str]:
    """``uid`` itself when it is a weighted unit feeding only the merge, and its exclusive feed."""
    if not ctx.is_weighted(uid) or ctx.succs(uid) != [merge]:
        return set()
    return {uid} | _exclusive_feed(ctx, uid, limit - 1)


def _reaches(ctx: DetectionContext, src: str, dst: str) -> bool:
    return src == dst or nx.has_path(ctx.layers.dag, src, dst)


class FpnDetector:
    """One top-down merge: a channel Concat of an upsampled coarse feature (Resize/Upsample, or
    a stride-2 ConvTranspose) and a lateral feature not computed from the coarse one. The
    merge's own convs (a reduce conv before the upsample, a lateral 1×1, v6's downsampled finer
    input) belong to it.

    Evidence: "Concat of a coarse feature upsampled by <op> with a lateral feature".
    """

    kind = "fpn"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        found = []
        for uid in ctx.layers.topo_order():
            if not channel_concat(ctx, uid):
                continue
            preds = ctx.preds(uid)
            ups = {p: s for p in preds if (s := upsample_source(ctx, p)) is not None}
            if not ups:
                continue
            lateral = [p for p in preds if p not in ups and not any(_reaches(ctx, s, p) for s in ups.values())]
            if not lateral:
                continue
            units = {uid}
            for p in preds:
                if p in ups:
                    units.add(p)
                    units |= _exclusive_feed(ctx, p, 1)
                else:
                    units |= _own_convs(ctx, uid, p)
            op = ctx.unit(next(iter(ups))).op_type
            found.append(ctx.make_match(
                self.kind, units, structure={"inputs": len(preds), "upsample": op},
                evidence=f"Concat of a coarse feature upsampled by {op} with a lateral feature",
            ))
        return found


class PanDetector:
    """One bottom-up merge: a channel Concat of a stride-2 downsample of a fine feature (conv
    s2, MP, ADown, SCDown) and a top-down feature not computed from the fine one (so an MP's or
    ADown's own Concat is not one). The exporter may fuse an MP/ADown Concat with the PAN Concat
    into one 3-input Concat; it is one merge. The downsample's units (and the mp/adown/scdown
    block feeding it) belong to it.

    Evidence: "Concat of a fine feature downsampled by stride 2 with a top-down feature".
    """

    kind = "pan"
    after: tuple[str, ...] = DOWNSAMPLE_KINDS

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        downs = [m for kind in DOWNSAMPLE_KINDS for m in ctx.matches(kind)]
        found = []
        for uid in ctx.layers.topo_order():
            if not channel_concat(ctx, uid):
                continue
            preds = ctx.preds(uid)
            if any(upsample_source(ctx, p) is not None for p in preds):
                continue  # a top-down merge (v6 BiFusion also takes a downsampled input)
            down = {p: d for p in preds if (d := downsample_source(ctx, p)) is not None}
            if not down:
                continue
            top = [p for p in preds if p not in down and not any(_reaches(ctx, d[0], p) for d in down.values())]
            if not top:
                continue
            units = {uid}
            for p, (_, way) in down.items():
                units |= way | _own_convs(ctx, uid, p)
            for m in downs:
                if m.units & units or any(s == uid for u in m.units for s in ctx.succs(u)):
                    units |= m.units
            found.append(ctx.make_match(
                self.kind, units, structure={"inputs": len(preds), "downsampled": len(down)},
                evidence="Concat of a fine feature downsampled by stride 2 with a top-down feature",
            ))
        return found


register(FpnDetector())
register(PanDetector())
