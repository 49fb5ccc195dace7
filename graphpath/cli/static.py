"""``graphpath analyze``, ``paths`` and ``blocks``: the static analyses of one model
(:func:`graphpath.analysis.analyze`), rendered as text or JSON.

Heavy modules (onnx, the analyses, the renderers) load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphpath.cli.options import backward_options, model_argument, numeric_options
from graphpath.cli.output import format_option, output_option, write_output
from graphpath.cli.progress import progress_reporter
from graphpath.formats import format_names


@click.command()
@model_argument
@format_option(format_names("report"))
@output_option(writable=True)
@click.option("--numeric", is_flag=True, help="Also run the numeric backward pass (torch extra).")
@numeric_options
def analyze(model: Path, fmt: str, output: Path | None, numeric: bool, **numeric_values: Any) -> None:
    """Summarise MODEL: interface, ops, parameters, layer view and depth, gradient paths,
    blocks and generation; with --numeric, the measured gradient flow too."""
    from graphpath.analysis import AnalyzeOptions
    from graphpath.analysis import analyze as run
    from graphpath.formats import get_renderer

    options = AnalyzeOptions(numeric=backward_options(**numeric_values) if numeric else None)
    with progress_reporter(1, quiet=not numeric, min_models=1, prefix="graphpath analyze") as progress:
        report = run(model, options, progress=progress)
    write_output(get_renderer("report", fmt)(report), output)


@click.command()
@model_argument
@click.option("--from", "source", default=None, metavar="UNIT",
              help="Count paths from this layer-view unit instead of the graph inputs.")
@click.option("--to", "target", default=None, metavar="OUTPUT", help="Only paths to this graph output.")
@format_option()
@output_option(writable=True)
def paths(model: Path, source: str | None, target: str | None, fmt: str, output: Path | None) -> None:
    """Gradient paths of MODEL: counts, length distribution, shortest and longest paths."""
    from graphpath.analysis import AnalyzeOptions, analyze
    from graphpath.formats import get_renderer
    from graphpath.formats.paths_text import render_paths_text

    report = analyze(model, AnalyzeOptions(path_source=source, path_target=target))
    text = get_renderer("report", "json")(report) if fmt == "json" else render_paths_text(report.section("paths"))
    write_output(text, output)


@click.command()
@model_argument
@format_option()
@output_option(writable=True)
def blocks(model: Path, fmt: str, output: Path | None) -> None:
    """Blocks of MODEL (residual, CSP, C2f, ELAN, GELAN, PGI, heads …), its generation and
    what its export form hides."""
    from graphpath.analysis import AnalyzeOptions, analyze
    from graphpath.formats import get_renderer
    from graphpath.formats.blocks_text import render_structure

    report = analyze(model, AnalyzeOptions(paths=False))
    text = get_renderer("report", "json")(report) if fmt == "json" else render_structure(report.to_dict())
    write_output(text, output)
