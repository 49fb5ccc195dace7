"""Attention detectors: ``attention``, ``psa``, ``c2psa`` and ``a2c2f`` (see GUIDE.md).

In the layer view an attention's first ``MatMul`` (q·kᵀ) is a data×data merge unit with the
``Softmax`` folded into it (or into a mask ``Add`` right after it), and its second ``MatMul``
(weights·v) is another merge. The q/k/v projections, the positional conv and the output
projection around them belong to the same block.
"""

from __future__ import annotations

from itertools import pairwise

from graphpath.blocks.base import BlockMatch, DetectionContext, register
from graphpath.model.layers import MATMUL_OPS
from graphpath.model.ops import float_op_type

#: Fused attention ops (onnxruntime contrib, opset 23) that hold a whole attention in one node.
FUSED_ATTENTION_OPS = frozenset(
    {"Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedMultiHeadAttention"}
)
SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax"})
#: A softmax written out by some converters: ``Exp → ReduceSum → Div``.
DECOMPOSED_SOFTMAX = frozenset({"Exp", "ReduceSum", "Div"})
#: How far the walk from the two MatMuls goes to reach the q/k/v and output projections.
_WALK = 3


def folded_ops(ctx: DetectionContext, uid: str) -> list[str]:
    """Op types of the ONNX nodes folded into a unit (its anchor excluded), quantized ops as
    the float op they compute."""
    return [float_op_type(ctx.graph.op(n).op_type) for n in ctx.unit(uid).nodes[1:]]


def has_softmax(ctx: DetectionContext, uid: str) -> bool:
    """A softmax (or its ``Exp → ReduceSum → Div`` expansion) is folded into the unit."""
    ops = set(folded_ops(ctx, uid))
    return bool(ops & SOFTMAX_OPS) or DECOMPOSED_SOFTMAX <= ops


def is_data_matmul(ctx: DetectionContext, uid: str) -> bool:
    """A MatMul of two data tensors (an attention product, not a weighted projection)."""
    unit = ctx.unit(uid)
    return unit.kind == "merge" and unit.op_type in MATMUL_OPS


def is_conv1x1(ctx: DetectionContext, uid: str) -> bool:
    info = ctx.conv(uid)
    return info is not None and all(k == 1 for k in info.kernel) and info.stride == 1


class AttentionDetector:
    """``MatMul → Softmax → MatMul`` over tokens: a data×data MatMul whose scores go through a
    softmax (folded into it, or into a mask merge right after it) into a second data×data
    MatMul. The block also holds the q/k/v projections feeding the products, a side conv on v
    (positional encoding) and the output projection. Fused ``Attention`` ops count too. The
    DFL softmax has no MatMul and never matches.

    Evidence: "q·kᵀ MatMul → softmax → MatMul with v".
    """

    kind = "attention"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out: list[BlockMatch] = []
        used: set[str] = set()
        for uid in ctx.layers.topo_order():
            unit = ctx.unit(uid)
            if unit.op_type in FUSED_ATTENTION_OPS:
                out.append(ctx.make_match(self.kind, self._grow(ctx, {uid}), structure={"fused": True},
                                          evidence=f"fused {unit.op_type} op"))
                continue
            if unit.kind != "merge" or not has_softmax(ctx, uid):
                continue
            if is_data_matmul(ctx, uid):
                m1 = uid
            else:  # softmax folded into a mask/bias merge right after q·kᵀ
                m1 = next((p for p in ctx.preds(uid) if is_data_matmul(ctx, p)), "")
            m2 = next((s for s in ctx.succs(uid) if is_data_matmul(ctx, s)), "")
            if not m1 or not m2 or m1 in used or m2 in used:
                continue
            used |= {m1, m2}
            units = self._grow(ctx, {m1, uid, m2})
            out.append(ctx.make_match(
                self.kind, units, structure={"weighted": sum(1 for u in units if ctx.is_weighted(u))},
                evidence="q·kᵀ MatMul → softmax → MatMul with v",
            ))
        return out

    @staticmethod
    def _grow(ctx: DetectionContext, core: set[str]) -> set[str]:
        """Add the projections: back through splits/reshapes to the first weighted units
        (q/k/v), forward through merges internal to the block to the first weighted unit
        (output projection), picking up side convs (positional conv on v) fed from inside."""
        units = set(core)
        frontier = [p for u in core for p in ctx.preds(u) if p not in units]
        for _ in range(_WALK):
            nxt: list[str] = []
            for p in frontier:
                if p in units:
                    continue
                kind = ctx.kind(p)
                if kind == "weighted":
                    units.add(p)
                elif kind in ("split", "other"):
                    units.add(p)
                    nxt.extend(ctx.preds(p))
            frontier = nxt
        frontier = [s for u in core for s in ctx.succs(u) if s not in units]
        for _ in range(_WALK):
            nxt = []
            for s in frontier:
                if s in units:
                    continue
                if ctx.is_weighted(s):
                    if all(p in units for p in ctx.preds(s)):
                        units.add(s)  # output projection
                    continue
                if ctx.kind(s) != "merge":
                    continue
                side = [p for p in ctx.preds(s) if p not in units]
                if all(ctx.is_weighted(p) and ctx.preds(p) and all(q in units for q in ctx.preds(p))
                       for p in side):
                    units.add(s)
                    units.update(side)  # positional conv on v
                    nxt.extend(ctx.succs(s))
            frontier = nxt
        return units


