"""What every op function of the torch evaluator shares: :class:`Node`, the op types, dtypes, padding.

:class:`Node` is the one place where ONNX attributes and load-time inputs are parsed; the
op modules (:mod:`~graphpath.numeric.evaluator.ops_torch`, :mod:`~graphpath.numeric.evaluator.ops_layout`,
:mod:`~graphpath.numeric.evaluator.ops_resample`) build on it and the helpers here.
"""

from __future__ import annotations

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
        attrs: plain-Python attribute values (see :class:`graphpath.model.graph.OpNode`).
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
        return int_attr(self.attrs, key, default, f"{self.op_type} node {self.name!r}")

    def f(self, key: str, default: float) -> float:
        value = self.attrs.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"attribute {key!r} must be a float, got {type(value).__name__}")
        return float(value)

    def s(self, key: str, default: str) -> str:
        value = self.attrs.get(key, default)
        return value.decode() if isinstance(value, bytes) else str(value)

    def ints(self, key: str) -> list[int] | None:
        value = self.attrs.get(key)
        if value is None:
            return None
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.integer):
            raise self.fail(f"attribute {key!r} must be a list of ints, got {type(value).__name__}")
        return [int(v) for v in arr.reshape(-1)]

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


def normalize_axis(axis: int, rank: int) -> int:
    """An ONNX axis (negative counts from the end) as a non-negative dim of a rank-``rank`` tensor."""
    return axis + rank if axis < 0 else axis


def pad_trailing_dims(x: Tensor, pads: Sequence[tuple[int, int]], value: float) -> Tensor:
    """Pad the trailing ``len(pads)`` dims by (begin, end) each; F.pad wants the last dim first."""
    if not any(b or e for b, e in pads):
        return x
    flat: list[int] = []
    for b, e in reversed(pads):
        flat += [b, e]
    return F.pad(x, flat, value=value)


def window_pads(node: Node, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
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


def conv(node: Node, xs: list[Any]) -> OpResult:
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    nd = x.dim() - 2
    strides = node.ints("strides") or [1] * nd
    dil = node.ints("dilations") or [1] * nd
    pads = window_pads(node, x.shape[2:], w.shape[2:], strides, dil)
    if all(p == q for p, q in pads):
        padding = [p for p, _ in pads]
    else:
        x, padding = pad_trailing_dims(x, pads, 0.0), [0] * nd
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    return fn(x, w, b, strides, padding, dil, node.i("group", 1))


def int_attr(attrs: Mapping[str, Any], key: str, default: int, where: str) -> int:
    """An integer attribute, or a :class:`GraphpathError` naming ``where`` when the model gives
    it another type (a list, a string, a tensor).

    >>> int_attr({"axis": 2}, "axis", 1, "Concat node 'c'"), int_attr({}, "axis", 1, "Concat node 'c'")
    (2, 1)
    """
    value = attrs.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GraphpathError(f"{where}: attribute {key!r} must be an int, got {type(value).__name__}")
    return int(value)
