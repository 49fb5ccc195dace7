"""Options of the curvature measurement (one per CLI flag); no torch here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from graphpath.errors import GraphpathError
from graphpath.numeric.options import BackwardOptions

__all__ = ["GD_FACTORS", "LOSSES", "CurvatureOptions", "Loss"]

Loss = Literal["distill", "probe"]
#: ``--loss``: self-distillation MSE (Hessian = GGN, PSD) or the backward pass's linear probe.
LOSSES: tuple[Loss, ...] = ("distill", "probe")
#: Learning rates of the gradient-descent check, as multiples of the predicted ``2/λ_max``.
GD_FACTORS: tuple[float, ...] = (0.5, 0.9, 1.5)


@dataclass(frozen=True)
class CurvatureOptions:
    """Options of :func:`graphpath.numeric.curvature.run_curvature`.

    The condition (``weights``/``init``, init scheme, norm), the seeds, the device, the input
    size and the input image come from ``protocol`` (the backward pass's
    :class:`~graphpath.numeric.options.BackwardOptions`): one measurement protocol for every
    numeric figure.

    Attributes:
        protocol: condition, init, norm, seeds, seed offset, device, imgsz, input file.
        loss: ``distill`` (default) or ``probe`` (see :mod:`graphpath.numeric.curvature`).
        top_k: eigenvalues wanted (largest algebraic for ``distill``; for ``probe`` the ``k``
            most negative and the ``k`` most positive).
        eig_tol: scipy ``eigsh`` relative tolerance.
        max_matvecs: at most this many operator products per ``eigsh`` call (``maxiter``).
        trace: estimate the trace by Hutchinson (``trace_samples`` Rademacher vectors).
        trace_samples: Hutchinson samples (the standard error is over them).
        density: the spectral density by stochastic Lanczos quadrature (``density_ncv``
            Lanczos vectors, ``density_points`` grid points).
        gd_check: run the full-batch gradient-descent check (``distill`` only).
        gd_factors: learning rates as multiples of ``2/λ_max``.
        gd_steps: GD steps per learning rate.
        gd_shift: the target is the heads at ``θ₀ + δ``, ``δ`` seeded normal with this RMS
            relative to each parameter tensor's RMS.
        prop51: check Proposition 5.1 on every maximal residual chain.
        backbone: measure the backbone's own gradient ratio (seed 001's table G.6): the probe
            gradient at the backbone's exit pulled back to its stem through the backbone alone
            (:func:`graphpath.blocks.backbone.find_backbone`).
        power_iters, power_tol: power iteration on the residual branches' Jacobians.
        dtype: ``float32`` (default) or ``float64`` (small graphs, exact checks).
    """

    protocol: BackwardOptions = field(default_factory=BackwardOptions)
    loss: Loss = "distill"
    top_k: int = 3
    eig_tol: float = 1e-3
    max_matvecs: int = 300
    trace: bool = False
    trace_samples: int = 16
    density: bool = False
    density_ncv: int = 24
    density_points: int = 256
    gd_check: bool = False
    gd_factors: tuple[float, ...] = GD_FACTORS
    gd_steps: int = 10
    gd_shift: float = 1e-2
    prop51: bool = False
    backbone: bool = False
    power_iters: int = 30
    power_tol: float = 1e-3
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise GraphpathError(f"unknown --loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        for name, value in (("--top-k", self.top_k), ("--trace-samples", self.trace_samples),
                            ("--gd-steps", self.gd_steps), ("max_matvecs", self.max_matvecs),
                            ("density_ncv", self.density_ncv), ("power_iters", self.power_iters)):
            if value < 1:
                raise GraphpathError(f"{name} must be at least 1")
        if self.dtype not in ("float32", "float64"):
            raise GraphpathError(f"dtype must be float32 or float64, not {self.dtype!r}")
        if self.gd_check and self.loss != "distill":
            raise GraphpathError("the gradient-descent check (--gd) runs on the distill loss; drop --gd or use --loss distill")
        if any(f <= 0 for f in self.gd_factors):
            raise GraphpathError("GD factors must be positive")

    @classmethod
    def for_table(cls) -> CurvatureOptions:
        """What ``report --curvature`` measures per model: λ_max (top 1), an 8-sample trace, a
        16-vector density, the GD check, Prop 5.1 and the backbone ratio (the protocol comes
        from the numeric pass)."""
        return cls(top_k=1, trace=True, trace_samples=8, density=True, density_ncv=16, gd_check=True,
                   prop51=True, power_iters=20, backbone=True)

    def summary(self) -> str:
        """The measures in one line (the stability table's header).

        >>> CurvatureOptions(top_k=1, trace=True, trace_samples=8).summary()
        'loss distill, top-1 eigsh tol 0.001, Hutchinson trace 8 samples'
        """
        parts = [f"loss {self.loss}", f"top-{self.top_k} eigsh tol {self.eig_tol:g}"]
        if self.trace:
            parts.append(f"Hutchinson trace {self.trace_samples} samples")
        if self.density:
            parts.append(f"SLQ density {self.density_ncv} Lanczos vectors")
        if self.gd_check:
            parts.append(f"GD at {'/'.join(f'{f:g}' for f in self.gd_factors)}×2/λ_max, {self.gd_steps} steps")
        if self.prop51:
            parts.append(f"Prop 5.1 power iteration ≤ {self.power_iters} its, tol {self.power_tol:g}")
        if self.backbone:
            parts.append("backbone ratio")
        return ", ".join(parts)

    def echo(self) -> dict[str, Any]:
        """The options as the report states them."""
        return {"loss": self.loss, "top_k": self.top_k, "eig_tol": self.eig_tol, "max_matvecs": self.max_matvecs,
                "trace": self.trace, "trace_samples": self.trace_samples if self.trace else None,
                "density": self.density, "density_ncv": self.density_ncv if self.density else None,
                "gd_check": self.gd_check, "gd_factors": list(self.gd_factors), "gd_steps": self.gd_steps,
                "gd_shift": self.gd_shift, "prop51": self.prop51, "backbone": self.backbone, "power_iters": self.power_iters,
                "power_tol": self.power_tol, "dtype": self.dtype,
                "condition": self.protocol.condition,
                "init": self.protocol.init if self.protocol.condition == "init" else None,
                "norm": self.protocol.norm, "seeds": list(self.protocol.seed_list), "imgsz": self.protocol.imgsz}
