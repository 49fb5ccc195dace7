"""The dynamic programs of the path analysis: the layer view as CSR, then forward and backward passes.

Counts, length moments and shortest/longest extrema from the sources to every unit
(:func:`forward_pass`) and from every unit to the targets (:func:`backward_pass`), in topological
order, never by enumeration; :func:`witness_path` walks an extremum back into a path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphpath.model.layers import LayerGraph
from graphpath.paths.counts import EXACT_CAP, NEG_INF, log2_sum_exp2
from graphpath.paths.results import Witness

# --------------------------------------------------------------------------- index


@dataclass(frozen=True, eq=False)
class UnitIndex:
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


def build_unit_index(layers: LayerGraph) -> UnitIndex:
    """The layer view as a :class:`UnitIndex`: units in topological order, edges as CSR."""
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
    return UnitIndex(ids=tuple(order), pos=pos, pptr=pptr, preds=preds, pcnt=pcnt,
                  sptr=sptr, succs=succs, scnt=scnt, weight=bytes(weight))


# --------------------------------------------------------------------------- passes


@dataclass(frozen=True, eq=False)
class ForwardPass:
    """What :func:`forward_pass` leaves at every unit (by topological position): paths from the
    sources, their length moments, and the shortest/longest length with its argmin/argmax
    predecessor for :func:`witness_path`."""

    ex: list[int]  # exact count or -1
    lg: list[float]  # log2 count, -inf for zero
    mean: list[float]
    msq: list[float]  # second moment E[L^2]
    fmin: list[int]  # -1 when unreached
    fmax: list[int]
    amin: list[int]  # predecessor of the shortest (-1: the unit is where the path starts)
    amax: list[int]


def forward_pass(ix: UnitIndex, sources: bytearray, live: bytearray) -> ForwardPass:
    """Counts, length moments and extrema from the sources to every live unit."""
    n = len(ix.ids)
    cap = EXACT_CAP
    log2 = math.log2
    ex = [0] * n
    lg = [NEG_INF] * n
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
            tot = log2_sum_exp2(terms)
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
    return ForwardPass(ex=ex, lg=lg, mean=mean, msq=msq, fmin=fmin, fmax=fmax, amin=amin, amax=amax)


def backward_pass(ix: UnitIndex, targets: Sequence[int],
                  extrema: bool) -> tuple[list[int], list[float], list[int], list[int]]:
    """Counts (and optionally extrema) from every unit to the targets, unit included.

    ``bmin``/``bmax`` are -1 for a unit that reaches no target (also when ``extrema`` is off,
    where they only mark reachability)."""
    n = len(ix.ids)
    cap = EXACT_CAP
    log2 = math.log2
    ex = [0] * n
    lg = [NEG_INF] * n
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
            lg[i] = log2_sum_exp2(terms)
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


def witness_path(ix: UnitIndex, fw: ForwardPass, t: int, longest: bool) -> Witness:
    """The shortest (or ``longest``) path from the sources to unit ``t``, walked back through
    the forward pass's argmin/argmax predecessors."""
    if fw.fmin[t] < 0:
        return Witness(None, ())
    arg = fw.amax if longest else fw.amin
    path = [t]
    while arg[path[-1]] >= 0:
        path.append(arg[path[-1]])
    return Witness(fw.fmax[t] if longest else fw.fmin[t], tuple(ix.ids[i] for i in reversed(path)))
