"""GP2xx path rules: bounds and baseline regressions on the gradient-path section of a report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from graphpath.audit.rules.access import (
    _baseline,
    _fmt_log2,
    _log2,
    _number,
    _section,
)
from graphpath.audit.rules.types import Hit, Location, NotEvaluated, RuleConfig, _get

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
