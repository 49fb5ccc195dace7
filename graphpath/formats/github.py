"""Audit as GitHub Actions workflow commands (``::error file=…,title=…::message``).

GitHub shows at most 10 annotations of each of error, warning and notice per step; beyond
that it drops them silently. So each level gets at most 9 findings plus one annotation
summarising the rest. Property values escape ``%``, CR, LF, ``:`` and ``,``; messages escape
``%``, CR and LF (the workflow-command rules).

>>> escape_data("50% of\\nlines")
'50%25 of%0Alines'
>>> escape_property("a,b:c")
'a%2Cb%3Ac'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphpath.audit.rules.catalog import GITHUB_COMMAND, RULES, SEVERITIES

if TYPE_CHECKING:
    from graphpath.audit.rules.catalog import Finding
    from graphpath.audit.run import AuditResult, ModelAudit

#: Annotations GitHub shows per level and step.
MAX_PER_LEVEL = 10


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(command: str, message: str, file: str | None = None, title: str | None = None) -> str:
    props = []
    if file is not None:
        props.append(f"file={escape_property(file)}")
    if title is not None:
        props.append(f"title={escape_property(title)}")
    head = f"::{command} {','.join(props)}" if props else f"::{command}"
    return f"{head}::{escape_data(message)}"


def render(result: AuditResult) -> str:
    """One annotation per finding, errors first; findings that do not fail the audit (below
    ``--fail-on``, or already in the baseline) are annotated at their own level all the same,
    failing ones first within a level."""
    lines: list[str] = []
    by_level: dict[str, list[tuple[ModelAudit, Finding]]] = {s: [] for s in SEVERITIES}
    for m, f in result.all_findings():
        by_level[f.severity].append((m, f))
    for sev in reversed(SEVERITIES):
        items = sorted(by_level[sev], key=lambda mf: not result.is_failing(*mf))
        command = GITHUB_COMMAND[sev]
        shown = items if len(items) <= MAX_PER_LEVEL else items[: MAX_PER_LEVEL - 1]
        for m, f in shown:
            where = f" ({f.locations[0]})" if f.locations else ""
            state = m.baseline_state(f)
            tag = " [already in baseline]" if state == "unchanged" else ""
            title = f"{f.rule_id} {RULES[f.rule_id].name}{tag}"
            lines.append(annotation(command, f"{f.message}{where}", file=m.model, title=title))
        rest = items[len(shown):]
        if rest:
            models = sorted({m.model for m, _ in rest})
            lines.append(annotation(
                command,
                f"{len(rest)} more {sev} finding{'s' * (len(rest) != 1)} not annotated (GitHub shows at "
                f"most {MAX_PER_LEVEL} per step) in {', '.join(models)}; see the SARIF or the job summary",
                title=f"graphpath: {len(rest)} more {sev}s"))
    return "\n".join(lines) + "\n" if lines else ""
