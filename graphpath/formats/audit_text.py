"""Audit as plain text for a terminal or a CI log: one block per model, one line per finding."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from graphpath.audit.rules.catalog import RULES

if TYPE_CHECKING:
    from graphpath.audit.run import AuditResult


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: object) -> str:
    r"""One line: control characters from model strings shown as escapes, never raw.

    >>> print(clean("a\nb"))
    a\nb
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def _change_lines(changes: Any) -> list[str]:
    lines: list[str] = []
    blocks = changes.get("blocks") or {}
    gained = ", ".join(f"+{n} {k}" for k, n in sorted((blocks.get("gained") or {}).items()))
    lost = ", ".join(f"-{n} {k}" for k, n in sorted((blocks.get("lost") or {}).items()))
    if gained or lost:
        lines.append("blocks: " + ", ".join(x for x in (gained, lost) if x))
    for name, ba in sorted((changes.get("paths") or {}).items()):
        lines.append(f"{name}: {ba['before']} -> {ba['after']}")
    for name in ("generation", "verdict"):
        if name in changes:
            lines.append(f"{name}: {changes[name]['before']} -> {changes[name]['after']}")
    if not lines:
        lines.append("no structural or path changes" + (" (same file)" if changes.get("same_file") else ""))
    return lines


def render(result: AuditResult) -> str:
    """Every model's findings (failing ones marked ``FAIL``), rules not evaluated, and the
    changes against the baseline."""
    out: list[str] = []
    for m in result.models:
        out.append(f"{m.model}")
        for f in m.findings:
            mark = "FAIL" if result.is_failing(m, f) else "    "
            state = m.baseline_state(f)
            tag = f" [{state}]" if state else ""
            where = f" at {clean(f.locations[0])}" if f.locations else ""
            more = f" (+{len(f.locations) - 1} more)" if len(f.locations) > 1 else ""
            out.append(f"  {mark} {f.rule_id} {f.severity:<7} {RULES[f.rule_id].name}{tag}{where}{more}")
            out.append(f"       {clean(f.message)}")
        if not m.findings:
            out.append("  no findings")
        skipped = [o for o in m.outcomes if o.status == "not_evaluated"]
        if skipped:
            out.append(f"  not evaluated: {', '.join(o.rule_id for o in skipped)}")
        if m.fixed:
            out.append(f"  fixed since the baseline: {', '.join(sorted({f.rule_id for f in m.fixed}))}")
        if m.changes is not None:
            out.append("  changes against the baseline:")
            out.extend(f"    {line}" for line in _change_lines(m.changes))
        elif result.baseline is not None:
            out.append("  no baseline report for this model")
    out.append(result.summary_line())
    return "\n".join(out) + "\n"
