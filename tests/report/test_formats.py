"""Every registered table format renders; the numbers agree across formats; HTML and JSON are
valid; output is deterministic."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import jsonschema
import pytest

from graphpath.formats import UnknownFormatError, format_names, get_renderer
from graphpath.formats.markdown import md_escape
from graphpath.formats.table_json import schema
from graphpath.formats.table_md import parse_rows
from graphpath.report import Report
from graphpath.stability.table import COLUMNS, StabilityTable

NUMBER_COLUMNS = ("units", "depth", "paths_log10", "shortest_path", "longest_path", "effective_depth", "ratio",
                  "min_block_gain", "max_block_gain", "max_block_jacobian", "dead_fraction")


@pytest.mark.parametrize("fmt", format_names("table"))
def test_every_registered_format_renders(sample_table: StabilityTable, fmt: str, sample_html: str) -> None:
    out = sample_html if fmt == "html" else get_renderer("table", fmt)(sample_table)
    assert out.endswith("\n")
    shown = md_escape if fmt == "md" else str  # Markdown escapes the "-" of "yolov6n-train.onnx"
    for r in sample_table.rows:
        assert shown(r.model) in out
    if fmt != "html":  # test_html_is_one_self_contained_valid_file renders it again
        assert out == get_renderer("table", fmt)(sample_table)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(UnknownFormatError, match="choose one of text, md, html, json, csv"):
        get_renderer("table", "pdf")


def test_same_numbers_in_md_json_csv(sample_table: StabilityTable) -> None:
    md = parse_rows(get_renderer("table", "md")(sample_table))
    js = json.loads(get_renderer("table", "json")(sample_table))["rows"]
    cs = list(csv.DictReader(io.StringIO(get_renderer("table", "csv")(sample_table))))
    assert len(md) == len(js) == len(cs) == len(sample_table.rows)
    assert set(md[0]) == {k for k, _ in COLUMNS}
    for m, j, c in zip(md, js, cs, strict=True):
        assert m["model"] == j["model"] and c["model"] == j["model"]
        for k in NUMBER_COLUMNS:
            jv = j[k]
            if jv is None:
                assert c[k] == "" and m[k] in ("n/a", "-")
                continue
            assert float(c[k]) == jv
            assert float(m[k]) == pytest.approx(jv, rel=5e-3, abs=0.051), (k, m, jv)
        assert c["verdict"] == j["verdict"] and j["verdict"] in m["verdict"]
        assert c["seed_agreement"] == j["seed"]["agreement"] == m["seed_agreement"]


def test_static_renderings_leave_out_the_measured_columns(static_reports: dict[str, Report]) -> None:
    from graphpath.stability.table import MEASURED_COLUMNS, build_row, make_table

    table = make_table([build_row(r, None) for r in static_reports.values()])
    md = parse_rows(get_renderer("table", "md")(table))
    assert not set(md[0]) & set(MEASURED_COLUMNS)
    assert {m["verdict"] for m in md} == {"not measured"}
    text = get_renderer("table", "text")(table)
    assert "not measured" in text and "grad ratio" not in text


def test_json_validates_against_the_shipped_schema(sample_table: StabilityTable) -> None:
    doc = json.loads(get_renderer("table", "json")(sample_table))
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    static = StabilityTable(rows=tuple(r for r in sample_table.rows), numeric=False)
    jsonschema.validate(json.loads(get_renderer("table", "json")(static)), schema(),
                        cls=jsonschema.Draft202012Validator)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.stack: list[str] = []
        self.void = {"meta", "br", "img", "link", "hr", "input"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.void:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def test_html_is_one_self_contained_valid_file(sample_table: StabilityTable, sample_html: str) -> None:
    pytest.importorskip("matplotlib")
    out = sample_html
    p = _Collector()
    p.feed(out)
    p.close()
    assert not p.stack
    # one inline script (sortable columns), nothing loaded from anywhere
    assert p.tags.count("script") == 1 and "link" not in p.tags and "img" not in p.tags
    assert not re.search(r"<script[^>]*\bsrc\b", out)
    assert not re.search(r"\b(fetch|XMLHttpRequest|import\s*\(|WebSocket)\b", out.split("<script>")[1])
    for name, value in p.attrs:
        if name in ("src", "href", "xlink:href") and value:
            assert not re.match(r"[a-z]+:", value) or value.startswith("#"), (name, value)
    assert not re.search(r"url\(\s*['\"]?https?:", out)
    assert not re.search(r"\b(src|href)\s*=\s*['\"]?https?:", out)
    svgs = re.findall(r"<svg.*?</svg>", out, flags=re.S)
    ids: list[str] = []
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert any(el.tag.endswith("path") for el in root.iter())
        ids += [el.get("id", "") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids)), "figures share element ids"
    n = len(sample_table.rows)
    # the overview's small multiples (one per model) and, per model, the gradient curve, the
    # block gains and the path-length distribution (the fake reports have no signal)
    assert len(svgs) == n + 3 * n
    for i in range(n):
        section = out.split(f'<section class="model" id="m{i}">')[1].split("</section>")[0]
        assert section.count("<svg") == 3 and 'class="blockmap"' in section
    assert out == get_renderer("table", "html")(sample_table)


def test_html_verdicts_are_text_badges_and_columns_sort_by_value(sample_table: StabilityTable,
                                                                  sample_html: str) -> None:
    from graphpath.stability.seed_claims import VERDICT_GLYPHS

    assert not any(g in sample_html for g in VERDICT_GLYPHS.values())
    badges = re.findall(r'<span class="badge b-([a-z-]+)">([^<]*)</span>', sample_html)
    assert {text for _, text in badges} >= {r.verdict for r in sample_table.rows}
    assert all(kind == text.replace(" ", "-") for kind, text in badges if text in VERDICT_GLYPHS)
    body = sample_html.split('<table class="sortable" id="stability">')[1].split("</table>")[0]
    rows = re.findall(r"<tr data-index=\"(\d+)\">(.*?)</tr>", body, flags=re.S)
    assert [int(i) for i, _ in rows] == list(range(len(sample_table.rows)))
    depth_col = [k for k, _ in sample_table.columns()].index("depth")
    for (_, tr), row in zip(rows, sample_table.rows, strict=True):
        cells = re.findall(r"<td([^>]*)>", tr)
        assert f'data-sort="{float(row.depth)!r}"' in cells[depth_col]


def test_html_print_stylesheet_and_model_strings_in_sections(sample_html: str) -> None:
    css = sample_html.split("<style>")[1].split("</style>")[0]
    media = css.split("@media print{")[1]
    assert "break-before:page" in media and ".badge{background:none" in media.replace(" ", "")


def test_html_without_matplotlib_still_renders(sample_table: StabilityTable,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = get_renderer("table", "html")(sample_table)
    assert "<svg" not in out
    assert "graphpath[report]" in out and "gradient norm versus depth" in out
    p = _Collector()
    p.feed(out)
    assert not p.stack


def test_static_html_plots_path_lengths_only(static_reports: dict[str, Report]) -> None:
    pytest.importorskip("matplotlib")
    from graphpath.stability.table import build_row, make_table

    table = make_table([build_row(r, None) for r in static_reports.values()])
    out = get_renderer("table", "html")(table)
    n = len(table.rows)
    assert len(re.findall(r"<svg", out)) == 2 * n  # overview panels and each section's distribution
    assert "Overview: gradient-path length distribution" in out
    # each section says which measured plots need the numeric pass (gradient, signal, gains)
    assert out.count("Gradient norm versus depth, signal propagation (forward), per-block gradient gain: "
                     "run with --numeric.") == n
