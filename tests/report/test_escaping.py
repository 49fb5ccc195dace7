"""Names from the model (file, nodes, tensors, numeric block labels, error text) come out
escaped in HTML and Markdown."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest

from graphpath.analysis import analyze
from graphpath.formats import get_renderer
from graphpath.stability.table import StabilityTable, build_row, make_table
from tests.report.conftest import EVIL, evil_model, fake_numeric


@pytest.fixture
def evil_table(tmp_path: Path) -> StabilityTable:
    path = tmp_path / "m<script>x|y`z.onnx"
    onnx.save(evil_model(), str(path))
    rep = analyze(path)
    num = fake_numeric("vanishing", 1e-4, blocks=((EVIL, 0.5, 1.0), ("b2" + EVIL, 2.0, None)))
    rows = [build_row(rep, num), build_row(rep, None, numeric_error="unsupported op in node " + EVIL)]
    return make_table(rows, numeric=True, numeric_options={"note": EVIL})


def test_markdown_escapes_model_strings(evil_table: StabilityTable) -> None:
    md = get_renderer("table", "md")(evil_table)
    assert "<script" not in md and "</script" not in md
    assert "&lt;script&gt;" in md
    tables: list[list[str]] = [[]]  # runs of consecutive table lines: each keeps its width
    for ln in md.splitlines():
        if ln.startswith("| "):
            tables[-1].append(ln)
        elif tables[-1]:
            tables.append([])
    assert len([t for t in tables if t]) >= 2
    for lines in tables:
        for ln in lines:
            assert len(re.split(r"(?<!\\)\|", ln)) == len(re.split(r"(?<!\\)\|", lines[0])), ln
            assert not re.search(r"(?<!\\)`", ln), ln
    assert "m&lt;script&gt;x\\|y\\`z.onnx" in md


def test_html_escapes_model_strings(evil_table: StabilityTable) -> None:
    out = get_renderer("table", "html")(evil_table)
    assert out.count("<script") == 1 and out.count("</script") == 1  # the page's own sorting script
    assert out.index("<script>") > out.index('<section class="model" id="m1">')  # after every model string
    assert "&lt;script&gt;" in out
    assert 'alert("1")' not in out
    for svg in re.findall(r"<svg.*?</svg>", out, flags=re.S):
        import xml.etree.ElementTree as ET

        ET.fromstring(svg)


def test_text_and_csv_keep_names_verbatim(evil_table: StabilityTable) -> None:
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(get_renderer("table", "csv")(evil_table))))
    assert rows[0]["model"] == "m<script>x|y`z.onnx"
    assert EVIL.replace("\n", " ") in rows[1]["reason"]
