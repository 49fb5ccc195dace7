"""The HTML report's block map: a model's detected blocks as nested boxes, grouped by stage.

Stages follow the blocks' order in the report (the detector lists them in graph order): the
backbone until the first FPN or PAN block, the neck from there, and the heads (detection heads,
DFL decode, NMS, auxiliary and one-to-one heads, PGI) wherever they appear. A block's children
(a C2f's residuals, a C3k2's CSPs) are boxes inside its box. Every name is escaped.

>>> [s for s, _ in stages(())]
[]
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from graphpath.blocks.base import BlockMatch

__all__ = ["HEAD_KINDS", "NECK_KINDS", "block_map", "stages"]

#: Kinds drawn in the head stage.
HEAD_KINDS = frozenset({"decoupled_head", "coupled_head", "one2one_head", "aux_head", "dfl", "nms", "fc_head", "pgi"})
#: Kinds that start the neck.
NECK_KINDS = frozenset({"fpn", "pan"})
#: Children shown inside one box before the rest are counted.
MAX_CHILDREN = 16


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def stages(blocks: Sequence[BlockMatch]) -> list[tuple[str, list[BlockMatch]]]:
    """``(stage, top-level blocks)`` in order; consecutive blocks of one stage share a box."""
    out: list[tuple[str, list[BlockMatch]]] = []
    in_neck = False
    for b in blocks:
        if b.kind in NECK_KINDS:
            in_neck = True
        stage = "head" if b.kind in HEAD_KINDS else ("neck" if in_neck else "backbone")
        if out and out[-1][0] == stage:
            out[-1][1].append(b)
        else:
            out.append((stage, [b]))
    return out


def _kind_class(kind: str) -> str:
    return "k-" + "".join(c if c.isalnum() else "-" for c in kind.lower())


def _box(b: BlockMatch) -> str:
    title = f"{b.kind} {b.label}".strip() + f": {len(b.units)} units, {b.params} parameters"
    inner = "".join(_box(c) for c in b.children[:MAX_CHILDREN])
    more = len(b.children) - MAX_CHILDREN
    if more > 0:
        inner += f'<div class="more">+{more} more</div>'
    kids = f'<div class="kids">{inner}</div>' if inner else ""
    return (f'<div class="block {_kind_class(b.kind)}" title="{_e(title)}"><span class="kind">{_e(b.kind)}</span> '
            f'<span class="label">{_e(b.label)}</span>{kids}</div>')


def block_map(blocks: Sequence[BlockMatch]) -> str:
    """The nested boxes as one ``<div class="blockmap">`` (a note when nothing was detected)."""
    if not blocks:
        return '<p class="note">No blocks detected.</p>'
    parts = ['<div class="blockmap">']
    for stage, members in stages(blocks):
        parts.append(f'<div class="stage s-{stage}"><div class="stage-name">{_e(stage)}</div>')
        parts += [_box(b) for b in members]
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)
