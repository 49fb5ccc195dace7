"""The torch side of the curvature measurement: the evaluator as an ``nn.Module``, the two
losses, curvlinops operators and what is computed with them (eigenvalues, trace, density, the
gradient-descent check). Imports torch, scipy and curvlinops (the ``curvature`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from graphpath.errors import GraphpathError, MissingExtraError

try:
    import torch
    from torch import nn
except ImportError as exc:  # the torch extra is optional
    raise MissingExtraError("torch", "curvature", "the curvature measurement") from exc
try:
    import curvlinops
except ImportError as exc:
    raise MissingExtraError("curvlinops", "curvature", "the curvature measurement") from exc

from graphpath.numeric.curvature.results import Density, Eigen, GDOutcome, GDRun, TraceEstimate
from graphpath.numeric.norm import TrainNorm

__all__ = ["HeadsModule", "ProbeLoss", "curvature_operator", "density", "extreme_eigen", "gd_check",
           "gd_outcome", "hutchinson"]


class HeadsModule(nn.Module):
    """An :class:`~graphpath.numeric.evaluator.core.Evaluator` as a module ``x ↦ raw heads``:
    its parameters are the evaluator's (the ONNX float initializers), its output the raw head
    tensors flattened and concatenated per batch row (``[B, M]``).

    Args:
        ev: the evaluator (built for ``heads``).
        heads: the raw head tensors.
        input_name: the graph input ``x`` is fed to.
        fixed: other graph inputs, held fixed.
        train_norm: the ``init`` condition's train-mode BatchNorm (evaluator option).
    """

    def __init__(self, ev: nn.Module, heads: Sequence[str], input_name: str,
                 fixed: Mapping[str, Any] | None = None, train_norm: TrainNorm | None = None) -> None:
        super().__init__()
        self.ev = ev
        self.heads = tuple(heads)
        self.input_name = input_name
        self.fixed = dict(fixed or {})
        self.train_norm = train_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ev({**self.fixed, self.input_name: x}, outputs=list(self.heads), train_norm=self.train_norm)
        return torch.cat([out[h].reshape(x.shape[0], -1) for h in self.heads], dim=1)


class ProbeLoss(nn.Module):
    """The backward pass's linear probe ``L(f, c) = Σ ⟨c, f⟩`` (``reduction`` is for curvlinops'
    normalisation: one batch, summed)."""

    reduction = "sum"

    def forward(self, prediction: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
        # ``0·Σf²`` adds exactly nothing, but keeps every parameter's gradient a function of the
        # parameters: a head bias's probe gradient is the constant ``Σc``, and curvlinops' vmapped
        # Hessian product cannot batch a tangent that does not depend on the vector.
        return (prediction * cotangent).sum() + 0.0 * prediction.pow(2).sum()


def curvature_operator(module: HeadsModule, loss: str, x: torch.Tensor, target: torch.Tensor,
                       params: Sequence[nn.Parameter], *, kind: str | None = None) -> Any:
    """The curvlinops operator of ``loss`` at the module's parameters on the one batch ``x``.

    ``distill`` (``MSELoss``, mean over the ``M`` raw-head elements, target the heads at the
    point): the GGN operator (equal to the Hessian there: the residual is zero); ``probe``
    (:class:`ProbeLoss`, ``target`` the unit cotangent): the Hessian operator. ``kind``
    (``"ggn"``/``"hessian"``) overrides the choice.
    """
    kind = kind or ("ggn" if loss == "distill" else "hessian")
    loss_fn: nn.Module = nn.MSELoss(reduction="mean") if loss == "distill" else ProbeLoss()
    cls = curvlinops.GGNLinearOperator if kind == "ggn" else curvlinops.HessianLinearOperator
    return cls(module, loss_fn, list(params), [(x, target)], check_deterministic=False, num_data=int(x.shape[0]))


class _Counted:
    """A scipy operator that counts its products (``eigsh`` does not report them)."""

    def __init__(self, op: Any) -> None:
        from scipy.sparse.linalg import LinearOperator

        self.count = 0
        self.inner = op.to_scipy(dtype=np.float64)

        def mv(v: np.ndarray) -> np.ndarray:
            self.count += 1 if v.ndim == 1 else v.shape[1]
            return np.asarray(self.inner @ v, dtype=np.float64)

        self.linop = LinearOperator(self.inner.shape, matvec=mv, matmat=mv, dtype=np.float64)


def extreme_eigen(op: Any, k: int, which: str, *, tol: float, max_matvecs: int, seed: int) -> Eigen:
    """The ``k`` extreme eigenvalues (``which`` = ``LA`` or ``SA``) by scipy ``eigsh`` on the
    operator, seeded start vector; residuals recomputed with one more product per pair."""
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    counted = _Counted(op)
    n = counted.linop.shape[0]
    if n < 2:
        raise GraphpathError("the curvature operator needs at least two parameters")
    k = min(k, n - 1)
    ncv = min(n, max(2 * k + 1, 20))
    v0 = np.random.default_rng([seed, 16]).standard_normal(n)
    if not np.any(counted.linop.matvec(v0)):
        # H v0 = 0 for a random v0: the operator is zero (ARPACK cannot start from it), e.g. the
        # probe Hessian of a model linear in its parameters
        return Eigen(which, (0.0,) * k, tol, counted.count, (0.0,) * k, True)
    converged = True
    try:
        vals, vecs = eigsh(counted.linop, k=k, which=which, tol=tol, v0=v0, ncv=ncv,
                           maxiter=max(1, max_matvecs // max(1, ncv - k)))
    except ArpackNoConvergence as exc:
        converged = False
        vals, vecs = exc.eigenvalues, exc.eigenvectors
    order = np.argsort(-vals if which == "LA" else vals)
    vals, vecs = vals[order], vecs[:, order]
    used = counted.count
    residuals = []
    if len(vals):
        hv = counted.linop.matmat(vecs)
        for i, lam in enumerate(vals):
            residuals.append(float(np.linalg.norm(hv[:, i] - lam * vecs[:, i]) / max(abs(lam), 1e-30)))
    return Eigen(which, tuple(float(v) for v in vals), tol, used, tuple(residuals), converged)


def hutchinson(op: Any, samples: int, seed: int, *, chunk: int = 64) -> TraceEstimate:
    """Hutchinson's trace ``mean_i vᵢᵀ H vᵢ`` over ``samples`` seeded Rademacher vectors, applied
    through the curvlinops operator ``chunk`` columns at a time; the standard error is over the
    samples."""
    n = op.shape[1]
    gen = torch.Generator().manual_seed(seed * 1000 + 16)
    values: list[float] = []
    while len(values) < samples:
        m = min(chunk, samples - len(values))
        g = (torch.randint(0, 2, (n, m), generator=gen) * 2 - 1).to(op.device, op.dtype)
        hg = op @ g
        values.extend(float(v) for v in (g * hg).sum(0).double().cpu())
    arr = np.asarray(values)
    stderr = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan
    return TraceEstimate(float(arr.mean()), stderr, len(arr))


def density(op: Any, bounds: tuple[float, float], *, ncv: int, points: int, seed: int) -> Density:
    """Spectral density by stochastic Lanczos quadrature (curvlinops'
    ``lanczos_approximate_spectrum``, Papyan 2020) between ``bounds``."""
    from curvlinops import lanczos_approximate_spectrum

    lo, hi = bounds
    if not hi > lo:
        hi = lo + max(abs(lo), 1e-12)
    ncv = min(ncv, op.shape[0] - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + 17)
        grid, dens = lanczos_approximate_spectrum(op, ncv, num_points=points, boundaries=(lo, hi))
    return Density(tuple(float(v) for v in grid.cpu()), tuple(float(v) for v in dens.cpu()), ncv, 1)


def gd_outcome(losses: Sequence[float]) -> GDOutcome:
    """How a loss trajectory went (see :class:`GDRun`).

    >>> gd_outcome([1.0, 0.5, 0.25]), gd_outcome([1.0, 2.0, 0.5]), gd_outcome([1.0, 0.5, 3.0])
    ('decreased monotonically', 'catapult', 'grew')
    """
    if not all(math.isfinite(x) for x in losses):
        return "non-finite"
    first, last = losses[0], losses[-1]
    if last > first:
        return "grew"
    if max(losses) > first:
        return "catapult"
    rises = any(b > a * (1 + 1e-9) + 1e-300 for a, b in zip(losses, losses[1:], strict=False))
    return "decreased, not monotonically" if rises else "decreased monotonically"


def gd_check(module: HeadsModule, x: torch.Tensor, target: torch.Tensor, params: Sequence[nn.Parameter],
             lam_max: float, factors: Sequence[float], steps: int,
             progress: Callable[[str], None] | None = None) -> tuple[GDRun, ...]:
    """Full-batch gradient descent on ``MSE(f(θ), target)`` from the module's parameters at
    ``lr = factor · 2/λ_max`` for each factor; the parameters are restored afterwards."""
    if not lam_max > 0 or not math.isfinite(lam_max):
        return ()
    loss_fn = nn.MSELoss(reduction="mean")
    saved = [p.detach().clone() for p in params]
    runs = []
    try:
        for factor in factors:
            lr = factor * 2.0 / lam_max
            losses: list[float] = []
            for step in range(steps + 1):
                loss = loss_fn(module(x), target)
                losses.append(float(loss.detach()))
                if step == steps or not math.isfinite(losses[-1]):
                    break
                grads = torch.autograd.grad(loss, list(params), allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(params, grads, strict=True):
                        if g is not None:
                            p.sub_(lr * g)
            runs.append(GDRun(float(factor), lr, tuple(losses), gd_outcome(losses)))
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
            if progress is not None:
                progress(f"GD at {factor:g}×2/λ")
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
    return tuple(runs)
