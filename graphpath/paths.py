"""Gradient paths in the layer view: counts, length distributions, shortest and longest.

Definitions (also in ``docs/paths.md``):

* A **gradient path** is a directed path in the layer view (:mod:`graphpath.layers`) from a
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

>>> from graphpath.layers import LayerGraph
>>> g = LayerGraph.from_edges([("x", "a"), ("a", "b"), ("x", "b"), ("b", "y")], weighted={"a", "b"})
>>> r = analyze_paths(g)
>>> r.total.exact, r.shortest.length, r.longest.length, r.longest.path
(2, 1, 2, ('x', 'a', 'b', 'y'))
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.layers import LayerGraph

#: Counts below this are exact Python ints; at and beyond it only their log2 is kept.
EXACT_CAP = 2**63
#: Beyond the cap, histogram bins this many bits below a unit's largest bin are dropped.
HISTOGRAM_RANGE_BITS = 96
#: Beyond the cap, reported bins are those within this many bits of the largest: far enough
#: from the dropped range that what was dropped cannot move them at 6 decimals of log2.
HISTOGRAM_REPORT_BITS = 48
#: Default work budget of the histogram dynamic program, in array cells written.
HISTOGRAM_BUDGET = 20_000_000
#: Decimal places of every float in ``to_dict()``.
ROUND = 6

_NEG_INF = float("-inf")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class PathCount:
    """A number of paths: exact below :data:`EXACT_CAP`, else only its log2.

    Attributes:
        exact: the count, or ``None`` when it is at or beyond the cap.
        log2: log2 of the count, ``None`` for zero.

    >>> PathCount.of(8).to_dict()
    {'count': 8, 'log2': 3.0}
    >>> PathCount.from_log2(200.0).to_dict()
    {'count': None, 'log2': 200.0}
    """

    exact: int | None
    log2: float | None

    @classmethod
    def of(cls, n: int) -> PathCount:
        if n >= EXACT_CAP:
            return cls(None, math.log2(n))
        return cls(n, math.log2(n) if n > 0 else None)

    @classmethod
    def from_log2(cls, lg: float) -> PathCount:
        return cls(None, None if lg == _NEG_INF else lg)

    @property
    def is_zero(self) -> bool:
        return self.log2 is None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.exact, "log2": _round(self.log2)}

    def text(self) -> str:
        """``123`` when exact, ``2^456.78`` beyond the cap."""
        if self.exact is not None:
            return str(self.exact)
        assert self.log2 is not None
        return f"2^{self.log2:.2f}"


def _pc(ex: int, lg: float) -> PathCount:
    """Internal pair (exact or -1, log2 or -inf) → :class:`PathCount`."""
    if ex >= 0:
        return PathCount.of(ex)
    return PathCount.from_log2(lg)


def count_sum(counts: Iterable[PathCount]) -> PathCount:
    """Sum of path counts, exact while it stays below the cap.

    >>> count_sum([PathCount.of(3), PathCount.of(5)]).exact
    8
    """
    items = [c for c in counts if not c.is_zero]
    if all(c.exact is not None for c in items):
        return PathCount.of(sum(c.exact for c in items if c.exact is not None))
    return PathCount.from_log2(_lse([c.log2 for c in items if c.log2 is not None]))


def count_product(a: PathCount, b: PathCount) -> PathCount:
    """Product of path counts (paths through a unit = paths in × paths out).

    >>> count_product(PathCount.of(2**40), PathCount.of(2**40)).to_dict()
    {'count': None, 'log2': 80.0}
    """
    if a.is_zero or b.is_zero:
        return PathCount.of(0)
    if a.exact is not None and b.exact is not None:
        return PathCount.of(a.exact * b.exact)
    assert a.log2 is not None and b.log2 is not None
    return PathCount.from_log2(a.log2 + b.log2)


def _lse(values: Sequence[float]) -> float:
    """log2 of a sum of powers of two, given their log2s (-inf for an empty sum)."""
    if len(values) == 2:  # the common merge, without the loop
        a, b = values
        if a < b:
            a, b = b, a
        return a if b == _NEG_INF else a + math.log2(1.0 + 2.0 ** (b - a))
    if not values:
        return _NEG_INF
    m = max(values)
    if m == _NEG_INF:
        return m
    acc = 0.0
    for v in values:
        acc += 2.0 ** (v - m)
    return m + math.log2(acc)


def _round(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, ROUND) + 0.0  # + 0.0 turns -0.0 into 0.0


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LengthHistogram:
    """Number of paths per length (weighted units), zero bins left out.

    ``exact`` is true when every bin is an exact int; otherwise bins are log2 values and bins
    more than :data:`HISTOGRAM_RANGE_BITS` below the largest were dropped.
    """

    exact: bool
    bins: tuple[tuple[int, PathCount], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"exact": self.exact,
                "bins": [{"length": k, **c.to_dict()} for k, c in self.bins]}


@dataclass(frozen=True)
class EffectiveDepth:
    """Mean, median and standard deviation of the path length over all paths.

    ``median`` (the lower median) needs the histogram and is ``None`` when it was skipped.
    """

    mean: float | None
    median: int | None
    std: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _round(self.mean), "median": self.median, "std": _round(self.std)}


@dataclass(frozen=True)
class Witness:
    """An extreme path: its length (``None`` when no path exists) and its unit ids."""

    length: int | None
    path: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"length": self.length, "path": list(self.path)}


@dataclass(frozen=True)
class OutputPaths:
    """Gradient paths that end at one output."""

    output: str
    role: str  # "main" or "auxiliary"
    paths: PathCount
    shortest: Witness
    longest: Witness
    effective_depth: EffectiveDepth
    histogram: LengthHistogram | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "paths": self.paths.to_dict(),
            "shortest": self.shortest.to_dict(),
            "longest": self.longest.to_dict(),
            "effective_depth": self.effective_depth.to_dict(),
            "length_histogram": None if self.histogram is None else self.histogram.to_dict(),
        }


@dataclass(frozen=True)
class StagePaths:
    """Gradient paths by stage (a resolution like ``80x80``, or a scope prefix like ``model.3``).

    ``shortest_to_output``/``longest_to_output`` are over the stage's weighted units: the
    fewest and most weighted units between one of them and an output (the unit included).
    """

    stage: str
    units: int
    weighted: int
    shortest_to_output: int | None
    longest_to_output: int | None
    max_paths_through: PathCount

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "units": self.units, "weighted": self.weighted,
                "shortest_to_output": self.shortest_to_output,
                "longest_to_output": self.longest_to_output,
                "max_paths_through": self.max_paths_through.to_dict()}


@dataclass(frozen=True)
class UnitPaths:
    """Gradient paths at one unit. ``shortest``/``longest`` count weighted units from the unit
    (included) to the nearest/farthest target output; ``None`` when no output is reachable."""

    unit: str
    from_sources: PathCount
    to_outputs: PathCount
    through: PathCount
    shortest: int | None
    longest: int | None
    per_output: tuple[tuple[str, PathCount], ...]


@dataclass(frozen=True, eq=False)
class _UnitTable:
    """Per-unit results as flat arrays indexed by topological position."""

    ids: tuple[str, ...]
    pos: dict[str, int]
    fwd_ex: np.ndarray  # int64, -1 beyond the cap
    fwd_lg: np.ndarray  # float64, -inf for zero
    bwd_ex: np.ndarray
    bwd_lg: np.ndarray
    bmin: np.ndarray  # int64, -1 when no output is reachable
    bmax: np.ndarray
    per_output: tuple[tuple[str, np.ndarray, np.ndarray], ...]


@dataclass(frozen=True, eq=False)
class PathReport:
    """The gradient-path section of a report (see ``docs/paths.md`` for the JSON layout)."""

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    total: PathCount
    by_role: tuple[tuple[str, PathCount], ...]
    per_output: tuple[OutputPaths, ...]
    histogram: LengthHistogram | None
    histogram_note: str | None
    shortest: Witness
    longest: Witness
    effective_depth: EffectiveDepth
    stage_basis: str
    stages: tuple[StagePaths, ...]
    units: int
    weighted_units: int
    units_on_paths: int
    table: _UnitTable

    def unit(self, uid: str) -> UnitPaths:
        """Per-unit numbers. Raises :class:`GraphpathError` for an unknown id."""
        t = self.table
        i = t.pos.get(uid)
        if i is None:
            raise GraphpathError(_unknown("unit", uid, t.ids))
        f = _pc(int(t.fwd_ex[i]), float(t.fwd_lg[i]))
        b = _pc(int(t.bwd_ex[i]), float(t.bwd_lg[i]))
        return UnitPaths(
            unit=uid, from_sources=f, to_outputs=b, through=count_product(f, b),
            shortest=None if t.bmin[i] < 0 else int(t.bmin[i]),
            longest=None if t.bmax[i] < 0 else int(t.bmax[i]),
            per_output=tuple((o, _pc(int(ex[i]), float(lg[i]))) for o, ex, lg in t.per_output),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": "length = weighted units on the path, endpoints included",
            "sources": list(self.sources),
            "targets": list(self.targets),
            "exact_cap_log2": int(math.log2(EXACT_CAP)),
            "total": self.total.to_dict(),
            "by_role": {r: c.to_dict() for r, c in self.by_role},
            "per_output": {o.output: o.to_dict() for o in self.per_output},
            "length_histogram": None if self.histogram is None else self.histogram.to_dict(),
            "histogram_note": self.histogram_note,
            "shortest": self.shortest.to_dict(),
            "longest": self.longest.to_dict(),
            "effective_depth": self.effective_depth.to_dict(),
            "stage_basis": self.stage_basis,
            "stages": [s.to_dict() for s in self.stages],
            "units": {"total": self.units, "weighted": self.weighted_units,
                      "on_paths": self.units_on_paths},
        }


# --------------------------------------------------------------------------- index


@dataclass(frozen=True, eq=False)
class _Index:
    """The layer view as compressed adjacency (CSR) in topological order.

    Flat lists of ints rather than a list per unit: millions of small lists make the cyclic
    garbage collector rescan the heap again and again while they are built.
    ``preds[pptr[i]:pptr[i+1]]`` are unit i's predecessors, ``pcnt`` their edge counts, in
    topological order of the predecessor; likewise ``succs``/``sptr``/``scnt``.
    """

    ids: tuple[str, ...]
    pos: dict[str, int]
    pptr: list[int]
    preds: list[int]
    pcnt: list[int]
    sptr: list[int]
    succs: list[int]
    scnt: list[int]
    weight: bytes


def _index(layers: LayerGraph) -> _Index:
    order = layers.topo_order()
    n = len(order)
    pos = {u: i for i, u in enumerate(order)}
    src: list[int] = []
    dst: list[int] = []
    cnt: list[int] = []
    weight = bytearray(n)
    for u, nbrs in layers.dag.adjacency():
        i = pos[u]
        for v, d in nbrs.items():
            src.append(i)
            dst.append(pos[v])
            cnt.append(int(d.get("count", 1)))
    for u, unit in layers.dag.nodes(data="unit"):
        if unit.kind == "weighted":
            weight[pos[u]] = 1
    s_arr = np.asarray(src, dtype=np.int64)
    d_arr = np.asarray(dst, dtype=np.int64)
    c_arr = np.asarray(cnt, dtype=np.int64)

    def csr(key: np.ndarray, other: np.ndarray) -> tuple[list[int], list[int], list[int]]:
        by = np.lexsort((other, key))  # by key, then by the other end: deterministic
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=n), out=ptr[1:])
        return ptr.tolist(), other[by].tolist(), c_arr[by].tolist()

    pptr, preds, pcnt = csr(d_arr, s_arr)
    sptr, succs, scnt = csr(s_arr, d_arr)
    return _Index(ids=tuple(order), pos=pos, pptr=pptr, preds=preds, pcnt=pcnt,
                  sptr=sptr, succs=succs, scnt=scnt, weight=bytes(weight))


def _unknown(what: str, name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return f"unknown {what} {name!r}{hint}"


def _resolve_unit(layers: LayerGraph, name: str) -> str:
    """Accept a unit id or the name of any ONNX node folded into a unit (its SiLU ``Mul`` …)."""
    if name in layers.dag:
        return name
    for uid, unit in layers.dag.nodes(data="unit"):
        if name in unit.nodes:
            return str(uid)
    raise GraphpathError(_unknown("unit", name, list(layers.dag.nodes)))


def _resolve_output(layers: LayerGraph, name: str) -> str:
    """Accept an output's unit id (``output:y``) or its tensor name (``y``)."""
    for cand in (name, f"output:{name}"):
        if cand in layers.outputs:
            return cand
    raise GraphpathError(_unknown("output", name, layers.outputs))


