"""``graphpath audit`` and ``graphpath rules``: click commands for :mod:`graphpath.audit.run`.

Loaded on demand by the main group in :mod:`graphpath.cli.main`, whose error handling maps
``GraphpathError`` to exit 2 and anything unexpected to exit 3. Heavy modules load inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from graphpath.audit.rules.catalog import SEVERITIES
from graphpath.cli.options import backward_options, condition_options
from graphpath.cli.output import atomic_write_all, format_option, output_option, write_output
from graphpath.cli.progress import progress_reporter
from graphpath.cli.registry import make_cache, make_run_executor, refuse_if_nothing_analysed, registry_options
from graphpath.formats import format_names


@click.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Configuration file (graphpath.toml, or a pyproject.toml with [tool.graphpath]). "
                   "Default: searched from the current folder upwards.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Earlier analyze or audit JSON report; only findings that are not in it fail.")
@click.option("--numeric/--no-numeric", default=None,
              help="Also run the numeric backward pass (GP3xx rules). Default: the config's `numeric`.")
@click.option("--blocks/--no-blocks", default=True, show_default=True,
              help="Detect blocks (the structure rules GP101-GP104, GP107, GP108 need it).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Lowest severity that fails the audit (exit 1). Default: the config's, else error.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings fail the audit.")
@format_option(format_names("audit", aliases=True))
@output_option()
@click.option("--write", "writes", multiple=True, metavar="FORMAT=FILE",
              help="Also write FORMAT to FILE (repeatable), e.g. --write sarif=graphpath.sarif.")
@registry_options
@condition_options
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
@click.pass_context
def audit(ctx: click.Context, models: tuple[Path, ...], config_file: Path | None, baseline: Path | None,
          numeric: bool | None, blocks: bool, fail_on: str | None, exit_zero: bool, fmt: str,
          output: Path | None, writes: tuple[str, ...], exclude: tuple[str, ...], executor: str, jobs: int,
          timeout_per_model: float, memory_per_model: str, device: str, cache_dir: Path | None,
          no_cache: bool, quiet: bool, **condition: Any) -> None:
    """Check MODELS against the rules (see `graphpath rules`) for CI.

    MODELS are files, folders (their .onnx files, recursively) or globs. Results are cached by
    content (docs/registry.md); each model runs in a worker under --timeout-per-model and
    --memory-per-model, and one that fails there is reported without stopping the others.

    Exit codes: 0 clean, 1 findings at or above --fail-on (new ones only with --baseline),
    2 usage or input error (a model that could not be analysed included), 3 internal error.
    """
    from graphpath.audit.config import resolve_config
    from graphpath.formats import get_renderer, parse_write
    from graphpath.registry.inputs import expand_inputs
    from graphpath.registry.run import audit_models

    if not models:
        raise click.UsageError("no model given")
    extra = [parse_write("audit", spec) for spec in writes]
    config = resolve_config(config_file)
    paths = expand_inputs(models, exclude)
    use_numeric = bool(numeric) if numeric is not None else config.numeric
    options = backward_options(device=device, **condition) if use_numeric else None
    run_on = make_run_executor(executor, jobs, timeout_per_model, memory_per_model)
    with progress_reporter(len(paths), quiet=quiet or not sys.stderr.isatty(), min_models=1,
                           prefix="graphpath audit") as progress:
        result, results = audit_models(paths, config, baseline, use_numeric, fail_on=fail_on, blocks=blocks,
                                       backward_options=options, executor=run_on,
                                       cache=make_cache(cache_dir, no_cache), progress=progress)
    refuse_if_nothing_analysed(results)
    # All files or none: a failed write of one leaves none of the others behind.
    files = [(file, get_renderer("audit", extra_fmt)(result)) for extra_fmt, file in extra]
    main = get_renderer("audit", fmt)(result)
    atomic_write_all([*files, *([(output, main)] if output is not None else [])])
    if output is None:
        write_output(main, None)
    for note in result.notes:
        click.echo(f"graphpath: note: {note}", err=True)
    if not quiet and (fmt != "text" or output is not None):
        click.echo(result.summary_line(), err=True)
    ctx.exit(max(results.exit_code, result.exit_code(exit_zero)))


@click.command()
@click.argument("rule", required=False)
@format_option(["text", "md", "markdown", "json"])
def rules(rule: str | None, fmt: str) -> None:
    """List the audit rules, or explain RULE (an id such as GP201, or a name)."""
    from graphpath.audit.run import render_rules

    write_output(render_rules(fmt, rule), None)
