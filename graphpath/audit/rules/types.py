"""The rule data model: severities, :class:`Rule`, its :class:`RuleConfig` and thresholds, and what a check yields.

A rule's ``detect`` reads a report dict and a :class:`RuleConfig` and returns :class:`Hit` s
(or raises :class:`NotEvaluated`); :meth:`Rule.check` turns them into :class:`Finding` s. The
rules themselves are in :mod:`graphpath.audit.rules.structure`, :mod:`graphpath.audit.rules.paths` and
:mod:`graphpath.audit.rules.numeric`; the registry is :data:`graphpath.audit.rules.catalog.RULES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from graphpath.report import get_nested

Severity = Literal["note", "warning", "error"]

#: Severities from least to most severe (the order of ``--fail-on``).
SEVERITIES: tuple[Severity, ...] = ("note", "warning", "error")

#: graphpath severity → SARIF ``level`` and GitHub workflow command (one map, used everywhere).
SARIF_LEVEL: dict[str, str] = {"note": "note", "warning": "warning", "error": "error"}
GITHUB_COMMAND: dict[str, str] = {"note": "notice", "warning": "warning", "error": "error"}


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (higher is more severe).

    >>> severity_rank("error") > severity_rank("warning") > severity_rank("note")
    True
    """
    return SEVERITIES.index(severity)  # type: ignore[arg-type,unused-ignore]


class NotEvaluated(Exception):
    """A rule could not be evaluated on this report (missing section, threshold or
    expectation); the message says why."""


@dataclass(frozen=True)
class Location:
    """Where in the model a finding points: an ONNX node, a layer-view unit, a block, an
    output, an op type or a report section (``kind``), by name."""

    kind: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name}

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Finding:
    """One rule violation in one model.

    Attributes:
        rule_id: the rule's stable id (``GP101``).
        severity: ``note``, ``warning`` or ``error`` (the configured one, default the rule's).
        model: the model file as the user named it (relative path).
        message: one sentence, with the measured value and the bound.
        locations: node names or logical locations; the first is the primary one.
        properties: measured values, sorted by key in JSON.
    """

    rule_id: str
    severity: str
    model: str
    message: str
    locations: tuple[Location, ...] = ()
    properties: tuple[tuple[str, Any], ...] = ()

    @property
    def location_key(self) -> str:
        """The locations as one stable string (``model`` when the finding has none)."""
        return "|".join(str(loc) for loc in self.locations) or "model"

    @property
    def fingerprint(self) -> str:
        """Stable across runs and across value changes: rule id + locations, hashed.

        >>> Finding("GP101", "error", "m.onnx", "x", (Location("block", "c2f"),)).fingerprint[:12]
        '12a3e6414a6c'
        """
        return hashlib.sha256(f"{self.rule_id}\0{self.location_key}".encode()).hexdigest()

    def key(self, model: str | None = None) -> tuple[str, str, str]:
        """What a baseline matches on: rule id, model name, location fingerprint."""
        return (self.rule_id, model if model is not None else self.model, self.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "model": self.model,
            "message": self.message,
            "locations": [loc.to_dict() for loc in self.locations],
            "properties": dict(self.properties),
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class RuleConfig:
    """What the rules of one model are checked against.

    Attributes:
        thresholds: numeric bounds by name (``max_shortest_path`` …); ``None`` or absent means
            the rules that need it are not evaluated. :func:`default_thresholds` gives the
            defaults.
        expect_blocks: block kinds the model must contain (GP101).
        generation: the generation the fingerprint must report (GP102).
        form: ``deploy`` or ``training`` (GP103, GP104 check deploy exports).
        model: the model's display name for findings (default the report's file name).
        baseline: the earlier report of the same model (GP202, GP205), or ``None``.
        severity: per-rule severity overrides.
    """

    thresholds: Mapping[str, float | None] = field(default_factory=lambda: default_thresholds())
    expect_blocks: tuple[str, ...] = ()
    generation: str | None = None
    form: str | None = None
    model: str = ""
    baseline: Mapping[str, Any] | None = None
    severity: Mapping[str, str] = field(default_factory=dict)

    def threshold(self, name: str) -> float:
        """The bound ``name``, or :class:`NotEvaluated` when it is not set."""
        value = self.thresholds.get(name)
        if value is None:
            raise NotEvaluated(f"threshold {name} is not set")
        return float(value)


@dataclass(frozen=True)
class Hit:
    """What ``detect`` returns: a message, its locations and measured values."""

    message: str
    locations: tuple[Location, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)


Detect = Callable[[Mapping[str, Any], RuleConfig], list[Hit]]


@dataclass(frozen=True)
class Rule:
    """One audit rule.

    Attributes:
        id: stable id, never reused (``GP101``).
        name: kebab-case name (``missing-expected-block``).
        summary: one line for listings.
        severity: default severity.
        help: what triggers it, why it matters, how to fix or silence it.
        thresholds: names of the thresholds it reads.
        detect: the pure check (see :data:`Detect`).
    """

    id: str
    name: str
    summary: str
    severity: Severity
    help: str
    detect: Detect = field(repr=False, compare=False)
    thresholds: tuple[str, ...] = ()

    @property
    def category(self) -> str:
        return {"1": "structure", "2": "paths", "3": "numeric"}[self.id[2]]

    def check(self, report: Mapping[str, Any], config: RuleConfig) -> list[Finding]:
        """Findings of this rule on ``report`` (raises :class:`NotEvaluated`)."""
        model = config.model or str(get_nested(report, "model", "file_name") or "")
        severity = config.severity.get(self.id, self.severity)
        return [
            Finding(rule_id=self.id, severity=severity, model=model, message=h.message,
                    locations=h.locations, properties=tuple(sorted(h.properties.items())))
            for h in self.detect(report, config)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "summary": self.summary, "severity": self.severity,
                "category": self.category, "help": self.help, "thresholds": list(self.thresholds)}


#: Default thresholds (``None``: the rules that need it are not evaluated unless configured).
DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "max_shortest_path": 32,
    "max_path_log2_drop": 1.0,
    "min_path_log2": None,
    "max_effective_depth": 120,
    "max_shortest_path_increase": 0,
    "min_gradient_ratio": None,
    "max_gradient_ratio": None,
    "max_dead_fraction": 0.5,
    "max_backend_rel_diff": 1e-3,
}


def default_thresholds() -> dict[str, float | None]:
    """A fresh copy of :data:`DEFAULT_THRESHOLDS`."""
    return dict(DEFAULT_THRESHOLDS)
