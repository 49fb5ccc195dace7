"""Audit rules as data: stable IDs, one severity scale, pure checks over a report's JSON.

Every rule is a frozen :class:`Rule` with a stable id (GP1xx structure, GP2xx paths, GP3xx
numeric), a name, a one-line summary, a default severity, help text and a pure ``detect``
function of the report dict (``Report.to_dict()``) and a :class:`RuleConfig`. ``Rule.check``
wraps what ``detect`` found into :class:`Finding` s.

A rule whose inputs are absent — the report has no ``numeric`` section, no threshold is set,
no expectation is configured for this model, no baseline was given — raises
:class:`NotEvaluated` with the reason: it is reported as "not evaluated", never as a pass and
never as a crash. Rules read the report defensively (a missing key is "not evaluated").

Example:
    >>> report = {"model": {"file_name": "m.onnx"}, "block_counts": {"c2f": 2}}
    >>> [f.message for f in RULES["GP101"].check(report, RuleConfig(expect_blocks=("c2f", "sppf")))]
    ["expected block 'sppf' not found (config expect_blocks)"]
    >>> RULES["GP101"].check(report, RuleConfig(expect_blocks=("c2f",)))
    []
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
        model = config.model or str(_get(report, "model", "file_name") or "")
        severity = config.severity.get(self.id, self.severity)
        return [
            Finding(rule_id=self.id, severity=severity, model=model, message=h.message,
                    locations=h.locations, properties=tuple(sorted(h.properties.items())))
            for h in self.detect(report, config)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "summary": self.summary, "severity": self.severity,
                "category": self.category, "help": self.help, "thresholds": list(self.thresholds)}


# ---------------------------------------------------------------------------------------------
# Defensive report access


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…`` or ``None`` when any step is missing or not a mapping."""
    for k in keys:
        if not isinstance(obj, Mapping) or k not in obj:
            return None
        obj = obj[k]
    return obj


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _section(report: Mapping[str, Any], name: str, why: str) -> Any:
    value = report.get(name)
    if value is None:
        raise NotEvaluated(f"the report has no {name} section ({why})")
    return value


def _walk_blocks(blocks: Any) -> Iterator[Mapping[str, Any]]:
    """Every match of a ``blocks`` forest, parents before children."""
    todo = list(blocks) if isinstance(blocks, list) else []
    todo.reverse()
    while todo:
        m = todo.pop()
        if not isinstance(m, Mapping):
            continue
        yield m
        children = m.get("children")
        if isinstance(children, list):
            todo.extend(reversed(children))


def _block_location(m: Mapping[str, Any]) -> Location:
    label = m.get("label") or ""
    if not label:
        nodes = m.get("nodes") or []
        label = str(nodes[0]) if nodes else ""
    return Location("block", f"{m.get('kind')}@{label}" if label else str(m.get("kind")))


def _log2(paths: Any) -> float | None:
    """log2 of a ``{count, log2}`` path count; ``-inf`` for zero paths, ``None`` if absent."""
    if not isinstance(paths, Mapping):
        return None
    value = _number(paths.get("log2"))
    if value is not None:
        return value
    count = _number(paths.get("count"))
    if count is None:
        return None
    return math.log2(count) if count > 0 else -math.inf


def _fmt_log2(value: float) -> str:
    return "0 paths" if value == -math.inf else f"2^{value:.2f} paths"


def _baseline(config: RuleConfig) -> Mapping[str, Any]:
    if config.baseline is None:
        raise NotEvaluated("no baseline report given (--baseline)")
    return config.baseline


# ---------------------------------------------------------------------------------------------
# GP1xx structure


