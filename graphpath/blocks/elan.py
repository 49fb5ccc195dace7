"""Layer-aggregation detectors: ELAN and E-ELAN (YOLOv7), GELAN / RepNCSPELAN4 (YOLOv9).

All three end in a Concat of *taps* taken along a chain of convs, followed by one 1×1
transition conv; they differ in where the taps come from:

* ``elan``: two 1×1 convs on one input (bypass ‖ chain head); the chain head feeds ≥ 2
  chained k×k convs; the Concat takes the bypass, the chain head and some chain convs
  (the last one always) — 4 taps in the v7 backbone, 6 in ELAN-W.
* ``e_elan``: two ELANs on the same input whose transition convs are summed by one Add.
* ``gelan``: a 1×1 conv split in two halves; the second half feeds two chained units, each a
  CSP block followed by a k×k conv (or, in ELAN1, a single k×k conv); Concat of the two
  halves and both unit outputs (4 taps).

The small structural helpers at the top are shared with :mod:`graphpath.blocks.pooling`.
"""

from __future__ import annotations

from graphpath.blocks.base import BlockMatch, DetectionContext, register

# --------------------------------------------------------------------------- shared helpers

CONCAT_OPS = ("Concat", "ConcatFromSequence")


def is_concat(ctx: DetectionContext, uid: str) -> bool:
    """A Concat merge unit (any axis the layer view kept as a merge)."""
    unit = ctx.unit(uid)
    return unit.kind == "merge" and unit.op_type in CONCAT_OPS


def merge_inputs(ctx: DetectionContext, uid: str) -> list[str]:
    """The units feeding a merge, each repeated by its edge count (``Split`` outputs that
    both enter the Concat count twice)."""
    return [p for p in ctx.preds(uid) for _ in range(ctx.layers.edge_count(p, uid))]


def only_pred(ctx: DetectionContext, uid: str) -> str | None:
    preds = ctx.preds(uid)
    return preds[0] if len(preds) == 1 else None


def only_succ(ctx: DetectionContext, uid: str) -> str | None:
    succs = ctx.succs(uid)
    return succs[0] if len(succs) == 1 else None


def kernel(ctx: DetectionContext, uid: str) -> int | None:
    """Largest kernel side of a conv unit (``None`` for anything else)."""
    info = ctx.conv(uid)
    if info is None:
        return None
    return max(info.kernel, default=1)


def is_conv(ctx: DetectionContext, uid: str, k: int | None = None, *, stride: int | None = None,
            min_k: int | None = None) -> bool:
    """A conv unit, optionally with kernel side ``k`` (or at least ``min_k``) and ``stride``."""
    info = ctx.conv(uid)
    if info is None:
        return False
    side = max(info.kernel, default=1)
    if k is not None and side != k:
        return False
    if min_k is not None and side < min_k:
        return False
    return stride is None or info.stride == stride


def pool_info(ctx: DetectionContext, uid: str, op_type: str) -> tuple[int, int] | None:
    """``(kernel side, stride)`` of a pooling unit of ``op_type``, else ``None``."""
    unit = ctx.unit(uid)
    if unit.kind != "pool" or unit.op_type != op_type:
        return None
    ks = unit.attr("kernel_shape")
    st = unit.attr("strides")
    side = max((int(v) for v in ks), default=1) if isinstance(ks, (tuple, list)) else 1
    stride = max((int(v) for v in st), default=1) if isinstance(st, (tuple, list)) else 1
    return side, stride


def halves(ctx: DetectionContext, uid: str) -> list[str] | None:
    """The split units that cut ``uid``'s output in two: one ``Split`` with two outputs
    (returned twice) or two single-output ``Slice``-like units (``.chunk(2)`` with dynamic
    shapes). ``None`` when ``uid`` is not split in two."""
    splits = [s for s in ctx.succs(uid) if ctx.kind(s) == "split" and only_pred(ctx, s) == uid]
    if len(splits) == 1 and ctx.unit(splits[0]).attr("outputs") == 2:
        return [splits[0], splits[0]]
    if len(splits) == 2 and all(ctx.unit(s).attr("outputs") in (1, None) for s in splits):
        return splits
    return None


# --------------------------------------------------------------------------- ELAN


