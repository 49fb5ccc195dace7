"""Residual-family detectors: ``repvgg``, ``scaled_residual`` and ``residual``.

All three are an elementwise ``Add`` of a fork's descendants. What tells them apart is what
the fork contributes to the add:

* ``repvgg`` — the training form of a re-parameterisable conv: two *linear* convs (no folded
  activation) on the same input, one with a larger kernel than the other (3×3 ‖ 1×1, or the
  v10 depth-wise 7×7 ‖ 3×3), same stride, groups and output width, summed; optionally the
  identity (or BN of the input) is summed too.
* ``scaled_residual`` — ``x + γ·f(x)`` with a learned per-channel ``γ`` (a ``Mul`` by a
  parameter vector right before the add), or ``conv1×1(x) + f(x)`` (a projection shortcut).
* ``residual`` — ``x + f(x)`` with the fork itself as one operand and weighted units in ``f``;
  the identity branch of a RepVGG block is not one.

The helpers here (:func:`topo_rank`, :func:`closed_region`, :func:`shortcut_add`) are also used
by the CSP family: they find the region between a fork and a merge by a local backward walk
instead of whole-graph traversals.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphpath.blocks.base import BlockMatch, ConvInfo, DetectionContext, register

#: Elementwise sums a residual or RepVGG add exports to.
SUM_OPS = frozenset({"Add", "Sum"})


# --------------------------------------------------------------------------- shared helpers


def topo_rank(ctx: DetectionContext) -> dict[str, int]:
    """Each unit's position in the layer view's topological order."""
    return {u: i for i, u in enumerate(ctx.layers.topo_order())}


def closed_region(ctx: DetectionContext, sources: list[str], entry: str, rank: dict[str, int],
                  exits: frozenset[str] = frozenset()) -> set[str] | None:
    """The units ``sources`` depend on back to ``entry``, when ``entry`` is their only way in.

    Walks predecessors from ``sources`` (which are part of the region) and stops at ``entry``.
    Returns ``None`` when the walk escapes (reaches a unit ordered before ``entry``, a graph
    input, or never meets ``entry``) or when a region unit other than a source feeds anything
    outside the region; sources may also feed ``exits``. Cost: the region's size.
    """
    start = rank[entry]
    region: set[str] = set()
    todo = [s for s in sources if s != entry]
    met = False
    while todo:
        u = todo.pop()
        if u in region:
            continue
        if rank[u] <= start or ctx.kind(u) == "input":
            return None
        region.add(u)
        for p in ctx.preds(u):
            if p == entry:
                met = True
            elif p not in region:
                todo.append(p)
    if not met:
        return None
    source_set = set(sources)
    for u in region:
        allowed = region | exits if u in source_set else region
        if any(s not in allowed for s in ctx.succs(u)):
            return None
    return region


def is_sum(ctx: DetectionContext, uid: str) -> bool:
    unit = ctx.unit(uid)
    return unit.kind == "merge" and unit.op_type in SUM_OPS


@dataclass(frozen=True)
class ShortcutAdd:
    """An add ``fork + operand`` where ``operand`` depends on ``fork`` only through ``region``
    (``operand`` included), and the region feeds nothing but the add."""

    add: str
    fork: str
    operand: str
    region: frozenset[str]


def shortcut_add(ctx: DetectionContext, add: str, rank: dict[str, int]) -> ShortcutAdd | None:
    """The identity-shortcut reading of a two-operand add, or ``None``."""
    if not is_sum(ctx, add):
        return None
    preds = ctx.preds(add)
    if len(preds) != 2 or any(ctx.layers.edge_count(p, add) != 1 for p in preds):
        return None
    fork, operand = sorted(preds, key=rank.__getitem__)
    region = closed_region(ctx, [operand], fork, rank, exits=frozenset({add}))
    if region is None:
        return None
    return ShortcutAdd(add=add, fork=fork, operand=operand, region=frozenset(region))


def weighted_in(ctx: DetectionContext, units: set[str] | frozenset[str]) -> list[str]:
    return [u for u in units if ctx.is_weighted(u)]


def covered_by(ctx: DetectionContext, kind: str) -> set[str]:
    """Units covered by the matches of one kind found so far."""
    return {u for m in ctx.matches(kind) for u in m.units}


def _same_shape_pair(a: ConvInfo, b: ConvInfo) -> bool:
    """Two convs whose sum can be fused into one: same stride, groups and output width, the
    kernels different and both square and odd (so the smaller one centres in the larger)."""
    if a.stride != b.stride or a.groups != b.groups or a.cout != b.cout or a.cin != b.cin:
        return False
    if a.kernel == b.kernel or not a.kernel or not b.kernel:
        return False
    return all(len(set(k)) == 1 and k[0] % 2 == 1 for k in (a.kernel, b.kernel))


# --------------------------------------------------------------------------- repvgg


class RepVGGDetector:
    """Training-form RepVGG / RepConv(N) / v10 RepVGGDW.

    Matches ``conv k×k ‖ conv j×j (j < k) [‖ identity] → add``: two convs with a single common
    input, no folded activation (the branches must be linear to fuse), equal stride, groups and
    widths, summed by one add; an add of that sum with the input itself (stride 1) is the
    optional identity/BN branch and belongs to the block. Fused deploy convs have no branches
    and are not matched.

    Evidence: "conv 3×3 ‖ conv 1×1 [‖ identity] from one input, both linear, summed".
    """

    kind = "repvgg"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out: list[BlockMatch] = []
        for uid in ctx.layers.topo_order():
            if not is_sum(ctx, uid):
                continue
            found = self._match(ctx, uid)
            if found is not None:
                out.append(found)
        return out

    def _match(self, ctx: DetectionContext, add: str) -> BlockMatch | None:
        preds = ctx.preds(add)
        convs = [p for p in preds if ctx.conv(p) is not None]
        forks = {tuple(ctx.preds(c)) for c in convs}
        if len(convs) != 2 or len(forks) != 1:
            return None
        fork_t = forks.pop()
        if len(fork_t) != 1:
            return None
        fork = fork_t[0]
        others = [p for p in preds if p not in convs]
        if others not in ([], [fork]):
            return None
        a, b = (ctx.conv(c) for c in convs)
        if a is None or b is None or not _same_shape_pair(a, b):
            return None
        if any(ctx.unit(c).activation is not None or ctx.succs(c) != [add] for c in convs):
            return None
        units = [*convs, add]
        identity = bool(others)
        succs = ctx.succs(add)
        if not identity and a.stride == 1 and len(succs) == 1 and ctx.unit(add).activation is None:
            top = succs[0]
            if is_sum(ctx, top) and sorted(ctx.preds(top)) == sorted([add, fork]):
                units.append(top)
                identity = True
        big, small = sorted((a, b), key=lambda c: -c.kernel[0])
        kernels = f"{big.kernel[0]}×{big.kernel[0]} ‖ {small.kernel[0]}×{small.kernel[0]}"
        dw = " depth-wise" if big.depthwise else ""
        return ctx.make_match(
            self.kind, units,
            structure={"kernels": [big.kernel[0], small.kernel[0]], "identity": identity,
                       "stride": big.stride, "depthwise": big.depthwise},
            evidence=f"linear{dw} conv {kernels}{' ‖ identity' if identity else ''} "
                     "from one input, summed (re-parameterisable training form)",
        )


# --------------------------------------------------------------------------- scaled residual


def scaled_operand(ctx: DetectionContext, add: str, operand: str) -> bool:
    """True when ``operand`` reaches ``add`` through ``Mul(param vector, data)``: a learned
    per-channel scale folded into the operand's unit."""
    tensor = ctx.unit(operand).tensor
    op = ctx.graph.op(ctx.unit(add).nodes[0])
    if tensor not in op.inputs:
        return False
    producer = ctx.graph.producer_of.get(tensor)
    if producer is None:
        return False
    mul = ctx.graph.op(producer)
    if mul.op_type != "Mul" or len(mul.inputs) != 2:
        return False
    static = [t for t in mul.inputs if t in ctx.graph.params or ctx.graph.is_shape(t)]
    if len(static) != 1:
        return False
    param = ctx.graph.params.get(static[0])
    shape = param.shape if param is not None else ctx.graph.value_shapes.get(static[0])
    if shape is None:
        return True  # computed from parameters (a reshaped γ that was not folded)
    return any(not isinstance(d, int) or d > 1 for d in shape)  # a vector, not a scalar constant


