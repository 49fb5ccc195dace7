"""What the curvature measurement returns: frozen dataclasses, ``to_dict()`` only at the edge.

No torch here: renderers and the JSON schema read these without the torch extra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from graphpath.numeric.curvature.options import CurvatureOptions
from graphpath.numeric.intervals import Interval
from graphpath.report import json_safe

__all__ = ["CURVATURE_SCHEMA_VERSION", "ChainBranch", "CurvatureReport", "Density", "Eigen", "GDOutcome",
           "GDRun", "Prop51Chain", "Prop51Summary", "Prop51Verdict", "SeedCurvature", "TraceEstimate"]

#: Version of :meth:`CurvatureReport.to_dict`'s layout.
CURVATURE_SCHEMA_VERSION = 1

GDOutcome = Literal["decreased monotonically", "decreased, not monotonically", "catapult", "grew", "non-finite"]
Prop51Verdict = Literal["holds", "vacuous", "violated"]


def _f(x: float) -> float | None:
    """JSON has no NaN/inf: ``None`` for them."""
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Eigen:
    """Extreme eigenvalues from scipy ``eigsh`` (implicitly restarted Lanczos, ARPACK).

    Attributes:
        which: ``LA`` (largest algebraic) or ``SA`` (smallest algebraic).
        values: eigenvalues, most extreme first.
        tol: the relative tolerance asked of ``eigsh``.
        matvecs: operator products used.
        residuals: ``‖H v − λ v‖ / max(|λ|, tiny)`` per eigenpair, recomputed after ``eigsh``.
        converged: ``eigsh`` converged within ``max_matvecs``.
    """

    which: str
    values: tuple[float, ...]
    tol: float
    matvecs: int
    residuals: tuple[float, ...]
    converged: bool

    def to_dict(self) -> dict[str, Any]:
        return {"which": self.which, "values": [_f(v) for v in self.values], "tol": self.tol,
                "matvecs": self.matvecs, "residuals": [_f(r) for r in self.residuals], "converged": self.converged}


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate ``mean_i vᵢᵀ H vᵢ`` over Rademacher ``vᵢ``, with the standard
    error of that mean (``std / √samples``)."""

    mean: float
    stderr: float
    samples: int
    distribution: str = "rademacher"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _f(self.mean), "stderr": _f(self.stderr), "samples": self.samples,
                "distribution": self.distribution}


@dataclass(frozen=True)
class Density:
    """Spectral density by stochastic Lanczos quadrature (Papyan 2020, curvlinops): the density
    ``p(λ)`` on ``grid`` (integrates to ≈ 1), from ``ncv`` Lanczos vectors."""

    grid: tuple[float, ...]
    density: tuple[float, ...]
    ncv: int
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return {"grid": [_f(x) for x in self.grid], "density": [_f(x) for x in self.density], "ncv": self.ncv,
                "repeats": self.repeats}


@dataclass(frozen=True)
class GDRun:
    """Full-batch gradient descent on the shifted ``distill`` loss at ``lr = factor · 2/λ_max``.

    Attributes:
        factor: the multiple of the predicted largest stable learning rate.
        lr: the learning rate.
        losses: the loss before each step and after the last (``steps + 1`` values).
        outcome: ``decreased monotonically``; ``decreased, not monotonically``; ``catapult``
            (rose above the start, ended below it); ``grew`` (ended above the start);
            ``non-finite``.
    """

    factor: float
    lr: float
    losses: tuple[float, ...]
    outcome: GDOutcome

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "lr": _f(self.lr), "losses": [_f(x) for x in self.losses],
                "outcome": self.outcome}


@dataclass(frozen=True)
class ChainBranch:
    """One residual block of a chain: ``F_l = F_{l−1} + 𝓕_l(F_{l−1})`` and the spectral norm
    ``σ_l`` of its branch Jacobian ``∂𝓕_l/∂F_{l−1}`` (power iteration, a lower bound)."""

    block: str
    entry: str
    exit: str
    sigma: float
    iterations: int
    last_change: float
    converged: bool

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "entry": self.entry, "exit": self.exit, "sigma": _f(self.sigma),
                "iterations": self.iterations, "last_change": _f(self.last_change), "converged": self.converged}


@dataclass(frozen=True)
class Prop51Chain:
    """Proposition 5.1 on one maximal residual chain, one seed.

    Attributes:
        name: ``first block … last block``.
        seed: the repetition.
        branches: the chain's blocks in order.
        sum_sigma: ``Σ σ_l``.
        sum_bound: ``1 − Σ σ_l`` (the seed's bound).
        product_bound: ``Π (1 − σ_l)`` (tighter; meaningful when every ``σ_l < 1``).
        ratio: measured ``‖∂L/∂F₀‖ / ‖∂L/∂F_L‖`` through the chain alone (the probe gradient
            at ``F_L`` pulled back through ``∂F_L/∂F₀``).
        verdict: ``holds`` (``Σσ < 1`` and ``ratio ≥ 1 − Σσ``), ``vacuous`` (``Σσ ≥ 1``) or
            ``violated`` (``Σσ < 1`` and the ratio below the bound).
        product_verdict: the same for ``Π(1 − σ_l)`` (vacuous when a ``σ_l ≥ 1``).
        note: why a ``violated`` can happen here (a σ not converged), else empty.
    """

    name: str
    seed: int
    branches: tuple[ChainBranch, ...]
    sum_sigma: float
    sum_bound: float
    product_bound: float
    ratio: float
    verdict: Prop51Verdict
    product_verdict: Prop51Verdict
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "branches": [b.to_dict() for b in self.branches],
                "sum_sigma": _f(self.sum_sigma), "sum_bound": _f(self.sum_bound),
                "product_bound": _f(self.product_bound), "ratio": _f(self.ratio), "verdict": self.verdict,
                "product_verdict": self.product_verdict, "note": self.note}


