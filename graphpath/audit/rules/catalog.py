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

from collections.abc import Sequence

from graphpath.audit.rules.numeric import (
    detect_backend_disagreement,
    detect_dead_activations,
    detect_nan_inf,
    verdict_detector,
)
from graphpath.audit.rules.paths import (
    detect_effective_depth_over_bound,
    detect_path_count_below_minimum,
    detect_path_count_collapse,
    detect_shortest_path_regression,
    detect_shortest_path_too_long,
)
from graphpath.audit.rules.structure import (
    detect_auxiliary_branch_in_deploy,
    detect_control_flow_subgraph,
    detect_custom_domain_op,
    detect_embedded_nms,
    detect_export_note,
    detect_generation_mismatch,
    detect_missing_expected_block,
    detect_unfused_repvgg_in_deploy,
)
from graphpath.audit.rules.types import (
    DEFAULT_THRESHOLDS,
    GITHUB_COMMAND,
    SARIF_LEVEL,
    SEVERITIES,
    Detect,
    Finding,
    Hit,
    Location,
    NotEvaluated,
    Rule,
    RuleConfig,
    Severity,
    default_thresholds,
    severity_rank,
)

# The data model is re-exported: callers import every rule name from here.
__all__ = [
    "DEFAULT_THRESHOLDS", "GITHUB_COMMAND", "RULES", "SARIF_LEVEL", "SEVERITIES", "Detect", "Finding",
    "Hit", "Location", "NotEvaluated", "Rule", "RuleConfig", "Severity", "default_thresholds",
    "find_rule", "severity_rank",
]


# ---------------------------------------------------------------------------------------------
# The registry

_RULES: Sequence[Rule] = (
    Rule("GP101", "missing-expected-block", "An expected block kind is missing", "error",
         "The model matches a config entry with `expect_blocks`, and block detection found no "
         "block of one of those kinds. An export that lost a block (a C2f rewritten into plain "
         "convs, an SPPF dropped) changes how gradients flow. Fix the export or the expectation.",
         detect_missing_expected_block),
    Rule("GP102", "generation-mismatch", "The fingerprinted generation is not the expected one", "error",
         "The model matches a config entry with `generation`, and the fingerprint names another "
         "generation. Either the wrong file was exported, or the structure changed so much that "
         "it no longer looks like its family.", detect_generation_mismatch),
    Rule("GP103", "auxiliary-branch-in-deploy", "Training-only auxiliary branch or head in a deploy export",
         "error",
         "The model is configured as `form = \"deploy\"` but contains an auxiliary head (v9 PGI "
         "multi-level auxiliary head, v10 one-to-many head, v7 aux head), a PGI auxiliary "
         "reversible branch, or an output whose role is auxiliary. Deploy exports should drop "
         "them (re-parameterise / convert before export).", detect_auxiliary_branch_in_deploy),
    Rule("GP104", "unfused-repvgg-in-deploy", "RepVGG training branches in a deploy export", "warning",
         "The model is configured as `form = \"deploy\"` but has RepVGG/RepConv blocks in "
         "training form (3×3 ‖ 1×1 ‖ identity → add). Fuse them before export.",
         detect_unfused_repvgg_in_deploy),
    Rule("GP105", "custom-domain-op", "Ops from a custom (non-ONNX) domain", "warning",
         "The graph uses ops outside the standard ONNX domains. Other runtimes may not run them "
         "and graphpath's gradient analyses treat them as opaque.", detect_custom_domain_op),
    Rule("GP106", "control-flow-subgraph", "Control-flow op with a subgraph (If, Loop, Scan)", "warning",
         "A node holds a subgraph. The layer view, paths and blocks see the node as one opaque op "
         "and do not look inside it.", detect_control_flow_subgraph),
    Rule("GP107", "embedded-nms", "NMS is embedded in the export", "note",
         "The export includes non-maximum suppression. This is a deployment choice; the numeric "
         "analysis cuts the graph before it. Raise the severity if your runtime applies NMS itself.",
         detect_embedded_nms),
    Rule("GP108", "export-note", "An export note from the structure analysis", "note",
         "graphpath's structure analysis noted something about the export form (what the export "
         "hides or dropped, e.g. fused RepVGG branches or a removed auxiliary branch). One finding "
         "per note; the note code is the location.", detect_export_note),
    Rule("GP201", "shortest-path-too-long", "Shortest gradient path longer than a bound", "warning",
         "Length = weighted layers on the path (docs/paths.md). When even the shortest path from "
         "the input to a main output passes more than `max_shortest_path` weighted layers, no "
         "shortcut carries the gradient to the first layers.", detect_shortest_path_too_long,
         ("max_shortest_path",)),
    Rule("GP202", "path-count-collapse", "Gradient path count collapsed against the baseline", "error",
         "log2 of the number of gradient paths dropped by more than `max_path_log2_drop` bits "
         "from the baseline report: residual shortcuts, CSP bypasses or branches were lost.",
         detect_path_count_collapse, ("max_path_log2_drop",)),
    Rule("GP203", "path-count-below-minimum", "Fewer gradient paths than a minimum", "warning",
         "log2 of the number of gradient paths from the inputs to the outputs is below "
         "`min_path_log2` (not evaluated unless that threshold is set).",
         detect_path_count_below_minimum, ("min_path_log2",)),
    Rule("GP204", "effective-depth-over-bound", "Effective depth over a bound", "warning",
         "The mean gradient path length (the ensemble view's effective depth) exceeds "
         "`max_effective_depth` weighted layers.", detect_effective_depth_over_bound,
         ("max_effective_depth",)),
    Rule("GP205", "shortest-path-regression", "Shortest gradient path grew against the baseline",
         "warning",
         "The shortest gradient path is more than `max_shortest_path_increase` weighted layers "
         "longer than in the baseline report.", detect_shortest_path_regression,
         ("max_shortest_path_increase",)),
    Rule("GP301", "vanishing-gradient", "Vanishing gradients (numeric)", "error",
         "The numeric backward pass says the gradient vanishes with depth (verdict `vanishing`), "
         "or its ratio is below `min_gradient_ratio`.",
         verdict_detector("vanishing", "min_gradient_ratio", lambda r, b: r < b), ("min_gradient_ratio",)),
    Rule("GP302", "exploding-gradient", "Exploding gradients (numeric)", "error",
         "The numeric backward pass says the gradient explodes with depth (verdict `exploding`), "
         "or its ratio is above `max_gradient_ratio`.",
         verdict_detector("exploding", "max_gradient_ratio", lambda r, b: r > b), ("max_gradient_ratio",)),
    Rule("GP303", "dead-activations", "Dead activations over a fraction", "warning",
         "More than `max_dead_fraction` of a layer's activations are dead (zero gradient) on the "
         "probe input.", detect_dead_activations, ("max_dead_fraction",)),
    Rule("GP304", "nan-inf", "NaN or Inf in the numeric pass", "error",
         "The forward or backward pass produced NaN or Inf values.", detect_nan_inf),
    Rule("GP305", "backend-disagreement", "Numeric backends disagree", "warning",
         "With two backends, the per-parameter gradient norms differ by more than "
         "`max_backend_rel_diff` (relative).", detect_backend_disagreement, ("max_backend_rel_diff",)),
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
