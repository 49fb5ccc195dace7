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
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the static analysis (the numeric pass runs one model at a time). "
                   "The output does not depend on it.")
@condition_options
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def report(models: tuple[Path, ...], fmt: str | None, output: Path | None, numeric: bool, jobs: int,
           quiet: bool, **condition: Any) -> None:
    """The stability table of MODEL...: generation, main blocks, gradient paths, measured
    gradient ratio and block gains, verdict, and the seed's claim beside it.

    Rows come in the seed table's generation order (v1 … v12, YOLOX after v5), ties in the
    order given.
    """
    from graphpath.formats import get_renderer
    from graphpath.stability.table import report_models

    fmt = fmt or format_for(output)
    with progress_reporter(len(models), quiet=quiet) as progress:
        table = report_models(list(models), numeric=numeric, jobs=jobs, progress=progress,
                              backward_options=backward_options(**condition) if numeric else None)
    write_output(get_renderer("table", fmt)(table), output)


def format_for(output: Path | None) -> str:
    """The format an output file's suffix asks for (``table.html`` → html), else ``text``.

    >>> format_for(Path("table.html")), format_for(Path("t.markdown")), format_for(None)
    ('html', 'md', 'text')
    """
    suffix = output.suffix.lower().lstrip(".") if output else ""
    suffix = {"markdown": "md", "htm": "html"}.get(suffix, suffix)
    return suffix if suffix in format_names("table") else "text"
