"""Where a command's result goes: stdout, or a file written atomically (a reader sees the old
file or the whole new one, never a partial one, and a failed run leaves nothing behind), and the
``--format`` and ``-o/--output`` options that choose it.

Every command module imports these from here, never from :mod:`graphpath.cli.main`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from graphpath.errors import GraphpathError

#: The formats of the single-model commands (analyze, paths, blocks, backward, zoo list).
TEXT_FORMATS = ("text", "json")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` via a temporary file in the same folder."""
    atomic_write_all([(path, data)])


def atomic_write_all(files: Sequence[tuple[Path, bytes | str]]) -> None:
    """Write several files all or nothing: every one goes to a temporary file beside its target
    first, and only when all are written are they renamed into place; on failure no temporary
    file stays behind.

    Raises:
        GraphpathError: a target cannot be written (missing folder, permissions, disk full),
            with the path and the reason on one line.
    """
    temps: list[tuple[str, Path]] = []
    current = files[0][0] if files else Path()
    try:
        for path, data in files:
            current = path
            target = path.resolve()
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are ordinary files
        for tmp, target in temps:
            current = target
            os.replace(tmp, target)
    except OSError as exc:
        raise GraphpathError(f"cannot write {current}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)


def write_output(text: str, output: Path | None) -> None:
    """Write the report to stdout, or to ``output`` atomically (never a partial file)."""
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, text)


def output_option(what: str = "report", *, writable: bool = False) -> Decorator:
    """The ``-o/--output FILE`` option; ``writable`` also refuses an existing read-only FILE
    as a usage error (the static commands always did)."""
    return click.option(
        "-o", "--output", type=click.Path(dir_okay=False, writable=writable, path_type=Path),
        default=None, help=f"Write the {what} to FILE (only after success) instead of stdout.",
    )


def format_option(choices: Sequence[str] = TEXT_FORMATS, default: str = "text") -> Decorator:
    """The ``--format`` option (parameter ``fmt``): an unknown format is a usage error."""
    return click.option("--format", "fmt", type=click.Choice(list(choices)), default=default,
                        show_default=True)
