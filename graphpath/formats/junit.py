"""Audit as JUnit XML: one ``<testsuite>`` per model, one ``<testcase>`` per rule.

A testcase fails (``<failure>``) when the rule has a finding that fails the audit (at or above
``--fail-on`` and new against the baseline); a rule that found only non-failing findings
passes with them in ``<system-out>``; a rule not evaluated or disabled is ``<skipped>`` with
the reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from graphpath.audit.rules.catalog import RULES, Finding

if TYPE_CHECKING:
    from graphpath.audit.run import AuditResult


def _line(f: Finding) -> str:
    where = f" at {', '.join(str(loc) for loc in f.locations[:5])}" if f.locations else ""
    return f"[{f.severity}] {f.message}{where}"


def render(result: AuditResult) -> str:
    root = ET.Element("testsuites", name="graphpath audit")
    total = failed = skipped = 0
    for m in result.models:
        suite = ET.SubElement(root, "testsuite", name=m.model)
        s_tests = s_failed = s_skipped = 0
        for outcome in m.outcomes:
            rule = RULES[outcome.rule_id]
            case = ET.SubElement(suite, "testcase", name=f"{rule.id} {rule.name}",
                                 classname=f"graphpath.{m.model}")
            s_tests += 1
            mine = [f for f in m.findings if f.rule_id == rule.id]
            failing = [f for f in mine if result.is_failing(m, f)]
            if outcome.status in ("not_evaluated", "disabled"):
                ET.SubElement(case, "skipped", message=outcome.reason or outcome.status)
                s_skipped += 1
            elif failing:
                s_failed += 1
                head = failing[0].message + (f" (and {len(failing) - 1} more)" if len(failing) > 1 else "")
                failure = ET.SubElement(case, "failure", message=head, type=rule.id)
                failure.text = "\n".join(_line(f) for f in failing)
            others = [f for f in mine if f not in failing]
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(
                    _line(f) + (" [in baseline]" if not m.is_new(f) else "") for f in others)
        suite.set("tests", str(s_tests))
        suite.set("failures", str(s_failed))
        suite.set("errors", "0")
        suite.set("skipped", str(s_skipped))
        total, failed, skipped = total + s_tests, failed + s_failed, skipped + s_skipped
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    root.set("skipped", str(skipped))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
