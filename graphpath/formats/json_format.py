"""JSON: the report's ``to_dict()`` with sorted keys, stable across runs byte for byte."""

from __future__ import annotations

import json

from graphpath.report import Report


def render(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
