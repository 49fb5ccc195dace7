"""Command line: parse → options → one library call → render → exit code. No analysis here.

Exit codes (DESIGN.md "Contracts"): 0 clean, 1 findings at or above ``--fail-on``, 2 usage or
input error, 3 internal error. Heavy modules are imported inside the commands so that
``graphpath --help`` starts fast and never imports torch or matplotlib.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from graphpath import __version__
from graphpath.cli.numeric import backward_options, numeric_options
from graphpath.cli.output import atomic_write
from graphpath.cli.progress import progress_reporter
from graphpath.formats import format_names

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

TEXT_FORMATS = ("text", "json")


def write_output(text: str, output: Path | None) -> None:
    """Write the report to stdout, or to ``output`` atomically (never a partial file)."""
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, text)


def _output_option(f: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
        default=None, help="Write the report to FILE (only after success) instead of stdout.",
    )(f)


def _model_argument(f: Callable[..., None]) -> Callable[..., None]:
    # Existence is checked by the loader so that every bad-input message has one shape.
    return click.argument("model", type=click.Path(path_type=Path))(f)


class GraphpathGroup(click.Group):
    """Maps graphpath's error kinds onto exit codes for every subcommand."""

    def invoke(self, ctx: click.Context) -> object:
        from graphpath.errors import GraphpathError

        try:
            return super().invoke(ctx)
        except GraphpathError as exc:
            click.echo(f"graphpath: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("graphpath: interrupted", err=True)
            ctx.exit(130)
        except Exception:
            click.echo(traceback.format_exc(), err=True, nl=False)
            click.echo(
                "graphpath: internal error: this is a bug in graphpath; please report it with "
                "the traceback above.", err=True,
            )
            ctx.exit(EXIT_INTERNAL)
        return None


@click.group(cls=GraphpathGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="graphpath")
def cli() -> None:
    """Static and numeric gradient-flow analysis of ONNX object detectors."""


@cli.command()
@_model_argument
@click.option("--format", "fmt", type=click.Choice(format_names("report")), default="text", show_default=True)
@_output_option
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


@cli.command()
@_model_argument
@click.option("--from", "source", default=None, metavar="UNIT",
              help="Count paths from this layer-view unit instead of the graph inputs.")
@click.option("--to", "target", default=None, metavar="OUTPUT", help="Only paths to this graph output.")
@click.option("--format", "fmt", type=click.Choice(TEXT_FORMATS), default="text", show_default=True)
@_output_option
def paths(model: Path, source: str | None, target: str | None, fmt: str, output: Path | None) -> None:
    """Gradient paths of MODEL: counts, length distribution, shortest and longest paths."""
    from graphpath.analysis import AnalyzeOptions, analyze
    from graphpath.formats import get_renderer
    from graphpath.formats.paths_text import render_paths_text

    report = analyze(model, AnalyzeOptions(path_source=source, path_target=target))
    text = (get_renderer("report", "json")(report) if fmt == "json"
            else render_paths_text(report.section("paths")))
    write_output(text, output)


@cli.command()
@_model_argument
@click.option("--format", "fmt", type=click.Choice(TEXT_FORMATS), default="text", show_default=True)
@_output_option
def blocks(model: Path, fmt: str, output: Path | None) -> None:
    """Blocks of MODEL (residual, CSP, C2f, ELAN, GELAN, PGI, heads …), its generation and
    what its export form hides."""
    from graphpath.analysis import AnalyzeOptions, analyze
    from graphpath.formats import get_renderer
    from graphpath.formats.blocks_text import render_structure

    report = analyze(model, AnalyzeOptions(paths=False))
    text = get_renderer("report", "json")(report) if fmt == "json" else render_structure(report.to_dict())
    write_output(text, output)


@cli.group()
def zoo() -> None:
    """graphpath's own reference YOLO graphs (needs the torch extra)."""


@zoo.command("list")
@click.option("--format", "fmt", type=click.Choice(TEXT_FORMATS), default="text", show_default=True)
def zoo_list(fmt: str) -> None:
    """List the reference models the zoo can build."""
    from graphpath.formats.zoo import render_catalog
    from graphpath.zoo.catalog import catalog

    write_output(render_catalog(list(catalog().values()), fmt), None)


@zoo.command("build")
@click.argument("names", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("models"), show_default=True, help="Folder for the .onnx files and manifest.json.")
@click.option("--width", type=float, default=None, help="Width factor instead of each model's own.")
@click.option("--imgsz", type=int, default=None, help="Input size instead of each model's own.")
def zoo_build(names: tuple[str, ...], out_dir: Path, width: float | None, imgsz: int | None) -> None:
    """Build NAMES (default: every model) into --out and update its manifest.json."""
    from graphpath.zoo.catalog import build_models

    for entry in build_models(names, out_dir, width=width, imgsz=imgsz):
        click.echo(f"{out_dir / entry['file']}  {entry['bytes']:>9,d} bytes  sha256 {entry['sha256'][:12]}")


def _add_commands() -> None:
    # Commands that live in their own modules (importing them loads no heavy dependency).
    from graphpath.cli.audit import audit, rules
    from graphpath.cli.numeric import backward
    from graphpath.cli.report import report

    for command in (backward, report, audit, rules):
        cli.add_command(command)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="graphpath")
