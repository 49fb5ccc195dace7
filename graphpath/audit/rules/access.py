"""Defensive access to a report's JSON for the rules: a missing key or section is "not evaluated".

``_get`` (a nested lookup that never raises) lives in :mod:`graphpath.audit.rules.types`, where
:meth:`~graphpath.audit.rules.types.Rule.check` needs it; the rest of the readers are here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from graphpath.audit.rules.types import Location, NotEvaluated, RuleConfig

# ---------------------------------------------------------------------------------------------
# Defensive report access


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
