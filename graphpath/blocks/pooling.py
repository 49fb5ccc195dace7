"""Pooling and down-sampling detectors: SPP, SPPF, SPPCSPC, SPPELAN, MP, ADown, SCDown.

Pyramid pooling blocks share one *core*: a conv ``F`` whose output and some stride-1
max-pools of it meet in one Concat that feeds one conv ``Q``. The pools are either parallel
(each pool reads ``F``: SPP 5 ‖ 9 ‖ 13) or chained (``F → pool → pool → pool``: SPPF).
A core wrapped in a CSP split (a bypass conv from the block input joined by a second Concat)
is an ``sppcspc`` (v7 SPPCSPC, v6 SimCSPSPPF); otherwise a parallel core is ``spp`` and a
chained core is ``sppf`` or ``sppelan``.

SPPF and SPPELAN are the same graph: ``conv 1×1 → 3 chained maxpool 5 → Concat of 4 →
conv 1×1``. Even the channel ratio does not separate them (gelan-c's SPPELAN(512, 512, 256)
halves its input exactly like SPPF). The rule used is generation-level evidence: a chained
core is ``sppelan`` when the model has GELAN or ADown blocks (YOLOv9), ``sppf`` otherwise.

Down-sampling blocks end in a Concat that the TorchScript exporter may merge with the next
Concat on the same axis (a v7/v9 PAN merge): the detectors only ask that the block's own
branches enter the Concat, never that they are its only inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphpath.blocks.base import BlockMatch, DetectionContext, register
from graphpath.blocks.elan import (
    halves,
    is_concat,
    is_conv,
    merge_inputs,
    only_pred,
    only_succ,
    pool_info,
)

# --------------------------------------------------------------------------- pyramid pooling


@dataclass(frozen=True)
class PoolCore:
    """``first`` conv → max-pools → ``cat`` → ``post`` conv; ``chained`` for the SPPF form."""

    first: str
    pools: tuple[str, ...]
    cat: str
    post: str
    chained: bool
    kernels: tuple[int, ...]

    @property
    def units(self) -> set[str]:
        return {self.first, *self.pools, self.cat, self.post}


def pool_cores(ctx: DetectionContext) -> list[PoolCore]:
    """Every pyramid-pooling core of the model (see the module docstring)."""
    cores = []
    for cat in ctx.layers.topo_order():
        if is_concat(ctx, cat):
            core = _core_at(ctx, cat)
            if core is not None:
                cores.append(core)
    return cores


def _core_at(ctx: DetectionContext, cat: str) -> PoolCore | None:
    inputs = merge_inputs(ctx, cat)
    if len(inputs) < 3 or len(set(inputs)) != len(inputs):
        return None
    pinfo = {u: pool_info(ctx, u, "MaxPool") for u in inputs}
    side = {u: info[0] for u, info in pinfo.items() if info is not None and info[1] == 1}
    pools = [u for u in inputs if u in side]
    others = [u for u in inputs if u not in side]
    if len(others) != 1 or len(pools) < 2:
        return None
    first = others[0]
    post = only_succ(ctx, cat)
    if ctx.conv(first) is None or post is None or ctx.conv(post) is None:
        return None
    poolset = set(pools)
    feeds = {p: only_pred(ctx, p) for p in pools}
    if all(f == first for f in feeds.values()):
        chained = False
        if len({side[p] for p in pools}) != len(pools):
            return None
    else:
        # A chain first → p1 → p2 → …: each pool fed by the previous one, each feeding only
        # the next one and the Concat.
        order = [first]
        while True:
            nxt = [p for p in pools if feeds[p] == order[-1]]
            if len(nxt) != 1:
                break
            order.append(nxt[0])
        if len(order) != len(pools) + 1:
            return None
        chained = True
        pools = order[1:]
    kernels = tuple(side[p] for p in pools)
    allowed = poolset | {cat}
    if any(s not in allowed for u in (first, *pools) for s in ctx.succs(u)):
        return None
    return PoolCore(first=first, pools=tuple(pools), cat=cat, post=post, chained=chained, kernels=kernels)


def _csp_wrap(ctx: DetectionContext, core: PoolCore) -> tuple[set[str], str] | None:
    """The SPPCSPC wrap of a core: ``post`` → convs → a 2-input Concat whose other input is a
    bypass conv on the block input ``x``, and ``core.first`` reached from ``x`` through a
    short conv chain. Returns the block's units and ``x``."""
    cur = core.post
    for _ in range(4):
        nxt = only_succ(ctx, cur)
        if nxt is None:
            return None
        if is_concat(ctx, nxt):
            merge = nxt
            break
        if ctx.conv(nxt) is None:
            return None
        cur = nxt
    else:
        return None
    inputs = merge_inputs(ctx, merge)
    if len(inputs) != 2 or cur not in inputs:
        return None
    bypass = next(u for u in inputs if u != cur)
    # A CSP split keeps the resolution: every conv of the block is stride 1 (a stride-2 conv
    # on each side is a backbone stage with SPP meeting a neck's bottom-up merge: DAMO-YOLO)
    info = ctx.conv(bypass)
    if info is None or info.stride != 1 or only_succ(ctx, bypass) != merge:
        return None
    x = only_pred(ctx, bypass)
    if x is None:
        return None
    cur = core.first
    for _ in range(5):
        prev = only_pred(ctx, cur)
        if prev is None:
            return None
        if prev == x:
            break
        info = ctx.conv(prev)
        if info is None or info.stride != 1:
            return None
        cur = prev
    else:
        return None
    region = ctx.between(x, merge)
    if not ctx.is_closed(region, x, merge):
        return None
    units = region | {merge}
    trans = only_succ(ctx, merge)
    if trans is not None and ctx.conv(trans) is not None:
        units.add(trans)
    return units, x


