"""Where the numeric backward pass looks: concrete input shapes, feature tensors and blocks.

Before any gradient is taken: the input shapes (``--imgsz``/``--input``), the feature map of
every weighted unit that feeds the heads, and the blocks whose Jacobians are bounded
(detected by :func:`graphpath.blocks.detect_blocks`, else one per resolution stage), with
reachability between a block's entry and exit along data edges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from graphpath.blocks.base import BlockMatch
from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph
from graphpath.model.ops import carries_gradient
from graphpath.numeric.options import BackwardOptions


def input_setup(graph: ModelGraph, options: BackwardOptions) -> tuple[dict[str, tuple[int, ...]], np.ndarray | None]:
    """Concrete input shapes (static graphs keep theirs) and the ``--input`` array if any."""
    fixed: np.ndarray | None = None
    if options.input_file is not None:
        p = Path(options.input_file)
        if p.suffix != ".npy":
            raise GraphpathError(f"--input must be a .npy file, got {p.name!r}")
        try:
            fixed = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GraphpathError(f"cannot read --input {p}: {exc}") from exc
        if fixed.ndim == 3:
            fixed = fixed[None]
        if fixed.ndim != 4 or not np.issubdtype(fixed.dtype, np.floating):
            raise GraphpathError(f"--input must hold a float NCHW or CHW image, got {fixed.dtype} {fixed.shape}")
    shapes: dict[str, tuple[int, ...]] = {}
    for t in graph.inputs:
        dims = list(t.shape or ())
        if fixed is not None and len(graph.inputs) == 1:
            for i, (d, f) in enumerate(zip(dims, fixed.shape, strict=False)):
                if isinstance(d, int) and d != f:
                    raise GraphpathError(f"--input has shape {fixed.shape} but {t.name!r} is static {tuple(dims)}")
                dims[i] = int(f)
        elif any(not isinstance(d, int) for d in dims):
            size = options.imgsz or 640
            if len(dims) == 4:
                dims = [d if isinstance(d, int) else (1 if i == 0 else 3 if i == 1 else size)
                        for i, d in enumerate(dims)]
            else:
                dims = [d if isinstance(d, int) else 1 for d in dims]
        elif options.imgsz is not None and len(dims) == 4 and tuple(dims[2:]) != (options.imgsz, options.imgsz):
            raise GraphpathError(
                f"{t.name!r} is static {tuple(dims)}: its decode constants are baked for that size; "
                f"drop --imgsz {options.imgsz} (or re-export with a dynamic size)")
        shapes[t.name] = tuple(int(d) for d in dims if d is not None and not isinstance(d, str))
    return shapes, fixed


def feature_tensor(graph: ModelGraph, layers: LayerGraph, uid: str, in_scope: Callable[[str], bool]) -> str | None:
    """The feature map a weighted unit produces, if it feeds the heads: its folded output when
    in scope, else the anchoring op's output (a head unit whose fold ran into the decode)."""
    unit = layers.unit(uid)
    if unit.tensor and in_scope(unit.tensor):
        return unit.tensor
    t = graph.op(unit.nodes[0]).outputs[0]
    return t if in_scope(t) else None


def stage_blocks(graph: ModelGraph, layers: LayerGraph, in_scope: Callable[[str], bool]) -> list[tuple[str, str, str]]:
    """Fallback blocks, one per resolution stage of the backbone: from the output of a
    downsampling unit (stride-2 conv or pool) to the data input of the next one in
    topological order. Returns ``(name, entry, exit)``."""
    downs: list[str] = []
    for uid in layers.topo_order():
        u = layers.unit(uid)
        strides = u.attr("strides")
        if u.kind in ("weighted", "pool") and isinstance(strides, tuple) and strides and max(strides) > 1:
            downs.append(uid)
    consumers = tensor_consumers(graph)
    out: list[tuple[str, str, str]] = []
    for a, b in zip(downs, downs[1:], strict=False):
        entry = feature_tensor(graph, layers, a, in_scope) or ""
        exit_ = graph.op(layers.unit(b).nodes[0]).inputs[0]
        if entry and in_scope(exit_) and entry != exit_ and exit_ in reachable_tensors(graph, entry, consumers):
            out.append((f"stage {len(out) + 1} ({layers.unit(a).id} → {layers.unit(b).id})", entry, exit_))
    return out


def tensor_consumers(graph: ModelGraph) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = {}
    for op in graph.ops():
        for t in op.inputs:
            if t:
                consumers.setdefault(t, []).append(op.name)
    return consumers


def sibling_entry(graph: ModelGraph, entry: str, exit_: str,
                   consumers: Mapping[str, Sequence[str]]) -> str | None:
    """A split unit's tensor is its op's first output; a block fed by another output of the same
    op (C2f's bottlenecks read the last chunk) names the first: use the one ``exit_`` depends on."""
    if entry not in graph.producer_of:
        return None
    outs = [o for o in graph.op(graph.producer_of[entry]).outputs if o and o != entry]
    hits = [o for o in outs if exit_ in reachable_tensors(graph, o, consumers)]
    return hits[0] if len(hits) == 1 else None


def reachable_tensors(graph: ModelGraph, src: str, consumers: Mapping[str, Sequence[str]]) -> set[str]:
    """Tensors reachable from ``src`` along data edges."""
    seen: set[str] = set()
    stack = [src]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for name in consumers.get(t, ()):
            op = graph.op(name)
            if any(i == t and carries_gradient(op.op_type, pos) for pos, i in enumerate(op.inputs)):
                stack.extend(o for o in op.outputs if o)
    return seen


def detected_blocks(blocks: Sequence[BlockMatch], in_scope: Callable[[str], bool]) -> list[tuple[str, str, str, str]]:
    """The detected ``blocks`` (top-level and nested, in topological order) with one entry and
    one exit tensor in scope: ``(name, kind, entry, exit)``. Detection errors are not caught
    here: a detector that fails is a bug to see, not a reason to measure other blocks."""
    matches = list(blocks)
    flat: list[BlockMatch] = []
    todo = list(matches)
    while todo:
        m = todo.pop(0)
        flat.append(m)
        todo.extend(m.children)
    out: list[tuple[str, str, str, str]] = []
    for m in flat:
        if len(m.entry) == 1 and len(m.exit) == 1 and m.entry[0] != m.exit[0] \
                and in_scope(m.entry[0]) and in_scope(m.exit[0]):
            out.append((m.label or f"{m.kind}#{len(out) + 1}", m.kind, m.entry[0], m.exit[0]))
    return out