# --------------------------------------------------------------------------- passes


@dataclass(frozen=True, eq=False)
class _Forward:
    ex: list[int]  # exact count or -1
    lg: list[float]  # log2 count, -inf for zero
    mean: list[float]
    msq: list[float]  # second moment E[L^2]
    fmin: list[int]  # -1 when unreached
    fmax: list[int]
    amin: list[int]  # predecessor of the shortest (-1: the unit is where the path starts)
    amax: list[int]


def _forward(ix: _Index, sources: bytearray, live: bytearray) -> _Forward:
    """Counts, length moments and extrema from the sources to every live unit."""
    n = len(ix.ids)
    cap = EXACT_CAP
    log2 = math.log2
    ex = [0] * n
    lg = [_NEG_INF] * n
    mean = [0.0] * n
    msq = [0.0] * n
    fmin = [-1] * n
    fmax = [-1] * n
    amin = [-1] * n
    amax = [-1] * n
    pptr, preds, pcnt, weight = ix.pptr, ix.preds, ix.pcnt, ix.weight
    for i in range(n):
        if not live[i]:
            continue
        a, b = pptr[i], pptr[i + 1]
        seed = sources[i]
        w = weight[i]
        if b - a == 1 and not seed and pcnt[a] == 1:
            # Fast path (most units of a chain): one predecessor, one edge.
            j = preds[a]
            if fmin[j] >= 0:
                ex[i], lg[i] = ex[j], lg[j]
                m = mean[j]
                mean[i], msq[i] = m + w, msq[j] + 2 * w * m + w
                fmin[i], fmax[i], amin[i], amax[i] = fmin[j] + w, fmax[j] + w, j, j
            continue
        js = [k for k in range(a, b) if fmin[preds[k]] >= 0]
        if not js and not seed:
            continue
        # counts: exact while every term is, log-sum-exp beyond the cap
        s = 1 if seed else 0
        for k in js:
            e = ex[preds[k]]
            if e < 0:
                s = -1
                break
            s += e * pcnt[k]
        if s >= 0:
            ex[i] = s if s < cap else -1
            tot = log2(s)
        else:
            ex[i] = -1
            terms = [lg[preds[k]] + log2(pcnt[k]) for k in js]
            if seed:
                terms.append(0.0)
            tot = _lse(terms)
        lg[i] = tot
        # moments of the length before this unit's own weight, then shifted by it;
        # extrema with ties to the earliest predecessor (preds are in topological order)
        m = q = 0.0
        lo, hi, alo, ahi = (0, 0, -1, -1) if seed else (n, -1, -1, -1)
        for k in js:
            j = preds[k]
            f = pcnt[k] * 2.0 ** (lg[j] - tot)
            m += f * mean[j]
            q += f * msq[j]
            if fmin[j] < lo:
                lo, alo = fmin[j], j
            if fmax[j] > hi:
                hi, ahi = fmax[j], j
        mean[i] = m + w
        msq[i] = q + 2 * w * m + w
        fmin[i], amin[i] = lo + w, alo
        fmax[i], amax[i] = hi + w, ahi
    return _Forward(ex=ex, lg=lg, mean=mean, msq=msq, fmin=fmin, fmax=fmax, amin=amin, amax=amax)