class SppCspcDetector:
    """SPPCSPC (v7) and SimCSPSPPF (v6, counted as ``sppcspc``): a pyramid-pooling core
    inside a CSP split.

    Matches ``x → conv chain → core (parallel or chained max-pools) → conv chain`` joined with
    a bypass conv on ``x`` by a two-input Concat, then the transition conv; the region between
    ``x`` and that Concat must be closed. Units: every conv, pool and Concat of the block.
    """

    kind = "sppcspc"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out = []
        for core in pool_cores(ctx):
            wrap = _csp_wrap(ctx, core)
            if wrap is None:
                continue
            units, _ = wrap
            form = "chained (SPPF)" if core.chained else "parallel (SPP)"
            out.append(ctx.make_match(
                "sppcspc", units,
                structure={"pools": list(core.kernels), "chained": core.chained},
                evidence=(
                    f"max-pool pyramid, {form} {list(core.kernels)}, inside a CSP split: bypass "
                    "conv on the block input joined by a second Concat -> transition conv"
                ),
            ))
        return out


def _free_cores(ctx: DetectionContext, chained: bool) -> list[PoolCore]:
    """Cores of one form that are not inside an ``sppcspc``."""
    taken = [m.units for m in ctx.matches("sppcspc")]
    return [c for c in pool_cores(ctx) if c.chained == chained and not any(c.units <= t for t in taken)]


class SppDetector:
    """SPP (v3-spp, v4, YOLOX): ``conv → max-pool k1 ‖ k2 ‖ …`` (stride 1, distinct kernels,
    each reading the conv) + the conv itself → Concat → conv; not inside a CSP split.
    Units: both convs, the pools and the Concat."""

    kind = "spp"
    after: tuple[str, ...] = ("sppcspc",)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        return [
            ctx.make_match(
                "spp", core.units, structure={"pools": list(core.kernels)},
                evidence=f"conv -> parallel stride-1 max-pools {list(core.kernels)} + identity -> Concat -> conv",
            )
            for core in _free_cores(ctx, chained=False)
        ]


def _is_v9(ctx: DetectionContext) -> bool:
    return bool(ctx.matches("gelan") or ctx.matches("adown"))


class SppfDetector:
    """SPPF (v5, v8, v10, YOLO11): ``conv → max-pool → max-pool → max-pool`` (stride 1,
    chained) with a Concat of the conv and every pool → conv; not inside a CSP split, in a
    model without GELAN/ADown blocks (there the same graph is an SPPELAN).
    Units: both convs, the pools and the Concat."""

    kind = "sppf"
    after: tuple[str, ...] = ("sppcspc", "gelan", "adown")

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        if _is_v9(ctx):
            return []
        return [
            ctx.make_match(
                "sppf", core.units, structure={"pools": list(core.kernels)},
                evidence=f"conv -> {len(core.pools)} chained stride-1 max-pools, Concat of all taps -> conv",
            )
            for core in _free_cores(ctx, chained=True)
        ]


class SppElanDetector:
    """SPPELAN (v9): the SPPF graph (conv 1×1 → chained max-pools, Concat of all taps →
    conv 1×1) in a model that has GELAN or ADown blocks — the graph alone cannot tell it
    from SPPF, the generation can. Units: both convs, the pools and the Concat."""

    kind = "sppelan"
    after: tuple[str, ...] = ("sppcspc", "gelan", "adown")

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        if not _is_v9(ctx):
            return []
        return [
            ctx.make_match(
                "sppelan", core.units, structure={"pools": list(core.kernels)},
                evidence=(
                    f"conv -> {len(core.pools)} chained stride-1 max-pools, Concat of all taps -> conv, "
                    "in a model with GELAN/ADown blocks (SPPELAN rather than SPPF)"
                ),
            )
            for core in _free_cores(ctx, chained=True)
        ]


# --------------------------------------------------------------------------- down-sampling


