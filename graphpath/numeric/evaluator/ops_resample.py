"""Resampling, pooling, reduction and search ops of the torch evaluator, entries of :data:`~graphpath.numeric.evaluator.ops_torch.OPS`.

Resize/Upsample follow ONNX's coordinate transforms exactly (separable, one axis at a time);
pooling pads explicitly so that ``auto_pad``, ``ceil_mode`` and ``count_include_pad`` match ONNX.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graphpath.errors import GraphpathError
from graphpath.numeric.evaluator.ops_common import (
    Node,
    OpFn,
    OpResult,
    Tensor,
    normalize_axis,
    pad_trailing_dims,
    window_pads,
)
from graphpath.numeric.evaluator.ops_layout import read_axes

# --------------------------------------------------------------------------- resampling


@functools.lru_cache(maxsize=256)
def _source_coords(n_in: int, n_out: int, scale: float, coord: str) -> np.ndarray:
    """ONNX Resize's coordinate transform: the input coordinate of every output position."""
    x = np.arange(n_out, dtype=np.float64)
    if coord == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if coord == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(x)
    if coord == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(x)
    if coord == "asymmetric":
        return x / scale
    if coord == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise GraphpathError(f"Resize coordinate_transformation_mode {coord!r} is not supported")


def _nearest_index(src: np.ndarray, n_in: int, mode: str) -> np.ndarray:
    frac = src - np.floor(src)
    if mode == "round_prefer_floor":
        idx = np.where(frac == 0.5, np.floor(src), np.round(src))
    elif mode == "round_prefer_ceil":
        idx = np.where(frac == 0.5, np.ceil(src), np.round(src))
    elif mode == "floor":
        idx = np.floor(src)
    elif mode == "ceil":
        idx = np.ceil(src)
    else:
        raise GraphpathError(f"Resize nearest_mode {mode!r} is not supported")
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def _resample(x: Tensor, sizes: Sequence[int], scales: Sequence[float], mode: str, coord: str,
              nearest_mode: str) -> Tensor:
    """Separable nearest/linear resampling, one axis at a time, with ONNX's exact coordinates."""
    for ax, (n_out, scale) in enumerate(zip(sizes, scales, strict=False)):
        n_in = x.shape[ax]
        if n_out == n_in and scale == 1.0:
            continue
        src = _source_coords(n_in, n_out, scale, coord)
        if mode == "nearest":
            idx = _nearest_index(src, n_in, nearest_mode)
            x = x.index_select(ax, torch.as_tensor(idx, device=x.device))
            continue
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        shape = [1] * x.dim()
        shape[ax] = n_out
        w = torch.as_tensor(src - lo, dtype=x.dtype, device=x.device).reshape(shape)
        a = x.index_select(ax, torch.as_tensor(lo, device=x.device))
        b = x.index_select(ax, torch.as_tensor(hi, device=x.device))
        x = a * (1 - w) + b * w
    return x


