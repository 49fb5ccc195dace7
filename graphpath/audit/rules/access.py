"""Defensive access to a report's JSON for the rules: a missing key or section is "not evaluated".

The nested lookup that never raises is :func:`graphpath.report.get_nested`, shared with every
other reader of a report's JSON; the readers only the rules need are here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from graphpath.audit.rules.types import Location, NotEvaluated, RuleConfig

# ---------------------------------------------------------------------------------------------
# Defensive report access


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is an int or a float (not a bool), else ``None``.

    >>> as_number(3), as_number(True), as_number("3")
    (3.0, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def require_section(report: Mapping[str, Any], name: str, why: str) -> Any:
    """The report's section ``name``, or :class:`NotEvaluated` saying it is absent and ``why``."""
    value = report.get(name)
    if value is None:
        raise NotEvaluated(f"the report has no {name} section ({why})")
    return value


def walk_blocks(blocks: Any) -> Iterator[Mapping[str, Any]]:
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


def block_location(m: Mapping[str, Any]) -> Location:
    """A block match as a :class:`Location`: ``kind@label`` (the first node when it has no label)."""
    label = m.get("label") or ""
    if not label:
        nodes = m.get("nodes") or []
        label = str(nodes[0]) if nodes else ""
    return Location("block", f"{m.get('kind')}@{label}" if label else str(m.get("kind")))


def path_count_log2(paths: Any) -> float | None:
    """log2 of a ``{count, log2}`` path count; ``-inf`` for zero paths, ``None`` if absent."""
    if not isinstance(paths, Mapping):
        return None
    value = as_number(paths.get("log2"))
    if value is not None:
        return value
    count = as_number(paths.get("count"))
    if count is None:
        return None
    return math.log2(count) if count > 0 else -math.inf


def format_log2_paths(value: float) -> str:
    """A log2 path count for a message.

    >>> format_log2_paths(12.345), format_log2_paths(float("-inf"))
    ('2^12.35 paths', '0 paths')
    """
    return "0 paths" if value == -math.inf else f"2^{value:.2f} paths"


def require_baseline(config: RuleConfig) -> Mapping[str, Any]:
    """The baseline report (``--baseline``), or :class:`NotEvaluated` when none was given."""
    if config.baseline is None:
        raise NotEvaluated("no baseline report given (--baseline)")
    return config.baseline
