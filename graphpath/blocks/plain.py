"""Plain detectors: ``passthrough`` (v2 reorg) and ``plain_stage`` (see GUIDE.md).

``plain_stage`` reads every other kind's matches and only counts what none of them claimed,
so it runs last.
"""

from __future__ import annotations

from graphpath.blocks import BLOCK_IDS
from graphpath.blocks.base import BlockMatch, DetectionContext, register

#: Unit kinds a plain stage is made of (weighted units count, pools may sit between them).
_CHAIN_KINDS = frozenset({"weighted", "pool"})


def _spatial_of(shape: object) -> tuple[int, int] | None:
    if isinstance(shape, tuple) and len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
        return (int(shape[2]), int(shape[3]))
    return None


def space_to_depth(ctx: DetectionContext, uid: str) -> int | None:
    """The block size when the unit's output is a space-to-depth of its feature, else ``None``.

    Either a ``SpaceToDepth`` unit, or a unit whose folded tail is the Darknet reorg / pixel
    unshuffle: ``Reshape`` to 6-D → ``Transpose`` (6-D perm) → ``Reshape`` back. Where shapes
    are known the output must be 4-D with the spatial size divided by the block size (a
    YOLOv5-style head's 5-D ``Reshape → Transpose`` never qualifies).
    """
    unit = ctx.unit(uid)
    if unit.kind in ("input", "output"):
        return None
    if unit.op_type == "SpaceToDepth":
        return int(ctx.graph.op(uid).attrs.get("blocksize", 2))
    ops = [ctx.graph.op(n) for n in unit.nodes[1:]]
    types = [op.op_type for op in ops]
    for i, op in enumerate(ops):
        perm = op.attrs.get("perm")
        if op.op_type != "Transpose" or not isinstance(perm, tuple) or len(perm) != 6:
            continue
        if "Reshape" not in types[:i] or "Reshape" not in types[i + 1:]:
            continue
        before = _spatial_of(unit.attr("shape"))
        after_shape = ctx.graph.value_shapes.get(unit.tensor)
        if after_shape is not None and len(after_shape) != 4:
            return None
        after = _spatial_of(after_shape)
        if before is None or after is None:
            return 2  # dynamic shapes: trust the 6-D reorg pattern
        s = before[0] // after[0] if after[0] else 0
        if s >= 2 and before == (after[0] * s, after[1] * s):
            return s
        return None
    return None


class PassthroughDetector:
    """YOLOv2 passthrough: a fine feature reorganised space-to-depth (``SpaceToDepth``, or the
    ``Reshape → 6-D Transpose → Reshape`` reorg folded into its producer) and concatenated with
    a coarse feature. The producer (Darknet's 1×1 reduce conv) belongs to the block when the
    reorg is all it feeds. A Focus stem (slices of the input image) is not a passthrough.

    Evidence: "space-to-depth reorg (stride s) of a fine feature concatenated with a coarse one".
    """

    kind = "passthrough"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        out: list[BlockMatch] = []
        for cat in ctx.layers.topo_order():
            unit = ctx.unit(cat)
            if unit.kind != "merge" or unit.op_type != "Concat" or len(ctx.preds(cat)) < 2:
                continue
            for p in ctx.preds(cat):
                stride = space_to_depth(ctx, p)
                if stride is None:
                    continue
                units = {cat}
                host, feeds = p, {cat}
                if ctx.unit(p).op_type == "SpaceToDepth":
                    srcs = ctx.preds(p)
                    if not srcs or any(ctx.kind(s) == "input" for s in srcs):
                        continue  # a space-to-depth stem on the image
                    units.add(p)
                    host, feeds = (srcs[0] if len(srcs) == 1 else ""), {p}
                if host and ctx.is_weighted(host) and set(ctx.succs(host)) <= feeds:
                    units.add(host)  # the reduce conv that exists for the reorg
                out.append(ctx.make_match(
                    self.kind, units, structure={"stride": stride},
                    evidence=f"space-to-depth reorg (stride {stride}) of a fine feature concatenated "
                             "with a coarse one",
                ))
                break
        return out


class PlainStageDetector:
    """A maximal run of at least three weighted units (maxpools may sit between them) with no
    fork or merge inside, made of units no other block claimed: each link joins a unit with
    one successor to a unit with one predecessor. A run starts after a fork or merge and ends
    at a fork (the forking unit is its last member).

    Evidence: "chain of N weighted units without fork or merge".
    """

    kind = "plain_stage"
    after: tuple[str, ...] = tuple(k for k in BLOCK_IDS if k != "plain_stage")

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        claimed = ctx.claimed()

        def free(uid: str) -> bool:
            return ctx.kind(uid) in _CHAIN_KINDS and uid not in claimed

        nxt: dict[str, str] = {}
        has_prev: set[str] = set()
        for uid in ctx.layers.topo_order():
            if not free(uid):
                continue
            succs = ctx.succs(uid)
            if len(succs) != 1 or ctx.layers.edge_count(uid, succs[0]) != 1:
                continue
            s = succs[0]
            if free(s) and ctx.preds(s) == [uid]:
                nxt[uid] = s
                has_prev.add(s)
        out: list[BlockMatch] = []
        for uid in ctx.layers.topo_order():
            if not free(uid) or uid in has_prev:
                continue
            run = [uid]
            while run[-1] in nxt:
                run.append(nxt[run[-1]])
            weighted = sum(1 for u in run if ctx.is_weighted(u))
            if weighted < 3:
                continue
            out.append(ctx.make_match(
                self.kind, run, structure={"weighted": weighted, "units": len(run)},
                evidence=f"chain of {weighted} weighted units without fork or merge",
            ))
        return out


register(PassthroughDetector())
register(PlainStageDetector())
