"""Progress on stderr for long commands: a rich bar on a terminal, one plain line per step
otherwise (so logs and test runners see it), nothing when quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

Progress = Callable[[int, int, str], None]


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_reporter(total_models: int, *, quiet: bool, min_models: int = 2,
                      prefix: str = "graphpath report") -> Iterator[Progress | None]:
    """A ``progress(done, total, label)`` callback for :func:`graphpath.stability.table.report_models`.

    Runs of fewer than ``min_models`` and ``--quiet`` get none; a terminal gets a rich progress bar on stderr;
    anything else gets one plain line per finished step on stderr.
    """
    if quiet or total_models < min_models:
        yield None
        return
    if not _stderr_is_tty():
        last = [-1]

        def plain(done: int, total: int, label: str) -> None:
            if done != last[0]:  # one line per finished step, not per numeric sub-step
                last[0] = done
                click.echo(f"{prefix}: [{done}/{total}] {label}", err=True)

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