@dataclass(frozen=True)
class Prop51Summary:
    """One chain over the seeds: ``Σσ`` and the measured ratio with intervals, and the verdicts."""

    name: str
    blocks: int
    sum_sigma: Interval
    ratio: Interval
    verdicts: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "blocks": self.blocks, "sum_sigma": self.sum_sigma.to_dict(),
                "ratio": self.ratio.to_dict(), "verdicts": dict(self.verdicts)}


@dataclass(frozen=True)
class SeedCurvature:
    """Everything measured on one repetition (one seed: image, target shift, ``init`` draw)."""

    seed: int
    top: Eigen
    bottom: Eigen | None
    trace: TraceEstimate | None
    density: Density | None
    gd: tuple[GDRun, ...]
    prop51: tuple[Prop51Chain, ...]
    loss_at_point: float
    backbone_ratio: float | None = None

    @property
    def lambda_max(self) -> float:
        return self.top.values[0] if self.top.values else math.nan

    @property
    def lambda_min(self) -> float:
        return self.bottom.values[0] if self.bottom is not None and self.bottom.values else math.nan

    @property
    def predicted_lr(self) -> float:
        """``2 / λ_max`` (``inf`` when ``λ_max ≤ 0``)."""
        lam = self.lambda_max
        return 2.0 / lam if lam > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "top": self.top.to_dict(),
                "bottom": None if self.bottom is None else self.bottom.to_dict(),
                "lambda_max": _f(self.lambda_max), "lambda_min": _f(self.lambda_min),
                "predicted_lr": _f(self.predicted_lr),
                "trace": None if self.trace is None else self.trace.to_dict(),
                "density": None if self.density is None else self.density.to_dict(),
                "gd": [g.to_dict() for g in self.gd], "prop51": [c.to_dict() for c in self.prop51],
                "loss_at_point": _f(self.loss_at_point),
                "backbone_ratio": None if self.backbone_ratio is None else _f(self.backbone_ratio)}


@dataclass(frozen=True)
class CurvatureReport:
    """The curvature of one model under one condition and loss.

    Attributes:
        model: the model's name.
        options: what was asked (the condition and seeds in ``options.protocol``).
        loss_definition: the loss in words, with its normalisation.
        operator: ``GGN`` or ``Hessian`` and the library that applied it.
        device, dtype: where it ran.
        input_shapes: the input the point was measured at.
        heads: the raw head tensors the loss is defined on (decode tail cut off).
        outputs: raw head elements ``M``.
        parameters: parameters in the operator (the evaluator's float initializers).
        norm: where train-mode BatchNorm was restored (the ``NormPlan``'s reason).
        parity_max_rel: the evaluator against onnxruntime at the heads (own weights).
        parity_notes: what that comparison allowed (a quantized or float16 graph's tolerance, the
            dequantization and estimator, an op-by-op check), one sentence each.
        seeds: the repetitions.
        intervals: ``lambda_max``, ``predicted_lr``, ``trace``, ``lambda_min``,
            ``backbone_ratio`` over the seeds.
        prop51: one summary per residual chain.
        backbone: the backbone's structure in one line (its path type, blocks and path
            multiplicities, and the rule that found its exit), when ``options.backbone``.
        timings: seconds per step.
    """

    model: str
    options: CurvatureOptions
    loss_definition: str
    operator: str
    device: str
    dtype: str
    input_shapes: dict[str, tuple[int, ...]]
    heads: tuple[str, ...]
    outputs: int
    parameters: int
    norm: str
    parity_max_rel: float
    seeds: tuple[SeedCurvature, ...]
    intervals: dict[str, Interval]
    prop51: tuple[Prop51Summary, ...] = ()
    backbone: str | None = None
    parity_notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def lambda_max(self) -> float:
        iv = self.intervals.get("lambda_max")
        return iv.mean if iv is not None else math.nan

    @property
    def predicted_lr(self) -> float:
        iv = self.intervals.get("predicted_lr")
        return iv.mean if iv is not None else math.nan

    def to_dict(self, *, timings: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": CURVATURE_SCHEMA_VERSION, "model": self.model, "options": self.options.echo(),
            "loss": self.options.loss, "loss_definition": self.loss_definition, "operator": self.operator,
            "device": self.device, "dtype": self.dtype,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()}, "heads": list(self.heads),
            "outputs": self.outputs, "parameters": self.parameters, "norm": self.norm,
            "parity_max_rel": _f(self.parity_max_rel), "parity_notes": list(self.parity_notes), "seeds": [s.to_dict() for s in self.seeds],
            "intervals": {k: v.to_dict() for k, v in sorted(self.intervals.items())},
            "prop51": [p.to_dict() for p in self.prop51],
            "backbone": self.backbone,
        }
        if timings:
            out["timings"] = dict(self.timings)
        return json_safe(out)
