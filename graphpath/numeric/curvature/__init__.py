"""Curvature of an exported detector: the Hessian/GGN spectrum, the learning rate it allows,
and Proposition 5.1 on its residual chains (docs/curvature.md).

Importing this package is light; torch, scipy and curvlinops (the ``curvature`` extra) are
imported when :func:`run_curvature` runs, and a missing one raises
:class:`~graphpath.errors.MissingExtraError` with the install hint.

- :func:`run_curvature` (:mod:`.run`) → :class:`CurvatureReport` (:mod:`.results`);
- :class:`CurvatureOptions` (:mod:`.options`): the loss, the measures, and the protocol
  (condition, seeds) as a :class:`~graphpath.numeric.options.BackwardOptions`;
- :mod:`.operators`: the evaluator as an ``nn.Module``, the losses, eigenvalues, trace,
  density and the gradient-descent check (torch);
- :mod:`.prop51`: residual chains and the bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphpath.numeric.curvature.options import GD_FACTORS, LOSSES, CurvatureOptions
from graphpath.numeric.curvature.results import CurvatureReport

if TYPE_CHECKING:
    from graphpath.numeric.curvature.run import run_curvature

__all__ = ["GD_FACTORS", "LOSSES", "CurvatureOptions", "CurvatureReport", "run_curvature"]


def __getattr__(name: str) -> Any:
    if name == "run_curvature":
        from graphpath.numeric.curvature.run import run_curvature

        return run_curvature
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
