"""Quantized ops of the torch evaluator (QDQ and QOperator forms), entries of
:data:`~graphpath.numeric.evaluator.ops_torch.OPS`.

**Every tensor holds real values.** An integer tensor ``q`` of the ONNX graph (quantized with
scale ``s`` and zero point ``z``) is held as its dequantized value ``(q − z)·s``, so feature maps,
gradients and their ratios are in the units of the float network and compare with a float
export's. ``QuantizeLinear`` rounds its input to the grid and returns the grid value
(fake-quantization); ``DequantizeLinear`` of such a tensor is the identity; the ``QLinear*`` ops
compute the float op on real inputs and round the result to their output grid. A true integer
tensor (an integer graph input, an integer initializer) is dequantized where it is read. Weights
are dequantized once at load (:func:`dequantize_weights`, called by the evaluator) and become
the trainable parameters. ``ConvInteger``/``MatMulInteger`` (``quantize_dynamic``) compute the
float product of real operands; the graph's own rescaling ``Mul`` by ``x_scale × w_scale`` after
them is then skipped (the evaluator marks it), so their outputs are real too.

Rounding (half to even, as ONNX) is differentiated with the **straight-through estimator**: the
rounding passes the gradient unchanged and the clamp to the integer range passes none outside
it (the clipped STE of ``torch.fake_quantize_per_tensor_affine``). Scales and zero points carry
no gradient. :attr:`Evaluator.grids <graphpath.numeric.evaluator.core.Evaluator.grids>` keeps
each quantized tensor's scale and zero point, so the parity check dequantizes onnxruntime's
integer outputs before comparing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graphpath.numeric.evaluator.ops_common import Node, OpFn, OpResult, Tensor, conv, normalize_axis
from graphpath.numeric.evaluator.ops_resample import average_pool

__all__ = ["QUANT_OPS", "dequantize_weights"]

#: Integer range by numpy dtype name of a zero point (uint8 when the zero point is omitted).
_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
           "int32": (-(2 ** 31), 2 ** 31 - 1)}


def _range(node: Node, zp_pos: int) -> tuple[int, int]:
    zp = node.consts.get(zp_pos) if node.has(zp_pos) else None
    return _RANGES.get(np.asarray(zp).dtype.name, (0, 255)) if zp is not None else (0, 255)


def _per_axis(v: Tensor | None, x: Tensor, axis: int) -> Tensor | float:
    """A scale or zero point shaped to broadcast along ``axis`` of ``x`` (scalars unchanged)."""
    if v is None:
        return 0.0
    v = v.to(x.dtype) if x.is_floating_point() else v.float()
    if v.dim() == 0 or v.numel() == 1:
        return v.reshape(())
    shape = [1] * x.dim()
    shape[normalize_axis(axis, x.dim())] = -1
    return v.reshape(shape)


def round_ste(v: Tensor) -> Tensor:
    """Round half to even in the forward pass, identity in the backward pass."""
    return v + (torch.round(v) - v).detach()


def fake_quant(x: Tensor, scale: Tensor | float, zp: Tensor | float, lo: int, hi: int) -> Tensor:
    """``clamp(round(x / scale) + zp, lo, hi)`` with the clipped straight-through estimator."""
    return torch.clamp(round_ste(x / scale) + zp, lo, hi)


def _real(node: Node, x: Tensor, scale: Tensor | None, zp: Tensor | None, axis: int = 1) -> Tensor:
    """``x`` as a real value: a float tensor already is one; an integer tensor is dequantized."""
    if x.is_floating_point():
        return x
    xf = x.to(node.dtype)
    out = xf - _per_axis(zp, xf, axis) if zp is not None else xf
    return out * _per_axis(scale, xf, axis) if scale is not None else out


def _grid(node: Node, y: Tensor, scale: Tensor | float, zp: Tensor | None, zp_pos: int, axis: int = 1) -> Tensor:
    """``y`` rounded to the grid of ``scale``/``zp`` and returned as the grid's real value."""
    lo, hi = _range(node, zp_pos)
    s_ = _per_axis(scale, y, axis) if isinstance(scale, Tensor) else scale
    z_ = _per_axis(zp, y, axis)
    return (fake_quant(y, s_, z_, lo, hi) - z_) * s_


