"""The seeds' gradient-flow claims about block kinds and PGI, checked on the measured rows of a
stability table (``report --numeric``; most telling under ``--condition init --seeds N``).

- :func:`block_kind_rows` — per block kind (residual, CSP, C2f, ELAN, GELAN, …) the distribution
  of the measured block gains ``‖∂L/∂entry‖/‖∂L/∂exit‖`` over every model of the table: blocks,
  models, the geometric mean with a 95 % cluster-bootstrap interval (models resampled, then
  blocks within each drawn model: blocks of one model are not independent), the median and
  the fraction of blocks that attenuate the gradient (gain < 1).
- :func:`csp_vs_residual` — seed 002 §5.5 "CSP guarantees better gradient flow than residual"
  (the bypass carries the gradient untransformed): the ratio of the CSP blocks' geometric-mean
  gain to the residual blocks', with the same bootstrap. Nested blocks count as themselves (a
  C3's bottlenecks are residual blocks, the C3 a CSP block).
- :func:`pgi_rows` — seed 000 §18.3 / 002 "PGI (v9): controlled, explicit gradient injection":
  the gradient ratio at the first feature map of a v9 model with its PGI training branch
  (``*-train``) over the same model without it, resampling each model's seeds.

Each block's gain is its mean over the row's seeds (the numeric pass pools them), so the
intervals here are over blocks and models, not seeds; the table's condition line says under
what weights, norm and seeds the gains were measured. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from graphpath.numeric.intervals import Interval
from graphpath.stability.curvature import Row as CurvatureRow
from graphpath.stability.curvature import Section

__all__ = ["BlockKindRow", "GainRatio", "PgiRow", "block_kind_rows", "csp_vs_residual", "gradient_sections",
           "pgi_rows"]

#: Block kinds the seeds make claims about, in the order the table shows them (others follow).
CLAIMED_KINDS = ("residual", "csp", "c2f", "c3k2", "elan", "e_elan", "gelan")
#: Bootstrap resamples and the seed of their generator (deterministic tables).
RESAMPLES = 2000
_SEED = (0, 16)


class Row(CurvatureRow, Protocol):
    """What these tables read of a stability row (the curvature tables' reading, and more)."""

    @property
    def block_gains(self) -> tuple[tuple[str, str, float], ...]: ...
    @property
    def ratio_interval(self) -> Interval | None: ...
    @property
    def ratio(self) -> float | None: ...


@dataclass(frozen=True)
class BlockKindRow:
    """One block kind's measured gains across the table.

    Attributes:
        kind: the block kind (``graphpath blocks``).
        blocks, models: how many blocks, in how many models (``zero``: blocks whose gain is 0,
            left out of the geometric mean and counted here).
        geomean, low, high: geometric mean of the positive gains and its 95 % cluster-bootstrap
            interval (``nan`` ends with a single block).
        median: the median gain; ``attenuating``: the fraction of blocks with gain < 1.
    """

    kind: str
    blocks: int
    models: int
    zero: int
    geomean: float
    low: float
    high: float
    median: float
    attenuating: float


@dataclass(frozen=True)
class GainRatio:
    """A ratio of two geometric means with its 95 % bootstrap interval and the verdict on a
    claim that it exceeds 1: ``agree`` (interval above 1), ``disagree`` (below 1) or
    ``inconclusive``."""

    value: float
    low: float
    high: float
    verdict: str

    def describe(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


@dataclass(frozen=True)
class PgiRow:
    """A v9 model with its PGI branch beside the same model without it."""

    with_pgi: str
    without: str
    ratio_with: Interval | None
    ratio_without: Interval | None
    effect: GainRatio | None


def _kind_logs(rows: Sequence[Row], kind: str) -> tuple[list[np.ndarray], int]:
    """Per model, the log gains of its ``kind`` blocks (positive gains), and the zero count."""
    per_model, zero = [], 0
    for r in rows:
        gains = [g for _, k, g in r.block_gains if k == kind and math.isfinite(g)]
        zero += sum(1 for g in gains if g <= 0)
        pos = [math.log(g) for g in gains if g > 0]
        if pos:
            per_model.append(np.asarray(pos))
    return per_model, zero


def _resample(per_model: list[np.ndarray], rng: np.random.Generator) -> float:
    """One cluster-bootstrap draw of the pooled mean log gain."""
    picks = rng.integers(len(per_model), size=len(per_model))
    drawn = [per_model[i][rng.integers(len(per_model[i]), size=len(per_model[i]))] for i in picks]
    return float(np.concatenate(drawn).mean())


def _verdict(low: float, high: float) -> str:
    return "agree" if low > 1 else "disagree" if high < 1 else "inconclusive"


def block_kind_rows(rows: Sequence[Row]) -> tuple[BlockKindRow, ...]:
    """Every block kind with a measured gain in ``rows``: claimed kinds first, then the others
    by name."""
    kinds = {k for r in rows for _, k, _ in r.block_gains}
    order = [k for k in CLAIMED_KINDS if k in kinds] + sorted(kinds - set(CLAIMED_KINDS))
    out = []
    for kind in order:
        per_model, zero = _kind_logs(rows, kind)
        every = [g for r in rows for _, k, g in r.block_gains if k == kind and math.isfinite(g)]
        if not every:
            continue
        if per_model:
            logs = np.concatenate(per_model)
            rng = np.random.default_rng(_SEED)
            boots = np.array([_resample(per_model, rng) for _ in range(RESAMPLES)]) if len(logs) > 1 else None
            mean = math.exp(float(logs.mean()))
            low, high = ((math.exp(float(np.percentile(boots, 2.5))), math.exp(float(np.percentile(boots, 97.5))))
                         if boots is not None else (math.nan, math.nan))
        else:
            mean = low = high = math.nan
        out.append(BlockKindRow(kind=kind, blocks=len(every), zero=zero,
                                models=sum(1 for r in rows if any(k == kind for _, k, _ in r.block_gains)),
                                geomean=mean, low=low, high=high, median=float(np.median(every)),
                                attenuating=sum(1 for g in every if g < 1) / len(every)))
    return tuple(out)


def csp_vs_residual(rows: Sequence[Row]) -> GainRatio | None:
    """Geometric-mean gain of CSP blocks over that of residual blocks, with a 95 % bootstrap
    interval (each kind resampled by models, then blocks); ``None`` unless both kinds have at
    least two positive gains."""
    csp, _ = _kind_logs(rows, "csp")
    res, _ = _kind_logs(rows, "residual")
    if sum(len(a) for a in csp) < 2 or sum(len(a) for a in res) < 2:
        return None
    rng = np.random.default_rng(_SEED)
    diffs = np.array([_resample(csp, rng) - _resample(res, rng) for _ in range(RESAMPLES)])
    value = math.exp(float(np.concatenate(csp).mean() - np.concatenate(res).mean()))
    low, high = math.exp(float(np.percentile(diffs, 2.5))), math.exp(float(np.percentile(diffs, 97.5)))
    return GainRatio(value, low, high, _verdict(low, high))


def _ratio_of_means(a: Interval, b: Interval) -> GainRatio | None:
    """``a``'s geometric mean over ``b``'s, each model's seeds resampled independently."""
    va = [v for v in a.values if v > 0 and math.isfinite(v)]
    vb = [v for v in b.values if v > 0 and math.isfinite(v)]
    if len(va) < 2 or len(vb) < 2:
        return None
    la, lb = np.log(va), np.log(vb)
    rng = np.random.default_rng(_SEED)
    diffs = np.array([rng.choice(la, la.size).mean() - rng.choice(lb, lb.size).mean() for _ in range(RESAMPLES)])
    value = math.exp(float(la.mean() - lb.mean()))
    low, high = math.exp(float(np.percentile(diffs, 2.5))), math.exp(float(np.percentile(diffs, 97.5)))
    return GainRatio(value, low, high, _verdict(low, high))


def pgi_rows(rows: Sequence[Row]) -> tuple[PgiRow, ...]:
    """Each v9 model named ``NAME-train`` (its PGI branch kept) beside ``NAME`` when both are
    in ``rows``; the effect is the ratio of their gradient ratios over the seeds."""
    by_name = {r.model.removesuffix(".onnx"): r for r in rows if r.generation == "v9"}
    out = []
    for name, r in sorted(by_name.items()):
        plain = by_name.get(name.removesuffix("-train")) if name.endswith("-train") else None
        if plain is None:
            continue
        a, b = r.ratio_interval, plain.ratio_interval
        effect = _ratio_of_means(a, b) if a is not None and b is not None else None
        out.append(PgiRow(r.model, plain.model, a, b, effect))
    return tuple(out)


def _g(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def _iv(iv: Interval | None) -> str:
    if iv is None or not math.isfinite(iv.mean):
        return "n/a"
    if iv.n < 2:
        return f"{iv.mean:.3g} (1 {iv.over[:-1]})"
    return f"{iv.mean:.3g} [{iv.low:.3g}, {iv.high:.3g}] ({iv.n} {iv.over})"


def gradient_sections(rows: Sequence[Row]) -> tuple[Section, ...]:
    """The block-kind, CSP-versus-residual and PGI tables (empty without measured block gains)."""
    kinds = block_kind_rows(rows)
    if not kinds:
        return ()
    body = tuple((k.kind, str(k.blocks), str(k.models), f"{_g(k.geomean)} [{_g(k.low)}, {_g(k.high)}]",
                  _g(k.median), f"{k.attenuating:.0%}", str(k.zero)) for k in kinds)
    ratio = csp_vs_residual(rows)
    claim = ("Seed 002 §5.5 claims CSP guarantees better gradient flow than residual. CSP gain over residual "
             "gain (geometric means): " + (f"{ratio.describe()} → {ratio.verdict}" if ratio is not None
                                           else "not measured (needs two gains of each kind)") + ".")
    pgi = tuple((p.with_pgi, p.without, _iv(p.ratio_with), _iv(p.ratio_without),
                 p.effect.describe() if p.effect is not None else "n/a (needs 2+ seeds each)",
                 p.effect.verdict if p.effect is not None else "not measured") for p in pgi_rows(rows))
    return (
        Section("Block gains by block kind",
                "Gain ‖∂L/∂entry‖/‖∂L/∂exit‖ of every measured block (each its mean over the seeds): geometric "
                f"mean [95 % cluster bootstrap over models, then blocks; {RESAMPLES} resamples], median, share of "
                "blocks attenuating the gradient (gain < 1), zero gains (left out of the mean). " + claim,
                ("kind", "blocks", "models", "geometric mean [95 %]", "median", "gain < 1", "zero"), body),
        Section("PGI: the first feature map's gradient with and without the auxiliary branch",
                "Seed 000 §18.3 and seed 002 credit v9's PGI with controlled, explicitly injected gradients. Ratio "
                "‖∂L/∂F₀‖/‖∂L/∂F_L‖ of each model (mean [95 %] over its seeds) and the effect, ratio with PGI over "
                f"ratio without [95 % bootstrap over seeds, {RESAMPLES} resamples]: agree when above 1.",
                ("with PGI", "without", "ratio with", "ratio without", "effect [95 %]", "vs seed"), pgi),
    )
