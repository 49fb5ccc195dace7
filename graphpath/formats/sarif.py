"""Audit as SARIF 2.1.0, as GitHub code scanning accepts it.

- ``tool.driver.rules`` lists every rule (in id order, so ``ruleIndex`` is stable), with its
  default level from the one severity→level map of :mod:`graphpath.audit.rules.catalog`.
- Each result points at the model file (``physicalLocation.artifactLocation.uri``, relative,
  ``region.startLine`` 1: an ONNX file has no lines) and names the nodes, blocks, outputs or
  report sections it is about as ``logicalLocations``.
- ``partialFingerprints`` hash the rule id and the locations (never the message or the
  measured values), so a finding keeps its identity across runs; with a baseline each result
  carries ``baselineState`` (``new`` / ``unchanged``) and fixed findings come back as
  ``absent``.
- No timestamps and no absolute paths: the same audit gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from graphpath.audit.rules.catalog import RULES, SARIF_LEVEL, Finding

if TYPE_CHECKING:
    from graphpath.audit.run import AuditResult, ModelAudit

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "graphpathFindingHash/v1"
#: Logical locations per result (a block can cover hundreds of nodes).
MAX_LOGICAL_LOCATIONS = 20


def artifact_uri(model: str) -> str:
    """The model as a SARIF URI: relative paths stay relative (GitHub resolves them against the
    repository), absolute ones become ``file://`` URIs.

    >>> artifact_uri("models/my net.onnx"), artifact_uri("/tmp/m.onnx")
    ('models/my%20net.onnx', 'file:///tmp/m.onnx')
    """
    path = PurePosixPath(model)
    return path.as_uri() if path.is_absolute() else quote(model, safe="/")


def _rules() -> list[dict[str, Any]]:
    out = []
    for r in RULES.values():
        thresholds = f"\n\nThresholds: {', '.join(f'`{t}`' for t in r.thresholds)}." if r.thresholds else ""
        out.append({
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "fullDescription": {"text": r.help},
            "help": {"text": r.help, "markdown": f"**{r.id} {r.name}** ({r.category})\n\n{r.help}{thresholds}"},
            "defaultConfiguration": {"level": SARIF_LEVEL[r.severity]},
            "properties": {"tags": ["graphpath", r.category]},
        })
    return out


def _result(m: ModelAudit, f: Finding, index: dict[str, int], artifact: int, state: str | None) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": artifact_uri(m.model), "index": artifact},
            "region": {"startLine": 1},
        },
    }
    logical = [{"name": loc.name, "kind": loc.kind, "fullyQualifiedName": f"{m.model}::{loc}"}
               for loc in f.locations[:MAX_LOGICAL_LOCATIONS]]
    if logical:
        location["logicalLocations"] = logical
    res: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": index[f.rule_id],
        "level": SARIF_LEVEL[f.severity],
        "message": {"text": f.message},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
    }
    if f.properties or len(f.locations) > MAX_LOGICAL_LOCATIONS:
        props = dict(f.properties)
        if len(f.locations) > MAX_LOGICAL_LOCATIONS:
            props["locations_total"] = len(f.locations)
        res["properties"] = props
    if state is not None:
        res["baselineState"] = state
    return res


def to_sarif(result: AuditResult) -> dict[str, Any]:
    """The SARIF log as a dict."""
    from graphpath import __version__

    index = {rid: i for i, rid in enumerate(RULES)}
    artifacts = []
    results = []
    for i, m in enumerate(result.models):
        art: dict[str, Any] = {"location": {"uri": artifact_uri(m.model)}}
        sha = (m.report.get("model") or {}).get("sha256") if isinstance(m.report, dict) else None
        if sha:
            art["hashes"] = {"sha-256": sha}
        artifacts.append(art)
        results += [_result(m, f, index, i, m.baseline_state(f)) for f in m.findings]
        results += [_result(m, f, index, i, "absent") for f in m.fixed]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "graphpath", "version": __version__, "semanticVersion": __version__,
                            "rules": _rules()}},
        "artifacts": artifacts,
        "results": results,
        "columnKind": "utf16CodeUnits",
        "properties": {"fail_on": result.fail_on, "summary": result.counts()},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def render(result: AuditResult) -> str:
    return json.dumps(to_sarif(result), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
