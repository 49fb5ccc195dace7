"""Renderers of the stability table (``graphpath report``): ``render(table) -> str``.

A second registry beside :data:`graphpath.formats.FORMATS` because these renderers take a
:class:`~graphpath.table.StabilityTable`, not a :class:`~graphpath.report.Report`. Its keys feed
``click.Choice``, so an unknown format is a usage error.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from graphpath.table import StabilityTable

TableRenderer = Callable[[StabilityTable], str]

#: format name → module under graphpath.formats (imported on first use).
TABLE_FORMATS: dict[str, str] = {
    "text": "table_text",
    "md": "table_md",
    "html": "table_html",
    "json": "table_json",
    "csv": "table_csv",
}


def get_table_renderer(name: str) -> TableRenderer:
    """The ``render`` function of table format ``name``.

    >>> get_table_renderer("md").__module__
    'graphpath.formats.table_md'
    """
    if name not in TABLE_FORMATS:
        raise KeyError(f"unknown table format {name!r}; choose one of {', '.join(TABLE_FORMATS)}")
    module = import_module(f"graphpath.formats.{TABLE_FORMATS[name]}")
    render: TableRenderer = module.render
    return render
