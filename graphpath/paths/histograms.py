"""Length histograms of the path analysis and the effective depth read from them.

The histogram dynamic program (a per-unit length polynomial under a work budget, log2 bins
beyond :data:`~graphpath.paths.counts.EXACT_CAP`), its sum over outputs, and mean/median/std
from a histogram or, when it was skipped, from the exact moments of the forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graphpath.paths.counts import NEG_INF, PathCount, log2_sum_exp2
from graphpath.paths.dp import ForwardPass, UnitIndex
from graphpath.paths.results import EffectiveDepth, LengthHistogram

#: Beyond the cap, histogram bins this many bits below a unit's largest bin are dropped.
HISTOGRAM_RANGE_BITS = 96
#: Beyond the cap, reported bins are those within this many bits of the largest: far enough
#: from the dropped range that what was dropped cannot move them at 6 decimals of log2.
HISTOGRAM_REPORT_BITS = 48
#: Default work budget of the histogram dynamic program, in array cells written.
HISTOGRAM_BUDGET = 20_000_000

# A histogram: (length of the first bin, bins, is_log). Exact bins are int64 (every bin is at
# most the unit's count, which is below the cap), log bins are float64 log2 with -inf for 0.
_Hist = tuple[int, np.ndarray, bool]


def length_histograms(ix: UnitIndex, fw: ForwardPass, sources: bytearray, live: bytearray,
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
                arr = np.full(hi - lo, NEG_INF)
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


def add_histograms(hs: Sequence[_Hist], total_exact: bool) -> _Hist | None:
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
    acc = np.full(hi - lo, NEG_INF)
    for plo, parr, plog in hs:
        view = acc[plo - lo: plo - lo + len(parr)]
        np.logaddexp2(view, parr if plog else _log2_bins(parr), out=view)
    return lo, acc, True


def to_length_histogram(h: _Hist) -> LengthHistogram:
    """The reported form: non-zero bins, beyond the cap only those within
    :data:`HISTOGRAM_REPORT_BITS` of the largest."""
    lo, arr, is_log = h
    if is_log:
        shown = np.flatnonzero(arr >= arr.max() - HISTOGRAM_REPORT_BITS)
        bins = tuple((lo + int(k), PathCount.from_log2(float(arr[k]))) for k in shown)
    else:
        bins = tuple((lo + int(k), PathCount.of(int(arr[k]))) for k in np.flatnonzero(arr))
    return LengthHistogram(exact=not is_log, bins=bins)


def depth_from_histogram(h: _Hist) -> EffectiveDepth:
    """Mean, lower median and standard deviation of the length, read from a histogram."""
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


def depth_from_moments(pairs: Sequence[tuple[float, float, float]]) -> EffectiveDepth:
    """(log2 count, mean, E[L^2]) per output → the combined mean and std (no median)."""
    live = [p for p in pairs if p[0] > NEG_INF]
    if not live:
        return EffectiveDepth(None, None, None)
    tot = log2_sum_exp2([p[0] for p in live])
    mean = sum(2.0 ** (p[0] - tot) * p[1] for p in live)
    msq = sum(2.0 ** (p[0] - tot) * p[2] for p in live)
    return EffectiveDepth(mean, None, math.sqrt(max(msq - mean * mean, 0.0)))
