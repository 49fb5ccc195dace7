"""CSP-family detectors: ``csp`` (BottleneckCSP, C3, C3k, RepNCSP, YOLOX CSPLayer, the
CSPDarknet stage) and the C2f family ``c2f``, ``c3k2``, ``c2fcib``.

``csp``: from one input, ``conv 1×1 → body`` ‖ ``conv 1×1`` (bypass) → cat of the two →
``conv 1×1``, with or without a channel-attention gate (SE / EffectiveSE: the cat times a sigmoid
of a 1×1 conv of its global average) between the cat and that conv, as PP-YOLOE's CSPResStage
has; or the cat takes the bypass and taps along the body's chain, each block's output
(DAMO-YOLO's CSPStage). The body is closed (entered from the first 1×1 only, leaving only into the cat)
and holds no pooling or resampling, so SPPCSPC / SimCSPSPPF (pools inside a CSP split, owned by
the pooling family) and v7's MP are not matched.

C2f family: ``conv 1×1 → split in 2`` (one two-output ``Split`` or two slices of the conv);
the second half feeds a chain of ``n ≥ 1`` units; the cat takes both halves and every unit's
output (``2 + n`` inputs) → ``conv 1×1``. The kind follows the units:

* every unit a CIB (depth-wise 3×3, 1×1, depth-wise or large-kernel / RepVGGDW, 1×1,
  depth-wise 3×3) → ``c2fcib``;
* any unit a C3k (a ``csp`` match) or a chain of residual blocks holding attention (YOLO26's
  ``C3k2(attn=True)`` unit: bottleneck + PSA block) → ``c3k2``;
* every unit a two-conv bottleneck → ``c2f`` when the bottleneck keeps its width (hidden ratio
  1.0: ultralytics' C2f always builds ``Bottleneck(c, c, e=1.0)``), ``c3k2`` when it halves it
  (C3k2's ``Bottleneck(c, c)`` uses the default ``e=0.5``). This hidden width is the only
  structural difference between a C3k2 of plain bottlenecks and a C2f. When channel counts are
  unknown the block follows the other C2f-like blocks of the graph: ``c3k2`` if any of them was
  decided ``c3k2``, ``c2f`` otherwise.

Any other unit (GELAN's ``[CSP + conv 3×3]``) means the block is not of this family.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from graphpath.blocks.base import BlockMatch, ConvInfo, DetectionContext, register
from graphpath.blocks.residual import closed_region, covered_by, is_sum, topo_rank, weighted_in
from graphpath.model.layers import channel_gate

#: Unit kinds that never sit inside a CSP body (pools belong to SPPCSPC-style blocks).
FOREIGN_IN_BODY = frozenset({"pool", "resample", "input", "output"})


def is_pointwise(ctx: DetectionContext, uid: str) -> bool:
    """A 1×1, stride-1, non-depth-wise conv."""
    info = ctx.conv(uid)
    return info is not None and all(k == 1 for k in info.kernel) and info.stride == 1 and not info.depthwise


def channels(ctx: DetectionContext, uid: str) -> tuple[int | None, int | None]:
    """(input, output) channels of a conv unit: from its weight, else from inferred shapes."""
    info = ctx.conv(uid)
    cin = info.cin if info else None
    cout = info.cout if info else None
    if cout is None:
        shape = ctx.unit(uid).attr("shape")
        if isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[1], int):
            cout = shape[1]
    if cin is None:
        preds = ctx.preds(uid)
        shape = ctx.unit(preds[0]).attr("shape") if len(preds) == 1 else None
        if isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[1], int):
            cin = shape[1]
    return cin, cout


def sole_conv_after(ctx: DetectionContext, uid: str) -> str | None:
    """The pointwise conv that is ``uid``'s only consumer, or ``None``."""
    succs = ctx.succs(uid)
    if len(succs) == 1 and is_pointwise(ctx, succs[0]):
        return succs[0]
    return None