def _missing_blocks(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    if not config.expect_blocks:
        raise NotEvaluated("no expect_blocks configured for this model")
    counts = _section(report, "block_counts", "block detection did not run")
    return [
        Hit(f"expected block {kind!r} not found (config expect_blocks)", (Location("block", kind),),
            {"expected": kind, "found": sorted(k for k, n in counts.items() if n)})
        for kind in config.expect_blocks if not counts.get(kind)
    ]


def _generation(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    if config.generation is None:
        raise NotEvaluated("no generation configured for this model")
    fp = _section(report, "fingerprint", "block detection did not run")
    found = _get(fp, "generation")
    if found == config.generation:
        return []
    evidence = _get(fp, "evidence")
    first = f"; evidence: {evidence[0]}" if isinstance(evidence, list) and evidence else ""
    return [Hit(
        f"fingerprint says {found!r} (confidence {_number(_get(fp, 'confidence')) or 0:.2f}), "
        f"config expects {config.generation!r}{first}",
        (Location("fingerprint", "generation"),),
        {"expected": config.generation, "found": found, "confidence": _get(fp, "confidence")},
    )]


def _deploy(config: RuleConfig) -> None:
    if config.form != "deploy":
        raise NotEvaluated("the model's form is not configured as 'deploy'")


_AUX_KINDS = ("aux_head", "pgi")


def _aux_in_deploy(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    _deploy(config)
    hits: list[Hit] = []
    blocks = report.get("blocks")
    per_output = _get(report, "paths", "per_output")
    if blocks is None and not isinstance(per_output, Mapping):
        raise NotEvaluated("the report has neither blocks nor paths")
    for m in _walk_blocks(blocks):
        if m.get("kind") in _AUX_KINDS:
            hits.append(Hit(
                f"{m.get('kind')} block in a deploy export (training-only structure: "
                f"{len(m.get('nodes') or [])} nodes, {m.get('params', 0)} parameters)",
                (_block_location(m),),
                {"kind": m.get("kind"), "params": m.get("params"), "nodes": len(m.get("nodes") or [])},
            ))
    if isinstance(per_output, Mapping):
        for out, info in sorted(per_output.items()):
            if _get(info, "role") == "auxiliary":
                name = out.removeprefix("output:")
                hits.append(Hit(f"auxiliary output {name!r} in a deploy export", (Location("output", name),),
                                {"output": out}))
    return hits


def _training_branches(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    _deploy(config)
    blocks = _section(report, "blocks", "block detection did not run")
    reps = [m for m in _walk_blocks(blocks) if m.get("kind") == "repvgg"]
    if not reps:
        return []
    return [Hit(
        f"{len(reps)} unfused RepVGG block(s) in a deploy export (re-parameterise before export)",
        tuple(_block_location(m) for m in reps),
        {"count": len(reps), "params": sum(int(m.get("params") or 0) for m in reps)},
    )]


def _custom_ops(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    ops = _get(report, "model", "custom_ops")
    domains = _get(report, "model", "custom_domains") or []
    if not isinstance(ops, Mapping):
        raise NotEvaluated("the report's model section has no custom_ops")
    hits = [Hit(f"custom-domain op {op} ({n}×): other runtimes and the gradient analyses may not "
                "support it", (Location("op", op),), {"op": op, "count": n})
            for op, n in sorted(ops.items())]
    seen = {op.split("::")[0] for op in ops}
    hits += [Hit(f"custom domain {d!r} declared", (Location("domain", d),), {"domain": d})
             for d in domains if d not in seen]
    return hits


def _control_flow(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    subgraphs = _get(report, "model", "subgraphs")
    if not isinstance(subgraphs, list):
        raise NotEvaluated("the report's model section has no subgraphs list")
    return [
        Hit(f"{s.get('op_type')} node {s.get('node')!r} holds a subgraph ({s.get('attr')}, "
            f"{s.get('node_count')} nodes): path and block analyses do not look inside it",
            (Location("node", str(s.get("node"))),),
            {"op_type": s.get("op_type"), "attr": s.get("attr"), "node_count": s.get("node_count")})
        for s in subgraphs if isinstance(s, Mapping)
    ]


def _embedded_nms(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    hits = [Hit("NMS post-processing is embedded in the export", (_block_location(m),),
                {"nodes": len(m.get("nodes") or [])})
            for m in _walk_blocks(report.get("blocks")) if m.get("kind") == "nms"]
    if hits:
        return hits
    n = _number(_get(report, "model", "op_histogram", "NonMaxSuppression"))
    if n:
        return [Hit(f"NonMaxSuppression op in the export ({int(n)}×)",
                    (Location("op", "NonMaxSuppression"),), {"count": int(n)})]
    return []


def _export_notes(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    notes = _section(report, "export_notes", "block detection did not run")
    return [Hit(f"[{n.get('code')}] {n.get('message')}", (Location("note", str(n.get("code"))),),
                {"code": n.get("code")})
            for n in notes if isinstance(n, Mapping)]


# ---------------------------------------------------------------------------------------------
# GP2xx paths


def _paths(report: Mapping[str, Any]) -> Mapping[str, Any]:
    paths = _section(report, "paths", "path analysis did not run")
    if not isinstance(paths, Mapping):
        raise NotEvaluated("the report's paths section is not an object")
    return paths


def _shortest_too_long(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("max_shortest_path")
    paths = _paths(report)
    per_output = paths.get("per_output")
    items: list[tuple[str, Any]]
    if isinstance(per_output, Mapping) and per_output:
        items = [(o, _get(i, "shortest")) for o, i in sorted(per_output.items())
                 if _get(i, "role") != "auxiliary"]
    else:
        items = [("", paths.get("shortest"))]
    hits = []
    for out, shortest in items:
        length = _number(_get(shortest, "length"))
        if length is None or length <= bound:
            continue
        where = f" to {out}" if out else ""
        hits.append(Hit(
            f"shortest gradient path{where} passes {int(length)} weighted layers (bound {bound:g}): "
            "no short path carries the loss gradient to the input layers",
            (Location("output", out.removeprefix("output:")) if out else Location("paths", "shortest"),),
            {"length": int(length), "bound": bound, "path": list(_get(shortest, "path") or [])},
        ))
    return hits


def _path_collapse(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("max_path_log2_drop")
    base = _baseline(config)
    now = _log2(_get(_paths(report), "total"))
    before = _log2(_get(base, "paths", "total"))
    if now is None or before is None:
        raise NotEvaluated("path totals missing from the report or the baseline")
    drop = before - now
    if not drop > bound:
        return []
    return [Hit(
        f"gradient path count collapsed from {_fmt_log2(before)} to {_fmt_log2(now)} "
        f"(drop {'all' if math.isinf(drop) else f'{drop:.2f}'} bits, bound {bound:g}): "
        "shortcuts or branches were lost",
        (Location("paths", "total"),),
        {"log2": None if math.isinf(now) else now, "baseline_log2": None if math.isinf(before) else before,
         "bound": bound},
    )]


def _path_minimum(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("min_path_log2")
    now = _log2(_get(_paths(report), "total"))
    if now is None:
        raise NotEvaluated("the paths section has no total")
    if now >= bound:
        return []
    return [Hit(f"only {_fmt_log2(now)} from the inputs to the outputs (minimum 2^{bound:g})",
                (Location("paths", "total"),),
                {"log2": None if math.isinf(now) else now, "bound": bound})]


def _effective_depth(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("max_effective_depth")
    mean = _number(_get(_paths(report), "effective_depth", "mean"))
    if mean is None:
        raise NotEvaluated("the paths section has no effective_depth")
    if mean <= bound:
        return []
    return [Hit(f"effective depth (mean gradient path length) is {mean:.1f} weighted layers "
                f"(bound {bound:g})", (Location("paths", "effective_depth"),),
                {"mean": mean, "bound": bound})]


def _shortest_regression(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("max_shortest_path_increase")
    base = _baseline(config)
    now = _number(_get(_paths(report), "shortest", "length"))
    before = _number(_get(base, "paths", "shortest", "length"))
    if now is None or before is None:
        raise NotEvaluated("shortest path missing from the report or the baseline")
    if not now - before > bound:
        return []
    return [Hit(f"shortest gradient path grew from {int(before)} to {int(now)} weighted layers "
                f"(bound +{bound:g})", (Location("paths", "shortest"),),
                {"length": int(now), "baseline_length": int(before), "bound": bound})]


# ---------------------------------------------------------------------------------------------
# GP3xx numeric


def _numeric(report: Mapping[str, Any]) -> Mapping[str, Any]:
    numeric = _section(report, "numeric", "run with --numeric")
    if not isinstance(numeric, Mapping):
        raise NotEvaluated("the report's numeric section is not an object")
    if numeric.get("error") and numeric.get("verdict") is None:
        raise NotEvaluated(f"the numeric analysis failed: {numeric['error']}")
    return numeric


def _value(entry: Any) -> Any:
    """``entry["value"]`` for the ``{"value": …}`` entries of the numeric section, else ``entry``."""
    return entry.get("value") if isinstance(entry, Mapping) else entry


def _verdict_rule(verdict: str, threshold: str, beyond: Callable[[float, float], bool]) -> Detect:
    def detect(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
        numeric = _numeric(report)
        raw = numeric.get("verdict")
        found = _value(raw)
        why = raw.get("reason") if isinstance(raw, Mapping) else numeric.get("reason")
        ratio = _number(_value(numeric.get("ratio")))
        bound = config.thresholds.get(threshold)
        if found is None and (ratio is None or bound is None):
            raise NotEvaluated("the numeric section has no verdict")
        props = {"verdict": found, "ratio": ratio, "reason": why}
        reason = f": {why}" if why else ""
        if found == verdict:
            return [Hit(f"numeric verdict is {verdict}{reason}", (Location("numeric", "verdict"),), props)]
        if ratio is not None and bound is not None and beyond(ratio, float(bound)):
            return [Hit(f"gradient ratio {ratio:.3g} is beyond the {verdict} bound {float(bound):g}",
                        (Location("numeric", "ratio"),), {**props, "bound": float(bound)})]
        return []

    return detect


def _dead_fractions(numeric: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(where, fraction)`` pairs: ``dead`` is ``{activation: {dead, total, fraction, units}}``
    (graphpath.numeric.backward); per-unit maps and lists are read too."""
    out: list[tuple[str, float]] = []
    for key in ("dead", "dead_fractions", "dead_activations"):
        value = numeric.get(key)
        if isinstance(value, Mapping):
            per_unit = value.get("per_unit")
            inner: Mapping[str, Any] = per_unit if isinstance(per_unit, Mapping) else value
            for name, frac in inner.items():
                f = _number(frac.get("fraction") if isinstance(frac, Mapping) else frac)
                if f is not None:
                    out.append((str(name), f))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    f = _number(item.get("fraction", item.get("dead_fraction")))
                    where = item.get("unit") or item.get("name") or item.get("tensor")
                    if f is not None and where is not None:
                        out.append((str(where), f))
    total = _number(numeric.get("dead_fraction"))
    if total is not None and not out:
        out.append(("all", total))
    return out


def _dead(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("max_dead_fraction")
    fracs = _dead_fractions(_numeric(report))
    if not fracs:
        raise NotEvaluated("the numeric section has no dead-activation fractions")
    return [Hit(f"{frac:.0%} of the {name} activation elements are dead on the probe input "
                f"(bound {bound:.0%})", (Location("activation", name),), {"fraction": frac, "bound": bound})
            for name, frac in sorted(fracs) if frac > bound]


def _nan_inf(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    numeric = _numeric(report)
    key = "nonfinite" if "nonfinite" in numeric else "nan_inf"
    if key not in numeric:
        raise NotEvaluated("the numeric section has no nonfinite entry")
    value = numeric[key]
    names: list[str] = []
    if isinstance(value, Mapping):
        raw = value.get("tensors") or value.get("names") or []
        names = [str(n) for n in raw] if isinstance(raw, list) else []
        count = _number(value.get("count"))
        bad = bool(names) or bool(count) or value.get("found") is True
    elif isinstance(value, list):
        names, bad = [str(n) for n in value], bool(value)
    else:
        bad = bool(value)
    if not bad:
        return []
    locs = tuple(Location("tensor", n) for n in names[:20]) or (Location("numeric", "nonfinite"),)
    shown = f": {', '.join(names[:5])}{' …' if len(names) > 5 else ''}" if names else ""
    return [Hit(f"NaN or Inf in the forward or backward pass{shown}", locs,
                {"tensors": names, "count": len(names)})]


def _disagreement(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    bound = config.threshold("max_backend_rel_diff")
    numeric = _numeric(report)
    agreement = (_get(numeric, "backend", "agreement") or numeric.get("agreement")
                 or _get(numeric, "backends", "agreement"))
    if agreement is None:
        raise NotEvaluated("only one numeric backend ran, so there is no agreement to check")
    diff = None
    props: dict[str, Any] = {}
    if isinstance(agreement, Mapping):
        for key in ("max_rel_diff", "max_relative_difference", "max_rel_err", "rel_diff"):
            diff = _number(agreement.get(key))
            if diff is not None:
                break
        props = {k: agreement[k] for k in ("worst_parameter", "compared") if k in agreement}
        if diff is None and agreement.get("agree") is False:
            return [Hit("the numeric backends disagree", (Location("numeric", "agreement"),), props)]
    else:
        diff = _number(agreement)
    if diff is None or diff <= bound:
        return []
    worst = props.get("worst_parameter")
    where = (Location("parameter", str(worst)),) if worst else (Location("numeric", "agreement"),)
    return [Hit(f"backends disagree: largest relative gradient-norm difference {diff:.3g} "
                f"(bound {bound:g}){f' at {worst}' if worst else ''}", where,
                {**props, "max_rel_diff": diff, "bound": bound})]


# ---------------------------------------------------------------------------------------------
# The registry

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


_RULES: Sequence[Rule] = (
    Rule("GP101", "missing-expected-block", "An expected block kind is missing", "error",
         "The model matches a config entry with `expect_blocks`, and block detection found no "
         "block of one of those kinds. An export that lost a block (a C2f rewritten into plain "
         "convs, an SPPF dropped) changes how gradients flow. Fix the export or the expectation.",
         _missing_blocks),
    Rule("GP102", "generation-mismatch", "The fingerprinted generation is not the expected one", "error",
         "The model matches a config entry with `generation`, and the fingerprint names another "
         "generation. Either the wrong file was exported, or the structure changed so much that "
         "it no longer looks like its family.", _generation),
    Rule("GP103", "auxiliary-branch-in-deploy", "Training-only auxiliary branch or head in a deploy export",
         "error",
         "The model is configured as `form = \"deploy\"` but contains an auxiliary head (v9 PGI "
         "multi-level auxiliary head, v10 one-to-many head, v7 aux head), a PGI auxiliary "
         "reversible branch, or an output whose role is auxiliary. Deploy exports should drop "
         "them (re-parameterise / convert before export).", _aux_in_deploy),
    Rule("GP104", "unfused-repvgg-in-deploy", "RepVGG training branches in a deploy export", "warning",
         "The model is configured as `form = \"deploy\"` but has RepVGG/RepConv blocks in "
         "training form (3×3 ‖ 1×1 ‖ identity → add). Fuse them before export.", _training_branches),
    Rule("GP105", "custom-domain-op", "Ops from a custom (non-ONNX) domain", "warning",
         "The graph uses ops outside the standard ONNX domains. Other runtimes may not run them "
         "and graphpath's gradient analyses treat them as opaque.", _custom_ops),
    Rule("GP106", "control-flow-subgraph", "Control-flow op with a subgraph (If, Loop, Scan)", "warning",
         "A node holds a subgraph. The layer view, paths and blocks see the node as one opaque op "
         "and do not look inside it.", _control_flow),
    Rule("GP107", "embedded-nms", "NMS is embedded in the export", "note",
         "The export includes non-maximum suppression. This is a deployment choice; the numeric "
         "analysis cuts the graph before it. Raise the severity if your runtime applies NMS itself.",
         _embedded_nms),
    Rule("GP108", "export-note", "An export note from the structure analysis", "note",
         "graphpath's structure analysis noted something about the export form (what the export "
         "hides or dropped, e.g. fused RepVGG branches or a removed auxiliary branch). One finding "
         "per note; the note code is the location.", _export_notes),
    Rule("GP201", "shortest-path-too-long", "Shortest gradient path longer than a bound", "warning",
         "Length = weighted layers on the path (docs/paths.md). When even the shortest path from "
         "the input to a main output passes more than `max_shortest_path` weighted layers, no "
         "shortcut carries the gradient to the first layers.", _shortest_too_long,
         ("max_shortest_path",)),
    Rule("GP202", "path-count-collapse", "Gradient path count collapsed against the baseline", "error",
         "log2 of the number of gradient paths dropped by more than `max_path_log2_drop` bits "
         "from the baseline report: residual shortcuts, CSP bypasses or branches were lost.",
         _path_collapse, ("max_path_log2_drop",)),
    Rule("GP203", "path-count-below-minimum", "Fewer gradient paths than a minimum", "warning",
         "log2 of the number of gradient paths from the inputs to the outputs is below "
         "`min_path_log2` (not evaluated unless that threshold is set).", _path_minimum,
         ("min_path_log2",)),
    Rule("GP204", "effective-depth-over-bound", "Effective depth over a bound", "warning",
         "The mean gradient path length (the ensemble view's effective depth) exceeds "
         "`max_effective_depth` weighted layers.", _effective_depth, ("max_effective_depth",)),
    Rule("GP205", "shortest-path-regression", "Shortest gradient path grew against the baseline",
         "warning",
         "The shortest gradient path is more than `max_shortest_path_increase` weighted layers "
         "longer than in the baseline report.", _shortest_regression, ("max_shortest_path_increase",)),
    Rule("GP301", "vanishing-gradient", "Vanishing gradients (numeric)", "error",
         "The numeric backward pass says the gradient vanishes with depth (verdict `vanishing`), "
         "or its ratio is below `min_gradient_ratio`.",
         _verdict_rule("vanishing", "min_gradient_ratio", lambda r, b: r < b), ("min_gradient_ratio",)),
    Rule("GP302", "exploding-gradient", "Exploding gradients (numeric)", "error",
         "The numeric backward pass says the gradient explodes with depth (verdict `exploding`), "
         "or its ratio is above `max_gradient_ratio`.",
         _verdict_rule("exploding", "max_gradient_ratio", lambda r, b: r > b), ("max_gradient_ratio",)),
    Rule("GP303", "dead-activations", "Dead activations over a fraction", "warning",
         "More than `max_dead_fraction` of a layer's activations are dead (zero gradient) on the "
         "probe input.", _dead, ("max_dead_fraction",)),
    Rule("GP304", "nan-inf", "NaN or Inf in the numeric pass", "error",
         "The forward or backward pass produced NaN or Inf values.", _nan_inf),
    Rule("GP305", "backend-disagreement", "Numeric backends disagree", "warning",
         "With two backends, the per-parameter gradient norms differ by more than "
         "`max_backend_rel_diff` (relative).", _disagreement, ("max_backend_rel_diff",)),
)

#: Every rule by id, in id order.
RULES: dict[str, Rule] = {r.id: r for r in sorted(_RULES, key=lambda r: r.id)}


def find_rule(key: str) -> Rule | None:
    """A rule by id (``GP101``, any case) or name (``missing-expected-block``).

    >>> find_rule("gp201").name, find_rule("path-count-collapse").id
    ('shortest-path-too-long', 'GP202')
    """
    up = key.upper()
    if up in RULES:
        return RULES[up]
    return next((r for r in RULES.values() if r.name == key), None)
