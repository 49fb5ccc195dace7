"""Terminal text of the structure section: block forest, counts, generation, export notes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _structure(s: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(s.items()))


def _tree(blocks: Iterable[Mapping[str, Any]], depth: int, lines: list[str], limit: int) -> None:
    for b in blocks:
        if len(lines) >= limit:
            return
        label = f"  [{b['label']}]" if b.get("label") else ""
        inner = _structure(b.get("structure", {}))
        lines.append(f"{'  ' * depth}- {b['kind']}{label}  {len(b['units'])} units, "
                     f"{b['params']:,} params" + (f"; {inner}" if inner else ""))
        _tree(b.get("children", ()), depth + 1, lines, limit)


def render_structure(section: Mapping[str, Any], *, max_lines: int = 400) -> str:
    """``section`` holds ``blocks``, ``block_counts``, ``fingerprint`` and ``export_notes`` as
    in the analyze JSON."""
    fp = section["fingerprint"]
    variant = f" {fp['variant']}" if fp.get("variant") else ""
    lines = [f"Generation: {fp['generation']}{variant} (confidence {fp['confidence']:.2f})"]
    lines += [f"  - {e}" for e in fp.get("evidence", ())]
    counts: Mapping[str, int] = section["block_counts"]
    lines.append("")
    lines.append("Block counts: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))
    notes: Sequence[Mapping[str, Any]] = section["export_notes"]
    if notes:
        lines.append("")
        lines.append("Export form:")
        lines += [f"  - {n['message']}" for n in notes]
    lines.append("")
    lines.append("Blocks:")
    tree: list[str] = []
    _tree(section["blocks"], 1, tree, max_lines)
    lines += tree or ["  none"]
    if len(tree) >= max_lines:
        lines.append(f"  … (first {max_lines} lines; --format json has all)")
    return "\n".join(lines) + "\n"