def gated_conv_after(ctx: DetectionContext, cat: str) -> tuple[str, frozenset[str]] | None:
    """The pointwise conv fusing ``cat`` through a channel-attention gate on it (PP-YOLOE's
    CSPResStage puts an EffectiveSE between the concat and its last conv), with the gate's units
    (the global pool if any, the gate's conv, the Mul); ``None`` when there is no such gate."""
    succs = ctx.succs(cat)
    if len(succs) != 2:
        return None
    for mul in succs:
        found = channel_gate(ctx.layers, mul)
        if found is None or found[0] != cat:
            continue
        gate = found[1]
        entry = next(iter(set(succs) - {mul}))
        pooled = entry != gate and ctx.kind(entry) == "pool" and ctx.succs(entry) == [gate] \
            and ctx.preds(gate) == [entry]
        if not (entry == gate or pooled) or ctx.succs(gate) != [mul]:
            continue
        post = sole_conv_after(ctx, mul)
        if post is not None:
            return post, frozenset({entry, gate, mul})
    return None


# --------------------------------------------------------------------------- csp


class CSPDetector:
    """CSP block (BottleneckCSP / C3 / C3k / RepNCSP / YOLOX CSPLayer / CSPDarknet stage).

    Matches a Concat followed by a lone 1×1 conv (directly, or through a channel-attention gate
    on the cat: PP-YOLOE's CSPResStage), whose inputs are a bypass 1×1 conv on a fork ``x`` and a
    closed body that starts with another 1×1 conv on ``x`` and holds at least one more weighted
    unit (the bottlenecks, plus CSPDarknet's transition conv), with no pooling, resampling or
    stride inside. The body reaches the Concat once, or (DAMO-YOLO's CSPStage) by a tap after
    each block along its chain, its first conv not tapped.

    Evidence: "conv 1×1 → N-unit body ‖ conv 1×1 bypass from one input → cat → [channel-attention
    gate →] conv 1×1".
    """

    kind = "csp"
    after: tuple[str, ...] = ("residual", "repvgg")

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        rank = topo_rank(ctx)
        residual_adds = {u for m in ctx.matches("residual") for u in m.units if is_sum(ctx, u)}
        out: list[BlockMatch] = []
        for cat in ctx.layers.topo_order():
            unit = ctx.unit(cat)
            if unit.kind != "merge" or unit.op_type != "Concat":
                continue
            found = self._match(ctx, cat, rank, residual_adds)
            if found is not None:
                out.append(found)
        return out

    def _match(self, ctx: DetectionContext, cat: str, rank: dict[str, int],
               residual_adds: set[str]) -> BlockMatch | None:
        preds = ctx.preds(cat)
        if len(preds) < 2 or any(ctx.layers.edge_count(p, cat) != 1 for p in preds):
            return None
        post = sole_conv_after(ctx, cat)
        gate: frozenset[str] = frozenset()
        if post is None:
            gated = gated_conv_after(ctx, cat)
            if gated is None:
                return None
            post, gate = gated
        for bypass in preds:
            tails = [p for p in preds if p != bypass]
            if not is_pointwise(ctx, bypass) or ctx.succs(bypass) != [cat]:
                continue
            fork = ctx.preds(bypass)
            if len(fork) != 1 or any(rank[fork[0]] >= rank[t] for t in tails):
                continue
            body = closed_region(ctx, tails, fork[0], rank, exits=frozenset({cat}))
            if body is None or not self._body_ok(ctx, body, fork[0]) or not _taps_ok(ctx, tails, body, fork[0], rank):
                continue
            weighted = weighted_in(ctx, body)
            bottlenecks = len(body & residual_adds)
            return ctx.make_match(
                self.kind, body | {bypass, cat, post} | gate,
                structure={"body_weighted": len(weighted), "residual_bottlenecks": bottlenecks,
                           **({"gate": "channel attention"} if gate else {})},
                evidence=f"conv 1×1 → {len(weighted) - 1}-unit body ‖ conv 1×1 bypass from one "
                         f"input → cat → {'channel-attention gate → ' if gate else ''}conv 1×1",
            )
        return None

    @staticmethod
    def _body_ok(ctx: DetectionContext, body: set[str], fork: str) -> bool:
        heads = [u for u in body if fork in ctx.preds(u)]
        if len(heads) != 1 or not is_pointwise(ctx, heads[0]):
            return False
        if any(ctx.kind(u) in FOREIGN_IN_BODY for u in body):
            return False
        infos = [ctx.conv(u) for u in body if ctx.is_weighted(u)]
        if len(infos) < 2 or any(i is not None and i.stride != 1 for i in infos):
            return False
        return True


