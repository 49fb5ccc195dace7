"""The detector contract: a Protocol, the match type, the context detectors read, a registry.

A detector is a small object with ``kind`` (the block id it reports, from TOPOLOGIES.md),
``after`` (kinds whose matches it reads, so they run first) and ``detect(ctx)`` returning flat
:class:`BlockMatch` es. Nesting is not the detector's job: :func:`graphpath.blocks.detect_blocks`
makes a match the child of the smallest other match whose units contain its units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph, Unit


@dataclass(frozen=True)
class BlockMatch:
    """One detected block.

    Attributes:
        kind: block id (``c2f``, ``residual`` …).
        units: layer-view unit ids the block covers (entry fork excluded, exit merge included).
        nodes: every ONNX node name those units stand for.
        label: the name scope shared by the block's nodes, or ``""`` (names only label).
        entry: tensors entering the block; exit: tensors leaving it.
        params: parameters owned by the block's units.
        structure: inner structure facts (``bottlenecks``, ``taps``, ``branches`` …).
        evidence: one sentence on what structure matched.
        children: nested matches (filled by :func:`graphpath.blocks.detect_blocks`).
    """

    kind: str
    units: frozenset[str]
    nodes: tuple[str, ...] = ()
    label: str = ""
    entry: tuple[str, ...] = ()
    exit: tuple[str, ...] = ()
    params: int = 0
    structure: tuple[tuple[str, Any], ...] = ()
    evidence: str = ""
    children: tuple[BlockMatch, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "units": sorted(self.units),
            "nodes": list(self.nodes),
            "entry": list(self.entry),
            "exit": list(self.exit),
            "params": self.params,
            "structure": {k: v for k, v in self.structure},
            "evidence": self.evidence,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class DetectionContext:
    """What detectors read: both views, and the matches of detectors that ran before."""

    layers: LayerGraph
    graph: ModelGraph
    found: dict[str, list[BlockMatch]] = field(default_factory=dict)

    def unit(self, uid: str) -> Unit:
        return self.layers.unit(uid)

    def preds(self, uid: str) -> list[str]:
        return list(self.layers.dag.predecessors(uid))

    def succs(self, uid: str) -> list[str]:
        return list(self.layers.dag.successors(uid))

    def matches(self, kind: str) -> list[BlockMatch]:
        return self.found.get(kind, [])

    def kind(self, uid: str) -> str:
        return self.layers.unit(uid).kind

    def is_weighted(self, uid: str) -> bool:
        return self.layers.unit(uid).kind == "weighted"

    def conv(self, uid: str) -> ConvInfo | None:
        """Kernel, stride, groups and channels of a weighted conv unit (``None`` otherwise)."""
        unit = self.layers.unit(uid)
        if unit.kind != "weighted" or unit.op_type not in ("Conv", "QLinearConv", "ConvInteger"):
            return None
        w = tuple(_ints(unit.attr("weight_shape")))
        kernel = tuple(_ints(unit.attr("kernel_shape"))) or w[2:]
        strides = _ints(unit.attr("strides")) or [1]
        groups = int(unit.attr("group") or 1)  # type: ignore[call-overload]
        cout = w[0] if w else None
        cin = w[1] * groups if len(w) > 1 else None
        return ConvInfo(kernel=kernel, stride=max(strides, default=1), groups=groups, cin=cin, cout=cout)

    def spatial(self, uid: str) -> tuple[int, int] | None:
        """Static (H, W) of a unit's 4-D output, when shape inference knew it."""
        shape = self.layers.unit(uid).attr("shape")
        if isinstance(shape, tuple) and len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            return (int(shape[2]), int(shape[3]))
        return None

    def between(self, src: str, dst: str) -> set[str]:
        """Units strictly inside some path ``src ⇝ dst`` (both ends excluded)."""
        return set(nx.descendants(self.layers.dag, src)) & set(nx.ancestors(self.layers.dag, dst))

    def is_closed(self, region: set[str], entry: str, exit: str) -> bool:
        """True when ``region`` is entered only from ``entry`` and left only into ``exit``:
        a block's inside, fed by one fork and drained by one merge."""
        inside = region | {entry, exit}
        for u in region:
            if any(p not in inside for p in self.layers.dag.predecessors(u)):
                return False
            if any(s not in inside for s in self.layers.dag.successors(u)):
                return False
        return True

    def claimed(self) -> set[str]:
        """Units covered by any match found so far."""
        return {u for found in self.found.values() for m in found for u in m.units}

    def make_match(self, kind: str, units: Iterable[str], *, structure: Mapping[str, Any] | None = None,
                   evidence: str = "") -> BlockMatch:
        """Fill nodes, label, entry/exit tensors and params from the covered units."""
        uset = frozenset(units)
        order = [u for u in self.layers.topo_order() if u in uset]
        nodes = tuple(n for u in order for n in self.unit(u).nodes)
        entry: list[str] = []
        exits: list[str] = []
        for u in order:
            for p in self.layers.dag.predecessors(u):
                if p not in uset:
                    t = self.unit(p).tensor
                    if t and t not in entry:
                        entry.append(t)
            if any(s not in uset for s in self.layers.dag.successors(u)):
                exits.append(self.unit(u).tensor)
        return BlockMatch(
            kind=kind, units=uset, nodes=nodes, label=common_scope(self.unit(u).scope for u in order),
            entry=tuple(entry), exit=tuple(exits), params=sum(self.unit(u).params for u in order),
            structure=tuple(sorted((structure or {}).items())), evidence=evidence,
        )


def _ints(value: object) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else []


@dataclass(frozen=True)
class ConvInfo:
    kernel: tuple[int, ...]
    stride: int
    groups: int
    cin: int | None
    cout: int | None

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.cin


def common_scope(scopes: Iterable[str]) -> str:
    """The longest dotted prefix shared by all non-empty scopes.

    >>> common_scope(["model.2.m.0.cv1.conv", "model.2.m.0.cv2.conv", "model.2.cv2"])
    'model.2'
    """
    parts = [s.split(".") for s in scopes if s]
    if not parts:
        return ""
    prefix = parts[0]
    for p in parts[1:]:
        n = 0
        while n < min(len(prefix), len(p)) and prefix[n] == p[n]:
            n += 1
        prefix = prefix[:n]
    return ".".join(prefix)


class Detector(Protocol):
    """One block family. ``after`` names kinds whose matches ``detect`` reads."""

    kind: str
    after: tuple[str, ...]

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]: ...


REGISTRY: dict[str, Detector] = {}


def register(detector: Detector) -> Detector:
    """Add a detector to the registry (one per kind)."""
    if detector.kind in REGISTRY:
        raise ValueError(f"detector for {detector.kind!r} registered twice")
    REGISTRY[detector.kind] = detector
    return detector