class ElanDetector:
    """ELAN computational block (v7 backbone ELAN, neck ELAN-W, v7-tiny ELAN).

    Matches a Concat of ≥ 4 conv taps followed by one 1×1 transition conv, where the taps are
    a bypass 1×1 conv and a chain ``1×1 → k×k → k×k …`` (≥ 2 k×k convs, k ≥ 3) whose 1×1
    shares the bypass's input; every tap lies on the bypass or the chain, the chain's last
    conv is a tap and the chain's inner convs feed only the chain and the Concat.
    Units: both 1×1 convs, the chain, the Concat and the transition conv.
    """

    kind = "elan"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out: list[BlockMatch] = []
        for cat in ctx.layers.topo_order():
            if is_concat(ctx, cat):
                match = self._match(ctx, cat)
                if match is not None:
                    out.append(match)
        return out

    def _match(self, ctx: DetectionContext, cat: str) -> BlockMatch | None:
        taps = merge_inputs(ctx, cat)
        if len(taps) < 4 or len(set(taps)) != len(taps) or not all(ctx.is_weighted(t) for t in taps):
            return None
        trans = only_succ(ctx, cat)
        if trans is None or not is_conv(ctx, trans, 1):
            return None
        tapset = set(taps)
        # The deepest tap's single-predecessor conv chain, back to the fork.
        best: list[str] = []
        for t in taps:
            chain = _conv_chain_back(ctx, t, cat)
            if len(chain) > len(best):
                best = chain
        if len(best) < 3:
            return None
        head = best[-1]
        fork = only_pred(ctx, head)
        if fork is None or not is_conv(ctx, head, 1):
            return None
        inner = best[:-1]  # the k×k convs, last one first
        if not all(is_conv(ctx, c, min_k=3, stride=1) for c in inner):
            return None
        if best[0] not in tapset or head not in tapset:
            return None
        rest = tapset - set(best)
        if len(rest) != 1:
            return None
        bypass = next(iter(rest))
        if not is_conv(ctx, bypass, 1) or only_pred(ctx, bypass) != fork:
            return None
        # Inner convs feed only the next chain conv and the Concat (a closed chain).
        allowed = set(best) | {cat}
        for c in best:
            if any(s not in allowed for s in ctx.succs(c)):
                return None
        if any(s != cat for s in ctx.succs(bypass)):
            return None
        units = {bypass, *best, cat, trans}
        return ctx.make_match(
            "elan", units,
            structure={"taps": len(taps), "chain": len(inner), "wide": len(taps) == len(best) + 1},
            evidence=(
                f"bypass 1x1 and a 1x1 -> {len(inner)} chained {kernel(ctx, inner[-1])}x"
                f"{kernel(ctx, inner[-1])} convs from one input, Concat of {len(taps)} taps "
                "along the chain -> 1x1 transition"
            ),
        )


def _conv_chain_back(ctx: DetectionContext, start: str, cat: str, limit: int = 16) -> list[str]:
    """``start`` and its conv ancestors along single-predecessor links, nearest first, as long
    as each ancestor feeds only the chain and ``cat`` (the walk stops below a fork)."""
    chain = [start]
    cur = start
    while len(chain) < limit:
        prev = only_pred(ctx, cur)
        if prev is None or ctx.conv(prev) is None or any(s not in (cur, cat) for s in ctx.succs(prev)):
            break
        chain.append(prev)
        cur = prev
    return chain


class EElanDetector:
    """E-ELAN in its summed form (v7 e6e): two ELAN blocks on the same input whose
    transition convs meet in one two-input Add.

    Units: both ELANs' units and the Add (each ``elan`` nests inside).
    """

    kind = "e_elan"
    after: tuple[str, ...] = ("elan",)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        by_exit: dict[str, tuple[BlockMatch, str]] = {}
        for m in ctx.matches("elan"):
            exit_units = [u for u in m.units if is_conv(ctx, u) and all(s not in m.units for s in ctx.succs(u))]
            entry = _elan_fork(ctx, m)
            if len(exit_units) == 1 and entry is not None:
                by_exit[exit_units[0]] = (m, entry)
        out: list[BlockMatch] = []
        for add in ctx.layers.topo_order():
            unit = ctx.unit(add)
            if unit.kind != "merge" or unit.op_type not in ("Add", "Sum"):
                continue
            preds = merge_inputs(ctx, add)
            if len(preds) != 2 or len(set(preds)) != 2 or not all(p in by_exit for p in preds):
                continue
            (ma, fa), (mb, fb) = by_exit[preds[0]], by_exit[preds[1]]
            if fa != fb:
                continue
            out.append(ctx.make_match(
                "e_elan", ma.units | mb.units | {add},
                structure={"elans": 2, "merge": unit.op_type},
                evidence="two ELAN blocks on the same input, transition outputs summed by one Add",
            ))
        return out


