"""Numeric gradient-flow metrics: depth, ratios, power iteration, dead activations, verdict.

Definitions (the report and the docs use exactly these):

- **Depth** of a unit: weighted units on the longest input → unit path in the layer view, the
  unit itself included (:func:`unit_depths`). The stem conv has depth 1.
- **Relative gradient norm** of a weighted unit: ``‖∂L/∂F_u‖₂ / ‖c‖₂``, where ``F_u`` is the
  feature map the unit produces (its folded output, activation included; for a head unit the
  raw head tensor), ``L = Σ_h ⟨c_h, head_h⟩`` the probe loss and ``c`` all cotangents
  together. Averaged (arithmetic mean) over the probes.
- **Ratio** ``‖∂L/∂F₀‖ / ‖∂L/∂F_L‖`` (seed 000 §18.1, 002 §5.4): ``F_L`` = the raw head tensors
  together (so ``‖∂L/∂F_L‖ = ‖c‖``), ``F₀`` = the feature maps of the depth-1 weighted units
  together (the first feature map). It is the relative gradient norm of the first feature map.
  ``ratio_rms`` divides both norms by the square root of their element counts.
- **Block gain**: ``‖∂L/∂entry‖ / ‖∂L/∂exit‖`` (mean over probes), the block's factor in the
  seed's product. **Block Jacobian bound**: ``‖J v‖`` for the unit vector ``v`` that power
  iteration on ``JᵀJ`` (jvp + vjp) ends with; always ≤ ``σ_max(J)``.
- **Conv operator norm**: the spectral norm of the linear map ``x ↦ W * x`` (bias excluded) at
  the layer's input size capped to ``max_hw × max_hw``, by power iteration; a zero-padded conv
  on a smaller image is a sub-block of the full-size operator, so this is a lower bound on the
  full-size norm (and on ``σ_max`` of the weight's Toeplitz matrix). Matrices (Gemm/MatMul
  weights): exact SVD.
- **Dead fraction** per activation kind: the share of elements (over every unit with that
  activation and every probe) where the activation's local derivative ``|f'(x)|`` is below
  ``dead_threshold`` (default 0.01). ReLU: ``x ≤ 0``; LeakyReLU is never dead when its slope
  ≥ 0.01; sigmoid/tanh/hardsigmoid: saturated; SiLU/Mish/GELU: far negative (and the narrow
  band around the derivative's zero crossing); clip: outside ``[min, max]``.
- **Verdict** (:func:`verdict`, thresholds in :class:`VerdictThresholds`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import ACTIVATION_OPS, LayerGraph, unit_depths

__all__ = [
    "DEFAULT_THRESHOLDS", "SpectralEstimate", "VERDICTS", "VerdictThresholds", "activation_input",
    "conv_operator_norm", "dead_fraction", "power_iteration", "thresholds_with", "unit_depths", "verdict",
]

#: Every verdict, worst first.
VERDICTS = ("nan", "vanishing", "exploding", "moderate", "stable", "very stable")


#: The verdict on the ratio ``‖∂L/∂F₀‖ / ‖∂L/∂F_L‖`` (see :class:`VerdictThresholds`);
#: ``inconclusive`` when its interval over seeds straddles a boundary.
Verdict = Literal["very stable", "stable", "moderate", "vanishing", "exploding", "nan", "inconclusive"]


@dataclass(frozen=True)
class VerdictThresholds:
    """Where the verdict's boundaries lie, all on the ratio ``R = ‖∂L/∂F₀‖ / ‖∂L/∂F_L‖``.

    - ``nan``: any NaN/Inf in the heads, the activation gradients or the parameter gradients.
    - ``vanishing``: ``R < vanishing_below``; ``exploding``: ``R > exploding_above``.
    - ``moderate``: ``R`` outside ``[stable_low, stable_high]`` (but not vanishing/exploding).
    - ``very stable``: ``R`` in ``[very_stable_low, very_stable_high]`` and the curve's spread
      (largest / smallest relative gradient norm over weighted units) ≤ ``very_stable_spread``.
    - ``stable``: the rest.

    ``param_vanishing_below``/``param_exploding_above`` (seed 003's 1e-7 / 1e3) flag single
    parameters by relative gradient norm; they are counted, not part of the verdict.
    """

    vanishing_below: float = 1e-3
    exploding_above: float = 1e3
    stable_low: float = 0.1
    stable_high: float = 10.0
    very_stable_low: float = 0.5
    very_stable_high: float = 2.0
    very_stable_spread: float = 100.0
    param_vanishing_below: float = 1e-7
    param_exploding_above: float = 1e3

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in sorted(self.__dict__.items())}


DEFAULT_THRESHOLDS = VerdictThresholds()


def thresholds_with(overrides: Mapping[str, float], base: VerdictThresholds = DEFAULT_THRESHOLDS) -> VerdictThresholds:
    """``base`` with some boundaries moved, checked to stay in order.

    >>> thresholds_with({"stable_low": 0.05}).stable_low
    0.05
    >>> thresholds_with({"stable_low": 5.0})
    Traceback (most recent call last):
    graphpath.errors.GraphpathError: verdict thresholds must satisfy 0 < vanishing_below ≤ stable_low ≤ very_stable_low ≤ 1 ≤ very_stable_high ≤ stable_high ≤ exploding_above (got stable_low=5 > very_stable_low=0.5)
    """
    known = base.to_dict()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise GraphpathError(f"unknown verdict threshold {unknown[0]!r} (known: {', '.join(known)})")
    t = replace(base, **{k: float(v) for k, v in overrides.items()})
    chain = [("0", 0.0), ("vanishing_below", t.vanishing_below), ("stable_low", t.stable_low),
             ("very_stable_low", t.very_stable_low), ("1", 1.0), ("very_stable_high", t.very_stable_high),
             ("stable_high", t.stable_high), ("exploding_above", t.exploding_above)]
    for (a, x), (b, y) in zip(chain, chain[1:], strict=False):
        if not (x < y if a == "0" else x <= y):
            raise GraphpathError(
                "verdict thresholds must satisfy 0 < vanishing_below ≤ stable_low ≤ very_stable_low ≤ 1 "
                f"≤ very_stable_high ≤ stable_high ≤ exploding_above (got {a}={x:g} > {b}={y:g})")
    for name in ("very_stable_spread", "param_vanishing_below", "param_exploding_above"):
        if not getattr(t, name) > 0:
            raise GraphpathError(f"verdict threshold {name} must be positive (got {getattr(t, name):g})")
    return t


def verdict(ratio: float, curve: Sequence[float], nonfinite: Sequence[str],
            thresholds: VerdictThresholds = DEFAULT_THRESHOLDS) -> tuple[Verdict, str]:
    """The model's verdict and one sentence saying why.

    >>> verdict(1.0, [1.0, 2.0], [])
    ('very stable', 'ratio ‖∂L/∂F₀‖/‖∂L/∂F_L‖ = 1 is within [0.5, 2] and the curve spans 2× (≤ 100×)')
    >>> verdict(1e-5, [1e-5, 1.0], [])[0]
    'vanishing'
    """
    t = thresholds
    if nonfinite:
        more = f" (+{len(nonfinite) - 3} more)" if len(nonfinite) > 3 else ""
        return "nan", f"non-finite values in {', '.join(nonfinite[:3])}{more}"
    if not math.isfinite(ratio):
        return "nan", f"the ratio is {ratio}"
    desc = f"ratio ‖∂L/∂F₀‖/‖∂L/∂F_L‖ = {ratio:.3g}"
    if ratio < t.vanishing_below:
        return "vanishing", f"{desc} < {t.vanishing_below:g}"
    if ratio > t.exploding_above:
        return "exploding", f"{desc} > {t.exploding_above:g}"
    if ratio < t.stable_low or ratio > t.stable_high:
        return "moderate", f"{desc} is outside [{t.stable_low:g}, {t.stable_high:g}]"
    live = [c for c in curve if c > 0 and math.isfinite(c)]
    spread = max(live) / min(live) if live else math.inf
    if t.very_stable_low <= ratio <= t.very_stable_high and spread <= t.very_stable_spread:
        return "very stable", (f"{desc} is within [{t.very_stable_low:g}, {t.very_stable_high:g}] and the "
                               f"curve spans {spread:.3g}× (≤ {t.very_stable_spread:g}×)")
    return "stable", (f"{desc} is within [{t.stable_low:g}, {t.stable_high:g}]; curve spans {spread:.3g}×")


# --------------------------------------------------------------------------- structure


#: Ops that start an activation inside a folded unit (diamonds: the first op of the pair).
_ACT_START = frozenset(ACTIVATION_OPS) | {"HardSigmoid", "Softplus", "Sigmoid"}


def activation_input(graph: ModelGraph, layers: LayerGraph, uid: str) -> tuple[str, str, dict[str, Any]] | None:
    """``(kind, pre-activation tensor, attrs)`` of a unit's folded activation, or ``None``.

    The pre-activation is the input of the activation's first op (``Sigmoid`` of a SiLU
    diamond, ``Softplus`` of Mish, ``HardSigmoid`` of HardSwish).
    """
    unit = layers.unit(uid)
    if unit.activation is None:
        return None
    for name in unit.nodes[1:]:
        op = graph.op(name)
        if op.op_type in _ACT_START and op.inputs:
            attrs = dict(op.attrs)
            if op.op_type == "Clip":
                attrs["_inputs"] = tuple(op.inputs[1:3])
            return unit.activation, op.inputs[0], attrs
    return None


def _act_fn(kind: str, attrs: Mapping[str, Any], bounds: tuple[float, float] | None) -> Callable[[Any], Any] | None:
    import torch
    import torch.nn.functional as F

    a = attrs.get
    table: dict[str, Callable[[Any], Any]] = {
        "relu": F.relu,
        "leaky_relu": lambda x: F.leaky_relu(x, float(a("alpha", 0.01))),
        "silu": F.silu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "mish": F.mish,
        "gelu": F.gelu,
        "hardswish": F.hardswish,
        "hardsigmoid": lambda x: torch.clamp(float(a("alpha", 0.2)) * x + float(a("beta", 0.5)), 0, 1),
        "elu": lambda x: F.elu(x, float(a("alpha", 1.0))),
        "selu": F.selu,
        "celu": lambda x: F.celu(x, float(a("alpha", 1.0))),
        "softplus": F.softplus,
        "softsign": F.softsign,
    }
    if kind == "clip" and bounds is not None:
        lo, hi = bounds
        return lambda x: torch.clamp(x, lo, hi)
    return table.get(kind)


def dead_fraction(kind: str, x: Any, attrs: Mapping[str, Any], *, threshold: float = 0.01,
                  bounds: tuple[float, float] | None = None) -> tuple[int, int] | None:
    """``(dead, total)`` elements of pre-activation ``x`` where ``|f'(x)| < threshold``, or
    ``None`` for an activation kind without a derivative here."""
    z = x.detach()
    d = _closed_form_derivative(kind, z, attrs, bounds)
    if d is not None:
        return int((d.abs() < threshold).sum().item()), int(d.numel())
    key = tuple(sorted((k, v) for k, v in attrs.items() if k in ("alpha", "beta", "gamma")))
    intervals = _dead_intervals(kind, key, threshold)
    if intervals is None:
        return None
    dead = 0
    for lo, hi in intervals:  # a smooth activation's dead set is a few intervals: count by comparison
        mask = z < hi if lo == -math.inf else (z > lo if hi == math.inf else (z > lo) & (z < hi))
        dead += int(mask.sum().item())
    return dead, int(z.numel())


@functools.lru_cache(maxsize=64)
def _dead_intervals(kind: str, attrs: tuple[tuple[str, Any], ...], threshold: float,
                    ) -> tuple[tuple[float, float], ...] | None:
    """Where ``|f'(x)| < threshold`` for a smooth activation, as open intervals, from ``f'`` on a
    grid of step 1e-4 over [-60, 60] (ends extended to ±∞ when dead there)."""
    import torch

    fn = _act_fn(kind, dict(attrs), None)
    if fn is None:
        return None
    with torch.enable_grad():  # callers count dead elements under no_grad
        grid = torch.linspace(-60.0, 60.0, 1_200_001, dtype=torch.float64, requires_grad=True)
        (d,) = torch.autograd.grad(fn(grid).sum(), grid)
    dead = (d.abs() < threshold).numpy()
    xs = grid.detach().numpy()
    edges = np.flatnonzero(np.diff(dead.astype(np.int8)))
    out: list[tuple[float, float]] = []
    start = -math.inf if dead[0] else None
    for e in edges:
        mid = float((xs[e] + xs[e + 1]) / 2)
        if start is None:
            start = mid
        else:
            out.append((start, mid))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return tuple(out)


def _closed_form_derivative(kind: str, x: Any, attrs: Mapping[str, Any],
                            bounds: tuple[float, float] | None) -> Any:
    """``f'(x)`` without autograd for the common kinds (a probe computes it at every
    activation, so it must stay cheap); ``None`` for the others."""
    import torch

    if kind == "relu":
        return (x > 0).to(x.dtype)
    if kind == "leaky_relu":
        return torch.where(x > 0, 1.0, float(attrs.get("alpha", 0.01)))
    if kind == "hardswish":
        return torch.where(x < -3, 0.0, torch.where(x > 3, 1.0, (2 * x + 3) / 6))
    if kind == "hardsigmoid":
        a, b = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        y = a * x + b
        return torch.where((y > 0) & (y < 1), a, 0.0)
    if kind == "clip" and bounds is not None:
        return ((x > bounds[0]) & (x < bounds[1])).to(x.dtype)
    return None


# --------------------------------------------------------------------------- spectral norms


@dataclass(frozen=True)
class SpectralEstimate:
    """A power-iteration lower bound on a linear map's spectral norm.

    ``sigma = ‖A v‖`` for the final unit vector ``v`` (≤ ``σ_max(A)``); ``last_change`` is the
    relative change of the estimate in the last iteration.
    """

    sigma: float
    iterations: int
    last_change: float


def power_iteration(apply: Callable[[Any], Any], adjoint: Callable[[Any], Any], v0: Any, *,
                    iters: int = 20, tol: float = 1e-3) -> SpectralEstimate:
    """Power iteration on ``AᵀA``: ``u = A v``, ``v ← Aᵀu / ‖Aᵀu‖``; stops after ``iters`` or
    when the estimate changes by less than ``tol`` (relative).

    >>> import torch
    >>> A = torch.diag(torch.tensor([3.0, 1.0]))
    >>> est = power_iteration(lambda v: A @ v, lambda u: A.T @ u, torch.tensor([1.0, 1.0]))
    >>> round(est.sigma, 3)
    3.0
    """
    v = v0 / v0.norm()
    sigma, prev, change, done = 0.0, 0.0, math.inf, 0
    for i in range(max(1, iters)):
        u = apply(v)
        sigma = float(u.norm())
        done = i + 1
        change = abs(sigma - prev) / sigma if sigma > 0 else 0.0
        if sigma == 0 or not math.isfinite(sigma):
            break
        if i > 0 and change < tol:
            break
        prev = sigma
        w = adjoint(u)
        n = float(w.norm())
        if n == 0 or not math.isfinite(n):
            break
        v = w / n
    return SpectralEstimate(sigma, done, change if done > 1 else math.inf)


def conv_operator_norm(weight: Any, *, strides: Sequence[int], pads: Sequence[int],
                       dilations: Sequence[int], groups: int, in_hw: Sequence[int], max_hw: int = 64,
                       iters: int = 20, seed: int = 0, dtype: Any = None) -> SpectralEstimate:
    """Spectral norm of the 2-D conv operator ``x ↦ W * x`` (ONNX ``pads`` = begins then ends)
    on a ``C×min(H,max_hw)×min(W,max_hw)`` input, by power iteration with the exact adjoint
    (``torch.func.vjp``). ``dtype``: float64 by default (the report passes float32: 2-3× faster
    on CPU, and the estimate is reported to 6 digits)."""
    import torch
    import torch.nn.functional as F

    w = weight.detach().to(torch.float64 if dtype is None else dtype)
    cin = w.shape[1] * groups
    h, wd = min(int(in_hw[0]), max_hw), min(int(in_hw[-1]), max_hw)
    nd = len(strides)
    pad4 = [int(pads[1]), int(pads[1 + nd]), int(pads[0]), int(pads[nd])] if nd == 2 else []

    def apply(x: Any) -> Any:
        if any(pad4):
            x = F.pad(x, pad4)
        return F.conv2d(x, w, stride=tuple(strides), dilation=tuple(dilations), groups=groups)

    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn((1, cin, h, wd), generator=gen, dtype=torch.float64).to(w.device, w.dtype)
    pull = torch.func.vjp(apply, torch.zeros_like(x0))[1]
    return power_iteration(apply, lambda u: pull(u)[0], x0, iters=iters, tol=1e-4)
