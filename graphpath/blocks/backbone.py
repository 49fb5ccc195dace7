"""The backbone of a detector and its gradient-path type, read from structure (seed 001's table
G.6 classifies backbones by their gradient path: single chain, skip + main, split + merge,
multi-branch, split + partial).

The backbone is found without names:

- its **exit** is the feature map entering the first upsampling op in topological order
  (``Resize``/``Upsample``/``ConvTranspose``: where an FPN's top-down path starts; in a YOLOv5
  layout that includes the neck's first lateral 1×1 conv); a network without upsampling (YOLOv1,
  YOLOv2) has no neck, and its exit is the input of its last weighted unit (the prediction layer);
- its **stem** is the first weighted unit in topological order (``F₀`` of the backward pass);
- its **units** are the exit's ancestors.

Its path type is the branch pattern of the blocks it is made of (top-level detected blocks
inside it, by count), each block's **path multiplicity** counted on the layer view: the number
of distinct paths from the block's entry to its exit through the block's units.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import networkx as nx

from graphpath.blocks.base import BlockMatch
from graphpath.model.layers import LayerGraph

__all__ = ["PATH_TYPES", "Backbone", "block_multiplicity", "find_backbone"]

#: Block kind → the branch pattern G.6 names (kinds without a pattern of their own do not vote).
PATH_TYPES: dict[str, str] = {
    "residual": "skip + main", "scaled_residual": "skip + main",
    "csp": "split + merge", "sppcspc": "split + merge",
    "elan": "multi-branch", "e_elan": "multi-branch", "gelan": "multi-branch", "sppelan": "multi-branch",
    "c2f": "split + partial", "c3k2": "split + partial", "c2fcib": "split + partial",
    "repvgg": "multi-branch",
}

#: Ops that upsample a feature map (the start of a top-down path).
UPSAMPLE_OPS = frozenset({"Resize", "Upsample", "ConvTranspose"})


@dataclass(frozen=True)
class Backbone:
    """A detector's backbone as :func:`find_backbone` reads it.

    Attributes:
        stem: the first weighted unit; ``stem_tensor`` its (folded) output, ``F₀``.
        exit_unit, exit_tensor: the unit whose output leaves the backbone, and that tensor.
        rule: how the exit was found (one sentence).
        units: the backbone's units (the exit's ancestors and the exit).
        blocks: ``(kind, label, path multiplicity)`` of every top-level block inside it.
        path_type: the dominant branch pattern (``single chain`` when no block branches).
    """

    stem: str
    stem_tensor: str
    exit_unit: str
    exit_tensor: str
    rule: str
    units: frozenset[str]
    blocks: tuple[tuple[str, str, int], ...]
    path_type: str

    @property
    def multiplicity(self) -> tuple[int, int] | None:
        """``(min, max)`` path multiplicity over the backbone's blocks (``None`` without blocks)."""
        counts = [m for _, _, m in self.blocks]
        return (min(counts), max(counts)) if counts else None

    def describe(self) -> str:
        """One line: path type, block counts and multiplicities."""
        kinds = Counter(k for k, _, _ in self.blocks)
        parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        mult = self.multiplicity
        paths = "" if mult is None else (f"; {mult[0]} path{'s' * (mult[0] != 1)} per block" if mult[0] == mult[1]
                                         else f"; {mult[0]}–{mult[1]} paths per block")
        return f"{self.path_type} ({parts or 'no branching block'}{paths})"


def block_multiplicity(layers: LayerGraph, block: BlockMatch, tensor_unit: dict[str, str]) -> int:
    """Distinct paths from the block's entry to its exit through its units (0 when the block's
    entry or exit is not a unit's output)."""
    sources = {tensor_unit[t] for t in block.entry if t in tensor_unit}
    sinks = {tensor_unit[t] for t in block.exit if t in tensor_unit}
    inside = set(block.units) | sources
    count: dict[str, int] = {}
    for uid in layers.topo_order():
        if uid not in inside:
            continue
        if uid in sources:
            count[uid] = 1
            continue
        count[uid] = sum(count.get(p, 0) * layers.edge_count(p, uid) for p in layers.dag.predecessors(uid))
    return sum(count.get(s, 0) for s in sinks)


def find_backbone(layers: LayerGraph, blocks: tuple[BlockMatch, ...]) -> Backbone | None:
    """The backbone (see the module docstring), or ``None`` for a graph with no weighted unit."""
    order = layers.topo_order()
    weighted = [u for u in order if layers.unit(u).weighted]
    if not weighted:
        return None
    up = next((u for u in order if layers.unit(u).op_type in UPSAMPLE_OPS), None)
    if up is not None:
        preds = [p for p in layers.dag.predecessors(up) if layers.unit(p).kind not in ("input",)]
        exit_unit = max(preds, key=order.index) if preds else weighted[-1]
        rule = f"input of the first upsampling op ({layers.unit(up).op_type} {up})"
    else:
        last = weighted[-1]
        preds = [p for p in layers.dag.predecessors(last) if layers.unit(p).kind != "input"]
        exit_unit = max(preds, key=order.index) if preds else last
        rule = f"no upsampling: input of the last weighted unit ({last})"
    units = frozenset(nx.ancestors(layers.dag, exit_unit)) | {exit_unit}
    tensor_unit = {layers.unit(u).tensor: u for u in order if layers.unit(u).tensor}
    inside = [(b.kind, b.label or b.kind, block_multiplicity(layers, b, tensor_unit))
              for b in blocks if b.units and b.units <= units]
    votes = Counter(PATH_TYPES[k] for k, _, _ in inside if k in PATH_TYPES)
    path_type = max(sorted(votes), key=votes.__getitem__) if votes else "single chain"
    stem = weighted[0]
    return Backbone(stem, layers.unit(stem).tensor, exit_unit, layers.unit(exit_unit).tensor, rule, units,
                    tuple(inside), path_type)
