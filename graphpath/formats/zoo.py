"""Rendering of the zoo catalogue (``graphpath zoo list``)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def _row(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "generation": spec.generation,
        "scale": spec.scale,
        "form": spec.form,
        "width": spec.width,
        "imgsz": spec.imgsz,
        "outputs": list(spec.output_names),
        "auxiliary_outputs": list(spec.auxiliary_outputs),
    }


def render_catalog(specs: Sequence[Any], fmt: str) -> str:
    """The catalogue as a text table or as JSON (a list of objects, one per model)."""
    rows = [_row(s) for s in specs]
    if fmt == "json":
        return json.dumps(rows, indent=2, sort_keys=True) + "\n"
    table = Table(box=None, pad_edge=False)
    for col in ("name", "generation", "scale", "form", "width", "imgsz", "outputs"):
        table.add_column(col)
    for r in rows:
        outs = ", ".join(o + (" (aux)" if o in r["auxiliary_outputs"] else "") for o in r["outputs"])
        table.add_row(r["name"], r["generation"], r["scale"], r["form"], f"{r['width']:g}",
                      str(r["imgsz"]), outs)
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None, highlight=False, markup=False,
            emoji=False).print(table)
    return buf.getvalue()
