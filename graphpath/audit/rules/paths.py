"""GP2xx path rules: bounds and baseline regressions on the gradient-path section of a report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from graphpath.audit.rules.access import (
    as_number,
    format_log2_paths,
    path_count_log2,
    require_baseline,
    require_section,
)
from graphpath.audit.rules.types import Hit, Location, NotEvaluated, RuleConfig
from graphpath.report import get_nested

# ---------------------------------------------------------------------------------------------
# GP2xx paths


def _paths(report: Mapping[str, Any]) -> Mapping[str, Any]:
    paths = require_section(report, "paths", "path analysis did not run")
    if not isinstance(paths, Mapping):
        raise NotEvaluated("the report's paths section is not an object")
    return paths


def detect_shortest_path_too_long(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP201 shortest-path-too-long: per main output, the shortest path is over ``max_shortest_path``."""
    bound = config.threshold("max_shortest_path")
    paths = _paths(report)
    per_output = paths.get("per_output")
    items: list[tuple[str, Any]]
    if isinstance(per_output, Mapping) and per_output:
        items = [(o, get_nested(i, "shortest")) for o, i in sorted(per_output.items())
                 if get_nested(i, "role") != "auxiliary"]
    else:
        items = [("", paths.get("shortest"))]
    hits = []
    for out, shortest in items:
        length = as_number(get_nested(shortest, "length"))
        if length is None or length <= bound:
            continue
        where = f" to {out}" if out else ""
        hits.append(Hit(
            f"shortest gradient path{where} passes {int(length)} weighted layers (bound {bound:g}): "
            "no short path carries the loss gradient to the input layers",
            (Location("output", out.removeprefix("output:")) if out else Location("paths", "shortest"),),
            {"length": int(length), "bound": bound, "path": list(get_nested(shortest, "path") or [])},
        ))
    return hits


def detect_path_count_collapse(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP202 path-count-collapse: log2 of the total dropped by more than ``max_path_log2_drop``."""
    bound = config.threshold("max_path_log2_drop")
    base = require_baseline(config)
    now = path_count_log2(get_nested(_paths(report), "total"))
    before = path_count_log2(get_nested(base, "paths", "total"))
    if now is None or before is None:
        raise NotEvaluated("path totals missing from the report or the baseline")
    drop = before - now
    if not drop > bound:
        return []
    return [Hit(
        f"gradient path count collapsed from {format_log2_paths(before)} to {format_log2_paths(now)} "
        f"(drop {'all' if math.isinf(drop) else f'{drop:.2f}'} bits, bound {bound:g}): "
        "shortcuts or branches were lost",
        (Location("paths", "total"),),
        {"log2": None if math.isinf(now) else now, "baseline_log2": None if math.isinf(before) else before,
         "bound": bound},
    )]


def detect_path_count_below_minimum(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP203 path-count-below-minimum: log2 of the total is below ``min_path_log2``."""
    bound = config.threshold("min_path_log2")
    now = path_count_log2(get_nested(_paths(report), "total"))
    if now is None:
        raise NotEvaluated("the paths section has no total")
    if now >= bound:
        return []
    return [Hit(f"only {format_log2_paths(now)} from the inputs to the outputs (minimum 2^{bound:g})",
                (Location("paths", "total"),),
                {"log2": None if math.isinf(now) else now, "bound": bound})]


def detect_effective_depth_over_bound(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP204 effective-depth-over-bound: the mean path length is over ``max_effective_depth``."""
    bound = config.threshold("max_effective_depth")
    mean = as_number(get_nested(_paths(report), "effective_depth", "mean"))
    if mean is None:
        raise NotEvaluated("the paths section has no effective_depth")
    if mean <= bound:
        return []
    return [Hit(f"effective depth (mean gradient path length) is {mean:.1f} weighted layers "
                f"(bound {bound:g})", (Location("paths", "effective_depth"),),
                {"mean": mean, "bound": bound})]


def detect_shortest_path_regression(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP205 shortest-path-regression: the shortest path grew by more than
    ``max_shortest_path_increase`` against the baseline."""
    bound = config.threshold("max_shortest_path_increase")
    base = require_baseline(config)
    now = as_number(get_nested(_paths(report), "shortest", "length"))
    before = as_number(get_nested(base, "paths", "shortest", "length"))
    if now is None or before is None:
        raise NotEvaluated("shortest path missing from the report or the baseline")
    if not now - before > bound:
        return []
    return [Hit(f"shortest gradient path grew from {int(before)} to {int(now)} weighted layers "
                f"(bound +{bound:g})", (Location("paths", "shortest"),),
                {"length": int(now), "baseline_length": int(before), "bound": bound})]
