"""Result dataclasses of the gradient-path analysis (:func:`graphpath.paths.analysis.analyze_paths`).

Frozen values and their ``to_dict()`` (the JSON layout in ``docs/paths.md``); no analysis here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.paths.counts import EXACT_CAP, PathCount, count_product, path_count_from_pair, round_or_none

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LengthHistogram:
    """Number of paths per length (weighted units), zero bins left out.

    ``exact`` is true when every bin is an exact int; otherwise bins are log2 values and bins
    more than :data:`~graphpath.paths.histograms.HISTOGRAM_RANGE_BITS` below the largest were dropped.
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
        return {"mean": round_or_none(self.mean), "median": self.median, "std": round_or_none(self.std)}


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
class UnitTable:
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
    table: UnitTable

    def unit(self, uid: str) -> UnitPaths:
        """Per-unit numbers. Raises :class:`GraphpathError` for an unknown id."""
        t = self.table
        i = t.pos.get(uid)
        if i is None:
            raise GraphpathError(unknown_name_message("unit", uid, t.ids))
        f = path_count_from_pair(int(t.fwd_ex[i]), float(t.fwd_lg[i]))
        b = path_count_from_pair(int(t.bwd_ex[i]), float(t.bwd_lg[i]))
        return UnitPaths(
            unit=uid, from_sources=f, to_outputs=b, through=count_product(f, b),
            shortest=None if t.bmin[i] < 0 else int(t.bmin[i]),
            longest=None if t.bmax[i] < 0 else int(t.bmax[i]),
            per_output=tuple((o, path_count_from_pair(int(ex[i]), float(lg[i])))
                             for o, ex, lg in t.per_output),
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


def unknown_name_message(what: str, name: str, known: Sequence[str]) -> str:
    """The error for an unknown unit or output name, with close matches among ``known``.

    >>> unknown_name_message("output", "y", ["y1", "z"])
    "unknown output 'y'; close matches: y1"
    """
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return f"unknown {what} {name!r}{hint}"
