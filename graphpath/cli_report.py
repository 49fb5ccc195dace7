"""``graphpath report``: the stability table of one or more models (:mod:`graphpath.table`).

Registered on the main group in :mod:`graphpath.cli` (``cli.add_command(report)``), whose error
handling maps ``GraphpathError`` to exit 2 (one line, nothing written) and anything unexpected
to exit 3. Progress goes to stderr: a rich bar on a terminal, one plain line per step otherwise,
nothing with ``--quiet``. Heavy modules load inside the command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from graphpath.formats.table_registry import TABLE_FORMATS

Progress = Callable[[int, int, str], None]


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_reporter(total_models: int, *, quiet: bool) -> Iterator[Progress | None]:
    """A ``progress(done, total, label)`` callback for :func:`graphpath.table.report_models`.

    Single-model runs and ``--quiet`` get none; a terminal gets a rich progress bar on stderr;
    anything else gets one plain line per finished step on stderr.
    """
    if quiet or total_models < 2:
        yield None
        return
    if not _stderr_is_tty():
        last = [-1]

        def plain(done: int, total: int, label: str) -> None:
            if done != last[0]:  # one line per finished step, not per numeric sub-step
                last[0] = done
                click.echo(f"graphpath report: [{done}/{total}] {label}", err=True)

        yield plain
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("analysing", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(TABLE_FORMATS)), default="text", show_default=True,
              help="text (terminal), md (GitHub Markdown), html (one self-contained file with plots), "
                   "json (schema graphpath/schemas/stability-table.schema.json), csv (one row per model).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table to FILE (only after success) instead of stdout.")
@click.option("--numeric/--no-numeric", default=False, show_default=True,
              help="Also run the numeric backward pass (needs the torch extra) for the measured columns "
                   "and verdicts; without it the verdict column says 'not measured'.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the static analysis (the numeric pass runs one model at a time). "
                   "The output does not depend on it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def report(models: tuple[Path, ...], fmt: str, output: Path | None, numeric: bool, jobs: int, quiet: bool) -> None:
    """The stability table of MODEL...: generation, main blocks, gradient paths, measured
    gradient ratio and block gains, verdict, and the seed's claim beside it.

    Rows come in the seed table's generation order (v1 … v12, YOLOX after v5), ties in the
    order given.
    """
    from graphpath.cli import write_output
    from graphpath.formats.table_registry import get_table_renderer
    from graphpath.table import report_models

    with progress_reporter(len(models), quiet=quiet) as progress:
        table = report_models(list(models), numeric=numeric, jobs=jobs, progress=progress)
    write_output(get_table_renderer(fmt)(table), output)
