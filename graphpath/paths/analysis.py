"""Gradient paths in the layer view: counts, length distributions, shortest and longest.

Definitions (also in ``docs/paths.md``):

* A **gradient path** is a directed path in the layer view (:mod:`graphpath.model.layers`) from a
  *source* (every graph input, or one chosen unit) to a *gradient source* (a graph output).
* Its **length** is the number of weighted units on it, endpoints included: a weighted
  ``--from`` unit counts, graph inputs and outputs never do. Activation gates count once,
  because the layer view has already folded them into their producer.
* Edge multiplicity multiplies: an edge with ``count = c`` (``Add(x, x)`` has ``c = 2``) stands
  for ``c`` distinct paths.

Everything is a dynamic program in topological order, never an enumeration:

* path counts from the sources to every unit and from every unit to every output (so paths
  *through* a unit = the product), exact Python ints below :data:`EXACT_CAP` and log2 floats
  (log-sum-exp) at and beyond it;
* the length histogram at every output (a per-unit length polynomial, dropped as soon as its
  last consumer has read it; unchanged chains share one array, only merges cost work); beyond
  the cap, bins more than :data:`HISTOGRAM_RANGE_BITS` below a unit's largest bin are dropped
  and only bins within :data:`HISTOGRAM_REPORT_BITS` of the largest are reported, so what was
  dropped cannot move a reported log2 at 6 decimals; past a work budget the histogram is
  skipped (counts, extrema and moments never are);
* the first two moments of the length (mean, standard deviation) at every unit, so the
  effective depth is known even when the histogram exceeds its work budget;
* shortest and longest paths (in weighted units) from the sources to every unit, with one
  witness per output, and from every unit to the outputs.

>>> from graphpath.model.layers import LayerGraph
>>> g = LayerGraph.from_edges([("x", "a"), ("a", "b"), ("x", "b"), ("b", "y")], weighted={"a", "b"})
>>> r = analyze_paths(g)
>>> r.total.exact, r.shortest.length, r.longest.length, r.longest.path
(2, 1, 2, ('x', 'a', 'b', 'y'))
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.model.layers import LayerGraph
from graphpath.paths.counts import EXACT_CAP, ROUND, PathCount, count_product, count_sum, path_count_from_pair
from graphpath.paths.dp import (
    ForwardPass,
    UnitIndex,
    backward_pass,
    build_unit_index,
    forward_pass,
    witness_path,
)
from graphpath.paths.histograms import (
    HISTOGRAM_BUDGET,
    HISTOGRAM_RANGE_BITS,
    HISTOGRAM_REPORT_BITS,
    add_histograms,
    depth_from_histogram,
    depth_from_moments,
    length_histograms,
    to_length_histogram,
)
from graphpath.paths.results import (
    EffectiveDepth,
    LengthHistogram,
    OutputPaths,
    PathReport,
    StagePaths,
    UnitPaths,
    UnitTable,
    Witness,
    unknown_name_message,
)

# Re-exported: callers import the values and results from here.
__all__ = [
    "EXACT_CAP", "HISTOGRAM_BUDGET", "HISTOGRAM_RANGE_BITS", "HISTOGRAM_REPORT_BITS", "ROUND",
    "EffectiveDepth", "LengthHistogram", "OutputPaths", "PathCount", "PathReport", "StagePaths",
    "UnitPaths", "Witness", "analyze_paths", "count_product", "count_sum",
]


# --------------------------------------------------------------------------- names


def _resolve_unit(layers: LayerGraph, name: str) -> str:
    """Accept a unit id or the name of any ONNX node folded into a unit (its SiLU ``Mul`` …)."""
    if name in layers.dag:
        return name
    for uid, unit in layers.dag.nodes(data="unit"):
        if name in unit.nodes:
            return str(uid)
    raise GraphpathError(unknown_name_message("unit", name, list(layers.dag.nodes)))


def _resolve_output(layers: LayerGraph, name: str) -> str:
    """Accept an output's unit id (``output:y``) or its tensor name (``y``)."""
    for cand in (name, f"output:{name}"):
        if cand in layers.outputs:
            return cand
    raise GraphpathError(unknown_name_message("output", name, layers.outputs))


