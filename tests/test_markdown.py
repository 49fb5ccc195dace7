"""One Markdown escape: each escaped character on its own, and a hostile model name that can
neither break a table row nor inject HTML or Markdown in the audit summary or the stability
table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphpath.formats import get_renderer
from graphpath.formats.markdown import md_escape, md_unescape

#: every character md_escape changes, and what it writes instead
ESCAPED = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
    "\\": "\\\\", "`": "\\`", "|": "\\|", "*": "\\*", "_": "\\_", "~": "\\~",
    "[": "\\[", "]": "\\]", "(": "\\(", ")": "\\)", "!": "\\!", "{": "\\{", "}": "\\}",
    "#": "\\#", "+": "\\+", "-": "\\-",
    "\n": " ", "\r": " ",
}

#: a model name that tries everything: a column break, a new row, a heading, HTML, a code span,
#: emphasis, a link and an image
HOSTILE = 'evil|name`rm -rf`<script>alert("x")</script>\n| injected | row |\r\n# head *b* [l](u) ![i](v) a_b_c'
HOSTILE_MD = ("evil\\|name\\`rm \\-rf\\`&lt;script&gt;alert\\(&quot;x&quot;\\)&lt;/script&gt; \\| injected \\| "
              "row \\|  \\# head \\*b\\* \\[l\\]\\(u\\) \\!\\[i\\]\\(v\\) a\\_b\\_c")


@pytest.mark.parametrize(("char", "escaped"), list(ESCAPED.items()))
def test_each_escaped_character(char: str, escaped: str) -> None:
    assert md_escape(char) == escaped
    assert md_escape(f"a{char}b") == f"a{escaped}b"


def test_everything_else_is_kept() -> None:
    kept = "yolov8n.onnx model.22/cv2.0 x=1,y:2;z 'q' $ % ^ ? @ é ‖J‖ ✅ \t"
    assert not set(kept) & set(ESCAPED)
    assert md_escape(kept) == kept
    assert md_escape(1.5e-05) == "1.5e\\-05" and md_escape(None) == "None"


def test_the_hostile_name() -> None:
    assert md_escape(HOSTILE) == HOSTILE_MD
    assert md_unescape(HOSTILE_MD) == HOSTILE.replace("\r", " ").replace("\n", " ")


@given(st.text())
def test_escaped_text_is_inert_and_round_trips(text: str) -> None:
    out = md_escape(text)
    assert not set(out) & set('<>"\n\r')
    # every Markdown punctuation character is preceded by an odd run of backslashes
    for m in re.finditer(r"(\\*)([`|*_\[\](){}#+\-!~])", out):
        assert len(m.group(1)) % 2 == 1, (text, out)
    assert md_unescape(out) == text.replace("\r", " ").replace("\n", " ")


def _tables(md: str) -> list[list[str]]:
    """Consecutive ``|`` lines of ``md``, one list per table."""
    tables: list[list[str]] = []
    previous = False
    for line in md.splitlines():
        row = line.startswith("|")
        if row and not previous:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous = row
    return tables


def _assert_safe(md: str) -> None:
    assert HOSTILE_MD in md
    assert "<" not in md and ">" not in md  # no tag of any kind, ours or the model's
    for raw in ("`rm -rf`", "*b*", "[l](u)", "![i](v)", "a_b_c", "\n# head", "\n| injected"):
        assert raw not in md
    assert not [ln for ln in md.splitlines() if ln.lstrip("| ").startswith(("injected", "# head", "row"))]
    for table in _tables(md):
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in table}
        assert len(widths) == 1, table  # every row of a table has the header's columns


def test_audit_markdown_is_safe() -> None:
    from graphpath.audit.run import audit
    from tests.audit.test_rules import report

    reports = {HOSTILE: report(model={"file_name": HOSTILE},
                               export_notes=[{"code": "note", "message": HOSTILE}],
                               block_counts={HOSTILE: 1}, fingerprint={"generation": HOSTILE})}
    baseline = {"block_counts": {}, "model": {"file_name": HOSTILE}}
    result = audit(list(reports), analyzer=lambda p: reports[str(p)])
    md = get_renderer("audit", "md")(result)
    assert f"### {HOSTILE_MD}\n" in md and f"| {HOSTILE_MD} |" in md
    _assert_safe(md)

    from graphpath.audit.run import Baseline

    against = audit(list(reports), analyzer=lambda p: reports[str(p)],
                    baseline=Baseline(source="b.json", reports={HOSTILE: baseline}, count=1))
    md = get_renderer("audit", "md")(against)
    assert f"| block {HOSTILE_MD} | | +1 |" in md
    _assert_safe(md)


def test_table_markdown_is_safe() -> None:
    from graphpath.analysis import AnalyzeOptions, analyze
    from graphpath.formats.table_md import parse_rows
    from graphpath.stability.table import build_row, make_table

    rep = analyze(Path(__file__).resolve().parents[1] / "models" / "yolov1.onnx",
                  AnalyzeOptions(paths=False, blocks=False))
    rep = dataclasses.replace(rep, model=dataclasses.replace(rep.model, file_name=HOSTILE))
    table = make_table([build_row(rep, None, numeric_error=HOSTILE)], numeric=True,
                       numeric_options={"note": HOSTILE})
    md = get_renderer("table", "md")(table)
    assert f"| {HOSTILE_MD} |" in md
    _assert_safe(md)
    (row,) = parse_rows(md)
    assert row["model"] == HOSTILE.replace("\r", " ").replace("\n", " ")
