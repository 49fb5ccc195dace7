"""Pure renderers: ``render(report) -> str``, one module per format, one registry.

The registry's keys feed ``click.Choice``, so an unknown format is a usage error, never a
silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

from graphpath.report import Report

Renderer = Callable[[Report], str]

#: format name → module under graphpath.formats (imported on first use).
FORMATS: dict[str, str] = {
    "text": "text",
    "json": "json_format",
}


def load_renderer(registry: Mapping[str, str], name: str, what: str = "format") -> Callable[[Any], str]:
    """The renderer ``registry`` names for ``name``, imported on first use.

    A registry value is a module under ``graphpath.formats`` (its ``render``) or a
    ``package.module:function`` path. The report, table and audit registries all resolve here.

    >>> load_renderer({"md": "table_md"}, "md").__module__
    'graphpath.formats.table_md'
    """
    if name not in registry:
        raise KeyError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}")
    target, _, func = registry[name].partition(":")
    module = import_module(target if func else f"graphpath.formats.{target}")
    render: Callable[[Any], str] = getattr(module, func or "render")
    return render


def get_renderer(name: str) -> Renderer:
    """The ``render`` function of format ``name``.

    >>> get_renderer("json").__module__
    'graphpath.formats.json_format'
    """
    return load_renderer(FORMATS, name)