# --------------------------------------------------------------------------- stages


def _stage_key_shape(attrs: tuple[tuple[str, object], ...]) -> str | None:
    shape = dict(attrs).get("shape")
    if isinstance(shape, (tuple, list)) and len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
        return f"{shape[2]}x{shape[3]}"
    return None


def _stage_key_scope(scope: str) -> str | None:
    if not scope:
        return None
    parts = scope.split(".")
    for k, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: k + 1])
    return parts[0]


def _stages(layers: LayerGraph, ix: UnitIndex, on_path: np.ndarray, fw: ForwardPass,
            bwd: tuple[list[int], list[float], list[int], list[int]]) -> tuple[str, tuple[StagePaths, ...]]:
    """Group the units on some path by resolution (``80x80``) when at least half of the
    weighted ones have a static 4-D shape, else by scope prefix (``model.3``); units without
    a key in the chosen basis (a Gemm head, a symbolic shape) go to ``(none)``."""
    idxs = np.flatnonzero(on_path).tolist()
    units = [layers.unit(ix.ids[i]) for i in idxs]
    shapes = [_stage_key_shape(u.attrs) for u in units]
    weighted_shapes = [s for s, u in zip(shapes, units, strict=True) if u.weighted]
    known = sum(1 for x in weighted_shapes if x is not None)
    basis = "resolution" if weighted_shapes and 2 * known >= len(weighted_shapes) else "scope"
    keys = shapes if basis == "resolution" else [_stage_key_scope(u.scope) for u in units]
    groups: dict[str, list[int]] = {}
    for i, key in zip(idxs, keys, strict=True):
        groups.setdefault(key or "(none)", []).append(i)
    bex, blg, bmin, bmax = bwd
    through_lg = np.asarray(fw.lg) + np.asarray(blg)  # log2 of paths through each unit
    weight = np.frombuffer(ix.weight, dtype=np.uint8)
    lo, hi = np.asarray(bmin), np.asarray(bmax)
    out = []
    for key, members in groups.items():
        m = np.asarray(members)
        w = m[weight[m] == 1]
        best = int(m[int(np.argmax(through_lg[m]))])  # first of the largest: deterministic
        out.append(StagePaths(
            stage=key, units=len(members), weighted=len(w),
            shortest_to_output=int(lo[w].min()) if len(w) else None,
            longest_to_output=int(hi[w].max()) if len(w) else None,
            max_paths_through=count_product(path_count_from_pair(fw.ex[best], fw.lg[best]),
                                            path_count_from_pair(bex[best], blg[best])),
        ))
    return basis, tuple(out)


# --------------------------------------------------------------------------- entry point


