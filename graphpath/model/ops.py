"""Per-op facts the analyses share: which inputs carry gradient, which ops are transparent.

Positions not listed for an op in :data:`NON_DIFFERENTIABLE_INPUTS` carry gradient. The table
covers the ops where an input is a shape, an index, a scale or a bound: those inputs never
carry gradient, whatever produced them.
"""

from __future__ import annotations

#: op_type → input positions that carry no gradient.
NON_DIFFERENTIABLE_INPUTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}),
    "Expand": frozenset({1}),
    "Tile": frozenset({1}),
    "Slice": frozenset({1, 2, 3, 4}),
    "Resize": frozenset({1, 2, 3}),
    "Upsample": frozenset({1}),
    "Gather": frozenset({1}),
    "GatherElements": frozenset({1}),
    "GatherND": frozenset({1}),
    "ScatterElements": frozenset({1}),
    "ScatterND": frozenset({1}),
    "TopK": frozenset({1}),
    "Split": frozenset({1}),
    "Squeeze": frozenset({1}),
    "Unsqueeze": frozenset({1}),
    "Pad": frozenset({1, 3}),
    "ReduceSum": frozenset({1}),
    "ReduceMean": frozenset({1}),
    "ReduceMax": frozenset({1}),
    "ReduceMin": frozenset({1}),
    "ReduceProd": frozenset({1}),
    "ReduceL2": frozenset({1}),
    "CumSum": frozenset({1}),
    "Where": frozenset({0}),
    "Clip": frozenset({1, 2}),
    # running mean and variance are buffers, not trained: training updates them by momentum
    "BatchNormalization": frozenset({3, 4}),
    "OneHot": frozenset({0, 1, 2}),
    "Range": frozenset({0, 1, 2}),
    "ConstantOfShape": frozenset({0}),
    "NonMaxSuppression": frozenset({0, 1, 2, 3, 4}),
    "GridSample": frozenset(),
    "QuantizeLinear": frozenset({1, 2}),
    "DequantizeLinear": frozenset({1, 2}),
    "DynamicQuantizeLinear": frozenset(),
    # QOperator forms: scales and zero points carry no gradient (the straight-through
    # estimator differentiates the dequantised values, never the quantisation grid).
    "ConvInteger": frozenset({2, 3}),
    "MatMulInteger": frozenset({2, 3}),
    "QLinearConv": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearMatMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QGemm": frozenset({1, 2, 4, 5, 7, 8}),
    "QLinearAdd": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearSigmoid": frozenset({1, 2, 3, 4}),
    "QLinearLeakyRelu": frozenset({1, 2, 3, 4}),
    "QLinearSoftmax": frozenset({1, 2, 3, 4}),
    "QLinearGlobalAveragePool": frozenset({1, 2, 3, 4}),
    "QLinearAveragePool": frozenset({1, 2, 3, 4}),
    "QLinearReduceMean": frozenset({1, 2, 3, 4}),
    "QLinearConcat": frozenset({0, 1}),  # then (X, X_scale, X_zero_point) triples: see carries_gradient
}

#: op_type → output positions that carry no gradient (scales and zero points a quantiser computes).
NON_DIFFERENTIABLE_OUTPUTS: dict[str, frozenset[int]] = {
    "DynamicQuantizeLinear": frozenset({1, 2}),
}

#: Quantized ops → the float op they compute (QOperator form of onnxruntime.quantization, the
#: standard integer ops and the ``com.microsoft`` QLinear ops). The layer view, the detectors and
#: the fingerprint read a quantized graph through this table as its float counterpart.
QUANTIZED_FLOAT_OPS: dict[str, str] = {
    "QLinearConv": "Conv", "ConvInteger": "Conv", "QLinearMatMul": "MatMul", "MatMulInteger": "MatMul",
    "QGemm": "Gemm", "QLinearAdd": "Add", "QLinearMul": "Mul", "QLinearSigmoid": "Sigmoid",
    "QLinearLeakyRelu": "LeakyRelu", "QLinearSoftmax": "Softmax", "QLinearConcat": "Concat",
    "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearAveragePool": "AveragePool",
    "QLinearReduceMean": "ReduceMean",
}

#: Quantized weighted ops → input positions of their weight and bias (what a parameter count
#: counts; scales and zero points are quantisation metadata, not parameters). MatMulInteger's
#: weight is whichever operand is an initializer.
QUANTIZED_PARAM_INPUTS: dict[str, frozenset[int]] = {
    "QLinearConv": frozenset({3, 8}), "ConvInteger": frozenset({1}), "QLinearMatMul": frozenset({0, 3}),
    "MatMulInteger": frozenset({0, 1}), "QGemm": frozenset({3, 6}),
}

#: Ops that only quantise or dequantise (transparent in the layer view; Q→DQ pairs are the
#: fake quantisation of a QDQ graph).
QUANTIZE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


def float_op_type(op_type: str) -> str:
    """The float op a (possibly quantized) op computes.

    >>> float_op_type("QLinearConv"), float_op_type("QLinearSigmoid"), float_op_type("Relu")
    ('Conv', 'Sigmoid', 'Relu')
    """
    return QUANTIZED_FLOAT_OPS.get(op_type, op_type)


def carries_output_gradient(op_type: str, position: int) -> bool:
    """Whether output ``position`` of ``op_type`` carries gradient (a dynamic quantiser's scale
    and zero point do not).

    >>> carries_output_gradient("DynamicQuantizeLinear", 0), carries_output_gradient("DynamicQuantizeLinear", 1)
    (True, False)
    """
    return position not in NON_DIFFERENTIABLE_OUTPUTS.get(op_type, frozenset())

#: Ops whose outputs depend only on the input's shape, never its values.
SHAPE_OPS = frozenset({"Shape", "Size"})

#: Ops whose outputs carry no gradient at all (indices, booleans, random numbers).
NON_DIFFERENTIABLE_OPS = frozenset(
    {
        "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "NonMaxSuppression", "Equal", "Less",
        "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
        "Floor", "Ceil", "Round", "Sign", "Mod", "BitShift", "EyeLike", "ConstantOfShape",
        "Range", "OneHot",
    }
)


def carries_gradient(op_type: str, position: int) -> bool:
    """Whether input ``position`` of ``op_type`` carries gradient.

    >>> carries_gradient("Reshape", 1), carries_gradient("Reshape", 0), carries_gradient("Conv", 1)
    (False, True, True)
    """
    if op_type in NON_DIFFERENTIABLE_OPS:
        return False
    if op_type == "QLinearConcat":
        return position >= 2 and (position - 2) % 3 == 0
    return position not in NON_DIFFERENTIABLE_INPUTS.get(op_type, frozenset())


#: Bytes per element by ONNX data-type name (4-bit types are half a byte).
DTYPE_BYTES: dict[str, float] = {
    "FLOAT": 4, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "INT32": 4, "INT64": 8,
    "STRING": 0, "BOOL": 1, "FLOAT16": 2, "DOUBLE": 8, "UINT32": 4, "UINT64": 8,
    "COMPLEX64": 8, "COMPLEX128": 16, "BFLOAT16": 2, "FLOAT8E4M3FN": 1, "FLOAT8E4M3FNUZ": 1,
    "FLOAT8E5M2": 1, "FLOAT8E5M2FNUZ": 1, "UINT4": 0.5, "INT4": 0.5, "FLOAT4E2M1": 0.5,
    "FLOAT8E8M0": 1, "UINT2": 0.25, "INT2": 0.25,
}

#: Data types that are never trainable parameters (shapes, indices, flags).
NON_PARAMETER_DTYPES = frozenset({"INT64", "BOOL", "STRING"})