def _backward(ix: _Index, targets: Sequence[int], extrema: bool) -> tuple[list[int], list[float], list[int], list[int]]:
    """Counts (and optionally extrema) from every unit to the targets, unit included.

    ``bmin``/``bmax`` are -1 for a unit that reaches no target (also when ``extrema`` is off,
    where they only mark reachability)."""
    n = len(ix.ids)
    cap = EXACT_CAP
    log2 = math.log2
    ex = [0] * n
    lg = [_NEG_INF] * n
    bmin = [-1] * n
    bmax = [-1] * n
    is_target = bytearray(n)
    for t in targets:
        is_target[t] = 1
    sptr, succs, scnt = ix.sptr, ix.succs, ix.scnt
    weight = ix.weight if extrema else bytes(n)
    last = max(targets, default=-1)  # nothing after the last target in topological order reaches one
    for i in range(last, -1, -1):
        a, b = sptr[i], sptr[i + 1]
        seed = is_target[i]
        w = weight[i]
        if b - a == 1 and not seed and scnt[a] == 1:
            j = succs[a]
            if bmin[j] >= 0:
                ex[i], lg[i], bmin[i], bmax[i] = ex[j], lg[j], bmin[j] + w, bmax[j] + w
            continue
        js = [k for k in range(a, b) if bmin[succs[k]] >= 0]
        if not js and not seed:
            continue
        s = 1 if seed else 0
        for k in js:
            e = ex[succs[k]]
            if e < 0:
                s = -1
                break
            s += e * scnt[k]
        if s >= 0:
            ex[i] = s if s < cap else -1
            lg[i] = log2(s)
        else:
            ex[i] = -1
            terms = [lg[succs[k]] + log2(scnt[k]) for k in js]
            if seed:
                terms.append(0.0)
            lg[i] = _lse(terms)
        lo = 0 if seed else n
        hi = 0 if seed else -1
        for k in js:
            j = succs[k]
            if bmin[j] < lo:
                lo = bmin[j]
            if bmax[j] > hi:
                hi = bmax[j]
        bmin[i] = lo + w
        bmax[i] = hi + w
    return ex, lg, bmin, bmax


