"""``graphpath curvature``: the Hessian/GGN spectrum of one model, the learning rate it allows,
and Proposition 5.1 on its residual chains (:mod:`graphpath.numeric.curvature`).

torch, scipy and curvlinops are imported only when a run starts, so ``--help`` stays light; a
missing one exits 2 with the install hint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import click

from graphpath.cli.options import DEVICES, condition_options, model_argument
from graphpath.cli.output import output_option, write_output
from graphpath.cli.progress import progress_reporter
from graphpath.errors import MissingExtraError
from graphpath.formats import format_names

#: Mirror of :data:`graphpath.numeric.curvature.LOSSES` (``--help`` does not import the numeric package).
LOSSES = ("distill", "probe")


def require_curvature_extra() -> None:
    """The install hint (exit 2) when torch or curvlinops is missing, before anything heavy."""
    for module in ("torch", "curvlinops"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, "curvature", "the curvature measurement")


def curvature_options(**values: Any) -> Any:
    """:class:`CurvatureOptions` from the parsed flags (the install hint before anything heavy)."""
    require_curvature_extra()
    from graphpath.numeric.curvature import CurvatureOptions
    from graphpath.numeric.options import BackwardOptions

    protocol = BackwardOptions(
        seed=values.pop("seed"), seeds=values.pop("seeds"), seed_offset=values.pop("seed_offset"),
        device=values.pop("device"), imgsz=values.pop("imgsz"), condition=values.pop("condition"),
        init=values.pop("init"), norm=values.pop("norm"))
    return CurvatureOptions(protocol=protocol, **values)


@click.command()
@model_argument
@click.option("--loss", type=click.Choice(LOSSES), default="distill", show_default=True,
              help="distill: MSE to the model's own raw heads (Hessian = GGN, PSD); probe: the backward pass's "
                   "linear probe (indefinite: most negative and most positive eigenvalues).")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Extreme eigenvalues wanted.")
@click.option("--trace/--no-trace", default=False, help="Hutchinson trace with its standard error.")
@click.option("--trace-samples", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--density/--no-density", default=False, help="Spectral density by stochastic Lanczos quadrature.")
@click.option("--gd/--no-gd", "gd_check", default=False,
              help="Full-batch gradient descent on distill at 0.5×, 0.9× and 1.5× of 2/λ_max.")
@click.option("--gd-steps", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--prop51/--no-prop51", default=False, help="Proposition 5.1 on every maximal residual chain.")
@click.option("--backbone/--no-backbone", default=False,
              help="The backbone's own gradient ratio (seed 001's table G.6): the probe gradient at its exit "
                   "pulled back to its stem through the backbone alone.")
@click.option("--eig-tol", type=click.FloatRange(min=0.0), default=1e-3, show_default=True,
              help="Relative tolerance of scipy eigsh.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds images, targets and the init draw.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--imgsz", type=click.IntRange(min=32), default=None, help="Input size for dynamic graphs.")
@condition_options
@click.option("--format", "fmt", type=click.Choice(format_names("curvature")), default="text", show_default=True)
@output_option()
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def curvature(model: Path, fmt: str, output: Path | None, quiet: bool, **values: Any) -> None:
    """Curvature of MODEL: top eigenvalues of the Hessian/GGN, the predicted largest stable
    full-batch learning rate 2/λ_max, optionally the trace, the spectral density, an empirical
    gradient-descent check and Proposition 5.1 — every figure under a stated loss, condition and
    seeds, with an interval over the seeds.
    """
    options = curvature_options(**values)
    from graphpath.formats import get_renderer
    from graphpath.numeric.curvature import run_curvature

    with progress_reporter(1, quiet=quiet, min_models=1, prefix="graphpath curvature") as progress:
        result = run_curvature(model, options, progress=progress)
    write_output(get_renderer("curvature", fmt)(result), output)