class MpDetector:
    """MP down-sampling (v7): ``max-pool s2 → conv 1×1`` ‖ ``conv 1×1 → conv k×k s2`` from
    one input, both entering one Concat (which may also take a PAN merge's top-down feature:
    the exporter fuses the two Concats). Units: pool, the three convs and the Concat."""

    kind = "mp"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out = []
        for cat in ctx.layers.topo_order():
            if not is_concat(ctx, cat):
                continue
            inputs = merge_inputs(ctx, cat)
            pool_side = {u: b for u in inputs if (b := self._pool_branch(ctx, u)) is not None}
            conv_side = {u: b for u in inputs if (b := self._conv_branch(ctx, u)) is not None}
            for pc, (pool, x) in pool_side.items():
                for cc, (reduce, y) in conv_side.items():
                    if x != y:
                        continue
                    out.append(ctx.make_match(
                        "mp", {pool, pc, reduce, cc, cat},
                        structure={"concat_inputs": len(inputs)},
                        evidence="max-pool s2 -> 1x1 conv beside 1x1 conv -> strided conv, from one input, Concat",
                    ))
                    break
        return out

    @staticmethod
    def _pool_branch(ctx: DetectionContext, conv: str) -> tuple[str, str] | None:
        """``(pool, input)`` when ``conv`` is a 1×1 conv fed only by a stride-2 max-pool."""
        if not is_conv(ctx, conv, 1, stride=1) or len(ctx.succs(conv)) != 1:
            return None
        pool = only_pred(ctx, conv)
        info = pool_info(ctx, pool, "MaxPool") if pool is not None else None
        if pool is None or info is None or info[1] != 2 or ctx.succs(pool) != [conv]:
            return None
        x = only_pred(ctx, pool)
        return (pool, x) if x is not None else None

    @staticmethod
    def _conv_branch(ctx: DetectionContext, conv: str) -> tuple[str, str] | None:
        """``(reduce, input)`` when ``conv`` is a stride-2 k×k conv fed only by a 1×1 conv."""
        if not is_conv(ctx, conv, min_k=3, stride=2) or len(ctx.succs(conv)) != 1:
            return None
        reduce = only_pred(ctx, conv)
        if reduce is None or not is_conv(ctx, reduce, 1, stride=1) or ctx.succs(reduce) != [conv]:
            return None
        x = only_pred(ctx, reduce)
        return (reduce, x) if x is not None else None


class ADownDetector:
    """ADown (v9): ``avg-pool → split in two``; one half → ``conv k×k s2``, the other →
    ``max-pool s2 → conv 1×1``; both enter one Concat (possibly fused with a PAN Concat).
    Units: the avg-pool, the split(s), both convs, the max-pool and the Concat."""

    kind = "adown"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out = []
        for avg in ctx.layers.topo_order():
            if pool_info(ctx, avg, "AveragePool") is None:
                continue
            cut = halves(ctx, avg)
            if cut is None:
                continue
            match = self._match(ctx, avg, cut)
            if match is not None:
                out.append(match)
        return out

    def _match(self, ctx: DetectionContext, avg: str, cut: list[str]) -> BlockMatch | None:
        targets = [s for c in dict.fromkeys(cut) for s in ctx.succs(c)]
        if len(targets) != 2:
            return None
        convs = [t for t in targets if is_conv(ctx, t, min_k=3, stride=2)]
        pools = [t for t in targets if (pool_info(ctx, t, "MaxPool") or (0, 0))[1] == 2]
        if len(convs) != 1 or len(pools) != 1:
            return None
        conv, pool = convs[0], pools[0]
        proj = only_succ(ctx, pool)
        if proj is None or not is_conv(ctx, proj, 1, stride=1):
            return None
        cat = only_succ(ctx, conv)
        if cat is None or not is_concat(ctx, cat) or only_succ(ctx, proj) != cat:
            return None
        return ctx.make_match(
            "adown", {avg, *cut, conv, pool, proj, cat},
            structure={"concat_inputs": len(merge_inputs(ctx, cat))},
            evidence="avg-pool split in two: strided conv beside max-pool s2 -> 1x1 conv, Concat",
        )


class SCDownDetector:
    """SCDown (v10): ``conv 1×1 s1`` (channels) → depth-wise ``conv k×k stride 2`` (space)
    without activation, the 1×1 feeding only the depth-wise conv. Units: both convs.

    The missing activation on the depth-wise conv is part of the evidence; a ShuffleNet-V2
    down-sampling branch (1×1 → linear depth-wise s2 → 1×1) looks the same locally."""

    kind = "scdown"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out = []
        for dw in ctx.layers.topo_order():
            info = ctx.conv(dw)
            if info is None or not info.depthwise or info.stride != 2 or ctx.unit(dw).activation is not None:
                continue
            pw = only_pred(ctx, dw)
            pinfo = ctx.conv(pw) if pw is not None else None
            if pw is None or pinfo is None or pinfo.groups != 1 or not is_conv(ctx, pw, 1, stride=1):
                continue
            if ctx.succs(pw) != [dw]:
                continue
            side = max(info.kernel, default=1)
            out.append(ctx.make_match(
                "scdown", {pw, dw}, structure={"kernel": side},
                evidence=f"1x1 conv -> linear depth-wise {side}x{side} conv stride 2",
            ))
        return out


register(SppCspcDetector())
register(SppDetector())
register(SppfDetector())
register(SppElanDetector())
register(MpDetector())
register(ADownDetector())
register(SCDownDetector())