def quantize_linear(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    return _grid(node, x, xs[1], xs[2] if len(xs) > 2 else None, 2, node.i("axis", 1))


def dequantize_linear(node: Node, xs: list[Any]) -> OpResult:
    return _real(node, xs[0], xs[1], xs[2] if len(xs) > 2 else None, node.i("axis", 1))


def dynamic_quantize_linear(node: Node, xs: list[Any]) -> OpResult:
    x = xs[0]
    lo = torch.clamp(x.detach().amin(), max=0.0)
    hi = torch.clamp(x.detach().amax(), min=0.0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    return (fake_quant(x, scale, zp, 0, 255) - zp) * scale, scale, zp


def _conv(node: Node, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    out = conv(node, [x, w, b])
    assert isinstance(out, Tensor)
    return out


def qlinear_conv(node: Node, xs: list[Any]) -> OpResult:
    x, xs_, xzp, w, ws, wzp, ys, yzp = xs[:8]
    b = xs[8] if len(xs) > 8 else None
    if b is not None and not b.is_floating_point():  # int32 bias in units of x_scale × w_scale
        b = b.to(node.dtype) * (xs_.to(node.dtype).reshape(()) * ws.to(node.dtype).reshape(-1))
    y = _conv(node, _real(node, x, xs_, xzp), _real(node, w, ws, wzp, 0), b)
    return _grid(node, y, ys, yzp, 7)


def conv_integer(node: Node, xs: list[Any]) -> OpResult:
    if not xs[1].is_floating_point() or not xs[0].is_floating_point():
        raise node.fail("ConvInteger is evaluated only on a dynamically quantized input with its weight scale "
                        "applied by the graph after it (onnxruntime.quantization.quantize_dynamic)")
    return _conv(node, xs[0], xs[1], None)


def matmul_integer(node: Node, xs: list[Any]) -> OpResult:
    if not xs[1].is_floating_point() or not xs[0].is_floating_point():
        raise node.fail("MatMulInteger is evaluated only on a dynamically quantized input with its weight scale "
                        "applied by the graph after it (onnxruntime.quantization.quantize_dynamic)")
    return torch.matmul(xs[0], xs[1])


def qlinear_matmul(node: Node, xs: list[Any]) -> OpResult:
    a, as_, azp, b, bs, bzp, ys, yzp = xs[:8]
    y = _real(node, a, as_, azp, -2) @ _real(node, b, bs, bzp, -1)
    return _grid(node, y, ys, yzp, 7, -1)


def qgemm(node: Node, xs: list[Any]) -> OpResult:
    """com.microsoft QGemm: ``alpha·(A'·B' + C)`` on real operands (C: int32 in units of
    ``a_scale·b_scale``), rounded to the output grid when it has one (else a float output)."""
    a, as_, azp, b, bs, bzp = xs[:6]
    c = xs[6] if len(xs) > 6 else None
    ys = xs[7] if len(xs) > 7 else None
    yzp = xs[8] if len(xs) > 8 else None
    alpha = node.f("alpha", 1.0)
    trans_b = node.i("transB", 0)
    A = _real(node, a, as_, azp)
    B = _real(node, b, bs, bzp, 0 if trans_b else -1)
    A = A.transpose(0, 1) if node.i("transA", 0) else A
    B = B.transpose(0, 1) if trans_b else B
    y = A @ B
    if c is not None:  # int32 C in units of a_scale·b_scale (dequantized at load when an initializer)
        if not c.is_floating_point():
            c = c.to(node.dtype) * (as_.to(node.dtype).reshape(()) * bs.to(node.dtype).reshape(-1))
        y = y + c
    y = alpha * y
    return y if ys is None else _grid(node, y, ys, yzp, 8, -1)


def _in(node: Node, xs: list[Any], pos: int) -> Tensor:
    """Input ``pos`` as a real value (its scale and zero point follow it)."""
    return _real(node, xs[pos], xs[pos + 1], xs[pos + 2] if len(xs) > pos + 2 else None)


def _qlinear_binary(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    def run(node: Node, xs: list[Any]) -> OpResult:
        return _grid(node, fn(_in(node, xs, 0), _in(node, xs, 3)), xs[6], xs[7] if len(xs) > 7 else None, 7)

    return run


def _qlinear_unary(fn: Callable[[Node, Tensor], Tensor]) -> OpFn:
    def run(node: Node, xs: list[Any]) -> OpResult:
        return _grid(node, fn(node, _in(node, xs, 0)), xs[3], xs[4] if len(xs) > 4 else None, 4)

    return run


def qlinear_concat(node: Node, xs: list[Any]) -> OpResult:
    parts = [_in(node, xs, i) for i in range(2, len(xs), 3)]
    return _grid(node, torch.cat(parts, dim=node.i("axis", 0)), xs[0], xs[1], 1)


def _softmax(node: Node, x: Tensor) -> Tensor:
    return torch.softmax(x, dim=node.i("axis", -1))


def _global_avg(node: Node, x: Tensor) -> Tensor:
    dims = list(range(1, x.dim() - 1)) if node.i("channels_last", 0) else list(range(2, x.dim()))
    return x.mean(dim=dims, keepdim=True)


def _avg_pool(node: Node, x: Tensor) -> Tensor:
    """AveragePool's window arithmetic; ``channels_last`` inputs are NHWC."""
    if node.i("channels_last", 0):
        return average_pool(node, [x.movedim(-1, 1)]).movedim(1, -1)  # type: ignore[union-attr]
    return average_pool(node, [x])  # type: ignore[return-value]


def passthrough(node: Node, xs: list[Any]) -> OpResult:
    """The rescaling Mul after ConvInteger/MatMulInteger, skipped: its input is already real."""
    return xs[int(node.attrs["graphpath_passthrough"])]


#: Output position → (scale input, zero-point input) of ops whose output lies on a fixed grid.
OUTPUT_GRIDS: dict[str, tuple[int, int]] = {
    "QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearMatMul": (6, 7), "QLinearAdd": (6, 7),
    "QLinearMul": (6, 7), "QLinearSigmoid": (3, 4), "QLinearLeakyRelu": (3, 4), "QLinearSoftmax": (3, 4),
    "QLinearGlobalAveragePool": (3, 4), "QLinearAveragePool": (3, 4), "QLinearConcat": (0, 1), "QGemm": (7, 8),
}


#: The quantized ops' entries (default domain and ``com.microsoft``).
QUANT_OPS: dict[str, OpFn] = {
    "QuantizeLinear": quantize_linear, "DequantizeLinear": dequantize_linear,
    "DynamicQuantizeLinear": dynamic_quantize_linear, "QLinearConv": qlinear_conv,
    "ConvInteger": conv_integer, "MatMulInteger": matmul_integer, "QLinearMatMul": qlinear_matmul,
    "QLinearAdd": _qlinear_binary(torch.add), "QLinearMul": _qlinear_binary(torch.mul),
    "QLinearSigmoid": _qlinear_unary(lambda node, x: torch.sigmoid(x)),
    "QLinearLeakyRelu": _qlinear_unary(lambda node, x: F.leaky_relu(x, node.f("alpha", 0.01))),
    "QLinearSoftmax": _qlinear_unary(_softmax), "QLinearGlobalAveragePool": _qlinear_unary(_global_avg),
    "QLinearAveragePool": _qlinear_unary(_avg_pool),
    "QLinearConcat": qlinear_concat, "QGemm": qgemm,
}

#: QOperator ops → (weight position, scale position or -1, zero-point position or -1, axis)
#: of the operand dequantized at load when it is an initializer; -1 scale: applied after the op;
#: axis ``None``: the one the caller passes (QGemm's B: 0 with ``transB``, else -1).
_WEIGHT_SLOTS: dict[str, tuple[tuple[int, int, int, int | None], ...]] = {
    "QLinearConv": ((3, 4, 5, 0),), "ConvInteger": ((1, -1, 3, 0),),
    "QLinearMatMul": ((3, 4, 5, -1), (0, 1, 2, -2)), "MatMulInteger": ((1, -1, 3, -1), (0, -1, 2, -2)),
    "QGemm": ((3, 4, 5, None),),
}


def dequantize_weights(
    ops: list[tuple[str, str, tuple[str, ...], int]], arrays: Mapping[str, np.ndarray],
    scale_after: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """Float32 values for the quantized weights of ``ops`` (``(name, op_type, inputs, axis)``, the
    ``axis`` attribute of a DequantizeLinear, default 1).

    Returns the dequantized arrays by tensor name: a ``DequantizeLinear`` of an initializer by
    its *node* name (the evaluator drops the node and names the value after its output), a
    QOperator weight or int32 bias by its initializer's name. ConvInteger/MatMulInteger weights
    are dequantized only with the per-tensor weight scale ``scale_after`` that the graph applies
    after the op (by node name); without one they stay integers (and the op refuses to run).
    """
    values: dict[str, np.ndarray] = {}

    def get(t: str) -> np.ndarray | None:
        return arrays.get(t) if t else None

    def deq(w: np.ndarray, scale: np.ndarray | float | None, zp: np.ndarray | None, axis: int) -> np.ndarray:
        wf = np.asarray(w).astype(np.float64)
        shape = [1] * wf.ndim
        if wf.ndim:
            shape[axis % wf.ndim] = -1

        def bc(v: np.ndarray | float) -> np.ndarray | float:
            v = np.asarray(v, np.float64)
            return float(v.reshape(-1)[0]) if v.size == 1 else v.reshape(shape)

        if zp is not None:
            wf = wf - bc(zp)
        return wf * bc(scale) if scale is not None else wf

    def integer(t: str) -> bool:
        return t in arrays and np.asarray(arrays[t]).dtype.kind in "iu"

    for name, op_type, ins, dq_axis in ops:
        if op_type == "DequantizeLinear" and integer(ins[0]):
            scale = get(ins[1])
            if scale is not None:
                values[name] = deq(arrays[ins[0]], scale, get(ins[2]) if len(ins) > 2 else None,
                                   dq_axis if np.asarray(arrays[ins[0]]).ndim > 1 else 0)
            continue
        for w, s, z, axis in _WEIGHT_SLOTS.get(op_type, ()):
            if len(ins) <= w or not integer(ins[w]):
                continue
            zp = get(ins[z]) if z >= 0 and len(ins) > z else None
            w_scale: np.ndarray | float | None = get(ins[s]) if s >= 0 and len(ins) > s else scale_after.get(name)
            if w_scale is not None:
                values[ins[w]] = deq(arrays[ins[w]], w_scale, zp, dq_axis if axis is None else axis)
        if op_type == "QLinearConv" and len(ins) > 8 and integer(ins[8]):
            xs_, ws = get(ins[1]), get(ins[4])
            if xs_ is not None and ws is not None:
                values[ins[8]] = arrays[ins[8]].astype(np.float64) * float(np.asarray(xs_).reshape(-1)[0]) \
                    * np.asarray(ws, np.float64).reshape(-1)
        if op_type == "QGemm" and len(ins) > 6 and integer(ins[6]):
            as_, bs = get(ins[1]), get(ins[4])
            if as_ is not None and bs is not None:  # alpha multiplies the sum at run time (qgemm)
                values[ins[6]] = arrays[ins[6]].astype(np.float64) * float(np.asarray(as_).reshape(-1)[0]) \
                    * np.asarray(bs, np.float64).reshape(-1)
    return {k: np.asarray(v, np.float32) for k, v in values.items()}
