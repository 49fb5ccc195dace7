"""Audit as GitHub-flavoured Markdown (a job summary, ``$GITHUB_STEP_SUMMARY``).

Every model-supplied string (node names, messages, file names) goes through
:func:`~graphpath.formats.markdown.md_escape`: no raw HTML or Markdown from a model reaches the
page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphpath.audit.rules.catalog import RULES
from graphpath.formats.markdown import md_escape

if TYPE_CHECKING:
    from graphpath.audit.run import AuditResult

_ICON = {"error": "❌", "warning": "⚠️", "note": "ℹ️"}


def _changes(changes: Any) -> list[str]:
    rows = ["| what | baseline | now |", "| --- | --- | --- |"]
    blocks = changes.get("blocks") or {}
    for kind, n in sorted((blocks.get("gained") or {}).items()):
        rows.append(f"| block {md_escape(kind)} | | +{n} |")
    for kind, n in sorted((blocks.get("lost") or {}).items()):
        rows.append(f"| block {md_escape(kind)} | | −{n} |")
    for name, ba in sorted((changes.get("paths") or {}).items()):
        rows.append(f"| {md_escape(name)} | {md_escape(ba['before'])} | {md_escape(ba['after'])} |")
    for name in ("generation", "verdict"):
        if name in changes:
            rows.append(f"| {name} | {md_escape(changes[name]['before'])} | {md_escape(changes[name]['after'])} |")
    return rows if len(rows) > 2 else ["No structural or path changes."]


def render(result: AuditResult) -> str:
    c = result.counts()
    status = "failed" if c["failing"] else "passed"
    out = [f"## graphpath audit {status}", "", md_escape(result.summary_line()), ""]
    out += ["| model | errors | warnings | notes | failing | generation | paths (log2) | shortest |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for m in result.models:
        sev = {s: sum(f.severity == s for f in m.findings) for s in ("error", "warning", "note")}
        failing = sum(result.is_failing(m, f) for f in m.findings)
        gen = (m.report.get("fingerprint") or {}).get("generation", "")
        paths = m.report.get("paths") or {}
        log2 = (paths.get("total") or {}).get("log2")
        shortest = (paths.get("shortest") or {}).get("length")
        out.append(f"| {md_escape(m.model)} | {sev['error']} | {sev['warning']} | {sev['note']} | {failing} | "
                   f"{md_escape(gen)} | {'' if log2 is None else md_escape(log2)} | "
                   f"{'' if shortest is None else shortest} |")
    for m in result.models:
        if not m.findings and m.changes is None:
            continue
        out += ["", f"### {md_escape(m.model)}", ""]
        if m.findings:
            out += ["| | rule | severity | location | message |", "| --- | --- | --- | --- | --- |"]
            for f in m.findings:
                mark = "**fail**" if result.is_failing(m, f) else ("baseline" if not m.is_new(f) else "")
                where = md_escape(f.locations[0]) if f.locations else ""
                out.append(f"| {_ICON[f.severity]} {mark} | {f.rule_id} `{RULES[f.rule_id].name}` | "
                           f"{f.severity} | {where} | {md_escape(f.message)} |")
        if m.fixed:
            out += ["", "Fixed since the baseline: " + ", ".join(sorted({f.rule_id for f in m.fixed}))]
        if m.changes is not None:
            out += ["", "Changes against the baseline:", ""] + _changes(m.changes)
    return "\n".join(out) + "\n"
