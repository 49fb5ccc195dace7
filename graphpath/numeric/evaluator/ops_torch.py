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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graphpath.numeric.evaluator.ops_common import (
    Node,
    OpFn,
    OpResult,
    Tensor,
    conv,
    normalize_axis,
    pad_trailing_dims,
    to_tensor,
    torch_dtype,
)
from graphpath.numeric.evaluator.ops_layout import (
    concat,
    depth_to_space,
    expand,
    flatten,
    gather,
    gather_elements,
    gather_nd,
    pad,
    reshape,
    scatter_elements,
    scatter_nd,
    slice_,
    space_to_depth,
    split,
    squeeze,
    tile,
    transpose,
    unsqueeze,
)
from graphpath.numeric.evaluator.ops_quant import QUANT_OPS
from graphpath.numeric.evaluator.ops_resample import (
    arg_reduce_op,
    average_pool,
    cumsum,
    global_pool_op,
    grid_sample,
    max_pool,
    prod_over_dims,
    reduce_op,
    resize,
    top_k,
    upsample,
)

# Node, the op types and the dtype helpers are re-exported: the evaluator imports them from here.
__all__ = ["FOLD_ONLY", "OPS", "Node", "OpFn", "OpResult", "Tensor", "batch_norm_batch_stats", "batch_stat_norm",
           "to_tensor", "torch_dtype"]


# --------------------------------------------------------------------------- convolution, linear


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
            y = pad_trailing_dims(y, [(0, length - (n - pb))] + [(0, 0)] * (y.dim() - ax - 1), 0.0)
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


def batch_stat_norm(x: Tensor, eps: float) -> Tensor:
    """Train-mode BatchNorm with ``γ = 1``, ``β = 0``: per channel (axis 1), the batch's mean and
    biased variance over every other axis, differentiated through (``F.batch_norm(x, None, None,
    training=True)``, written out so that ``torch.func`` and the meta device run it). A tensor
    with one element per channel is returned as it is (its batch statistics are itself)."""
    if x.dim() < 2 or x.numel() == x.shape[1]:
        return x
    dims = [0, *range(2, x.dim())]
    d = x - x.mean(dims, keepdim=True)
    return d * torch.rsqrt((d * d).mean(dims, keepdim=True) + eps)


def batch_norm_batch_stats(node: Node, xs: list[Any]) -> OpResult:
    """A BatchNormalization node in training mode: batch statistics instead of the running ones
    (its scale, bias and epsilon kept); with one element per channel, the running ones."""
    x, scale, bias = xs[:3]
    if x.dim() < 2 or x.numel() == x.shape[1]:
        return batch_norm(node, xs)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return batch_stat_norm(x, node.f("epsilon", 1e-5)) * scale.reshape(shape) + bias.reshape(shape)


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
    dims = list(range(normalize_axis(node.i("axis", -1), x.dim()), x.dim()))
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
        axis = normalize_axis(node.i("axis", 1), x.dim())  # opset < 13: coerce to 2-D at axis
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
    "GlobalAveragePool": global_pool_op(torch.mean), "GlobalMaxPool": global_pool_op(torch.amax),
    # reductions and search
    "ReduceSum": reduce_op(lambda x, d, k: x.sum(d, keepdim=k)),
    "ReduceMean": reduce_op(lambda x, d, k: x.mean(d, keepdim=k)),
    "ReduceMax": reduce_op(lambda x, d, k: x.amax(d, keepdim=k)),
    "ReduceMin": reduce_op(lambda x, d, k: x.amin(d, keepdim=k)),
    "ReduceProd": reduce_op(prod_over_dims),
    "ReduceL2": reduce_op(lambda x, d, k: torch.sqrt((x * x).sum(d, keepdim=k))),
    "ReduceSumSquare": reduce_op(lambda x, d, k: (x * x).sum(d, keepdim=k)),
    "ReduceLogSumExp": reduce_op(lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
    "TopK": top_k, "ArgMax": arg_reduce_op(torch.argmax), "ArgMin": arg_reduce_op(torch.argmin),
    "CumSum": cumsum,
    # shape arithmetic and constants (folded at load)
    "Constant": constant, "ConstantOfShape": constant_of_shape, "Range": range_,
    "Shape": shape, "Size": size, "NonZero": nonzero,
    # quantized ops (QDQ and QOperator forms, com.microsoft QLinear* included)
    **QUANT_OPS,
}

#: Ops evaluated only at load (in folded shape arithmetic), never on the data path.
FOLD_ONLY = frozenset({"NonZero", "Constant", "Shape", "Size"})
