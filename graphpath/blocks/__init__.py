"""Topology detection: which blocks of TOPOLOGIES.md an exported graph is made of.

Detectors live in one module per family (see ``GUIDE.md`` here); importing a family module
registers its detectors. :func:`detect_blocks` runs them in dependency order over the layer
view, then nests every match under the smallest other match that covers its units.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from graphpath.blocks.base import REGISTRY, BlockMatch, DetectionContext, Detector
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph

#: Detector families, imported on first use. ``plain`` reads every other kind, so it is last.
FAMILY_MODULES = ("residual", "csp", "elan", "pooling", "attention", "neck", "heads", "head_roles", "pgi", "plain")

#: The block ids of TOPOLOGIES.md, in its table order (also the order of ``block_counts``).
BLOCK_IDS = (
    "plain_stage", "passthrough", "residual", "scaled_residual", "csp", "c2f", "c3k2", "elan",
    "e_elan", "mp", "gelan", "adown", "spp", "sppf", "sppcspc", "sppelan", "repvgg", "fpn", "pan",
    "attention", "psa", "c2psa", "a2c2f", "scdown", "c2fcib", "fc_head", "coupled_head",
    "decoupled_head", "dfl", "aux_head", "one2one_head", "nms", "pgi",
)


def detectors() -> list[Detector]:
    """Every registered detector, ordered so that each runs after the kinds it reads."""
    for family in FAMILY_MODULES:
        importlib.import_module(f"graphpath.blocks.{family}")
    ordered: list[Detector] = []
    done: set[str] = set()
    pending = sorted(REGISTRY.values(), key=lambda d: BLOCK_IDS.index(d.kind))
    while pending:
        ready = [d for d in pending if all(a in done or a not in REGISTRY for a in d.after)]
        if not ready:
            cycle = ", ".join(d.kind for d in pending)
            raise RuntimeError(f"detector dependencies form a cycle: {cycle}")
        for d in ready:
            ordered.append(d)
            done.add(d.kind)
        pending = [d for d in pending if d.kind not in done]
    return ordered


def detect_blocks(layers: LayerGraph, graph: ModelGraph) -> tuple[BlockMatch, ...]:
    """All blocks of the model as a forest (top-level matches, children nested), in
    topological order of their first unit."""
    ctx = DetectionContext(layers=layers, graph=graph)
    run_order: list[str] = []
    for det in detectors():
        ctx.found[det.kind] = det.detect(ctx)
        run_order.append(det.kind)
    flat = [m for kind in run_order for m in ctx.found[kind]]
    return nest(flat, layers, run_order)


def nest(flat: list[BlockMatch], layers: LayerGraph, run_order: list[str]) -> tuple[BlockMatch, ...]:
    """Make each match the child of the smallest match whose units strictly contain its own
    (equal unit sets: the kind that ran later is the parent, since it was built on the other)."""
    rank = {u: i for i, u in enumerate(layers.topo_order())}
    order = {k: i for i, k in enumerate(run_order)}

    def size_key(i: int) -> tuple[int, int]:
        return (len(flat[i].units), order[flat[i].kind])

    parent: dict[int, int] = {}
    for i, m in enumerate(flat):
        candidates = [
            j for j, o in enumerate(flat)
            if j != i and m.units <= o.units and size_key(j) > size_key(i)
        ]
        if candidates:
            parent[i] = min(candidates, key=size_key)
    children: dict[int, list[int]] = {}
    for i, p in parent.items():
        children.setdefault(p, []).append(i)

    def first(i: int) -> tuple[int, int]:
        return (min((rank.get(u, 0) for u in flat[i].units), default=0), BLOCK_IDS.index(flat[i].kind))

    def build(i: int) -> BlockMatch:
        kids = tuple(build(c) for c in sorted(children.get(i, []), key=first))
        return replace(flat[i], children=kids)

    return tuple(build(i) for i in sorted((i for i in range(len(flat)) if i not in parent), key=first))


def block_counts(matches: Iterable[BlockMatch]) -> dict[str, int]:
    """Flat count per block id (nested matches included), in BLOCK_IDS order, zeros omitted."""
    counts: Counter[str] = Counter()
    todo = list(matches)
    while todo:
        m = todo.pop()
        counts[m.kind] += 1
        todo.extend(m.children)
    return {k: counts[k] for k in BLOCK_IDS if counts[k]}