class ScaledResidualDetector:
    """Scaled or projected residual.

    Matches an add ``x + γ·f(x)`` whose branch operand is multiplied by a parameter vector
    right before the add (YOLO12 l/x A2C2f, layer-scale), or ``conv1×1(x) + f(x)`` where the
    shortcut is one 1×1 conv on the fork (or on an avg-pool of it, ResNet-D) and ``f`` is a
    closed branch of at least two weighted units (ResNet-style projection). RepVGG sums are
    excluded.

    Evidence: "add of the fork and a branch scaled by a learned per-channel γ" /
    "add of a 1×1-conv shortcut and a closed branch from the same fork".
    """

    kind = "scaled_residual"
    after: tuple[str, ...] = ("repvgg",)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        rank = topo_rank(ctx)
        rep = covered_by(ctx, "repvgg")
        out: list[BlockMatch] = []
        for uid in ctx.layers.topo_order():
            if uid in rep or not is_sum(ctx, uid):
                continue
            sc = shortcut_add(ctx, uid, rank)
            if sc is not None and weighted_in(ctx, sc.region) and scaled_operand(ctx, uid, sc.operand):
                out.append(ctx.make_match(
                    self.kind, sc.region | {uid},
                    structure={"shortcut": "identity", "scale": "per-channel"},
                    evidence="add of the fork and a branch scaled by a learned per-channel γ",
                ))
                continue
            proj = self._projection(ctx, uid, rank)
            if proj is not None:
                out.append(proj)
        return out

    def _projection(self, ctx: DetectionContext, add: str, rank: dict[str, int]) -> BlockMatch | None:
        preds = ctx.preds(add)
        if len(preds) != 2 or any(ctx.layers.edge_count(p, add) != 1 for p in preds):
            return None
        for short, operand in (preds, preds[::-1]):
            info = ctx.conv(short)
            src = ctx.preds(short)
            if info is None or any(k != 1 for k in info.kernel) or info.depthwise or len(src) != 1:
                continue
            if ctx.succs(short) != [add]:
                continue
            fork, via = src[0], []
            if ctx.kind(fork) == "pool" and len(ctx.preds(fork)) == 1 and ctx.succs(fork) == [short]:
                fork, via = ctx.preds(fork)[0], [fork]  # ResNet-D: avg-pool → 1×1 shortcut
            if rank[fork] >= rank[operand]:
                continue
            region = closed_region(ctx, [operand], fork, rank, exits=frozenset({add}))
            if region is None or len(weighted_in(ctx, region)) < 2:
                continue
            return ctx.make_match(
                self.kind, region | {short, add, *via},
                structure={"shortcut": "pool+conv1x1" if via else "conv1x1",
                           "branch_weighted": len(weighted_in(ctx, region))},
                evidence=f"add of a {'pooled ' if via else ''}1×1-conv shortcut and a closed branch "
                         "from the same fork",
            )
        return None


