"""The PGI detector: YOLOv9's auxiliary reversible branch (see GUIDE.md and TOPOLOGIES.md
"PGI").

PGI is proven by its auxiliary detection head (``aux_head``) being fed by a branch of its own:
the units that only the auxiliary output depends on hold weighted layers beyond the head, and
that branch shows PGI's wiring: a second stem reading the image input, or CBFuse (chunks of
main-branch features resized and summed into the auxiliary feature). CBLinear/CBFuse alone do
not prove PGI (a dual-backbone deploy model keeps them); an auxiliary head that shares the main
head's features (v10's one-to-many head) is not PGI either.
"""

from __future__ import annotations

import networkx as nx

from graphpath.blocks.base import BlockMatch, DetectionContext, register


def _is_fuse(ctx: DetectionContext, uid: str) -> bool:
    """CBFuse: resized inputs summed (a stack-and-ReduceSum, or an Add/Sum) with a feature."""
    unit = ctx.unit(uid)
    if unit.kind != "merge":
        return False
    summed = unit.op_type in ("Add", "Sum") or any(
        ctx.graph.op(n).op_type == "ReduceSum" for n in unit.nodes[1:]
    )
    preds = ctx.preds(uid)
    resized = [p for p in preds if ctx.kind(p) == "resample"]
    return summed and 0 < len(resized) < len(preds)


class PgiDetector:
    """One PGI auxiliary reversible branch: the units only the auxiliary head's output depends
    on (the auxiliary backbone, CBLinear convs, CBFuse merges and the auxiliary head), when that
    branch has a second stem from the image or CBFuse merges.

    Evidence: "auxiliary head fed by its own branch of N weighted units with S second stem(s)
    and F CBFuse merge(s)".
    """

    kind = "pgi"
    after: tuple[str, ...] = ("aux_head",)

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        aux = ctx.matches("aux_head")
        if not aux:
            return []
        head = aux[0]
        dag = ctx.layers.dag
        outs = {s for u in head.units for s in ctx.succs(u) if ctx.kind(s) == "output"}
        if not outs:
            return []
        mine: set[str] = set()
        for o in outs:
            mine |= nx.ancestors(dag, o)
        theirs: set[str] = set()
        for o in ctx.layers.outputs:
            if o not in outs:
                theirs |= nx.ancestors(dag, o)
        branch = {u for u in mine - theirs if ctx.kind(u) not in ("input", "output")}
        weighted = [u for u in branch - head.units if ctx.is_weighted(u)]
        if not weighted:
            return []  # the auxiliary head shares the main head's features
        stems = [u for u in weighted if any(p in ctx.layers.inputs for p in ctx.preds(u))]
        fuses = [u for u in branch if _is_fuse(ctx, u)]
        if not stems and not fuses:
            return []
        return [ctx.make_match(
            self.kind, branch | head.units,
            structure={"stems": len(stems), "fuses": len(fuses), "weighted": len(weighted)},
            evidence=(f"auxiliary head fed by its own branch of {len(weighted)} weighted units with "
                      f"{len(stems)} second stem(s) and {len(fuses)} CBFuse merge(s)"),
        )]


register(PgiDetector())
