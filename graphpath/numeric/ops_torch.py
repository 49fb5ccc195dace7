"""The op table of the torch evaluator: ONNX op type → a small function of tensors.

Every function has the signature ``fn(node, xs) -> Tensor | tuple[Tensor, ...]``: ``node`` is
a :class:`Node` (attributes and the load-time values of constant inputs), ``xs`` the input
tensors in ONNX order (``None`` for omitted optional inputs). Inputs that must be known at load
(shapes, axes, scales, pads, ``k``) are read with :meth:`Node.const_ints` and friends from
``node.consts``, never from the tensors: reading a tensor's values (``.tolist()``) would break
``torch.func`` transforms and the shape pass on the ``meta`` device.

Float tensors are computed in one float dtype (``node.dtype``): float16/bfloat16 models run in
float32, and float64 is there for finite-difference checks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graphpath.errors import GraphpathError

Tensor = torch.Tensor
OpResult = Tensor | tuple[Tensor, ...]
OpFn = Callable[["Node", list[Any]], OpResult]

#: ONNX TensorProto data types (the integer enum) that graphpath can hold in torch.
_INT_DTYPES: dict[int, torch.dtype] = {
    2: torch.uint8, 3: torch.int8, 4: torch.int32, 5: torch.int16, 6: torch.int32,
    7: torch.int64, 9: torch.bool, 12: torch.int64, 13: torch.int64,
}
#: FLOAT, FLOAT16, DOUBLE, BFLOAT16: all computed in the evaluator's float dtype.
_FLOAT_TYPES = frozenset({1, 10, 11, 16})


def torch_dtype(onnx_type: int, float_dtype: torch.dtype) -> torch.dtype:
    """The torch dtype for an ONNX data type (floats map to the evaluator's float dtype)."""
    if onnx_type in _FLOAT_TYPES:
        return float_dtype
    if onnx_type in _INT_DTYPES:
        return _INT_DTYPES[onnx_type]
    raise GraphpathError(f"ONNX data type {onnx_type} is not supported by the torch evaluator")


def to_tensor(array: np.ndarray, float_dtype: torch.dtype, device: torch.device | str = "cpu") -> Tensor:
    """A numpy array (any float width, ints, bools) as a torch tensor; floats in ``float_dtype``."""
    arr = np.asarray(array)
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        return torch.from_numpy(np.array(arr, dtype=np.float64)).to(device, float_dtype)
    if arr.dtype.kind == "u" and arr.dtype != np.uint8:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "biu":
        raise GraphpathError(f"tensor of numpy dtype {arr.dtype} is not supported by the torch evaluator")
    return torch.from_numpy(np.array(arr)).to(device)  # a writable copy, 0-d kept 0-d


@dataclass(frozen=True)
class Node:
    """One ONNX node as the evaluator sees it: the one place where attributes are parsed.

    Attributes:
        name, op_type, inputs, outputs: as in the ONNX graph ("" marks an omitted input).
        attrs: plain-Python attribute values (see :class:`graphpath.graph.OpNode`).
        opset: the default-domain opset version of the model.
        dtype: the evaluator's float dtype.
        consts: input position → value, for inputs known at load (initializers and folded
            shape arithmetic).
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    opset: int
    dtype: torch.dtype
    consts: Mapping[int, np.ndarray] = field(default_factory=dict)

    def fail(self, what: str) -> GraphpathError:
        return GraphpathError(f"{self.op_type} node {self.name!r}: {what}")

    def i(self, key: str, default: int) -> int:
        return int(self.attrs.get(key, default))

    def f(self, key: str, default: float) -> float:
        return float(self.attrs.get(key, default))

    def s(self, key: str, default: str) -> str:
        value = self.attrs.get(key, default)
        return value.decode() if isinstance(value, bytes) else str(value)

    def ints(self, key: str) -> list[int] | None:
        value = self.attrs.get(key)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def has(self, pos: int) -> bool:
        return len(self.inputs) > pos and bool(self.inputs[pos])

    def const(self, pos: int) -> np.ndarray | None:
        """The load-time value of input ``pos``; ``None`` when the input is omitted."""
        if not self.has(pos):
            return None
        if pos not in self.consts:
            raise self.fail(
                f"input {pos} ({self.inputs[pos]!r}) must be computable at load from shapes, "
                "constants and initializers, but depends on the data"
            )
        return self.consts[pos]

    def const_ints(self, pos: int) -> list[int] | None:
        value = self.const(pos)
        return None if value is None else [int(v) for v in value.reshape(-1)]

    def const_floats(self, pos: int) -> list[float] | None:
        value = self.const(pos)
        return None if value is None else [float(v) for v in value.reshape(-1)]


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _pad_spatial(x: Tensor, pads: Sequence[tuple[int, int]], value: float) -> Tensor:
    """Pad the trailing ``len(pads)`` dims by (begin, end) each; F.pad wants the last dim first."""
    if not any(b or e for b, e in pads):
        return x
    flat: list[int] = []
    for b, e in reversed(pads):
        flat += [b, e]
    return F.pad(x, flat, value=value)


def _window_pads(node: Node, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis from ``pads`` or ``auto_pad`` (Conv and pooling)."""
    nd = len(spatial)
    auto = node.s("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = node.ints("pads") or [0] * (2 * nd)
        return [(pads[i], pads[i + nd]) for i in range(nd)]
    if auto == "VALID":
        return [(0, 0)] * nd
    out = []
    for n, k, s, d in zip(spatial, kernel, strides, dilations, strict=False):
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small = total // 2
        out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
    return out


# --------------------------------------------------------------------------- convolution, linear


def conv(node: Node, xs: list[Any]) -> OpResult:
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    nd = x.dim() - 2
    strides = node.ints("strides") or [1] * nd
    dil = node.ints("dilations") or [1] * nd
    pads = _window_pads(node, x.shape[2:], w.shape[2:], strides, dil)
    if all(p == q for p, q in pads):
        padding = [p for p, _ in pads]
    else:
        x, padding = _pad_spatial(x, pads, 0.0), [0] * nd
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    return fn(x, w, b, strides, padding, dil, node.i("group", 1))


def conv_transpose(node: Node, xs: list[Any]) -> OpResult:
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    nd = x.dim() - 2
    strides = node.ints("strides") or [1] * nd
    dil = node.ints("dilations") or [1] * nd
    out_pad = node.ints("output_padding") or [0] * nd
    full = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(x.shape[2:], strides, w.shape[2:], dil, strict=False)]
    auto = node.s("auto_pad", "NOTSET")
    target = node.ints("output_shape")
    if auto in ("SAME_UPPER", "SAME_LOWER") and not target:
        target = [n * s for n, s in zip(x.shape[2:], strides, strict=False)]
    if target:
        totals = [f + op - t for f, op, t in zip(full, out_pad, target[-nd:], strict=False)]
        upper = auto == "SAME_UPPER"
        pads = [(t // 2, t - t // 2) if upper else (t - t // 2, t // 2) for t in totals]
    elif auto == "VALID":
        pads = [(0, 0)] * nd
    else:
        p = node.ints("pads") or [0] * (2 * nd)
        pads = [(p[i], p[i + nd]) for i in range(nd)]
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
    y = fn(x, w, None, strides, 0, 0, node.i("group", 1), dil)
    for ax, ((pb, pe), n, op) in enumerate(zip(pads, full, out_pad, strict=False), start=2):
        length = n - pb - pe + op
        y = y.narrow(ax, pb, min(length, n - pb))
        if length > n - pb:  # output_padding past the full output: zeros (the bias comes next)
            y = _pad_spatial(y, [(0, length - (n - pb))] + [(0, 0)] * (y.dim() - ax - 1), 0.0)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nd)
    return y


def gemm(node: Node, xs: list[Any]) -> OpResult:
    a, b = xs[0], xs[1]
    c = xs[2] if len(xs) > 2 else None
    if node.i("transA", 0):
        a = a.transpose(-1, -2)
    if node.i("transB", 0):
        b = b.transpose(-1, -2)
    y = a @ b
    alpha, beta = node.f("alpha", 1.0), node.f("beta", 1.0)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c if beta == 1.0 else c * beta)
    return y


def batch_norm(node: Node, xs: list[Any]) -> OpResult:
    x, scale, bias, mean, var = xs[:5]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv = torch.rsqrt(var + node.f("epsilon", 1e-5))
    return (x - mean.reshape(shape)) * (scale * inv).reshape(shape) + bias.reshape(shape)


def instance_norm(node: Node, xs: list[Any]) -> OpResult:
    x, scale, bias = xs[:3]
    dims = list(range(2, x.dim()))
    mean = x.mean(dims, keepdim=True)
    d = x - mean
    inv = torch.rsqrt((d * d).mean(dims, keepdim=True) + node.f("epsilon", 1e-5))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return d * inv * scale.reshape(shape) + bias.reshape(shape)


def layer_norm(node: Node, xs: list[Any]) -> OpResult:
    x, scale = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    dims = list(range(_norm(node.i("axis", -1), x.dim()), x.dim()))
    mean = x.mean(dims, keepdim=True)
    d = x - mean
    inv = torch.rsqrt((d * d).mean(dims, keepdim=True) + node.f("epsilon", 1e-5))
    y = d * inv * scale
    return (y if bias is None else y + bias), mean, inv


# --------------------------------------------------------------------------- elementwise


def _unary(fn: Callable[[Tensor], Tensor]) -> OpFn:
    return lambda node, xs: fn(xs[0])


def _div(a: Tensor, b: Tensor) -> Tensor:
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    return lambda node, xs: fn(xs[0], xs[1])


def _variadic(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    return lambda node, xs: functools.reduce(fn, [x for x in xs if x is not None])


def _mean(node: Node, xs: list[Any]) -> OpResult:
    present = [x for x in xs if x is not None]
    return functools.reduce(torch.add, present) / len(present)


def _pow(node: Node, xs: list[Any]) -> OpResult:
    return torch.pow(xs[0], xs[1]).to(xs[0].dtype)


def _mod(node: Node, xs: list[Any]) -> OpResult:
    return (torch.fmod if node.i("fmod", 0) else torch.remainder)(xs[0], xs[1])


def clip(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    if node.opset < 11:
        return torch.clamp(x, node.f("min", -math.inf), node.f("max", math.inf))
    lo = xs[1] if len(xs) > 1 else None
    hi = xs[2] if len(xs) > 2 else None
    return torch.clamp(x, lo, hi)


def leaky_relu(node: Node, xs: list[Any]) -> OpResult:
    return F.leaky_relu(xs[0], node.f("alpha", 0.01))


def prelu(node: Node, xs: list[Any]) -> OpResult:
    x, slope = xs
    return torch.where(x < 0, x * slope, x)


def elu(node: Node, xs: list[Any]) -> OpResult:
    return F.elu(xs[0], node.f("alpha", 1.0))


def hard_sigmoid(node: Node, xs: list[Any]) -> OpResult:
    return torch.clamp(xs[0] * node.f("alpha", 0.2) + node.f("beta", 0.5), 0.0, 1.0)


def gelu(node: Node, xs: list[Any]) -> OpResult:
    return F.gelu(xs[0], approximate=node.s("approximate", "none"))


def where(node: Node, xs: list[Any]) -> OpResult:
    return torch.where(xs[0].bool(), xs[1], xs[2])


def cast(node: Node, xs: list[Any]) -> OpResult:
    return xs[0].to(torch_dtype(node.i("to", 1), node.dtype))


def _softmax(fn: Callable[..., Tensor]) -> OpFn:
    def run(node: Node, xs: list[Any]) -> OpResult:
        x = xs[0]
        if node.opset >= 13:
            return fn(x, dim=node.i("axis", -1))
        axis = _norm(node.i("axis", 1), x.dim())  # opset < 13: coerce to 2-D at axis
        return fn(x.reshape(math.prod(x.shape[:axis]), -1), dim=1).reshape(x.shape)

    return run


def _first_output(fn: OpFn) -> OpFn:
    """Dropout and friends: the data output, plus an all-true mask when a mask is declared."""

    def run(node: Node, xs: list[Any]) -> OpResult:
        y = fn(node, xs)
        if len(node.outputs) > 1 and isinstance(y, Tensor):
            return y, torch.ones_like(y, dtype=torch.bool)
        return y

    return run


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
    axis = _norm(node.i("axis", 1), x.dim())
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _axes(node: Node, pos: int) -> list[int] | None:
    """Axes from the ``axes`` attribute (older opsets) or from input ``pos`` (newer)."""
    axes = node.ints("axes")
    if axes is None and node.has(pos):
        axes = node.const_ints(pos)
    return axes


def squeeze(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axes = _axes(node, 1)
    drop = {_norm(a, x.dim()) for a in axes} if axes else {i for i, n in enumerate(x.shape) if n == 1}
    return x.reshape([n for i, n in enumerate(x.shape) if i not in drop])


def unsqueeze(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axes = _axes(node, 1) or []
    rank = x.dim() + len(axes)
    new = {_norm(a, rank) for a in axes}
    dims = iter(x.shape)
    return x.reshape([1 if i in new else next(dims) for i in range(rank)])


def concat(node: Node, xs: list[Any]) -> OpResult:
    return torch.cat([x for x in xs if x is not None], dim=node.i("axis", 0))


def split(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axis = _norm(node.i("axis", 0), x.dim())
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
        ax = _norm(axis, x.dim())
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
    ax = _norm(node.i("axis", 0), x.dim())
    flat = _nonneg(index, x.shape[ax]).reshape(-1)
    return x.index_select(ax, flat).reshape(x.shape[:ax] + index.shape + x.shape[ax + 1:])


def gather_elements(node: Node, xs: list[Any]) -> OpResult:
    x, index = xs
    ax = _norm(node.i("axis", 0), x.dim())
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
    ax = _norm(node.i("axis", 0), data.dim())
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
    axes = [_norm(a, x.dim()) for a in axes] if axes else list(range(x.dim()))
    n = len(axes)
    per_axis = dict.fromkeys(range(x.dim()), (0, 0))
    per_axis.update({a: (pads[i], pads[i + n]) for i, a in enumerate(axes)})
    mode = node.s("mode", "constant")
    if mode == "constant":
        return _pad_spatial(x, [per_axis[a] for a in range(x.dim())], value)
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
    axes = [_norm(a, rank) for a in (node.ints("axes") or range(rank))]
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
    pads = _window_pads(node, spatial, kernel, strides, dil)
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
    return fn(_pad_spatial(x, pads, -math.inf), kernel, strides, 0, dil)


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
    declared = _window_pads(node, list(x.shape[2:]), kernel, strides, dil)
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    mask = _pad_spatial(ones, declared, 1.0 if node.i("count_include_pad", 0) else 0.0)
    mask = _pad_spatial(mask, [(0, e - de) for (_, e), (_, de) in zip(pads, declared, strict=False)], 0.0)
    return fn(_pad_spatial(x, pads, 0.0), kernel, strides) / fn(mask, kernel, strides)


def _global(fn: Callable[..., Tensor]) -> OpFn:
    return lambda node, xs: fn(xs[0], dim=list(range(2, xs[0].dim())), keepdim=True)


# --------------------------------------------------------------------------- reductions, search


def _reduce(fn: Callable[[Tensor, list[int], bool], Tensor]) -> OpFn:
    def run(node: Node, xs: list[Any]) -> OpResult:
        x = xs[0]
        axes = _axes(node, 1)
        if not axes:
            if node.i("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        return fn(x, [_norm(a, x.dim()) for a in axes], bool(node.i("keepdims", 1)))

    return run


def _prod(x: Tensor, dims: list[int], keep: bool) -> Tensor:
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


def _arg(fn: Callable[..., Tensor]) -> OpFn:
    def run(node: Node, xs: list[Any]) -> OpResult:
        x = xs[0]
        axis, keep = _norm(node.i("axis", 0), x.dim()), bool(node.i("keepdims", 1))
        if node.i("select_last_index", 0):
            return x.shape[axis] - 1 - fn(x.flip(axis), dim=axis, keepdim=keep)
        return fn(x, dim=axis, keepdim=keep)

    return run


def cumsum(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    axis = _norm((node.const_ints(1) or [0])[0], x.dim())
    if node.i("reverse", 0):
        x = x.flip(axis)
    y = torch.cumsum(x, axis)
    if node.i("exclusive", 0):
        y = y - x
    return y.flip(axis) if node.i("reverse", 0) else y


# --------------------------------------------------------------------------- constants (folded)


def constant(node: Node, xs: list[Any]) -> OpResult:
    a = node.attrs
    if "value" in a:
        if a["value"] is None:
            raise node.fail("external-data Constant values are not supported")
        return to_tensor(a["value"], node.dtype)
    for key, dt in (("value_float", node.dtype), ("value_floats", node.dtype),
                    ("value_int", torch.int64), ("value_ints", torch.int64)):
        if key in a:
            return torch.tensor(a[key], dtype=dt)
    raise node.fail("only tensor, float(s) and int(s) constants are supported")


def constant_of_shape(node: Node, xs: list[Any]) -> OpResult:
    shape = node.const_ints(0) or []
    value = node.attrs.get("value")
    fill = to_tensor(np.zeros(1, np.float32) if value is None else np.asarray(value), node.dtype)
    return fill.reshape(()).expand(shape).clone()


def range_(node: Node, xs: list[Any]) -> OpResult:
    start, limit, delta = (node.const(i) for i in range(3))
    dtype = to_tensor(np.asarray(start), node.dtype).dtype
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=dtype)  # type: ignore[union-attr]


def shape(node: Node, xs: list[Any]) -> OpResult:
    dims = list(xs[0].shape)
    start, end = node.i("start", 0), node.attrs.get("end")
    return torch.tensor(dims[start:None if end is None else int(end)], dtype=torch.int64)


def size(node: Node, xs: list[Any]) -> OpResult:
    return torch.tensor(xs[0].numel(), dtype=torch.int64)


def nonzero(node: Node, xs: list[Any]) -> OpResult:
    return torch.nonzero(xs[0]).T.contiguous()


# --------------------------------------------------------------------------- the table


OPS: dict[str, OpFn] = {
    # convolution, linear, normalisation
    "Conv": conv, "ConvTranspose": conv_transpose, "Gemm": gemm, "MatMul": _binary(torch.matmul),
    "BatchNormalization": batch_norm, "InstanceNormalization": instance_norm,
    "LayerNormalization": layer_norm,
    "Einsum": lambda node, xs: torch.einsum(node.s("equation", ""), *[x for x in xs if x is not None]),
    # activations and unary math
    "Relu": _unary(torch.relu), "LeakyRelu": leaky_relu, "PRelu": prelu, "Elu": elu,
    "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh), "Softplus": _unary(F.softplus),
    "Softsign": _unary(F.softsign), "Mish": _unary(F.mish), "HardSigmoid": hard_sigmoid,
    "HardSwish": _unary(F.hardswish), "Erf": _unary(torch.erf), "Gelu": gelu,
    "Exp": _unary(torch.exp), "Log": _unary(torch.log), "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs), "Sqrt": _unary(torch.sqrt), "Reciprocal": _unary(torch.reciprocal),
    "Sin": _unary(torch.sin), "Cos": _unary(torch.cos),
    "Floor": _unary(torch.floor), "Ceil": _unary(torch.ceil), "Round": _unary(torch.round),
    "Sign": _unary(torch.sign), "Clip": clip,
    "Softmax": _softmax(torch.softmax), "LogSoftmax": _softmax(torch.log_softmax),
    # binary and variadic
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": _binary(_div), "Pow": _pow, "Mod": _mod,
    "Min": _variadic(torch.minimum), "Max": _variadic(torch.maximum), "Sum": _variadic(torch.add),
    "Mean": _mean,
    "Equal": _binary(torch.eq), "Less": _binary(torch.lt), "Greater": _binary(torch.gt),
    "LessOrEqual": _binary(torch.le), "GreaterOrEqual": _binary(torch.ge),
    "Not": _unary(torch.logical_not), "And": _binary(torch.logical_and),
    "Or": _binary(torch.logical_or), "Xor": _binary(torch.logical_xor),
    "Where": where, "Cast": cast, "CastLike": lambda node, xs: xs[0].to(xs[1].dtype),
    "Identity": _unary(lambda x: x), "Dropout": _first_output(lambda node, xs: xs[0]),
    # shape and layout
    "Reshape": reshape, "Transpose": transpose, "Flatten": flatten, "Squeeze": squeeze,
    "Unsqueeze": unsqueeze, "Concat": concat, "Split": split, "Slice": slice_, "Gather": gather,
    "GatherElements": gather_elements, "GatherND": gather_nd, "ScatterND": scatter_nd,
    "ScatterElements": scatter_elements, "Expand": expand, "Tile": tile,
    "SpaceToDepth": space_to_depth, "DepthToSpace": depth_to_space, "Pad": pad,
    # resampling and pooling
    "Resize": resize, "Upsample": upsample, "GridSample": grid_sample,
    "MaxPool": max_pool, "AveragePool": average_pool,
    "GlobalAveragePool": _global(torch.mean), "GlobalMaxPool": _global(torch.amax),
    # reductions and search
    "ReduceSum": _reduce(lambda x, d, k: x.sum(d, keepdim=k)),
    "ReduceMean": _reduce(lambda x, d, k: x.mean(d, keepdim=k)),
    "ReduceMax": _reduce(lambda x, d, k: x.amax(d, keepdim=k)),
    "ReduceMin": _reduce(lambda x, d, k: x.amin(d, keepdim=k)),
    "ReduceProd": _reduce(_prod),
    "ReduceL2": _reduce(lambda x, d, k: torch.sqrt((x * x).sum(d, keepdim=k))),
    "ReduceSumSquare": _reduce(lambda x, d, k: (x * x).sum(d, keepdim=k)),
    "ReduceLogSumExp": _reduce(lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
    "TopK": top_k, "ArgMax": _arg(torch.argmax), "ArgMin": _arg(torch.argmin), "CumSum": cumsum,
    # shape arithmetic and constants (folded at load)
    "Constant": constant, "ConstantOfShape": constant_of_shape, "Range": range_,
    "Shape": shape, "Size": size, "NonZero": nonzero,
}

#: Ops evaluated only at load (in folded shape arithmetic), never on the data path.
FOLD_ONLY = frozenset({"NonZero", "Constant", "Shape", "Size"})
