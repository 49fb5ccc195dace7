"""``graphpath cache info|clear``: the result cache of :mod:`graphpath.registry.cache`.

Loaded on demand by the main group in :mod:`graphpath.cli.main`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from graphpath.cli.output import format_option, write_output

_DIR = click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                    help="Cache folder (default: $GRAPHPATH_CACHE_DIR, else ~/.cache/graphpath).")


@click.group()
def cache() -> None:
    """The result cache that `report` and `audit` read and write (docs/registry.md)."""


@cache.command()
@_DIR
@format_option()
def info(cache_dir: Path | None, fmt: str) -> None:
    """Where the cache is, how many entries it holds and their size."""
    from graphpath.cli.registry import make_cache

    store = make_cache(cache_dir, False)
    assert store is not None
    facts = store.info()
    if fmt == "json":
        write_output(json.dumps(facts.to_dict(), indent=2, sort_keys=True) + "\n", None)
        return
    write_output(f"path: {facts.path}\nentries: {facts.entries}\nsize: {facts.bytes / 1e6:.1f} MB\n", None)


@cache.command()
@_DIR
def clear(cache_dir: Path | None) -> None:
    """Remove every entry (the next run recomputes)."""
    from graphpath.cli.registry import make_cache

    store = make_cache(cache_dir, False)
    assert store is not None
    removed = store.clear()
    click.echo(f"graphpath cache: removed {removed} entr{'y' if removed == 1 else 'ies'} from {store.root}", err=True)
