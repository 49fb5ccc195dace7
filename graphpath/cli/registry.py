"""The options ``report`` and ``audit`` share for runs over many models: ``--exclude``,
``--executor``, ``--jobs``, ``--timeout-per-model``, ``--memory-per-model``, ``--device``,
``--cache-dir`` and ``--no-cache`` (see docs/registry.md), and the executor and cache they
choose. Nothing heavy is imported here; Ray loads only when a Ray run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graphpath.cli.options import DEVICES

if TYPE_CHECKING:
    from graphpath.registry.cache import ResultCache
    from graphpath.registry.executors import Executor

_REGISTRY_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--exclude", "exclude", multiple=True, metavar="GLOB",
                 help="Leave out models whose path (or its trailing part) matches GLOB, e.g. "
                      "'*-train.onnx' or 'archive/*' (repeatable)."),
    click.option("--executor", default="local", show_default=True, metavar="local|ray[:ADDRESS]",
                 help="local: worker processes here; ray: a Ray cluster started on this machine; "
                      "ray:auto: the cluster at $RAY_ADDRESS; ray:HOST:PORT or ray:ray://HOST:10001: that cluster "
                      "(needs the ray extra)."),
    click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Worker processes (local); CPUs of the cluster a bare --executor ray starts. "
                      "The output does not depend on it."),
    click.option("--timeout-per-model", type=click.FloatRange(min=0), default=3600, show_default=True,
                 help="Seconds one model may take before its worker is stopped and its row says so "
                      "(0: no limit)."),
    click.option("--memory-per-model", default="auto", show_default=True, metavar="SIZE",
                 help="Address-space limit of each local worker (8G, 512M, none; auto: the machine's "
                      "memory); on Ray, the memory each task requests."),
    click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                 help="Device of the numeric pass; cuda requests one GPU per Ray task."),
    click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Result cache folder (default: $GRAPHPATH_CACHE_DIR, else the user cache folder, "
                      "~/.cache/graphpath)."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache."),
]


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the registry options to a command (parameters ``exclude``, ``executor``, ``jobs``,
    ``timeout_per_model``, ``memory_per_model``, ``device``, ``cache_dir``, ``no_cache``)."""
    for option in reversed(_REGISTRY_OPTIONS):
        f = option(f)
    return f


def make_cache(cache_dir: Path | None, no_cache: bool) -> ResultCache | None:
    from graphpath.registry.cache import ResultCache, default_cache_dir

    return None if no_cache else ResultCache(cache_dir or default_cache_dir())


def make_run_executor(executor: str, jobs: int, timeout_per_model: float, memory_per_model: str) -> Executor:
    from graphpath.registry.executors import default_memory_limit, parse_size
    from graphpath.registry.run import make_executor

    memory = default_memory_limit() if memory_per_model.strip().lower() == "auto" else parse_size(memory_per_model)
    if executor.startswith("ray") and memory_per_model.strip().lower() == "auto":
        memory = None  # Ray schedules on its own memory accounting unless told otherwise
    return make_executor(executor, jobs=jobs, timeout=timeout_per_model or None, memory_limit=memory)


def refuse_if_nothing_analysed(results: Any) -> None:
    """Bad input and nothing else: when no model has a result and none failed by a bug in
    graphpath, refuse in one line (exit 2) before any output is written — the same contract as
    a single bad model always had. A table with failed rows is only written beside real ones.

    Raises:
        GraphpathError: every model failed on its own account.
    """
    from graphpath.errors import GraphpathError

    failures = results.failures
    if not failures or len(failures) < len(results.paths) or any(f.internal for f in failures):
        return
    first = failures[0]
    why = f"{first.path}: {first.why.removeprefix(first.path + ': ')}"
    more = f" (and {len(failures) - 1} more models that could not be analysed)" if len(failures) > 1 else ""
    raise GraphpathError(" ".join((why + more).split()))


def report_failures(failures: Any) -> None:
    """One line on stderr per model without a result."""
    for f in failures:
        click.echo(f"graphpath: error: {f.path}: not analysed: {f.why.removeprefix(f.path + ': ')}", err=True)