# --------------------------------------------------------------------------- residual


class ResidualDetector:
    """Identity-shortcut residual ``x + f(x)``.

    Matches a two-operand add whose earlier operand is the fork ``x`` itself and whose other
    operand depends on ``x`` only through a closed branch (entered only from ``x``, leaving only
    into the add) holding at least one weighted unit: bottlenecks with shortcut, CIBs, the
    attention and feed-forward adds of PSA/C2PSA/A2C2f. Adds inside a RepVGG block (its
    identity branch) and scaled residuals are left to their own kinds.

    Evidence: "add of the fork and a closed branch of N weighted units".
    """

    kind = "residual"
    after: tuple[str, ...] = ("repvgg", "scaled_residual")

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        rank = topo_rank(ctx)
        taken = covered_by(ctx, "repvgg") | {
            u for m in ctx.matches("scaled_residual") for u in m.units if is_sum(ctx, u)
        }
        out: list[BlockMatch] = []
        for uid in ctx.layers.topo_order():
            if uid in taken or not is_sum(ctx, uid):
                continue
            sc = shortcut_add(ctx, uid, rank)
            if sc is None:
                continue
            weighted = weighted_in(ctx, sc.region)
            if not weighted:
                continue
            out.append(ctx.make_match(
                self.kind, sc.region | {uid},
                structure={"branch_weighted": len(weighted)},
                evidence=f"add of the fork and a closed branch of {len(weighted)} weighted units",
            ))
        return out


register(RepVGGDetector())
register(ScaledResidualDetector())
register(ResidualDetector())
