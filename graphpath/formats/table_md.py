"""GitHub-flavoured Markdown of the stability table, fit for a PR comment.

Every cell goes through :func:`~graphpath.formats.markdown.md_escape`: model files carry
arbitrary node, output and file names, and a pipe, newline, backtick or ``<script>`` in one must
not break the table or inject HTML into the page that renders it.
"""

from __future__ import annotations

import re

from graphpath.formats.markdown import md_escape, md_unescape
from graphpath.stability.table import COLUMNS, StabilityTable, cell, verdict_label

_NUMERIC = {"units", "depth", "paths_log10", "shortest_path", "longest_path", "effective_depth", "ratio",
            "min_block_gain", "max_block_gain", "max_block_jacobian", "dead_fraction"}

def _table(head: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(md_escape(h) for h in head) + " |",
           "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    out += ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    return out


def render_rows(table: StabilityTable) -> str:
    """Only the per-model table (what ``docs/stability-table.md`` embeds)."""
    head = [h for _, h in table.columns()]
    align = ["r" if k in _NUMERIC else "l" for k, _ in table.columns()]
    rows = [[cell(r, k) for k, _ in table.columns()] for r in table.rows]
    return "\n".join(_table(head, align, rows)) + "\n"


def render_seed(table: StabilityTable) -> str:
    """Only the seed comparison table."""
    head = ["seed row", "claims", "claimed reason", "models", "measured", "vs seed"]
    rows = [[c.row, verdict_label(c.claimed_verdict), c.claimed_reason, ", ".join(c.models) or "-",
             ", ".join(verdict_label(v) for v in c.measured) or "-", c.agreement]
            for c in table.seed_comparison()]
    return "\n".join(_table(head, ["l"] * len(head), rows)) + "\n"


def render(table: StabilityTable) -> str:
    lines = ["### Stability table", ""]
    if table.numeric:
        opts = ", ".join(f"{k} {md_escape(str(v))}" for k, v in sorted(table.numeric_options.items())
                         if v is not None)
        lines.append(f"Measured by graphpath's numeric backward pass ({opts or 'default options'}). "
                     "Verdicts: ❌ unstable (vanishing, exploding or non-finite), ⚠️ moderate, "
                     "✅ stable, ✅✅ very stable.")
        line = table.rank_agreement_line()
        if line is not None:
            lines += ["", md_escape(line) + "."]
    else:
        lines.append("Static columns only; the measured columns and verdicts need `--numeric`.")
    lines.append("")
    lines.append(render_rows(table))
    lines += ["### Seed 000 §18.2 against graphpath", ""]
    lines.append(render_seed(table))
    for sec in table.claim_sections():
        lines += [f"### {md_escape(sec.title)}", "", md_escape(sec.intro), ""]
        if not sec.body:
            lines += ["No model of these generations in this table.", ""]
            continue
        lines += _table(list(sec.head), ["l"] * len(sec.head), [list(r) for r in sec.body]) + [""]
    return "\n".join(lines)


def parse_rows(md: str) -> list[dict[str, str]]:
    r"""The first table of ``md`` back as rows keyed by column key, cells unescaped
    (:func:`~graphpath.formats.markdown.md_unescape`).

    Headers map to keys through :data:`graphpath.stability.table.COLUMNS`; an unknown header stays as it
    is. Used to compare a rendered table with a fresh one (``scripts/update_stability_doc.py``).

    >>> parse_rows("| model | depth |\n| --- | ---: |\n| a\\|b\\-1.onnx | 3 |\n")
    [{'model': 'a|b-1.onnx', 'depth': '3'}]

    Raises:
        ValueError: a row with another number of cells than the header.
    """
    table: list[str] = []
    for ln in md.splitlines():
        if ln.startswith("| "):
            table.append(ln)
        elif table:
            break
    cells = [[md_unescape(c.strip()) for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]] for ln in table]
    if not cells:
        return []
    by_header = {h: k for k, h in COLUMNS}
    keys = [by_header.get(h, h) for h in cells[0]]
    return [dict(zip(keys, row, strict=True)) for row in cells[2:]]
