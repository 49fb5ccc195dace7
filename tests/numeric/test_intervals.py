"""Intervals over repeated measurements, verdicts on intervals, rank agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphpath.numeric.intervals import interval, rank_agreement, verdict_on_interval
from graphpath.numeric.metrics import DEFAULT_THRESHOLDS, verdict

pytest.importorskip("scipy")


def _decide(ratio: float) -> tuple[str, str]:
    return verdict(ratio, [1.0], (), DEFAULT_THRESHOLDS)


def test_log_interval_is_symmetric_around_the_geometric_mean() -> None:
    iv = interval([0.5, 2.0], log=True, over="seeds")
    assert iv.mean == pytest.approx(1.0) and iv.log and iv.n == 2
    assert iv.low * iv.high == pytest.approx(1.0)  # symmetric in log space
    # t(0.975, 1) = 12.706: log-half-width = 12.706 * std(log) / sqrt(2) = 12.706 * ln 2
    assert math.log(iv.high) == pytest.approx(12.7062 * math.log(2.0), rel=1e-4)


def test_coverage_of_the_t_interval_is_about_95_percent() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        iv = interval(list(np.exp(rng.normal(0.0, 1.0, size=5))), log=True, over="seeds")
        hits += iv.low <= 1.0 <= iv.high
    assert 0.93 < hits / 2000 < 0.97


def test_one_value_and_non_finite_and_zero() -> None:
    one = interval([3.0], log=True, over="probes")
    assert one.mean == one.low == one.high == pytest.approx(3.0) and "no interval" in one.describe()
    assert math.isnan(interval([1.0, math.nan], log=True, over="seeds").mean)
    lin = interval([0.0, 1.0, 2.0], log=True, over="seeds")
    assert not lin.log and lin.mean == pytest.approx(1.0)


def test_verdict_on_an_interval_straddling_a_boundary_is_inconclusive() -> None:
    clear = interval([0.9, 1.1, 1.0], log=True, over="seeds")
    assert verdict_on_interval(clear, _decide)[0] == "very stable"
    straddle = interval([1e-4, 1e-2, 1e-3], log=True, over="seeds")
    v, why = verdict_on_interval(straddle, _decide)
    assert v == "inconclusive" and "vanishing at its low end" in why and "stable at its high end" in why


def test_rank_agreement_perfect_and_reversed() -> None:
    claims = [0, 1, 2, 3]
    up = [[1e-3, 2e-3], [1e-2, 2e-2], [0.3, 0.4], [0.9, 1.1]]
    ra = rank_agreement(claims, up, resamples=200)
    assert ra.rho == pytest.approx(1.0) and ra.low == pytest.approx(1.0)
    down = rank_agreement(claims, list(reversed(up)), resamples=200)
    assert down.rho == pytest.approx(-1.0)
    assert rank_agreement(claims, up, resamples=200) == ra  # seeded: same bytes on the same machine
