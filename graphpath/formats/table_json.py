"""JSON of the stability table: ``StabilityTable.to_dict()`` with sorted keys, byte-stable.

The shape is ``graphpath/stability/stability-table.schema.json`` (shipped as package data).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from graphpath.stability.table import StabilityTable

SCHEMA_RESOURCE = "stability-table.schema.json"


def render(table: StabilityTable) -> str:
    return json.dumps(table.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def schema() -> dict[str, Any]:
    """The JSON Schema of :func:`render`'s output (package data)."""
    text = resources.files("graphpath.stability").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
