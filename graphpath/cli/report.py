"""``graphpath report``: the stability table of one or more models (:mod:`graphpath.stability.table`).

Loaded on demand by the main group in :mod:`graphpath.cli.main`, whose error handling maps
``GraphpathError`` to exit 2 (one line, nothing written) and anything unexpected to exit 3.
Progress goes to stderr: a rich bar on a terminal, one plain line per step otherwise, nothing
with ``--quiet``. Heavy modules load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphpath.cli.options import backward_options, condition_options
from graphpath.cli.output import output_option, write_output
from graphpath.cli.progress import progress_reporter
from graphpath.cli.registry import (
    make_cache,
    make_run_executor,
    refuse_if_nothing_analysed,
    registry_options,
    report_failures,
)
from graphpath.formats import format_names


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(format_names("table")), default=None,
              help="text (terminal), md (GitHub Markdown), html (one self-contained file with plots), "
                   "json (schema graphpath/stability/stability-table.schema.json), csv (one row per model). "
                   "Default: from the -o suffix (.md .html .json .csv), else text.")
@output_option("table")
@click.option("--numeric/--no-numeric", default=False, show_default=True,
              help="Also run the numeric backward pass (needs the torch extra) for the measured columns "
                   "and verdicts; without it the verdict column says 'not measured'.")
@click.option("--curvature/--no-curvature", default=False, show_default=True,
              help="Also measure curvature (implies --numeric; needs the curvature extra): λ_max of the distill "
                   "GGN, 2/λ_max, an 8-sample Hutchinson trace, the GD check, the spectral density (HTML plot), "
                   "Prop 5.1 per residual chain and the backbone ratio, with the seed's §18.3 and G.6 tables. "
                   "Minutes per model and seed.")
@registry_options
@condition_options
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.pass_context
def report(ctx: click.Context, models: tuple[Path, ...], fmt: str | None, output: Path | None, numeric: bool,
           curvature: bool, exclude: tuple[str, ...], executor: str, jobs: int, timeout_per_model: float,
           memory_per_model: str, device: str, cache_dir: Path | None, no_cache: bool, quiet: bool,
           **condition: Any) -> None:
    """The stability table of MODEL...: generation, main blocks, gradient paths, measured
    gradient ratio and block gains, verdict, and the seed's claim beside it.

    MODEL is a file, a folder (its .onnx files, recursively) or a glob ('runs/**/*.onnx').
    Results are cached by content (docs/registry.md): a re-run over unchanged models only reads
    the cache. Each model runs in a worker under --timeout-per-model and --memory-per-model; a
    model that fails there gets a row saying why, the others finish, and the exit code is 2.

    Rows come in the seed table's generation order (v1 … v12, YOLOX after v5), ties in the
    order given.
    """
    from graphpath.formats import get_renderer
    from graphpath.registry.inputs import expand_inputs
    from graphpath.registry.run import report_table

    fmt = fmt or format_for(output)
    paths = expand_inputs(models, exclude)
    curvature_opts = None
    if curvature:
        from graphpath.cli.curvature import require_curvature_extra

        require_curvature_extra()
        from graphpath.numeric.curvature import CurvatureOptions

        numeric, curvature_opts = True, CurvatureOptions.for_table()
    options = backward_options(device=device, **condition) if numeric else None
    run_on = make_run_executor(executor, jobs, timeout_per_model, memory_per_model)
    with progress_reporter(len(paths), quiet=quiet) as progress:
        table, results = report_table(paths, numeric=numeric, backward_options=options, curvature=curvature_opts,
                                      executor=run_on,
                                      cache=make_cache(cache_dir, no_cache), progress=progress)
    refuse_if_nothing_analysed(results)
    write_output(get_renderer("table", fmt)(table), output)
    report_failures(results.failures)
    ctx.exit(results.exit_code)


def format_for(output: Path | None) -> str:
    """The format an output file's suffix asks for (``table.html`` → html), else ``text``.

    >>> format_for(Path("table.html")), format_for(Path("t.markdown")), format_for(None)
    ('html', 'md', 'text')
    """
    suffix = output.suffix.lower().lstrip(".") if output else ""
    suffix = {"markdown": "md", "htm": "html"}.get(suffix, suffix)
    return suffix if suffix in format_names("table") else "text"
