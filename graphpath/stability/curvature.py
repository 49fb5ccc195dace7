"""The curvature side of the stability table (``report --curvature``): one model's curvature
cells, and the tables that put the seeds' curvature and backbone claims beside them.

- :class:`CurvatureCells`: λ_max, the predicted largest stable learning rate ``2/λ_max``, the
  Hutchinson trace, the gradient-descent check, the spectral density (first seed), Proposition
  5.1 per residual chain and the backbone's own gradient ratio, from a
  :class:`~graphpath.numeric.curvature.results.CurvatureReport`; every figure with its interval
  over the seeds.
- :func:`landscape_rows` — seed 000 §18.3 (plain v1–v2 sharp, residual v3 and CSP v4–v5
  flatter, E-ELAN v7 flattest, PGI v9 controlled) beside measured λ_max, and
  :func:`landscape_agreement`: Spearman's ρ between the predicted sharpness order and λ_max.
- :func:`g6_rows` — seed 001's table G.6 (gradient-path type and vanishing risk per backbone)
  beside the path type graphpath reads from structure and the backbone's measured ratio.
- :func:`prop51_rows` — every residual chain of every model: Σσ, the measured ratio, verdicts.

No torch here: the cells are plain data (they travel through the registry as JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from graphpath.numeric.intervals import Interval

if TYPE_CHECKING:
    from graphpath.numeric.curvature.results import CurvatureReport
    from graphpath.numeric.intervals import RankAgreement

__all__ = ["G6_CLAIMS", "LANDSCAPE_CLAIMS", "RISK_LEVELS", "Chain", "CurvatureCells", "G6Row", "LandscapeRow",
           "Row", "Section", "curvature_cells", "g6_rows", "landscape_agreement", "landscape_rows", "prop51_rows",
           "risk_of", "sections"]

#: Seed 000 §18.3: (row, generations, predicted landscape, reasoning).
LANDSCAPE_CLAIMS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("Plain (v1–v2)", ("v1", "v2"), "sharp", "limited gradient paths"),
    ("Residual (v3)", ("v3",), "flatter", "multiple gradient paths"),
    ("CSP (v4–v5)", ("v4", "v5"), "flatter", "bypass reduces constraint"),
    ("E-ELAN (v7)", ("v7",), "flattest", "maximum gradient diversity"),
    ("PGI (v9)", ("v9",), "controlled", "programmable gradient injection"),
)
#: How sharp each predicted landscape is, for the rank correlation (``controlled`` has no rank).
SHARPNESS = {"sharp": 2, "flatter": 1, "flattest": 0}

#: Seed 001 table G.6: (backbone, generations, gradient path, vanishing risk).
G6_CLAIMS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("Plain (v1)", ("v1",), "single chain", "high"),
    ("Residual (v3)", ("v3",), "skip + main", "medium"),
    ("CSP (v4–v5)", ("v4", "v5"), "split + merge", "low"),
    ("ELAN (v7)", ("v7",), "multi-branch", "very low"),
    ("C2f (v8)", ("v8",), "split + partial", "low"),
)

#: Vanishing risk from the backbone's own gradient ratio ``r`` (the gradient at its stem over
#: the gradient at its exit, through the backbone alone): the lower bound of each level. A
#: ratio below 0.1 loses more than 90 % of the gradient norm across the backbone (the
#: backward pass's ``stable_low``); 0.5 is its ``very_stable_low``; at 1 and above nothing is lost.
RISK_LEVELS: tuple[tuple[str, float], ...] = (("high", 0.0), ("medium", 0.1), ("low", 0.5), ("very low", 1.0))


def risk_of(ratio: float) -> str:
    """The vanishing-risk level of one backbone ratio.

    >>> risk_of(0.05), risk_of(0.3), risk_of(0.7), risk_of(3.0)
    ('high', 'medium', 'low', 'very low')
    """
    level = RISK_LEVELS[0][0]
    for name, low in RISK_LEVELS:
        if ratio >= low:
            level = name
    return level


def _risk_on(iv: Interval | None) -> str | None:
    """The level of an interval, ``inconclusive (a – b)`` when its ends fall in two levels."""
    if iv is None or not math.isfinite(iv.mean):
        return None
    if iv.n == 1 or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return risk_of(iv.mean)
    lo, hi = risk_of(iv.low), risk_of(iv.high)
    return lo if lo == hi else f"inconclusive ({lo} – {hi})"


@dataclass(frozen=True)
class Chain:
    """One residual chain over the seeds (Proposition 5.1)."""

    name: str
    blocks: int
    sum_sigma: Interval
    ratio: Interval
    verdicts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class CurvatureCells:
    """One model's curvature measurement, as the table shows it.

    Attributes:
        loss: ``distill`` or ``probe``.
        lambda_max, predicted_lr, trace, backbone_ratio: intervals over the seeds (``None``: not
            measured).
        gd: ``(factor, outcome, seeds with that outcome)`` of the gradient-descent check.
        density: ``(λ, p(λ))`` of the first seed's spectral density (the HTML plot).
        prop51: the residual chains.
        backbone: the backbone's structure in one line (path type first).
        path_type: the backbone's path type alone.
    """

    loss: str
    lambda_max: Interval | None
    predicted_lr: Interval | None
    trace: Interval | None
    gd: tuple[tuple[float, str, int], ...]
    density: tuple[tuple[float, float], ...]
    prop51: tuple[Chain, ...]
    backbone: str | None
    path_type: str | None
    backbone_ratio: Interval | None

    def gd_text(self) -> str:
        """``0.5×: decreased monotonically (5); 1.5×: grew (5)``."""
        by_factor: dict[float, list[str]] = {}
        for factor, outcome, n in self.gd:
            by_factor.setdefault(factor, []).append(f"{outcome} ({n})")
        return "; ".join(f"{f:g}×: {', '.join(o)}" for f, o in sorted(by_factor.items())) or "-"

    def to_dict(self) -> dict[str, Any]:
        def iv(x: Interval | None) -> dict[str, Any] | None:
            return None if x is None else x.to_dict()

        return {"loss": self.loss, "lambda_max": iv(self.lambda_max), "predicted_lr": iv(self.predicted_lr),
                "trace": iv(self.trace), "gd": [[f, o, n] for f, o, n in self.gd],
                "density": [[x, y] for x, y in self.density],
                "prop51": [{"name": c.name, "blocks": c.blocks, "sum_sigma": c.sum_sigma.to_dict(),
                            "ratio": c.ratio.to_dict(), "verdicts": dict(c.verdicts)} for c in self.prop51],
                "backbone": self.backbone, "path_type": self.path_type, "backbone_ratio": iv(self.backbone_ratio)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CurvatureCells:
        """The cells :meth:`to_dict` wrote (the registry's records and cache)."""
        def iv(x: Mapping[str, Any] | None) -> Interval | None:
            if x is None:
                return None
            def num(v: Any) -> float:
                return math.nan if v is None else float(v)

            return Interval(num(x["mean"]), num(x["low"]), num(x["high"]), int(x["n"]), x["over"], bool(x["log"]),
                            float(x["level"]), tuple(num(v) for v in x["values"]))

        chains = tuple(Chain(c["name"], c["blocks"], iv(c["sum_sigma"]), iv(c["ratio"]),  # type: ignore[arg-type]
                             tuple(c["verdicts"].items())) for c in data["prop51"])
        return cls(data["loss"], iv(data["lambda_max"]), iv(data["predicted_lr"]), iv(data["trace"]),
                   tuple((float(f), str(o), int(n)) for f, o, n in data["gd"]),
                   tuple((float(x), float(y)) for x, y in data["density"]), chains, data["backbone"],
                   data["path_type"], iv(data["backbone_ratio"]))


def curvature_cells(report: CurvatureReport) -> CurvatureCells:
    """The cells of one :class:`CurvatureReport`."""
    counts: dict[tuple[float, str], int] = {}
    for s in report.seeds:
        for g in s.gd:
            counts[(g.factor, g.outcome)] = counts.get((g.factor, g.outcome), 0) + 1
    first = report.seeds[0].density if report.seeds else None
    density = tuple(zip(first.grid, first.density, strict=True)) if first is not None else ()
    chains = tuple(Chain(p.name, p.blocks, p.sum_sigma, p.ratio, p.verdicts) for p in report.prop51)
    backbone = report.backbone
    return CurvatureCells(
        loss=report.options.loss, lambda_max=report.intervals.get("lambda_max"),
        predicted_lr=report.intervals.get("predicted_lr"), trace=report.intervals.get("trace"),
        gd=tuple((f, o, n) for (f, o), n in sorted(counts.items())), density=density, prop51=chains,
        backbone=backbone, path_type=None if backbone is None else backbone.split(" (", 1)[0],
        backbone_ratio=report.intervals.get("backbone_ratio"))


# --------------------------------------------------------------------------- seed tables


class Row(Protocol):
    """What the seed tables read of a stability row."""

    @property
    def model(self) -> str: ...
    @property
    def generation(self) -> str: ...
    @property
    def curvature(self) -> CurvatureCells | None: ...


@dataclass(frozen=True)
class LandscapeRow:
    """Seed 000 §18.3's row beside the models of its generations and their λ_max."""

    row: str
    predicted: str
    reasoning: str
    models: tuple[tuple[str, Interval | None], ...]


def landscape_rows(rows: Sequence[Row]) -> tuple[LandscapeRow, ...]:
    """Every §18.3 row with its models' measured λ_max (``None`` where not measured)."""
    out = []
    for label, gens, predicted, why in LANDSCAPE_CLAIMS:
        models = tuple((r.model, r.curvature.lambda_max if r.curvature is not None else None)
                       for r in rows if r.generation in gens)
        out.append(LandscapeRow(label, predicted, why, models))
    return tuple(out)


def landscape_agreement(rows: Sequence[Row]) -> RankAgreement | None:
    """Spearman's ρ between §18.3's predicted sharpness (sharp > flatter > flattest; ``controlled``
    has no place in that order) and each model's λ_max, with a bootstrap interval over each
    model's seeds; ``None`` below three models measured. Positive ρ: the seed's order holds."""
    from graphpath.numeric.intervals import rank_agreement

    claims: list[int] = []
    values: list[tuple[float, ...]] = []
    for _, gens, predicted, _ in LANDSCAPE_CLAIMS:
        if predicted not in SHARPNESS:
            continue
        for r in rows:
            lam = r.curvature.lambda_max if r.curvature is not None and r.generation in gens else None
            if lam is not None and lam.values and all(math.isfinite(v) and v > 0 for v in lam.values):
                claims.append(SHARPNESS[predicted])
                values.append(lam.values)
    if len(claims) < 3:
        return None
    return rank_agreement(claims, values)


@dataclass(frozen=True)
class G6Row:
    """One model under its G.6 backbone row.

    Attributes:
        backbone, claimed_path, claimed_risk: the seed's row.
        model: the model; path: the path type graphpath reads (with its blocks) or ``None``.
        path_agreement: ``agree``/``disagree``/``not measured``.
        ratio: the backbone's own gradient ratio over the seeds.
        risk: the level it falls in (``inconclusive (a – b)`` when the interval spans two).
        risk_agreement: ``agree``/``disagree``/``inconclusive``/``not measured``.
    """

    backbone: str
    claimed_path: str
    claimed_risk: str
    model: str
    path: str | None
    path_agreement: str
    ratio: Interval | None
    risk: str | None
    risk_agreement: str


def g6_rows(rows: Sequence[Row]) -> tuple[G6Row, ...]:
    """Every model of a G.6 generation beside its row."""
    out = []
    for label, gens, path, risk in G6_CLAIMS:
        for r in rows:
            if r.generation not in gens:
                continue
            c = r.curvature
            measured_path = c.path_type if c is not None else None
            level = _risk_on(c.backbone_ratio) if c is not None else None
            risk_agreement = ("not measured" if level is None else "inconclusive" if level.startswith("inconclusive")
                              else "agree" if level == risk else "disagree")
            out.append(G6Row(label, path, risk, r.model, c.backbone if c is not None else None,
                             "not measured" if measured_path is None else
                             "agree" if measured_path == path else "disagree",
                             c.backbone_ratio if c is not None else None, level, risk_agreement))
    return tuple(out)


def prop51_rows(rows: Sequence[Row]) -> tuple[tuple[str, Chain], ...]:
    """``(model, chain)`` for every residual chain measured."""
    return tuple((r.model, ch) for r in rows if r.curvature is not None for ch in r.curvature.prop51)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Section:
    """One of the curvature tables every renderer shows: a title, one sentence, a grid."""

    title: str
    intro: str
    head: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]


