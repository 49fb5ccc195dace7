"""Pure renderers: ``render(report) -> str``, one module per format, one registry.

The registry's keys feed ``click.Choice``, so an unknown format is a usage error, never a
silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from graphpath.report import Report

Renderer = Callable[[Report], str]

#: format name → module under graphpath.formats (imported on first use).
FORMATS: dict[str, str] = {
    "text": "text",
    "json": "json_format",
}


def get_renderer(name: str) -> Renderer:
    """The ``render`` function of format ``name``.

    >>> get_renderer("json").__module__
    'graphpath.formats.json_format'
    """
    if name not in FORMATS:
        raise KeyError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    module = import_module(f"graphpath.formats.{FORMATS[name]}")
    render: Renderer = module.render
    return render