def _taps_ok(ctx: DetectionContext, tails: list[str], body: set[str], fork: str, rank: dict[str, int]) -> bool:
    """One body output, or taps along one chain (DAMO-YOLO's CSPStage concatenates the bypass
    with every block's output): each tap feeds the next, and the body's first conv is no tap
    (ELAN and C2f concatenate their second branch itself; those are their own kinds)."""
    if len(tails) == 1:
        return True
    head = next(u for u in body if fork in ctx.preds(u))
    if head in tails:
        return False
    order = sorted(tails, key=rank.__getitem__)
    return all(_reaches(ctx, a, b, body) for a, b in pairwise(order))


def _reaches(ctx: DetectionContext, src: str, dst: str, body: set[str]) -> bool:
    """``dst`` is reached from ``src`` through units of ``body``."""
    todo, seen = [src], {src}
    while todo:
        u = todo.pop()
        for s in ctx.succs(u):
            if s == dst:
                return True
            if s in body and s not in seen:
                seen.add(s)
                todo.append(s)
    return False


# --------------------------------------------------------------------------- C2f family


@dataclass(frozen=True)
class C2fLike:
    """One ``conv 1×1 → split → chain → cat → conv 1×1`` block and what its units are."""

    units: frozenset[str]
    unit_kinds: tuple[str, ...]  # "bottleneck" | "c3k" | "cib" | "attn" per chained unit
    hidden_ratio: float | None  # bottleneck hidden width / width (None: unknown or not bottlenecks)
    halves: str  # "split" | "slices"

    def kind(self) -> str | None:
        """``c2fcib`` / ``c3k2`` / ``c2f`` from the units alone, ``None`` when undecided."""
        if all(k == "cib" for k in self.unit_kinds):
            return "c2fcib"
        if "c3k" in self.unit_kinds or "attn" in self.unit_kinds:
            return "c3k2"
        if self.hidden_ratio is None:
            return None
        return "c2f" if self.hidden_ratio >= 0.75 else "c3k2"


def find_c2f_like(ctx: DetectionContext) -> list[C2fLike]:
    """Every C2f-family block of the graph, in topological order of its cat."""
    return _C2fFinder(ctx).find()


def _halves(ctx: DetectionContext, cat: str) -> tuple[str, list[str], str] | None:
    """(cv1, split units, entry of the chain) when the cat takes both halves of a conv split."""
    splits = [p for p in ctx.preds(cat) if ctx.kind(p) == "split"]
    two = [s for s in splits if ctx.layers.edge_count(s, cat) == 2 and ctx.unit(s).attr("outputs") == 2]
    if len(two) == 1:
        feeds = ctx.preds(two[0])
        return (feeds[0], [two[0]], two[0]) if len(feeds) == 1 else None
    by_src: dict[str, list[str]] = {}
    for s in splits:
        feeds = ctx.preds(s)
        if len(feeds) == 1 and ctx.layers.edge_count(s, cat) == 1:
            by_src.setdefault(feeds[0], []).append(s)
    for src, pair in by_src.items():
        if len(pair) != 2 or set(ctx.succs(src)) != set(pair):
            continue
        first = [s for s in pair if ctx.succs(s) == [cat]]
        second = [s for s in pair if s not in first]
        if len(first) == 1 and len(second) == 1:
            return src, pair, second[0]
    return None


