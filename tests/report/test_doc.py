"""docs/stability-table.md is current: its static columns match a fresh static run."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from graphpath.formats.table_md import parse_rows

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("update_stability_doc", ROOT / "scripts" / "update_stability_doc.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_doc_static_columns_are_current() -> None:
    mod = _script()
    doc = mod.DOC.read_text(encoding="utf-8")
    rows = parse_rows(mod.block_of(doc))
    assert len(rows) == len(list((ROOT / "models").glob("*.onnx")))
    diffs = mod.static_differences(doc, mod.generated(numeric=False))
    assert diffs == [], "docs/stability-table.md is out of date: run python scripts/update_stability_doc.py"


def test_the_check_catches_a_stale_cell() -> None:
    mod = _script()
    doc = mod.DOC.read_text(encoding="utf-8")
    fresh = mod.generated(numeric=False)
    row = "| yolov8n.onnx | v8 | C2f \\+ SPPF \\+ PAN \\+ DFL | {} |"
    stale = doc.replace(row.format(106), row.format(107))
    assert stale != doc
    assert mod.static_differences(stale, fresh) == ["yolov8n.onnx: units is '107' in the doc, '106' now"]
