"""Shape and layout ops of the torch evaluator (Reshape … Pad), entries of :data:`~graphpath.numeric.evaluator.ops_torch.OPS`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from graphpath.numeric.evaluator.ops_common import (
    Node,
    OpResult,
    Tensor,
    normalize_axis,
    pad_trailing_dims,
)

# --------------------------------------------------------------------------- shape and layout


def reshape(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    shape = node.const_ints(1) if node.has(1) else node.ints("shape")
    if shape is None:
        raise node.fail("no target shape")
    if not node.i("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def transpose(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    perm = node.ints("perm") or list(range(x.dim() - 1, -1, -1))
    return x.permute(perm)


def flatten(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axis = normalize_axis(node.i("axis", 1), x.dim())
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def read_axes(node: Node, pos: int) -> list[int] | None:
    """Axes from the ``axes`` attribute (older opsets) or from input ``pos`` (newer)."""
    axes = node.ints("axes")
    if axes is None and node.has(pos):
        axes = node.const_ints(pos)
    return axes


def squeeze(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axes = read_axes(node, 1)
    if axes:
        drop = {normalize_axis(a, x.dim()) for a in axes}
    else:
        drop = {i for i, n in enumerate(x.shape) if n == 1}
    return x.reshape([n for i, n in enumerate(x.shape) if i not in drop])


def unsqueeze(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axes = read_axes(node, 1) or []
    rank = x.dim() + len(axes)
    new = {normalize_axis(a, rank) for a in axes}
    dims = iter(x.shape)
    return x.reshape([1 if i in new else next(dims) for i in range(rank)])


def concat(node: Node, xs: list[Any]) -> OpResult:
    return torch.cat([x for x in xs if x is not None], dim=node.i("axis", 0))


def split(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axis = normalize_axis(node.i("axis", 0), x.dim())
    n = x.shape[axis]
    sizes = node.const_ints(1) if node.has(1) else node.ints("split")
    if not sizes:
        parts = node.i("num_outputs", 0)
        if parts:  # opset 18: ceil-sized chunks, the last one smaller
            size = -(-n // parts)
            sizes = [size] * (parts - 1) + [n - size * (parts - 1)]
        else:
            parts = len(node.outputs)
            sizes = [n // parts] * parts
    return tuple(torch.split(x, sizes, dim=axis))


def slice_(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    if node.opset < 10:
        starts, ends, axes, steps = node.ints("starts"), node.ints("ends"), node.ints("axes"), None
    else:
        starts, ends = node.const_ints(1), node.const_ints(2)
        axes, steps = node.const_ints(3), node.const_ints(4)
    if starts is None or ends is None:
        raise node.fail("no starts/ends")
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=False):
        ax = normalize_axis(axis, x.dim())
        n = x.shape[ax]
        start, end = (start + n if start < 0 else start), (end + n if end < 0 else end)
        if step > 0:
            start, end = min(max(start, 0), n), min(max(end, 0), n)
            x = x[(slice(None),) * ax + (slice(start, end, step),)]
        else:  # torch has no negative steps: gather the indices
            start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
            x = x.index_select(ax, torch.arange(start, end, step, device=x.device))
    return x


def _nonneg(index: Tensor, n: int | Tensor) -> Tensor:
    index = index.long()
    return torch.where(index < 0, index + n, index)


def gather(node: Node, xs: list[Any]) -> OpResult:
    x, index = xs
    ax = normalize_axis(node.i("axis", 0), x.dim())
    flat = _nonneg(index, x.shape[ax]).reshape(-1)
    return x.index_select(ax, flat).reshape(x.shape[:ax] + index.shape + x.shape[ax + 1:])


def gather_elements(node: Node, xs: list[Any]) -> OpResult:
    x, index = xs
    ax = normalize_axis(node.i("axis", 0), x.dim())
    return torch.gather(x, ax, _nonneg(index, x.shape[ax]))


def gather_nd(node: Node, xs: list[Any]) -> OpResult:
    x, index = xs
    if node.i("batch_dims", 0):
        raise node.fail("batch_dims > 0 is not supported")
    k = index.shape[-1]
    index = _nonneg(index, torch.tensor(x.shape[:k], device=index.device))
    return x[tuple(index[..., i] for i in range(k))]


def scatter_nd(node: Node, xs: list[Any]) -> OpResult:
    data, index, updates = xs
    reduction = node.s("reduction", "none")
    if reduction not in ("none", "add"):
        raise node.fail(f"reduction {reduction!r} is not supported")
    k = index.shape[-1]
    index = _nonneg(index, torch.tensor(data.shape[:k], device=index.device))
    return data.index_put(tuple(index[..., i] for i in range(k)), updates, accumulate=reduction == "add")


def scatter_elements(node: Node, xs: list[Any]) -> OpResult:
    data, index, updates = xs
    ax = normalize_axis(node.i("axis", 0), data.dim())
    index = _nonneg(index, data.shape[ax])
    reduction = node.s("reduction", "none")
    if reduction == "none":
        return data.scatter(ax, index, updates)
    if reduction == "add":
        return data.scatter_add(ax, index, updates)
    raise node.fail(f"reduction {reduction!r} is not supported")


def expand(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    shape = node.const_ints(1) or []
    return x.expand(np.broadcast_shapes(tuple(x.shape), tuple(shape)))


def tile(node: Node, xs: list[Any]) -> OpResult:
    return xs[0].repeat(node.const_ints(1) or [])


def space_to_depth(node: Node, xs: list[Any]) -> OpResult:
    x, b = xs[0], node.i("blocksize", 1)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


def depth_to_space(node: Node, xs: list[Any]) -> OpResult:
    x, b = xs[0], node.i("blocksize", 1)
    n, c, h, w = x.shape
    if node.s("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


def pad(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    if node.opset < 11:
        pads, value, axes = node.ints("pads") or [], node.f("value", 0.0), None
    else:
        pads = node.const_ints(1) or []
        value_arr = node.const(2)
        value = float(value_arr.reshape(-1)[0]) if value_arr is not None and value_arr.size else 0.0
        axes = node.const_ints(3)
    axes = [normalize_axis(a, x.dim()) for a in axes] if axes else list(range(x.dim()))
    n = len(axes)
    per_axis = dict.fromkeys(range(x.dim()), (0, 0))
    per_axis.update({a: (pads[i], pads[i + n]) for i, a in enumerate(axes)})
    mode = node.s("mode", "constant")
    if mode == "constant":
        return pad_trailing_dims(x, [per_axis[a] for a in range(x.dim())], value)
    for ax, (b, e) in per_axis.items():
        if b < 0 or e < 0:
            raise node.fail(f"negative pads in mode {mode!r} are not supported")
        if not (b or e):
            continue
        size = x.shape[ax]
        idx = np.arange(-b, size + e)
        if mode == "reflect":
            period = 2 * (size - 1)
            idx = np.mod(idx, period) if period else np.zeros_like(idx)
            idx = np.where(idx >= size, period - idx, idx)
        elif mode == "edge":
            idx = np.clip(idx, 0, size - 1)
        elif mode == "wrap":
            idx = idx % size
        else:
            raise node.fail(f"mode {mode!r} is not supported")
        x = x.index_select(ax, torch.as_tensor(idx, dtype=torch.long, device=x.device))
    return x