#: The CIB's conv sequence (a RepVGGDW pair counts as its one depth-wise step).
CIB_STEPS = ("dw", "pw", "dw", "pw", "dw")


class _C2fFinder:
    """Finds C2f-like blocks and classifies their chained units, reading the matches of the
    kinds they nest (``csp`` for C3k, ``residual``, ``repvgg``)."""

    def __init__(self, ctx: DetectionContext) -> None:
        self.ctx = ctx
        self.rank = topo_rank(ctx)
        self.csp_units = [m.units for m in ctx.matches("csp")]
        self.residual_units = [m.units for m in ctx.matches("residual")]
        self.repvgg_units = [m.units for m in ctx.matches("repvgg")]
        self.inner_sums = covered_by(ctx, "repvgg") | {
            u for m in ctx.matches("residual") for u in m.units if is_sum(ctx, u)
        }

    def find(self) -> list[C2fLike]:
        found: list[C2fLike] = []
        for cat in self.ctx.layers.topo_order():
            unit = self.ctx.unit(cat)
            if unit.kind == "merge" and unit.op_type == "Concat":
                block = self.at(cat)
                if block is not None:
                    found.append(block)
        return found

    def at(self, cat: str) -> C2fLike | None:
        ctx, rank = self.ctx, self.rank
        post = sole_conv_after(ctx, cat)
        halves = _halves(ctx, cat)
        if post is None or halves is None:
            return None
        cv1, splits, prev = halves
        if not is_pointwise(ctx, cv1) or set(ctx.succs(cv1)) != set(splits):
            return None
        outs = sorted((p for p in ctx.preds(cat) if p not in splits), key=rank.__getitem__)
        if not outs or any(ctx.layers.edge_count(p, cat) != 1 for p in outs):
            return None
        units: set[str] = {cv1, *splits, cat, post}
        kinds: list[str] = []
        ratios: list[float | None] = []
        regions: list[set[str]] = []
        for out in outs:
            region = closed_region(ctx, [out], prev, rank, exits=frozenset(ctx.succs(out)))
            classified = None if region is None else self.classify(region, out)
            if region is None or classified is None:
                return None
            kinds.append(classified[0])
            ratios.append(classified[1])
            regions.append(region)
            units |= region
            prev = out
        # each unit's output feeds the cat and (but for the last) the next unit only
        for i, out in enumerate(outs):
            allowed = {cat} | (regions[i + 1] if i + 1 < len(outs) else set())
            if not set(ctx.succs(out)) <= allowed:
                return None
        ratio = ratios[0] if kinds[0] == "bottleneck" and len(set(ratios)) == 1 else None
        return C2fLike(units=frozenset(units), unit_kinds=tuple(kinds), hidden_ratio=ratio,
                       halves="split" if len(splits) == 1 else "slices")

    def classify(self, region: set[str], out: str) -> tuple[str, float | None] | None:
        """What one chained unit is: a C3k (``csp``), a CIB, a two-conv bottleneck, or a chain
        of residual blocks holding attention (YOLO26's C3k2 ``attn`` unit: bottleneck + PSA)."""
        ctx = self.ctx
        if any(region == set(m) for m in self.csp_units):
            return ("c3k", None)
        inner = [m for m in self.residual_units if m <= region]
        if len(inner) >= 2 and set().union(*inner) == region and any(
            ctx.unit(u).op_type in ("MatMul", "Einsum") and ctx.kind(u) == "merge" for u in region
        ):
            return ("attn", None)
        merges = [u for u in region if ctx.kind(u) == "merge"]
        if any(u not in self.inner_sums for u in merges) or any(ctx.kind(u) in FOREIGN_IN_BODY for u in region):
            return None
        infos = {u: ctx.conv(u) for u in weighted_in(ctx, region)}
        if any(i is None or i.stride != 1 for i in infos.values()):
            return None
        if self.cib_steps(infos) == CIB_STEPS:
            return ("cib", None)
        if len(infos) == 2 and not any(i is not None and i.depthwise for i in infos.values()) \
                and set(merges) <= {out}:
            first = min(infos, key=lambda u: 0 if set(ctx.preds(u)) - region else 1)
            cin, cout = channels(ctx, first)
            ratio = cout / cin if cin and cout else None
            return ("bottleneck", ratio)
        return None

    def cib_steps(self, infos: dict[str, ConvInfo | None]) -> tuple[str, ...]:
        """The region's convs in order as ``dw``/``pw``/``other`` steps, a RepVGG pair as one."""
        steps: list[str] = []
        seen_pairs: set[frozenset[str]] = set()
        for u in sorted(infos, key=self.rank.__getitem__):
            pair = next((m for m in self.repvgg_units if u in m), None)
            if pair is not None:
                if pair in seen_pairs:
                    continue
                seen_pairs.add(pair)
            info = infos[u]
            if info is not None and info.depthwise:
                steps.append("dw")
            elif is_pointwise(self.ctx, u):
                steps.append("pw")
            else:
                steps.append("other")
        return tuple(steps)


