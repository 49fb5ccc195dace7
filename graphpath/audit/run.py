"""CI model audits: configuration, the audit itself and baselines.

``graphpath audit MODEL…`` analyses each model, evaluates the rules of :mod:`graphpath.audit.rules.catalog`
against its report with the thresholds and per-model expectations of the configuration, and
compares with a baseline report when one is given (only *new* findings fail then).

Configuration: :mod:`graphpath.audit.config`. Renderers of an :class:`AuditResult`: the ``"audit"``
formats of :mod:`graphpath.formats`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graphpath import onnx_io
from graphpath.audit.config import AuditConfig, display_path
from graphpath.audit.rules.catalog import (
    DEFAULT_THRESHOLDS,
    RULES,
    SEVERITIES,
    Finding,
    NotEvaluated,
    RuleConfig,
    find_rule,
    severity_rank,
)
from graphpath.errors import GraphpathError
from graphpath.model.loaded import LoadedModel

AUDIT_SCHEMA_VERSION = "1.0"
#: ``kind`` of the audit JSON (how a baseline file is recognised as an audit).
AUDIT_KIND = "graphpath-audit"

# ---------------------------------------------------------------------------------------------
# Baselines


@dataclass(frozen=True)
class Baseline:
    """Earlier reports by model name (the display path in an audit JSON, and the file name)."""

    source: str
    reports: Mapping[str, Mapping[str, Any]]
    count: int

    def report_for(self, display: str, file_name: str, single: bool) -> Mapping[str, Any] | None:
        for key in (display, file_name):
            if key in self.reports:
                return self.reports[key]
        if single and self.count == 1:
            return next(iter(self.reports.values()))
        return None


def _is_report(d: Any) -> bool:
    return isinstance(d, Mapping) and "schema_version" in d and isinstance(d.get("model"), Mapping)


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read an earlier ``graphpath analyze --format json`` report or ``audit --format json``.

    Raises:
        GraphpathError: missing file, not JSON, or neither kind of report.
    """
    shown = display_path(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GraphpathError(f"{shown}: baseline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphpathError(f"{shown}: cannot read baseline: {exc}") from None
    except json.JSONDecodeError as exc:
        raise GraphpathError(f"{shown}: baseline is not JSON: {exc}") from None
    reports: dict[str, Mapping[str, Any]] = {}
    if _is_report(data):
        reports[str(data["model"].get("file_name"))] = data
    elif isinstance(data, Mapping) and data.get("kind") == AUDIT_KIND and isinstance(data.get("models"), list):
        for entry in data["models"]:
            report = entry.get("report") if isinstance(entry, Mapping) else None
            if not _is_report(report):
                raise GraphpathError(f"{shown}: baseline audit entry without a report")
            assert isinstance(report, Mapping) and isinstance(entry, Mapping)
            reports.setdefault(str(entry.get("model")), report)
            reports.setdefault(str(report["model"].get("file_name")), report)
    else:
        raise GraphpathError(f"{shown}: not a graphpath analyze or audit JSON report")
    count = len({id(r) for r in reports.values()})
    return Baseline(source=shown, reports=reports, count=count)


def _metric(report: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(report, Mapping):
            return None
        report = report.get(k)  # type: ignore[assignment]
    return report


_PATH_METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("paths_log2", ("paths", "total", "log2")),
    ("shortest", ("paths", "shortest", "length")),
    ("longest", ("paths", "longest", "length")),
    ("effective_depth", ("paths", "effective_depth", "mean")),
    ("weighted_units", ("paths", "units", "weighted")),
    ("depth", ("layers", "depth")),
    ("parameters", ("model", "parameters", "count")),
)


def compare_reports(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two reports of a model: blocks gained or lost, path statistics,
    generation, numeric verdict.

    >>> d = compare_reports({"block_counts": {"c2f": 2, "sppf": 1}, "paths": {"shortest": {"length": 5}}},
    ...                     {"block_counts": {"c2f": 1}, "paths": {"shortest": {"length": 9}}})
    >>> d["blocks"], d["paths"]["shortest"], d["changed"]
    ({'gained': {}, 'lost': {'c2f': 1, 'sppf': 1}}, {'before': 5, 'after': 9}, True)
    """
    out: dict[str, Any] = {"same_file": _metric(before, "model", "sha256") == _metric(after, "model", "sha256")
                           and _metric(after, "model", "sha256") is not None}
    b_counts, a_counts = before.get("block_counts"), after.get("block_counts")
    if isinstance(b_counts, Mapping) and isinstance(a_counts, Mapping):
        kinds = sorted(set(b_counts) | set(a_counts))
        delta = {k: int(a_counts.get(k, 0)) - int(b_counts.get(k, 0)) for k in kinds}
        out["blocks"] = {"gained": {k: d for k, d in delta.items() if d > 0},
                         "lost": {k: -d for k, d in delta.items() if d < 0}}
    metrics = {}
    for name, keys in _PATH_METRICS:
        b, a = _metric(before, *keys), _metric(after, *keys)
        if (b is not None or a is not None) and b != a:
            metrics[name] = {"before": b, "after": a}
    out["paths"] = metrics
    for name, keys in (("generation", ("fingerprint", "generation")), ("verdict", ("numeric", "verdict"))):
        b, a = _metric(before, *keys), _metric(after, *keys)
        if b != a:
            out[name] = {"before": b, "after": a}
    blocks_changed = bool(out.get("blocks", {}).get("gained") or out.get("blocks", {}).get("lost"))
    out["changed"] = bool(metrics) or blocks_changed or "generation" in out or "verdict" in out
    return out


# ---------------------------------------------------------------------------------------------
# The audit


@dataclass(frozen=True)
class RuleOutcome:
    """One rule on one model: ``pass``, ``fail``, ``not_evaluated`` (with the reason) or
    ``disabled``."""

    rule_id: str
    status: str
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"rule_id": self.rule_id, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class ModelAudit:
    """One model's audit.

    Attributes:
        model: the model as shown (path relative to the current folder).
        report: its report (``Report.to_dict()``).
        outcomes: one per rule, in id order.
        findings: every finding, baseline or not.
        baseline_keys: keys of the baseline's findings (``None`` without a baseline for this
            model); a finding whose key is not among them is *new*.
        fixed: baseline findings that are gone.
        changes: :func:`compare_reports` against the baseline report, or ``None``.
    """

    model: str
    report: Mapping[str, Any]
    outcomes: tuple[RuleOutcome, ...]
    findings: tuple[Finding, ...]
    baseline_keys: frozenset[tuple[str, str, str]] | None = None
    fixed: tuple[Finding, ...] = ()
    changes: Mapping[str, Any] | None = None

    def is_new(self, finding: Finding) -> bool:
        return self.baseline_keys is None or finding.key() not in self.baseline_keys

    def baseline_state(self, finding: Finding) -> str | None:
        """SARIF ``baselineState``: ``new`` or ``unchanged``; ``None`` without a baseline."""
        if self.baseline_keys is None:
            return None
        return "new" if self.is_new(finding) else "unchanged"

    def to_dict(self, fail_on: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "report": self.report,
            "rules": [o.to_dict() for o in self.outcomes],
            "findings": [{**f.to_dict(), "baseline_state": self.baseline_state(f),
                          "failing": self.is_new(f) and severity_rank(f.severity) >= severity_rank(fail_on)}
                         for f in self.findings],
            "fixed": [f.to_dict() for f in self.fixed],
            "changes": self.changes,
        }


@dataclass(frozen=True)
class AuditResult:
    """Every model's audit and what the exit code is computed from."""

    models: tuple[ModelAudit, ...]
    fail_on: str = "error"
    config: str | None = None
    baseline: str | None = None
    numeric: bool = False
    #: Things the user should know about the run (stderr), e.g. numeric analysis unavailable.
    notes: tuple[str, ...] = ()

    def is_failing(self, audit: ModelAudit, finding: Finding) -> bool:
        """At or above ``fail_on``, and new when there is a baseline."""
        return severity_rank(finding.severity) >= severity_rank(self.fail_on) and audit.is_new(finding)

    def failing(self) -> list[tuple[ModelAudit, Finding]]:
        return [(m, f) for m in self.models for f in m.findings if self.is_failing(m, f)]

    def all_findings(self) -> list[tuple[ModelAudit, Finding]]:
        return [(m, f) for m in self.models for f in m.findings]

    def exit_code(self, exit_zero: bool = False) -> int:
        """0 clean (or ``--exit-zero``), 1 when a finding fails."""
        return 0 if exit_zero or not self.failing() else 1

    def counts(self) -> dict[str, Any]:
        by_sev: dict[str, int] = {s: 0 for s in SEVERITIES}
        new = 0
        for m, f in self.all_findings():
            by_sev[f.severity] += 1
            new += m.is_new(f)
        return {"models": len(self.models), "findings": sum(by_sev.values()), "by_severity": by_sev,
                "new": new if self.baseline else None, "failing": len(self.failing()),
                "fixed": sum(len(m.fixed) for m in self.models) if self.baseline else None}

    def summary_line(self) -> str:
        """One line for stderr.

        >>> AuditResult(models=()).summary_line()
        'graphpath audit: 0 models, no findings'
        """
        c = self.counts()
        head = f"graphpath audit: {c['models']} model{'s' * (c['models'] != 1)}, "
        if not c["findings"]:
            return head + "no findings" + (f" ({c['fixed']} fixed since the baseline)" if c["fixed"] else "")
        parts = ", ".join(f"{n} {s}{'s' * (n != 1)}" for s, n in reversed(c["by_severity"].items()) if n)
        extra = f"; {c['new']} new, {c['fixed']} fixed since the baseline" if self.baseline else ""
        return f"{head}{parts}{extra}; {c['failing']} at or above {self.fail_on}"

    def to_dict(self) -> dict[str, Any]:
        from graphpath import __version__

        return {
            "schema_version": AUDIT_SCHEMA_VERSION,
            "kind": AUDIT_KIND,
            "tool": {"name": "graphpath", "version": __version__},
            "config": self.config,
            "baseline": self.baseline,
            "fail_on": self.fail_on,
            "numeric": self.numeric,
            "summary": self.counts(),
            "notes": list(self.notes),
            "models": [m.to_dict(self.fail_on) for m in self.models],
        }


def evaluate(report: Mapping[str, Any], config: RuleConfig,
             enabled: frozenset[str] | None = None) -> tuple[tuple[RuleOutcome, ...], tuple[Finding, ...]]:
    """Every rule on one report: the outcome of each and all findings, in rule order.

    >>> outcomes, findings = evaluate({"model": {"file_name": "m.onnx", "custom_ops": {},
    ...                                "subgraphs": []}}, RuleConfig())
    >>> {o.rule_id: o.status for o in outcomes}["GP105"], findings
    ('pass', ())
    """
    outcomes: list[RuleOutcome] = []
    findings: list[Finding] = []
    for rule in RULES.values():
        if enabled is not None and rule.id not in enabled:
            outcomes.append(RuleOutcome(rule.id, "disabled", "disabled by the configuration"))
            continue
        try:
            found = rule.check(report, config)
        except NotEvaluated as why:
            outcomes.append(RuleOutcome(rule.id, "not_evaluated", str(why)))
            continue
        outcomes.append(RuleOutcome(rule.id, "fail" if found else "pass"))
        findings.extend(found)
    return tuple(outcomes), tuple(findings)


def numeric_available() -> bool:
    """Whether the numeric backward pass can run here (torch and graphpath.numeric.backward)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "graphpath.numeric.backward"))


def _numeric_section(model: LoadedModel, options: Any = None) -> dict[str, Any]:
    """The numeric backward pass of one model as a report section; a model it cannot handle
    (unsupported op, parity refused) gives ``{"error": …}`` and its GP3xx rules are not
    evaluated, so one such model does not hide the others' findings."""
    if not numeric_available():
        from graphpath.errors import MissingExtraError

        raise MissingExtraError("torch", "torch", "the numeric rules (audit --numeric)")
    from graphpath.numeric.backward import run_backward

    try:
        section: dict[str, Any] = run_backward(model, options).to_dict()
    except GraphpathError as exc:
        return {"error": str(exc)}
    return section


def _analyze(path: str | os.PathLike[str], blocks: bool, numeric: bool, options: Any = None) -> Mapping[str, Any]:
    from graphpath.analysis import AnalyzeOptions, analyze

    model = onnx_io.open_model(path)
    report: dict[str, Any] = analyze(model, AnalyzeOptions(blocks=blocks)).to_dict()
    if numeric and "numeric" not in report:
        report["numeric"] = _numeric_section(model, options)
    return report


def model_report(path: str | os.PathLike[str], *, blocks: bool = True, numeric: bool = False,
                 backward_options: Any = None) -> Mapping[str, Any]:
    """One model's report as the audit evaluates it (``Report.to_dict()``, plus the numeric
    section when asked): the unit of work that the registry runner (:mod:`graphpath.registry`)
    sends to a worker and caches."""
    return _analyze(path, blocks, numeric, backward_options)


Analyzer = Callable[[str | os.PathLike[str]], Mapping[str, Any]]


def audit(
    paths: Sequence[str | os.PathLike[str]],
    config: AuditConfig | None = None,
    baseline: str | os.PathLike[str] | Baseline | None = None,
    numeric: bool = False,
    *,
    fail_on: str | None = None,
    blocks: bool = True,
    analyzer: Analyzer | None = None,
    progress: Callable[[str], None] | None = None,
    backward_options: Any = None,
) -> AuditResult:
    """Audit the models at ``paths``.

    Args:
        paths: model files.
        config: the configuration (default: none, every default threshold).
        baseline: an earlier analyze or audit JSON (path or loaded); only new findings fail.
        numeric: run the numeric analysis too (the GP3xx rules are "not evaluated" otherwise,
            or when this build has no numeric analysis).
        fail_on: the lowest failing severity (default the config's, else ``error``).
        blocks: run block detection (the structure rules need it).
        analyzer: ``path → report dict`` instead of :func:`graphpath.analysis.analyze`.
        progress: called with each model's display name before it is analysed.
        backward_options: :class:`~graphpath.numeric.options.BackwardOptions` of the numeric pass
            (condition, seeds …); default: the file's own weights, one seed.

    Raises:
        GraphpathError: a model or the baseline cannot be read.
    """
    cfg = config or AuditConfig()
    base = load_baseline(baseline) if isinstance(baseline, (str, os.PathLike)) else baseline
    run_numeric = numeric or cfg.numeric
    run = analyzer or (lambda p: _analyze(p, blocks, run_numeric, backward_options))
    single = len(paths) == 1
    audits = []
    for path in paths:
        display = display_path(path)
        if progress is not None:
            progress(display)
        report = run(path)
        rc, enabled = cfg.for_model(display)
        before = None
        if base is not None:
            before = base.report_for(display, str(_metric(report, "model", "file_name")), single)
        outcomes, findings = evaluate(report, replace(rc, baseline=before), enabled)
        keys: frozenset[tuple[str, str, str]] | None = None
        fixed: tuple[Finding, ...] = ()
        changes = None
        if base is not None:
            old: tuple[Finding, ...] = ()
            if before is not None:
                _, old = evaluate(before, rc, enabled)
                changes = compare_reports(before, report)
            keys = frozenset(f.key() for f in old)
            now = {f.key() for f in findings}
            fixed = tuple(f for f in old if f.key() not in now)
        audits.append(ModelAudit(model=display, report=report, outcomes=outcomes, findings=findings,
                                 baseline_keys=keys, fixed=fixed, changes=changes))
    notes = tuple(
        f"{m.model}: numeric analysis failed, GP3xx rules not evaluated: {m.report['numeric']['error']}"
        for m in audits
        if isinstance(m.report.get("numeric"), Mapping) and m.report["numeric"].get("error")
    )
    return AuditResult(models=tuple(audits), fail_on=fail_on or cfg.fail_on or "error",
                       config=cfg.source, baseline=base.source if base else None, numeric=run_numeric,
                       notes=notes)


# ---------------------------------------------------------------------------------------------
# Rules


def render_rules(fmt: str = "text", rule: str | None = None) -> str:
    """``graphpath rules``: every rule as a table (text or Markdown) or JSON; one rule's help.

    >>> print(render_rules("text", "GP101").splitlines()[0])
    GP101 missing-expected-block (error, structure)
    """
    if rule is not None:
        found = find_rule(rule)
        if found is None:
            raise GraphpathError(f"unknown rule {rule!r} (see `graphpath rules`)")
        rules = [found]
    else:
        rules = list(RULES.values())
    if fmt == "json":
        return json.dumps([r.to_dict() for r in rules], indent=2, sort_keys=True) + "\n"
    if rule is not None:
        r = rules[0]
        lines = [f"{r.id} {r.name} ({r.severity}, {r.category})", "", r.summary + ".", "", r.help]
        if r.thresholds:
            lines += ["", "thresholds: " + ", ".join(f"{t} (default {DEFAULT_THRESHOLDS[t]})" for t in r.thresholds)]
        return "\n".join(lines) + "\n"
    if fmt in ("md", "markdown"):
        from graphpath.formats.markdown import md_escape

        rows = ["| id | name | severity | summary |", "| --- | --- | --- | --- |"]
        rows += [f"| {r.id} | `{r.name}` | {r.severity} | {md_escape(r.summary)} |" for r in rules]
        return "\n".join(rows) + "\n"
    width = max(len(r.name) for r in rules)
    return "".join(f"{r.id}  {r.name:<{width}}  {r.severity:<7}  {r.summary}\n" for r in rules)
