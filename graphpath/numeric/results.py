"""What the numeric backward pass measured: frozen dataclasses end to end.

:class:`NumericReport` is the library's result; ``to_dict()`` is its JSON form (keys sorted,
floats rounded to 6 significant digits, non-finite floats written as ``"nan"``/``"inf"``
because JSON has none). In the library every number is a ``float`` (``math.nan`` where a value
is undefined); only the JSON form turns them into strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphpath.numeric.intervals import Interval
from graphpath.numeric.measures import GradToWeight, GradWeightPoint, OperatorNorm, SignalPoint
from graphpath.numeric.metrics import Verdict, VerdictThresholds
from graphpath.numeric.norm import NormPlan
from graphpath.numeric.options import BackwardOptions
from graphpath.numeric.probes import HeadCut
from graphpath.report import round_float

__all__ = ["BackendAgreement", "BlockResult", "DeadFraction", "GradToWeight", "GradWeightPoint", "NormPlan",
           "NumericReport", "Parity", "SignalPoint", "UnitGradient", "Verdict", "json_ready"]

def _json_float(x: float) -> float | str:
    """6 significant digits; non-finite values as strings (JSON has no NaN)."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return round_float(x, significant=6)


def json_ready(obj: Any) -> Any:
    """``obj`` with dict keys sorted, tuples as lists and floats as :func:`_json_float` writes them."""
    if isinstance(obj, dict):
        return {k: json_ready(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float):
        return _json_float(obj)
    return obj


@dataclass(frozen=True)
class UnitGradient:
    """One point of the gradient-versus-depth curve."""

    unit: str
    tensor: str
    depth: int
    rel_grad_norm: float
    numel: int

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "tensor": self.tensor, "depth": self.depth,
                "rel_grad_norm": self.rel_grad_norm, "numel": self.numel}


@dataclass(frozen=True)
class BlockResult:
    """A block's observed gradient gain and its Jacobian spectral-norm lower bound."""

    name: str
    kind: str
    source: str
    entry: str
    exit: str
    gain: float
    jacobian_sigma: float | None
    iterations: int
    last_change: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "entry": self.entry, "exit": self.exit, "gain": self.gain,
                "jacobian_sigma_lower_bound": self.jacobian_sigma, "iterations": self.iterations,
                "last_change": self.last_change, "note": self.note}


@dataclass(frozen=True)
class Parity:
    """The evaluator's forward against onnxruntime at the raw heads (always within tolerance in
    a report: beyond it the pass refuses to run)."""

    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    compared_at: tuple[str, ...]
    notes: tuple[str, ...] = ()
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_abs": self.max_abs, "max_rel": self.max_rel, "rtol": self.rtol,
                "atol": self.atol, "compared_at": list(self.compared_at), "notes": list(self.notes)}


@dataclass(frozen=True)
class DeadFraction:
    """Dead activation elements of one activation kind, summed over probes."""

    dead: int
    total: int
    units: int

    @property
    def fraction(self) -> float:
        return self.dead / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dead": self.dead, "total": self.total, "fraction": self.fraction, "units": self.units}


@dataclass(frozen=True)
class BackendAgreement:
    """Per-parameter gradient norms of torch against onnxruntime-training (``--backend both``)."""

    max_rel_diff: float
    worst_parameter: str
    compared: int
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"max_rel_diff": self.max_rel_diff, "worst_parameter": self.worst_parameter,
                "compared": self.compared, "missing": list(self.missing)}


@dataclass(frozen=True)
class NumericReport:
    """Everything the numeric backward pass measured; ``to_dict()`` is its JSON form.

    Under the ``init`` condition ``norm`` says where train-mode BatchNorm was restored; ``signal``
    is the forward signal (Brock et al. 2021) at every weighted unit's feature map (``kind
    "unit"``, in curve order) and every block's output (``kind "block"``); ``grad_to_weight``
    holds the per-layer ``‖∂L/∂W‖/‖W‖`` with their spread and depth trend
    (:mod:`graphpath.numeric.measures`).
    """

    model: str
    backend: str
    backend_reason: str
    device: str
    dtype: str
    options: BackwardOptions
    input_shapes: Mapping[str, tuple[int, ...]]
    parity: Parity
    cuts: tuple[HeadCut, ...]
    curve: tuple[UnitGradient, ...]
    parameters: Mapping[str, float]
    param_flags: Mapping[str, tuple[str, ...]]
    ratio: float
    ratio_rms: float
    first_units: tuple[str, ...]
    blocks: tuple[BlockResult, ...]
    block_source: str
    operator_norms: tuple[OperatorNorm, ...]
    dead: Mapping[str, DeadFraction]
    nonfinite: tuple[str, ...]
    backend_agreement: BackendAgreement | None
    verdict: Verdict
    reason: str
    norm: NormPlan = field(default_factory=lambda: NormPlan("auto", "none", "the file's own weights"))
    signal: tuple[SignalPoint, ...] = ()
    grad_to_weight: GradToWeight = field(default_factory=GradToWeight)
    intervals: Mapping[str, Interval] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)

    @property
    def probes(self) -> int:
        return self.options.probes

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the repetitions (from the options)."""
        return self.options.seed_list

    @property
    def seed(self) -> int:
        return self.options.seed

    @property
    def reinit(self) -> str | None:
        return self.options.reinit

    @property
    def condition(self) -> str:
        return self.options.condition

    @property
    def thresholds(self) -> VerdictThresholds:
        return self.options.thresholds

    def to_dict(self, *, timings: bool = False) -> dict[str, Any]:
        """JSON-ready dict (see the module docstring). Wall times only with ``timings=True``
        (determinism)."""
        d: dict[str, Any] = {
            "model": self.model,
            "backend": {"name": self.backend, "reason": self.backend_reason,
                        "agreement": None if self.backend_agreement is None else self.backend_agreement.to_dict()},
            "device": self.device,
            "dtype": self.dtype,
            "options": self.options.echo(),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "parity": self.parity.to_dict(),
            "probes": self.probes,
            "seed": self.seed,
            "reinit": self.reinit,
            "condition": {"name": self.condition,
                          "init": self.options.init if self.condition == "init" else None,
                          "norm": self.norm.to_dict()},
            "signal": [p.to_dict() for p in self.signal],
            "grad_to_weight": self.grad_to_weight.to_dict(),
            "cuts": [c.to_dict() for c in self.cuts],
            "curve": [u.to_dict() for u in self.curve],
            "parameters": dict(self.parameters),
            "param_flags": {k: list(v) for k, v in self.param_flags.items()},
            "ratio": {"value": self.ratio, "rms": self.ratio_rms, "first_units": list(self.first_units),
                      "last": "raw head tensors (the probe)"},
            "blocks": {"source": self.block_source, "items": [b.to_dict() for b in self.blocks]},
            "operator_norms": [o.to_dict() for o in self.operator_norms],
            "dead": {k: v.to_dict() for k, v in self.dead.items()},
            "nonfinite": list(self.nonfinite),
            "verdict": {"value": self.verdict, "reason": self.reason, "thresholds": self.thresholds.to_dict()},
            "seeds": list(self.seeds),
            "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
        }
        if timings:
            d["timings"] = dict(self.timings)
        out: dict[str, Any] = json_ready(d)
        return out