def _iv(iv: Interval | None) -> str:
    if iv is None or not math.isfinite(iv.mean):
        return "n/a"
    if iv.n == 1 or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return f"{iv.mean:.3g} (1 {iv.over[:-1]})"
    return f"{iv.mean:.3g} [{iv.low:.3g}, {iv.high:.3g}]"


def sections(rows: Sequence[Row]) -> tuple[Section, ...]:
    """The §18.3, G.6 and Proposition 5.1 tables of ``rows`` (empty without curvature)."""
    if not any(r.curvature is not None for r in rows):
        return ()
    land = []
    for lr in landscape_rows(rows):
        models = "; ".join(f"{m} {_iv(iv)}" for m, iv in lr.models) or "-"
        land.append((lr.row, lr.predicted, lr.reasoning, models))
    ra = landscape_agreement(rows)
    agreement = ("Spearman ρ between the predicted sharpness (sharp > flatter > flattest; 'controlled' "
                 "left out) and λ_max: " + (ra.describe() if ra is not None else "fewer than three models measured")
                 + "; ρ > 0 means the seed's order holds.")
    g6 = tuple((g.backbone, g.claimed_path, g.model, g.path or "-", g.path_agreement, g.claimed_risk, _iv(g.ratio),
                g.risk or "-", g.risk_agreement) for g in g6_rows(rows))
    levels = ", ".join(f"{name} ≥ {low:g}" for name, low in RISK_LEVELS[1:])
    chains = tuple((m, c.name, str(c.blocks), _iv(c.sum_sigma), _iv(c.ratio),
                    ", ".join(f"{k} {n}" for k, n in c.verdicts)) for m, c in prop51_rows(rows))
    return (
        Section("Seed 000 §18.3 against graphpath: predicted landscape and measured λ_max",
                "λ_max of the distill GGN (self-distillation MSE over the raw heads, = Hessian at the point), "
                "mean [95 % interval] over the seeds. " + agreement,
                ("seed row", "predicted", "reasoning", "models: λ_max"), tuple(land)),
        Section("Seed 001 table G.6 against graphpath: backbone path type and vanishing risk",
                "Path type read from the backbone's blocks (exit: the input of the first upsampling op); risk "
                "from the backbone's own gradient ratio (the probe gradient at its exit pulled back to its stem "
                f"through the backbone alone, mean [95 % interval] over the seeds): high below 0.1, {levels}.",
                ("backbone", "seed: path", "model", "graphpath: path", "path vs seed", "seed: risk",
                 "backbone ratio", "measured risk", "risk vs seed"), g6),
        Section("Proposition 5.1 per residual chain",
                "Σσ_l of the branch Jacobians (power iteration) and the measured ratio through the chain alone, "
                "mean [95 % interval] over the seeds; the verdicts of the sum bound 1 − Σσ over the seeds.",
                ("model", "chain", "blocks", "Σσ", "ratio", "1 − Σσ bound"), chains),
    )