# A histogram: (length of the first bin, bins, is_log). Exact bins are int64 (every bin is at
# most the unit's count, which is below the cap), log bins are float64 log2 with -inf for 0.
_Hist = tuple[int, np.ndarray, bool]


def _histograms(ix: _Index, fw: _Forward, sources: bytearray, live: bytearray,
                keep: set[int], budget: int) -> dict[int, _Hist] | None:
    """Length histograms at the units in ``keep``; ``None`` when ``budget`` cells run out.

    Each unit's histogram is the sum of its predecessors' (times the edge count), shifted by
    its own weight. A unit with one predecessor and ``count == 1`` shares the array (only the
    offset moves); a histogram is dropped once its last live successor has read it.
    """
    n = len(ix.ids)
    pptr, preds, pcnt = ix.pptr, ix.preds, ix.pcnt
    left = [0] * n  # successors that still have to read a unit's histogram
    for i in range(n):
        if live[i] and fw.fmin[i] >= 0:
            for k in range(pptr[i], pptr[i + 1]):
                left[preds[k]] += 1
    hist: dict[int, _Hist] = {}
    one = np.ones(1, dtype=np.int64)
    spent = 0
    for i in range(n):
        if not live[i] or fw.fmin[i] < 0:
            continue
        ks = range(pptr[i], pptr[i + 1])
        parts: list[tuple[int, np.ndarray, bool, int]] = [
            (*hist[preds[k]], pcnt[k]) for k in ks if preds[k] in hist
        ]
        if sources[i]:
            parts.append((0, one, False, 1))
        exact = fw.ex[i] >= 0
        if len(parts) == 1 and parts[0][3] == 1:
            lo, arr, is_log, _ = parts[0]
        else:
            lo = min(p[0] for p in parts)
            hi = max(p[0] + len(p[1]) for p in parts)
            spent += (hi - lo) * len(parts)
            if spent > budget:
                return None
            if exact:
                arr = np.zeros(hi - lo, dtype=np.int64)
                for plo, parr, _, c in parts:
                    arr[plo - lo: plo - lo + len(parr)] += parr * c
                is_log = False
            else:
                arr = np.full(hi - lo, _NEG_INF)
                for plo, parr, plog, c in parts:
                    vals = parr if plog else _log2_bins(parr)
                    if c != 1:
                        vals = vals + math.log2(c)
                    view = arr[plo - lo: plo - lo + len(parr)]
                    np.logaddexp2(view, vals, out=view)
                keep_at = np.flatnonzero(arr >= arr.max() - HISTOGRAM_RANGE_BITS)
                arr = arr[keep_at[0]: keep_at[-1] + 1]
                lo += int(keep_at[0])
                is_log = True
        hist[i] = (lo + ix.weight[i], arr, is_log)
        for k in ks:
            j = preds[k]
            if j in hist:
                left[j] -= 1
                if left[j] == 0 and j not in keep:
                    del hist[j]
        if left[i] == 0 and i not in keep:
            del hist[i]
    return {i: hist[i] for i in keep if i in hist}