# --------------------------------------------------------------------------- PSA / C2PSA


def psa_candidates(ctx: DetectionContext) -> list[tuple[set[str], int]]:
    """Every PSA-shaped block: ``conv 1×1 → split``; one half → a chain of attention blocks,
    each with residual adds; Concat of the untouched half and the chain → ``conv 1×1``.

    Returns ``(units, attention blocks in the chain)`` per block.
    """
    attentions = ctx.matches("attention")
    if not attentions:
        return []
    att_units = [a.units for a in attentions]
    inside_any = set().union(*att_units)
    found: list[tuple[set[str], int]] = []
    for cat in ctx.layers.topo_order():
        unit = ctx.unit(cat)
        if unit.kind != "merge" or unit.op_type != "Concat":
            continue
        preds = ctx.preds(cat)
        succs = ctx.succs(cat)
        if len(preds) != 2 or any(ctx.layers.edge_count(p, cat) != 1 for p in preds):
            continue
        if len(succs) != 1 or not is_conv1x1(ctx, succs[0]):
            continue
        half = next((p for p in preds if ctx.kind(p) == "split" and len(ctx.preds(p)) == 1), "")
        if not half:
            continue
        cv1 = ctx.preds(half)[0]
        if not is_conv1x1(ctx, cv1):
            continue
        region = ctx.between(cv1, cat)
        if not ctx.is_closed(region, cv1, cat) or any(s not in region for s in ctx.succs(cv1)):
            continue
        n_att = sum(1 for a in att_units if a <= region)
        adds = [u for u in region if u not in inside_any and ctx.kind(u) == "merge"
                and ctx.unit(u).op_type in ("Add", "Sum")]
        concats = [u for u in region if ctx.unit(u).op_type == "Concat"]
        if n_att < 1 or len(adds) < 2 * n_att or concats:
            continue
        found.append((region | {cv1, cat, succs[0]}, n_att))
    return found


#: Kinds that only YOLOv10 has (PSA's generation) and only YOLO11 has (C2PSA's).
V10_EVIDENCE = ("c2fcib", "scdown")
V11_EVIDENCE = ("c3k2",)


def psa_generation(ctx: DetectionContext, n_att: int) -> str:
    """``psa`` or ``c2psa`` for a PSA-shaped block.

    A v10 PSA and a YOLO11 C2PSA with one PSA block are the same graph (same split, same
    attention, same FFN, same heads rule ``c // 64``), so: two or more chained attention
    blocks → ``c2psa``; else v10-only blocks elsewhere in the graph (C2fCIB, SCDown) →
    ``psa``; else C3k2 elsewhere → ``c2psa``; else ``psa`` (the
    single-attention form).
    """
    if n_att >= 2:
        return "c2psa"
    if any(ctx.matches(k) for k in V10_EVIDENCE):
        return "psa"
    if any(ctx.matches(k) for k in V11_EVIDENCE):
        return "c2psa"
    return "psa"


