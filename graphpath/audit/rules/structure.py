"""GP1xx structure rules: expected blocks and generation, deploy-form checks, custom ops, control flow, NMS, export notes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphpath.audit.rules.access import (
    as_number,
    block_location,
    require_section,
    walk_blocks,
)
from graphpath.audit.rules.types import Hit, Location, NotEvaluated, RuleConfig
from graphpath.report import get_nested

# ---------------------------------------------------------------------------------------------
# GP1xx structure


def detect_missing_expected_block(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP101 missing-expected-block: a kind in ``expect_blocks`` has no detected block."""
    if not config.expect_blocks:
        raise NotEvaluated("no expect_blocks configured for this model")
    counts = require_section(report, "block_counts", "block detection did not run")
    return [
        Hit(f"expected block {kind!r} not found (config expect_blocks)", (Location("block", kind),),
            {"expected": kind, "found": sorted(k for k, n in counts.items() if n)})
        for kind in config.expect_blocks if not counts.get(kind)
    ]


def detect_generation_mismatch(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP102 generation-mismatch: the fingerprint's generation is not the configured one."""
    if config.generation is None:
        raise NotEvaluated("no generation configured for this model")
    fp = require_section(report, "fingerprint", "block detection did not run")
    found = get_nested(fp, "generation")
    if found == config.generation:
        return []
    evidence = get_nested(fp, "evidence")
    first = f"; evidence: {evidence[0]}" if isinstance(evidence, list) and evidence else ""
    return [Hit(
        f"fingerprint says {found!r} (confidence {as_number(get_nested(fp, 'confidence')) or 0:.2f}), "
        f"config expects {config.generation!r}{first}",
        (Location("fingerprint", "generation"),),
        {"expected": config.generation, "found": found, "confidence": get_nested(fp, "confidence")},
    )]


def _deploy(config: RuleConfig) -> None:
    if config.form != "deploy":
        raise NotEvaluated("the model's form is not configured as 'deploy'")


_AUX_KINDS = ("aux_head", "pgi")


def detect_auxiliary_branch_in_deploy(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP103 auxiliary-branch-in-deploy: auxiliary blocks or outputs in a deploy export."""
    _deploy(config)
    hits: list[Hit] = []
    blocks = report.get("blocks")
    per_output = get_nested(report, "paths", "per_output")
    if blocks is None and not isinstance(per_output, Mapping):
        raise NotEvaluated("the report has neither blocks nor paths")
    for m in walk_blocks(blocks):
        if m.get("kind") in _AUX_KINDS:
            hits.append(Hit(
                f"{m.get('kind')} block in a deploy export (training-only structure: "
                f"{len(m.get('nodes') or [])} nodes, {m.get('params', 0)} parameters)",
                (block_location(m),),
                {"kind": m.get("kind"), "params": m.get("params"), "nodes": len(m.get("nodes") or [])},
            ))
    if isinstance(per_output, Mapping):
        for out, info in sorted(per_output.items()):
            if get_nested(info, "role") == "auxiliary":
                name = out.removeprefix("output:")
                hits.append(Hit(f"auxiliary output {name!r} in a deploy export", (Location("output", name),),
                                {"output": out}))
    return hits


def detect_unfused_repvgg_in_deploy(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP104 unfused-repvgg-in-deploy: RepVGG blocks in training form in a deploy export."""
    _deploy(config)
    blocks = require_section(report, "blocks", "block detection did not run")
    reps = [m for m in walk_blocks(blocks) if m.get("kind") == "repvgg"]
    if not reps:
        return []
    return [Hit(
        f"{len(reps)} unfused RepVGG block(s) in a deploy export (re-parameterise before export)",
        tuple(block_location(m) for m in reps),
        {"count": len(reps), "params": sum(int(m.get("params") or 0) for m in reps)},
    )]


def detect_custom_domain_op(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP105 custom-domain-op: one hit per custom-domain op type and per unused custom domain."""
    ops = get_nested(report, "model", "custom_ops")
    domains = get_nested(report, "model", "custom_domains") or []
    if not isinstance(ops, Mapping):
        raise NotEvaluated("the report's model section has no custom_ops")
    hits = [Hit(f"custom-domain op {op} ({n}×): other runtimes and the gradient analyses may not "
                "support it", (Location("op", op),), {"op": op, "count": n})
            for op, n in sorted(ops.items())]
    seen = {op.split("::")[0] for op in ops}
    hits += [Hit(f"custom domain {d!r} declared", (Location("domain", d),), {"domain": d})
             for d in domains if d not in seen]
    return hits


def detect_control_flow_subgraph(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP106 control-flow-subgraph: one hit per node that holds a subgraph."""
    subgraphs = get_nested(report, "model", "subgraphs")
    if not isinstance(subgraphs, list):
        raise NotEvaluated("the report's model section has no subgraphs list")
    return [
        Hit(f"{s.get('op_type')} node {s.get('node')!r} holds a subgraph ({s.get('attr')}, "
            f"{s.get('node_count')} nodes): path and block analyses do not look inside it",
            (Location("node", str(s.get("node"))),),
            {"op_type": s.get("op_type"), "attr": s.get("attr"), "node_count": s.get("node_count")})
        for s in subgraphs if isinstance(s, Mapping)
    ]


def detect_embedded_nms(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP107 embedded-nms: NMS blocks, else ``NonMaxSuppression`` ops, in the export."""
    hits = [Hit("NMS post-processing is embedded in the export", (block_location(m),),
                {"nodes": len(m.get("nodes") or [])})
            for m in walk_blocks(report.get("blocks")) if m.get("kind") == "nms"]
    if hits:
        return hits
    n = as_number(get_nested(report, "model", "op_histogram", "NonMaxSuppression"))
    if n:
        return [Hit(f"NonMaxSuppression op in the export ({int(n)}×)",
                    (Location("op", "NonMaxSuppression"),), {"count": int(n)})]
    return []


def detect_export_note(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP108 export-note: one hit per export note of the structure analysis."""
    notes = require_section(report, "export_notes", "block detection did not run")
    return [Hit(f"[{n.get('code')}] {n.get('message')}", (Location("note", str(n.get("code"))),),
                {"code": n.get("code")})
            for n in notes if isinstance(n, Mapping)]
