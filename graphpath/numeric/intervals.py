"""Repeated measurements: a mean and a 95 % interval, a verdict decided on the interval, and the
rank agreement between the seed's ordinal verdicts and measured ratios.

A measurement is a number, a condition and an interval. Ratios, gains and norms are
multiplicative, so their intervals are taken in log space (a geometric mean and a Student-t
interval on ``log x``); a set holding a zero or a negative value falls back to linear space and
says so. With one repetition there is no interval: ``low == high == mean`` and ``n == 1``.

>>> iv = interval([1.0, 2.0, 4.0], log=True, over="seeds")
>>> round(iv.mean, 6), iv.n, iv.low < iv.mean < iv.high
(2.0, 3, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from graphpath.numeric.metrics import Verdict

__all__ = ["Interval", "RankAgreement", "interval", "rank_agreement", "verdict_on_interval"]

#: What the repetitions were: independent seeds (images, cotangents, initial weights) or the
#: probes of a single seed (``--condition weights`` with one seed).
Over = Literal["seeds", "probes"]


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided interval over ``n`` repetitions.

    Attributes:
        mean: the geometric mean when ``log``, else the arithmetic mean.
        low, high: the interval's ends (``level`` coverage, Student t with ``n − 1`` degrees of
            freedom; equal to ``mean`` when ``n == 1``); ``nan`` when a value is not finite.
        n: repetitions.
        over: what was repeated.
        log: whether the interval was taken on ``log x``.
        level: the coverage (0.95).
        values: the repeated measurements themselves.
    """

    mean: float
    low: float
    high: float
    n: int
    over: Over
    log: bool
    level: float = 0.95
    values: tuple[float, ...] = ()

    def describe(self) -> str:
        """``1.23 [0.98, 1.55] (95 %, 5 seeds, log)``."""
        if self.n == 1:
            return f"{self.mean:.3g} (1 {self.over[:-1]}, no interval)"
        space = ", log" if self.log else ""
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}] ({self.level:.0%}, {self.n} {self.over}{space})"

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "over": self.over,
                "log": self.log, "level": self.level, "values": list(self.values)}


def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def interval(values: Sequence[float], *, log: bool, over: Over, level: float = 0.95) -> Interval:
    """Mean and ``level`` interval of ``values`` (log space when ``log`` and every value is > 0).

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("an interval needs at least one value")
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    kept = tuple(float(v) for v in x)
    if not np.all(np.isfinite(x)):
        return Interval(math.nan, math.nan, math.nan, n, over, log, level, kept)
    use_log = log and bool(np.all(x > 0))
    y = np.log(x) if use_log else x
    m = float(y.mean())
    if n == 1:
        lo = hi = m
    else:
        half = _t_quantile(0.5 + level / 2, n - 1) * float(y.std(ddof=1)) / math.sqrt(n)
        lo, hi = m - half, m + half
    back: Callable[[float], float] = math.exp if use_log else float
    return Interval(back(m), back(lo), back(hi), n, over, use_log, level, kept)


#: What an inconclusive verdict's reason says just before the two verdicts it lies between.
STRADDLES = "straddles a boundary: "


def verdict_on_interval(iv: Interval, decide: Callable[[float], tuple[Verdict, str]]) -> tuple[Verdict, str]:
    """The verdict when both ends of ``iv`` give the same one (``decide(ratio)``), else
    ``inconclusive`` with the two verdicts it lies between."""
    if not all(math.isfinite(v) for v in (iv.mean, iv.low, iv.high)):
        return decide(iv.mean)
    low_v, low_why = decide(iv.low)
    high_v, _ = decide(iv.high)
    mid_v, mid_why = decide(iv.mean)
    if low_v == high_v == mid_v:
        return mid_v, mid_why
    return "inconclusive", (f"the interval {iv.describe()} {STRADDLES}{low_v} at its low end, "
                            f"{high_v} at its high end")


@dataclass(frozen=True)
class RankAgreement:
    """Spearman's ρ between ordinal claims and measured values, with a bootstrap interval over
    the repetitions (each resample draws, per model, one of its repeated measurements)."""

    rho: float
    low: float
    high: float
    models: int
    resamples: int

    def describe(self) -> str:
        return (f"Spearman ρ = {self.rho:.2f} [{self.low:.2f}, {self.high:.2f}] (95 % bootstrap over seeds, "
                f"{self.resamples} resamples, {self.models} models)")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    rho = spearmanr(a, b).statistic
    return float(rho) if rho is not None and math.isfinite(rho) else math.nan


def rank_agreement(claims: Sequence[int], repeats: Sequence[Sequence[float]], *, resamples: int = 1000,
                   seed: int = 0) -> RankAgreement:
    """Spearman's ρ between ``claims`` (ordinal: unstable 0 < moderate 1 < stable 2 < very
    stable 3) and each model's geometric-mean measurement, with a percentile bootstrap interval
    that resamples each model's repetitions (seeded, deterministic).

    Raises:
        ValueError: fewer than three models, or a model without a measurement.
    """
    if len(claims) != len(repeats) or len(claims) < 3:
        raise ValueError("rank agreement needs at least three models, each with a claim and measurements")
    if any(not r for r in repeats):
        raise ValueError("every model needs at least one measurement")
    c = np.asarray(claims, dtype=np.float64)
    logs = [np.log(np.clip(np.asarray(r, dtype=np.float64), 1e-300, None)) for r in repeats]
    rho = _spearman(c, np.array([v.mean() for v in logs]))
    rng = np.random.default_rng([seed, 15])
    boots = []
    for _ in range(resamples):
        sample = np.array([v[rng.integers(0, len(v), size=len(v))].mean() for v in logs])
        b = _spearman(c, sample)
        if math.isfinite(b):
            boots.append(b)
    lo, hi = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))) if boots else (math.nan, math.nan)
    return RankAgreement(rho, lo, hi, len(claims), resamples)