def analyze_paths(layers: LayerGraph, *, source: str | None = None, target: str | None = None,
                  auxiliary: Iterable[str] = (), histogram_budget: int = HISTOGRAM_BUDGET) -> PathReport:
    """Gradient paths from the inputs (or ``source``) to the outputs (or ``target``).

    Args:
        layers: the layer view.
        source: a unit id (or the name of an ONNX node folded into one) to start from
            instead of the graph inputs (``--from``).
        target: one output (unit id ``output:y`` or tensor name ``y``) to end at (``--to``).
        auxiliary: outputs (ids or tensor names) reported with role ``auxiliary``.
        histogram_budget: array cells the histogram program may write before it gives up;
            counts, extrema and mean/std are computed regardless.

    Raises:
        GraphpathError: ``source``, ``target`` or an ``auxiliary`` name is unknown.

    >>> from graphpath.model.layers import LayerGraph
    >>> g = LayerGraph.from_edges([("x", "y"), ("x", "y")])
    >>> analyze_paths(g).total.exact
    2
    """
    if source is not None:
        source = _resolve_unit(layers, source)
    targets = (_resolve_output(layers, target),) if target is not None else tuple(layers.outputs)
    aux = {_resolve_output(layers, a) for a in auxiliary}
    sources = (source,) if source is not None else tuple(layers.inputs)

    ix = build_unit_index(layers)
    n = len(ix.ids)
    src = bytearray(n)
    for s in sources:
        src[ix.pos[s]] = 1
    tgt = [ix.pos[t] for t in targets]

    bex, blg, bmin, bmax = backward_pass(ix, tgt, extrema=True)
    live = bytearray(1 if bmin[i] >= 0 else 0 for i in range(n))
    fw = forward_pass(ix, src, live)
    if len(tgt) == 1:
        per_out_b = [(targets[0], bex, blg)]
    else:
        per_out_b = [(t, *backward_pass(ix, [ix.pos[t]], extrema=False)[:2]) for t in targets]

    hists = length_histograms(ix, fw, src, live, set(tgt), histogram_budget)
    note = None if hists is not None else (
        f"histogram skipped: more than {histogram_budget} cells of work; "
        "mean and std come from exact moments, median is unknown")

    outputs = []
    for t in targets:
        i = ix.pos[t]
        h = hists.get(i) if hists is not None else None
        depth = depth_from_histogram(h) if h is not None else depth_from_moments(
            [(fw.lg[i], fw.mean[i], fw.msq[i])])
        outputs.append(OutputPaths(
            output=t, role="auxiliary" if t in aux else "main",
            paths=path_count_from_pair(fw.ex[i], fw.lg[i]),
            shortest=witness_path(ix, fw, i, longest=False), longest=witness_path(ix, fw, i, longest=True),
            effective_depth=depth,
            histogram=None if h is None else to_length_histogram(h),
        ))

    total = count_sum(o.paths for o in outputs)
    roles = tuple((r, count_sum(o.paths for o in outputs if o.role == r)) for r in ("auxiliary", "main"))
    reached = [o for o in outputs if o.shortest.length is not None]
    shortest = min(reached, key=lambda o: o.shortest.length or 0).shortest if reached else Witness(None, ())
    longest = max(reached, key=lambda o: o.longest.length or 0).longest if reached else Witness(None, ())
    combined = None
    if hists is not None:
        combined = add_histograms([hists[ix.pos[t]] for t in targets if ix.pos[t] in hists],
                              total.exact is not None)
    depth = depth_from_histogram(combined) if combined is not None else depth_from_moments(
        [(fw.lg[ix.pos[t]], fw.mean[ix.pos[t]], fw.msq[ix.pos[t]]) for t in targets])

    on_path = (np.asarray(fw.fmin) >= 0) & (np.asarray(bmin) >= 0)
    basis, stages = _stages(layers, ix, on_path, fw, (bex, blg, bmin, bmax))
    table = UnitTable(
        ids=ix.ids, pos=ix.pos,
        fwd_ex=np.asarray(fw.ex, dtype=np.int64), fwd_lg=np.asarray(fw.lg, dtype=np.float64),
        bwd_ex=np.asarray(bex, dtype=np.int64), bwd_lg=np.asarray(blg, dtype=np.float64),
        bmin=np.asarray(bmin, dtype=np.int64), bmax=np.asarray(bmax, dtype=np.int64),
        per_output=tuple((t, np.asarray(e, dtype=np.int64), np.asarray(g, dtype=np.float64))
                         for t, e, g in per_out_b),
    )
    return PathReport(
        sources=sources, targets=targets, total=total, by_role=roles, per_output=tuple(outputs),
        histogram=None if combined is None else to_length_histogram(combined), histogram_note=note,
        shortest=shortest, longest=longest, effective_depth=depth, stage_basis=basis,
        stages=stages, units=n, weighted_units=sum(ix.weight),
        units_on_paths=int(on_path.sum()), table=table,
    )
