"""Path-count values: exact ints below :data:`EXACT_CAP`, log2 floats beyond, and their arithmetic.

The number type of :mod:`graphpath.paths.analysis`; the analysis, its result dataclasses and the
histogram program all count paths with :class:`PathCount` and the helpers here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from graphpath.report import round_float

#: Counts below this are exact Python ints; at and beyond it only their log2 is kept.
EXACT_CAP = 2**63
#: Decimal places of every float in ``to_dict()``.
ROUND = 6

#: log2 of a zero count (the internal pairs use it for "no paths").
NEG_INF = float("-inf")


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
        return cls(None, None if lg == NEG_INF else lg)

    @property
    def is_zero(self) -> bool:
        return self.log2 is None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.exact, "log2": round_or_none(self.log2)}

    def text(self) -> str:
        """``123`` when exact, ``2^456.78`` beyond the cap."""
        if self.exact is not None:
            return str(self.exact)
        assert self.log2 is not None
        return f"2^{self.log2:.2f}"


def path_count_from_pair(ex: int, lg: float) -> PathCount:
    """The dynamic programs' pair (exact count or -1, log2 or -inf) → :class:`PathCount`.

    >>> path_count_from_pair(8, 3.0).exact, path_count_from_pair(-1, 80.0).log2
    (8, 80.0)
    """
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
    return PathCount.from_log2(log2_sum_exp2([c.log2 for c in items if c.log2 is not None]))


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


def log2_sum_exp2(values: Sequence[float]) -> float:
    """log2 of a sum of powers of two, given their log2s (-inf for an empty sum).

    >>> log2_sum_exp2([3.0, 3.0]), log2_sum_exp2([])
    (4.0, -inf)
    """
    if len(values) == 2:  # the common merge, without the loop
        a, b = values
        if a < b:
            a, b = b, a
        return a if b == NEG_INF else a + math.log2(1.0 + 2.0 ** (b - a))
    if not values:
        return NEG_INF
    m = max(values)
    if m == NEG_INF:
        return m
    acc = 0.0
    for v in values:
        acc += 2.0 ** (v - m)
    return m + math.log2(acc)


def round_or_none(x: float | None) -> float | None:
    """``x`` at :data:`ROUND` decimal places for ``to_dict()``; ``None`` for ``None`` and non-finite ``x``.

    >>> round_or_none(1 / 3), round_or_none(float("-inf"))
    (0.333333, None)
    """
    if x is None or not math.isfinite(x):
        return None
    return round_float(x, places=ROUND)