class _C2fFamilyDetector:
    """Shared driver: find every C2f-like block and keep those of this detector's kind."""

    kind = ""
    after: tuple[str, ...] = ("csp", "residual", "repvgg")

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        blocks = find_c2f_like(ctx)
        decided = [b.kind() for b in blocks]
        fallback = "c3k2" if "c3k2" in decided else "c2f"
        out: list[BlockMatch] = []
        for block, kind in zip(blocks, decided, strict=True):
            final = kind or fallback
            if final != self.kind:
                continue
            out.append(ctx.make_match(
                self.kind, block.units,
                structure={"n": len(block.unit_kinds), "units": list(block.unit_kinds),
                           "hidden_ratio": block.hidden_ratio, "halves": block.halves,
                           "decided_by": "units" if kind else "graph"},
                evidence=self._evidence(block, kind is None),
            ))
        return out

    @staticmethod
    def _evidence(block: C2fLike, by_graph: bool) -> str:
        n = len(block.unit_kinds)
        what = {"bottleneck": "bottleneck", "c3k": "C3k", "cib": "CIB", "attn": "residual-attention"}
        names = sorted({what[k] for k in block.unit_kinds})
        ratio = f" (hidden ratio {block.hidden_ratio:.2f})" if block.hidden_ratio is not None else ""
        tail = "; kind taken from the graph's other C2f-like blocks" if by_graph else ""
        return (f"conv 1×1 → split in 2 → chain of {n} {'/'.join(names)} unit(s){ratio}; "
                f"cat of {2 + n} → conv 1×1{tail}")


class C2fDetector(_C2fFamilyDetector):
    """C2f (YOLOv8, v10): chained units are bottlenecks that keep their width (``e=1.0``).

    Evidence: "conv 1×1 → split in 2 → chain of n bottleneck unit(s) (hidden ratio 1.00);
    cat of 2+n → conv 1×1".
    """

    kind = "c2f"


class C3k2Detector(_C2fFamilyDetector):
    """C3k2 (YOLO11, YOLO12): a C2f whose units are C3k ``csp`` blocks or bottlenecks that halve
    their width (``e=0.5``).

    Evidence: "conv 1×1 → split in 2 → chain of n C3k unit(s); cat of 2+n → conv 1×1".
    """

    kind = "c3k2"
    after: tuple[str, ...] = ("csp", "residual", "repvgg", "c2f")


class C2fCIBDetector(_C2fFamilyDetector):
    """C2fCIB (YOLOv10): a C2f whose units are compact inverted blocks (depth-wise 3×3, 1×1,
    depth-wise or large-kernel 3×3/7×7 or its RepVGGDW pair, 1×1, depth-wise 3×3, ± residual).

    Evidence: "conv 1×1 → split in 2 → chain of n CIB unit(s); cat of 2+n → conv 1×1".
    """

    kind = "c2fcib"


register(CSPDetector())
register(C2fDetector())
register(C3k2Detector())
register(C2fCIBDetector())
