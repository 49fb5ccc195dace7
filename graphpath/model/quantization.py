"""How a graph is quantized: the form, the bit widths and the granularity, read from the op view.

Two ONNX forms exist (onnxruntime.quantization writes both):

* **QDQ**: float ops with ``QuantizeLinear``/``DequantizeLinear`` around them. A
  ``DequantizeLinear`` of an integer initializer is a quantized *weight*; a
  ``QuantizeLinear`` → ``DequantizeLinear`` pair on data is the fake quantisation of an
  activation.
* **QOperator**: integer ops (``QLinearConv``, ``QLinearMatMul``, ``ConvInteger``,
  ``MatMulInteger``, the ``com.microsoft`` ``QLinearAdd``/``QLinearConcat``/``QLinearSigmoid`` …)
  that take scales and zero points as inputs. ``DynamicQuantizeLinear`` in front of
  ``ConvInteger``/``MatMulInteger`` computes activation scales at run time (``quantize_dynamic``).

Granularity is per-channel when a weight's scale (or, for ``ConvInteger``/``MatMulInteger``,
its zero point) has more than one element, else per-tensor.

>>> QuantizationInfo("QDQ", ("INT8",), ("UINT8",), "per-channel", 64, 120).describe()
'QDQ quantization: weights INT8 per-channel (64 tensors), activations UINT8 (120 fake-quantized tensors)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphpath.model.graph import ModelGraph

__all__ = ["QuantizationInfo", "quantization_info"]

#: Bit widths of the integer types quantizers write.
BITS = {"INT8": 8, "UINT8": 8, "INT16": 16, "UINT16": 16, "INT4": 4, "UINT4": 4, "INT32": 32,
        "FLOAT8E4M3FN": 8, "FLOAT8E5M2": 8}

#: QOperator ops → (weight input, its scale input or -1, its zero-point input or -1).
_QOP_WEIGHTS = {
    "QLinearConv": (3, 4, 5), "QLinearMatMul": (3, 4, 5), "QGemm": (3, 4, 5),
    "ConvInteger": (1, -1, 3), "MatMulInteger": (1, -1, 3),
}
#: QOperator ops → the input holding their output (or input) zero point, for activation types.
_QOP_ACTIVATION_ZP = {"QLinearConv": 7, "QLinearMatMul": 7, "QLinearAdd": 7, "QLinearMul": 7,
                      "QLinearSigmoid": 4, "QLinearConcat": 1, "ConvInteger": 2, "MatMulInteger": 2}


@dataclass(frozen=True)
class QuantizationInfo:
    """What quantization a graph carries.

    Attributes:
        form: ``"QDQ"``, ``"QOperator"`` or ``"QOperator (dynamic)"`` (DynamicQuantizeLinear),
            ``"QDQ+QOperator"`` when both appear.
        weight_types, activation_types: integer types of weights and of activations.
        granularity: ``"per-channel"``, ``"per-tensor"`` or ``"mixed"`` (weights).
        weights: quantized weight tensors.
        activations: fake-quantized activations (QDQ pairs), quantized outputs of QOperator ops,
            or dynamic quantizers.
    """

    form: str
    weight_types: tuple[str, ...]
    activation_types: tuple[str, ...]
    granularity: str
    weights: int
    activations: int

    @property
    def weight_bits(self) -> tuple[int, ...]:
        return tuple(sorted({BITS.get(t, 0) for t in self.weight_types}))

    def describe(self) -> str:
        w = "/".join(self.weight_types) or "none"
        a = "/".join(self.activation_types) or "float"
        what = "dynamic quantizers" if "dynamic" in self.form else (
            "fake-quantized tensors" if self.form == "QDQ" else "quantized outputs")
        return (f"{self.form} quantization: weights {w} {self.granularity} ({self.weights} tensors), "
                f"activations {a} ({self.activations} {what})")

    def to_dict(self) -> dict[str, Any]:
        return {"activation_types": list(self.activation_types), "activations": self.activations,
                "form": self.form, "granularity": self.granularity, "weight_bits": list(self.weight_bits),
                "weight_types": list(self.weight_types), "weights": self.weights}


def _dtype(graph: ModelGraph, tensor: str) -> str | None:
    p = graph.params.get(tensor)
    return p.dtype if p is not None else None


def _count(graph: ModelGraph, tensor: str) -> int:
    p = graph.params.get(tensor)
    return p.count if p is not None else 1


def _grain(graph: ModelGraph, weight: str, scale: str) -> set[str]:
    """Per-channel when the scale (or zero point) has several elements, per-tensor when it has
    one for a weight of several output channels; nothing for a one-channel weight (either)."""
    if scale and _count(graph, scale) > 1:
        return {"per-channel"}
    p = graph.params.get(weight)
    one_channel = p is not None and len(p.shape) >= 2 and 1 in (p.shape[0], p.shape[-1])
    return set() if one_channel else {"per-tensor"}


def quantization_info(graph: ModelGraph) -> QuantizationInfo | None:
    """The graph's quantization, or ``None`` for a float graph."""
    wtypes: set[str] = set()
    atypes: set[str] = set()
    grains: set[str] = set()
    weights = acts = 0
    qdq = qop = dynamic = False
    for op in graph.ops():
        t, ins = op.op_type, op.inputs
        if t == "DequantizeLinear" and ins and ins[0] in graph.params:
            qdq = True
            dt = _dtype(graph, ins[0]) or "?"
            if dt == "INT32":  # a bias, quantized with the product of input and weight scales
                continue
            wtypes.add(dt)
            weights += 1
            grains.update(_grain(graph, ins[0], ins[1] if len(ins) > 1 else ""))
        elif t == "QuantizeLinear" and ins and ins[0] not in graph.params and not graph.is_shape(ins[0]):
            acts += 1
            zp = ins[2] if len(ins) > 2 and ins[2] else ""
            atypes.add(_dtype(graph, zp) or "UINT8")  # no zero point: uint8 by the standard
            qdq = qdq or any(graph.op(c).op_type == "DequantizeLinear" for c in graph.dag.successors(op.name))
        elif t == "DynamicQuantizeLinear":
            dynamic = True
            acts += 1
            atypes.add("UINT8")
        if t in _QOP_WEIGHTS:
            qop = True
            w, s, z = _QOP_WEIGHTS[t]
            weight = next((ins[i] for i in ((w, 0) if t == "MatMulInteger" else (w,))
                           if len(ins) > i and ins[i] in graph.params), None)
            if weight is not None:
                wtypes.add(_dtype(graph, weight) or "?")
                weights += 1
                grain_at = s if s >= 0 else z
                grains.update(_grain(graph, weight, ins[grain_at] if len(ins) > grain_at else ""))
        if t in _QOP_ACTIVATION_ZP and t not in ("ConvInteger", "MatMulInteger"):
            qop = True
            pos = _QOP_ACTIVATION_ZP[t]
            acts += 1
            if len(ins) > pos and ins[pos]:
                atypes.add(_dtype(graph, ins[pos]) or "UINT8")
    if not (qdq or qop or dynamic):
        return None
    form = "QDQ+QOperator" if qdq and qop else "QDQ" if qdq else (
        "QOperator (dynamic)" if dynamic else "QOperator")
    granularity = "mixed" if len(grains) > 1 else next(iter(grains), "per-tensor")
    return QuantizationInfo(form, tuple(sorted(wtypes)), tuple(sorted(atypes)), granularity, weights, acts)
