"""Renderers of the stability table (``graphpath report``): ``render(table) -> str``.

A second registry beside :data:`graphpath.formats.FORMATS` because these renderers take a
:class:`~graphpath.stability.table.StabilityTable`, not a :class:`~graphpath.report.Report`. Its keys feed
``click.Choice``, so an unknown format is a usage error.
"""

from __future__ import annotations

from collections.abc import Callable

from graphpath.formats import load_renderer
from graphpath.stability.table import StabilityTable

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
    return load_renderer(TABLE_FORMATS, name, "table format")