class _PSAFamily:
    kind = ""
    after: tuple[str, ...] = ("attention", "residual", *V10_EVIDENCE, *V11_EVIDENCE)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out = []
        for units, n_att in psa_candidates(ctx):
            if psa_generation(ctx, n_att) != self.kind:
                continue
            out.append(ctx.make_match(
                self.kind, units, structure={"attention_blocks": n_att},
                evidence=f"conv 1×1 → split; one half → {n_att} attention + FFN block(s) with "
                         "residual adds; concat → conv 1×1",
            ))
        return out


class PSADetector(_PSAFamily):
    """YOLOv10 PSA: ``conv 1×1 → split``; one half → attention (+ residual add) → FFN
    (+ residual add); concat with the other half → ``conv 1×1``. Told from a one-block C2PSA
    by generation evidence (see :func:`psa_generation`).

    Evidence: "conv 1×1 → split; one half → 1 attention + FFN block(s) …".
    """

    kind = "psa"


class C2PSADetector(_PSAFamily):
    """YOLO11 C2PSA: the PSA wiring with ``n`` PSA blocks chained on the split half (``n ≥ 2``
    proves it; ``n = 1`` needs generation evidence, see :func:`psa_generation`).

    Evidence: "conv 1×1 → split; one half → n attention + FFN block(s) …".
    """

    kind = "c2psa"


# --------------------------------------------------------------------------- A2C2f


class A2C2fDetector:
    """YOLO12 A2C2f (R-ELAN): ``conv 1×1`` (no split) → a chain of ``n`` units, each a closed
    sub-block holding weighted units and merges (two area-attention blocks, or a C3k) → Concat
    of the first conv's output and every unit's output → ``conv 1×1``; in l/x an add of the
    block input and the learned-scaled output (included). Pooling chains (SPPF, SPPELAN) have
    no weighted unit between taps; C2f/GELAN concat split halves; ELAN has a second branch
    from the input: none of them match.

    Evidence: "conv 1×1 → n chained units, concat of the conv and every unit → conv 1×1".
    """

    kind = "a2c2f"
    after: tuple[str, ...] = ("attention",)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        rank = {u: i for i, u in enumerate(ctx.layers.topo_order())}
        out: list[BlockMatch] = []
        for cat in ctx.layers.topo_order():
            units = self._match(ctx, cat, rank)
            if units is None:
                continue
            taps = len(ctx.preds(cat))
            n_att = sum(1 for a in ctx.matches("attention") if a.units <= units)
            out.append(ctx.make_match(
                self.kind, units, structure={"units": taps - 1, "attention": n_att},
                evidence=f"conv 1×1 → {taps - 1} chained unit(s); concat of the conv and every "
                         "unit → conv 1×1",
            ))
        return out

    @staticmethod
    def _match(ctx: DetectionContext, cat: str, rank: dict[str, int]) -> set[str] | None:
        unit = ctx.unit(cat)
        if unit.kind != "merge" or unit.op_type != "Concat":
            return None
        preds = sorted(ctx.preds(cat), key=rank.__getitem__)
        succs = ctx.succs(cat)
        if len(preds) < 2 or len(succs) != 1 or not is_conv1x1(ctx, succs[0]):
            return None
        if any(ctx.layers.edge_count(p, cat) != 1 for p in preds):
            return None
        cv1, cv2 = preds[0], succs[0]
        if not is_conv1x1(ctx, cv1) or len(ctx.preds(cv1)) != 1:
            return None
        units = {cv1, cat, cv2}
        for a, b in pairwise(preds):
            region = ctx.between(a, b)
            if not region or not ctx.is_closed(region, a, b):
                return None
            if not any(ctx.is_weighted(u) for u in region) or not any(ctx.kind(u) == "merge" for u in region):
                return None
            if any(s not in region and s != cat for s in ctx.succs(a)):
                return None
            units |= region | {b}
        # l/x: x + γ·cv2(...) — γ is a constant, folded into cv2; the add reads the block input.
        x = ctx.preds(cv1)[0]
        after_cv2 = ctx.succs(cv2)
        if len(after_cv2) == 1 and ctx.kind(after_cv2[0]) == "merge" and set(ctx.preds(after_cv2[0])) == {x, cv2}:
            units.add(after_cv2[0])
        return units


register(AttentionDetector())
register(PSADetector())
register(C2PSADetector())
register(A2C2fDetector())