def resize(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    rank = x.dim()
    mode = node.s("mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise node.fail(f"mode {mode!r} is not supported (nearest and linear are)")
    if node.i("antialias", 0):
        raise node.fail("antialias is not supported")
    if node.s("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise node.fail("keep_aspect_ratio_policy other than 'stretch' is not supported")
    if node.opset < 11:
        scales, sizes = node.const_floats(1), None
        coord = "asymmetric"
    else:
        scales = node.const_floats(2) if node.has(2) else None
        sizes = node.const_ints(3) if node.has(3) else None
        coord = node.s("coordinate_transformation_mode", "half_pixel")
    axes = [normalize_axis(a, rank) for a in (node.ints("axes") or range(rank))]
    full_scales, full_sizes = [1.0] * rank, list(x.shape)
    if sizes:
        for a, n in zip(axes, sizes, strict=False):
            full_sizes[a], full_scales[a] = n, n / x.shape[a]
    elif scales:
        for a, s in zip(axes, scales, strict=False):
            full_sizes[a], full_scales[a] = int(math.floor(x.shape[a] * s)), s
    else:
        raise node.fail("neither scales nor sizes given")
    return _resample(x, full_sizes, full_scales, mode, coord, node.s("nearest_mode", "round_prefer_floor"))


def upsample(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    scales = node.const_floats(1) if node.has(1) else [float(v) for v in node.attrs.get("scales", ())]
    if not scales:
        raise node.fail("no scales")
    mode = node.s("mode", "nearest")
    sizes = [int(math.floor(n * s)) for n, s in zip(x.shape, scales, strict=False)]
    return _resample(x, sizes, scales, "nearest" if mode == "nearest" else "linear", "asymmetric", "floor")


def grid_sample(node: Node, xs: list[Any]) -> OpResult:
    x, grid = xs
    mode = {"linear": "bilinear", "cubic": "bicubic"}.get(node.s("mode", "bilinear"), node.s("mode", "bilinear"))
    return F.grid_sample(x, grid, mode=mode, padding_mode=node.s("padding_mode", "zeros"),
                         align_corners=bool(node.i("align_corners", 0)))


# --------------------------------------------------------------------------- pooling


def _pool_geometry(node: Node, x: Tensor) -> tuple[list[int], list[int], list[int], list[tuple[int, int]]]:
    """Kernel, strides, dilations and the full (begin, end) padding, ceil_mode included."""
    kernel = node.ints("kernel_shape")
    if not kernel:
        raise node.fail("no kernel_shape")
    nd = len(kernel)
    strides = node.ints("strides") or [1] * nd
    dil = node.ints("dilations") or [1] * nd
    spatial = list(x.shape[2:])
    pads = window_pads(node, spatial, kernel, strides, dil)
    rounding = math.ceil if node.i("ceil_mode", 0) else math.floor
    full = []
    for n, k, s, d, (b, e) in zip(spatial, kernel, strides, dil, pads, strict=False):
        extent = (k - 1) * d + 1
        out = int(rounding((n + b + e - extent) / s)) + 1
        full.append((b, e + max(0, (out - 1) * s + extent - (n + b + e))))
    return kernel, strides, dil, full


def max_pool(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.fail("the Indices output is not supported")
    kernel, strides, dil, pads = _pool_geometry(node, x)
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[len(kernel) - 1]
    return fn(pad_trailing_dims(x, pads, -math.inf), kernel, strides, 0, dil)


def average_pool(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    kernel, strides, dil, pads = _pool_geometry(node, x)
    if any(d != 1 for d in dil):
        raise node.fail("dilations are not supported")
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(kernel) - 1]
    if not any(b or e for b, e in pads):
        return fn(x, kernel, strides)
    # Sum over the window divided by the count of cells that count: the input, plus the
    # declared pads when count_include_pad (never the ceil_mode overhang).
    declared = window_pads(node, list(x.shape[2:]), kernel, strides, dil)
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    mask = pad_trailing_dims(ones, declared, 1.0 if node.i("count_include_pad", 0) else 0.0)
    overhang = [(0, e - de) for (_, e), (_, de) in zip(pads, declared, strict=False)]
    mask = pad_trailing_dims(mask, overhang, 0.0)
    return fn(pad_trailing_dims(x, pads, 0.0), kernel, strides) / fn(mask, kernel, strides)


def global_pool_op(fn: Callable[..., Tensor]) -> OpFn:
    """GlobalAveragePool/GlobalMaxPool: ``fn`` over every spatial dim, kept as size 1."""
    return lambda node, xs: fn(xs[0], dim=list(range(2, xs[0].dim())), keepdim=True)


# --------------------------------------------------------------------------- reductions, search


def reduce_op(fn: Callable[[Tensor, list[int], bool], Tensor]) -> OpFn:
    """A Reduce* op from ``fn(x, dims, keepdims)``: axes from the attribute or input 1, none
    meaning all (or the identity with ``noop_with_empty_axes``)."""
    def run(node: Node, xs: list[Any]) -> OpResult:
        x = xs[0]
        axes = read_axes(node, 1)
        if not axes:
            if node.i("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        return fn(x, [normalize_axis(a, x.dim()) for a in axes], bool(node.i("keepdims", 1)))

    return run


def prod_over_dims(x: Tensor, dims: list[int], keep: bool) -> Tensor:
    """The product over several dims (``torch.prod`` takes one), for ReduceProd."""
    for d in sorted(dims, reverse=True):
        x = x.prod(d, keepdim=keep)
    return x


def top_k(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    k = node.const_ints(1)[0] if node.has(1) else node.i("k", 1)  # type: ignore[index]
    axis = node.i("axis", -1)
    # ONNX breaks ties by the lower index; torch.topk does not promise that, a stable sort does.
    values, indices = torch.sort(x, dim=axis, descending=bool(node.i("largest", 1)), stable=True)
    return values.narrow(axis, 0, k), indices.narrow(axis, 0, k).long()


def arg_reduce_op(fn: Callable[..., Tensor]) -> OpFn:
    """ArgMax/ArgMin from ``torch.argmax``/``torch.argmin``, ``select_last_index`` included."""
    def run(node: Node, xs: list[Any]) -> OpResult:
        x = xs[0]
        axis, keep = normalize_axis(node.i("axis", 0), x.dim()), bool(node.i("keepdims", 1))
        if node.i("select_last_index", 0):
            return x.shape[axis] - 1 - fn(x.flip(axis), dim=axis, keepdim=keep)
        return fn(x, dim=axis, keepdim=keep)

    return run


def cumsum(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axis = normalize_axis((node.const_ints(1) or [0])[0], x.dim())
    if node.i("reverse", 0):
        x = x.flip(axis)
    y = torch.cumsum(x, axis)
    if node.i("exclusive", 0):
        y = y - x
    return y.flip(axis) if node.i("reverse", 0) else y