def _log2_bins(arr: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log2(arr.astype(np.float64))


def _add_hists(hs: Sequence[_Hist], total_exact: bool) -> _Hist | None:
    """Sum of histograms (at outputs), exact when the total is below the cap."""
    if not hs:
        return None
    if len(hs) == 1:
        return hs[0]
    lo = min(h[0] for h in hs)
    hi = max(h[0] + len(h[1]) for h in hs)
    if total_exact:
        out = np.zeros(hi - lo, dtype=np.int64)
        for plo, parr, _ in hs:
            out[plo - lo: plo - lo + len(parr)] += parr
        return lo, out, False
    acc = np.full(hi - lo, _NEG_INF)
    for plo, parr, plog in hs:
        view = acc[plo - lo: plo - lo + len(parr)]
        np.logaddexp2(view, parr if plog else _log2_bins(parr), out=view)
    return lo, acc, True


def _to_histogram(h: _Hist) -> LengthHistogram:
    lo, arr, is_log = h
    if is_log:
        shown = np.flatnonzero(arr >= arr.max() - HISTOGRAM_REPORT_BITS)
        bins = tuple((lo + int(k), PathCount.from_log2(float(arr[k]))) for k in shown)
    else:
        bins = tuple((lo + int(k), PathCount.of(int(arr[k]))) for k in np.flatnonzero(arr))
    return LengthHistogram(exact=not is_log, bins=bins)


def _depth_from_hist(h: _Hist) -> EffectiveDepth:
    lo, arr, is_log = h
    ks = np.arange(lo, lo + len(arr))
    if not is_log:
        counts = [int(x) for x in arr]
        total = sum(counts)
        if total == 0:
            return EffectiveDepth(None, None, None)
        s1 = sum(int(k) * c for k, c in zip(ks, counts, strict=True))
        s2 = sum(int(k) * int(k) * c for k, c in zip(ks, counts, strict=True))
        cum, half = 0, 0
        for k, c in zip(ks, counts, strict=True):
            cum += c
            if 2 * cum >= total:
                half = int(k)
                break
        var = (s2 * total - s1 * s1) / (total * total)
        return EffectiveDepth(s1 / total, half, math.sqrt(max(var, 0.0)))
    p = np.exp2(arr - arr.max())
    p = p / p.sum()
    mean = float(np.dot(ks, p))
    var = float(np.dot((ks - mean) ** 2, p))
    median = int(ks[int(np.searchsorted(np.cumsum(p), 0.5 - 1e-12))])
    return EffectiveDepth(mean, median, math.sqrt(max(var, 0.0)))


def _depth_from_moments(pairs: Sequence[tuple[float, float, float]]) -> EffectiveDepth:
    """(log2 count, mean, E[L^2]) per output → the combined mean and std (no median)."""
    live = [p for p in pairs if p[0] > _NEG_INF]
    if not live:
        return EffectiveDepth(None, None, None)
    tot = _lse([p[0] for p in live])
    mean = sum(2.0 ** (p[0] - tot) * p[1] for p in live)
    msq = sum(2.0 ** (p[0] - tot) * p[2] for p in live)
    return EffectiveDepth(mean, None, math.sqrt(max(msq - mean * mean, 0.0)))


def _witness(ix: _Index, fw: _Forward, t: int, longest: bool) -> Witness:
    if fw.fmin[t] < 0:
        return Witness(None, ())
    arg = fw.amax if longest else fw.amin
    path = [t]
    while arg[path[-1]] >= 0:
        path.append(arg[path[-1]])
    return Witness(fw.fmax[t] if longest else fw.fmin[t], tuple(ix.ids[i] for i in reversed(path)))


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


def _stages(layers: LayerGraph, ix: _Index, on_path: np.ndarray, fw: _Forward,
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
            max_paths_through=count_product(_pc(fw.ex[best], fw.lg[best]), _pc(bex[best], blg[best])),
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

    >>> from graphpath.layers import LayerGraph
    >>> g = LayerGraph.from_edges([("x", "y"), ("x", "y")])
    >>> analyze_paths(g).total.exact
    2
    """
    if source is not None:
        source = _resolve_unit(layers, source)
    targets = (_resolve_output(layers, target),) if target is not None else tuple(layers.outputs)
    aux = {_resolve_output(layers, a) for a in auxiliary}
    sources = (source,) if source is not None else tuple(layers.inputs)

    ix = _index(layers)
    n = len(ix.ids)
    src = bytearray(n)
    for s in sources:
        src[ix.pos[s]] = 1
    tgt = [ix.pos[t] for t in targets]

    bex, blg, bmin, bmax = _backward(ix, tgt, extrema=True)
    live = bytearray(1 if bmin[i] >= 0 else 0 for i in range(n))
    fw = _forward(ix, src, live)
    if len(tgt) == 1:
        per_out_b = [(targets[0], bex, blg)]
    else:
        per_out_b = [(t, *_backward(ix, [ix.pos[t]], extrema=False)[:2]) for t in targets]

    hists = _histograms(ix, fw, src, live, set(tgt), histogram_budget)
    note = None if hists is not None else (
        f"histogram skipped: more than {histogram_budget} cells of work; "
        "mean and std come from exact moments, median is unknown")

    outputs = []
    for t in targets:
        i = ix.pos[t]
        h = hists.get(i) if hists is not None else None
        depth = _depth_from_hist(h) if h is not None else _depth_from_moments(
            [(fw.lg[i], fw.mean[i], fw.msq[i])])
        outputs.append(OutputPaths(
            output=t, role="auxiliary" if t in aux else "main", paths=_pc(fw.ex[i], fw.lg[i]),
            shortest=_witness(ix, fw, i, longest=False), longest=_witness(ix, fw, i, longest=True),
            effective_depth=depth,
            histogram=None if h is None else _to_histogram(h),
        ))

    total = count_sum(o.paths for o in outputs)
    roles = tuple((r, count_sum(o.paths for o in outputs if o.role == r)) for r in ("auxiliary", "main"))
    reached = [o for o in outputs if o.shortest.length is not None]
    shortest = min(reached, key=lambda o: o.shortest.length or 0).shortest if reached else Witness(None, ())
    longest = max(reached, key=lambda o: o.longest.length or 0).longest if reached else Witness(None, ())
    combined = None
    if hists is not None:
        combined = _add_hists([hists[ix.pos[t]] for t in targets if ix.pos[t] in hists],
                              total.exact is not None)
    depth = _depth_from_hist(combined) if combined is not None else _depth_from_moments(
        [(fw.lg[ix.pos[t]], fw.mean[ix.pos[t]], fw.msq[ix.pos[t]]) for t in targets])

    on_path = (np.asarray(fw.fmin) >= 0) & (np.asarray(bmin) >= 0)
    basis, stages = _stages(layers, ix, on_path, fw, (bex, blg, bmin, bmax))
    table = _UnitTable(
        ids=ix.ids, pos=ix.pos,
        fwd_ex=np.asarray(fw.ex, dtype=np.int64), fwd_lg=np.asarray(fw.lg, dtype=np.float64),
        bwd_ex=np.asarray(bex, dtype=np.int64), bwd_lg=np.asarray(blg, dtype=np.float64),
        bmin=np.asarray(bmin, dtype=np.int64), bmax=np.asarray(bmax, dtype=np.int64),
        per_output=tuple((t, np.asarray(e, dtype=np.int64), np.asarray(g, dtype=np.float64))
                         for t, e, g in per_out_b),
    )
    return PathReport(
        sources=sources, targets=targets, total=total, by_role=roles, per_output=tuple(outputs),
        histogram=None if combined is None else _to_histogram(combined), histogram_note=note,
        shortest=shortest, longest=longest, effective_depth=depth, stage_basis=basis,
        stages=stages, units=n, weighted_units=sum(ix.weight),
        units_on_paths=int(on_path.sum()), table=table,
    )