def _elan_fork(ctx: DetectionContext, m: BlockMatch) -> str | None:
    forks = {p for u in m.units for p in ctx.preds(u) if p not in m.units}
    return next(iter(forks)) if len(forks) == 1 else None


# --------------------------------------------------------------------------- GELAN


class GelanDetector:
    """GELAN / RepNCSPELAN4 (YOLOv9): ``conv 1×1`` split in two halves; the second half
    feeds unit 1, unit 1 feeds unit 2; Concat of [half, half, unit 1, unit 2] → conv 1×1.

    Each unit ends in a k×k conv (k ≥ 3, not depth-wise) and is either a CSP block followed
    by that conv (a Concat inside, then a 1×1 before the k×k: RepNCSP + conv) or that conv
    alone (ELAN1). This separates it from C2f (bottleneck units of two convs, no Concat
    inside) and C3k2 (units end in the C3k's 1×1). Units: the first conv, the split(s),
    everything between them and the Concat, the Concat and the transition conv.
    """

    kind = "gelan"
    after: tuple[str, ...] = ("csp",)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out: list[BlockMatch] = []
        csp_units = [m.units for m in ctx.matches("csp")]
        for cat in ctx.layers.topo_order():
            if is_concat(ctx, cat):
                match = self._match(ctx, cat, csp_units)
                if match is not None:
                    out.append(match)
        return out

    def _match(self, ctx: DetectionContext, cat: str, csp_units: list[frozenset[str]]) -> BlockMatch | None:
        taps = merge_inputs(ctx, cat)
        if len(taps) != 4:
            return None
        trans = only_succ(ctx, cat)
        if trans is None or not is_conv(ctx, trans, 1):
            return None
        split_taps = [t for t in taps if ctx.kind(t) == "split"]
        unit_taps = [t for t in taps if ctx.kind(t) != "split"]
        if len(split_taps) != 2 or len(unit_taps) != 2:
            return None
        first = only_pred(ctx, split_taps[0])
        if first is None or not is_conv(ctx, first, 1):
            return None
        cut = halves(ctx, first)
        if cut is None or sorted(cut) != sorted(split_taps):
            return None
        if not all(is_conv(ctx, t, min_k=3) and not _depthwise(ctx, t) for t in unit_taps):
            return None
        region = ctx.between(first, cat)
        if not ctx.is_closed(region, first, cat):
            return None
        anc = {t: ctx.between(first, t) for t in unit_taps}
        u1, u2 = sorted(unit_taps, key=lambda t: len(anc[t]))
        if u1 not in anc[u2]:
            return None  # the two units must be chained
        body1 = anc[u1] - set(cut)
        body2 = anc[u2] - anc[u1] - {u1}
        kinds = [_unit_body(ctx, u1, body1), _unit_body(ctx, u2, body2)]
        if None in kinds:
            return None
        units = {first, *cut, *region, cat, trans}
        inner_csp = sum(1 for cu in csp_units if cu <= units)
        return ctx.make_match(
            "gelan", units,
            structure={"units": kinds, "inner_csp": inner_csp, "taps": 4},
            evidence=(
                "1x1 conv split in two halves; the second half feeds two chained "
                f"[{kinds[0]} + {kernel(ctx, u1)}x{kernel(ctx, u1)} conv] units; Concat of the halves "
                "and both units -> 1x1 transition"
            ),
        )


def _depthwise(ctx: DetectionContext, uid: str) -> bool:
    info = ctx.conv(uid)
    return info is not None and info.depthwise


def _unit_body(ctx: DetectionContext, tail: str, body: set[str]) -> str | None:
    """Classify one GELAN unit ending in conv ``tail``: ``"csp"`` when a Concat sits in the
    unit and the conv before ``tail`` is a 1×1 fed by it, ``"conv"`` for a lone conv."""
    if not body:
        return "conv"
    prev = only_pred(ctx, tail)
    if prev is None or not is_conv(ctx, prev, 1):
        return None
    feed = only_pred(ctx, prev)
    if feed is None or not is_concat(ctx, feed) or feed not in body:
        return None
    return "csp"


register(ElanDetector())
register(EElanDetector())
register(GelanDetector())
