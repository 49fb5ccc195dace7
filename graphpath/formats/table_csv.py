"""CSV of the stability table: one row per model, flat columns, raw numbers (empty = none)."""

from __future__ import annotations

import csv
import io

from graphpath.stability.table import StabilityRow, StabilityTable

#: CSV columns in order: the row's scalar fields (the seed's as ``seed_*``).
CSV_COLUMNS: tuple[str, ...] = (
    "model", "generation", "confidence", "architecture", "units", "depth", "paths_log10", "shortest_path",
    "longest_path", "effective_depth", "ratio", "min_block_gain", "max_block_gain", "max_block_jacobian",
    "dead_fraction", "verdict", "numeric_verdict", "seed_row", "seed_verdict", "seed_reason",
    "seed_structure", "seed_agreement", "reason", "numeric_error",
)


def _value(row: StabilityRow, key: str) -> str:
    v = getattr(row, key)
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def render(table: StabilityTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in table.rows:
        w.writerow([_value(row, k) for k in CSV_COLUMNS])
    return buf.getvalue()
