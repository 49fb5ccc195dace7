"""The evaluator on quantized graphs: every quantized op of the table against onnxruntime, the
straight-through estimator, weights dequantized into parameters, real-valued tensors.

Each case is one tiny graph in ONNX text: a float input quantized by ``QuantizeLinear`` (or
``DynamicQuantizeLinear``), the op under test, and its integer output compared with onnxruntime's
after dequantization (the evaluator holds every tensor as its real value). The tolerance is about
one step of an 8-bit output grid (``atol`` 0.005 of the output's range ≥ 1/255): onnxruntime's
integer kernels requantize with float multipliers whose last bit can flip a tie on some CPUs
(on the machine these tests were written on, every case agreed to float rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import parse

torch = pytest.importorskip("torch")

from graphpath.numeric import Evaluator, require_parity  # noqa: E402

HEADER = '<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>'
QIN = "xq = QuantizeLinear (x, xs, xz)"
QPARAMS = "float xs = {0.02}, uint8 xz = {128}, float ys = {0.03}, uint8 yz = {120}"


def case(body: str, init: str = "", inputs: str = "float[1,2,4,4] x", outputs: str = "uint8 y") -> str:
    return f"{HEADER}\ng ({inputs}) => ({outputs}) <{QPARAMS}{', ' + init if init else ''}> {{\n{QIN}\n{body}\n}}"


#: (id, ONNX text) — one per quantized op of the table (QuantizeLinear is in every case).
QUANT_CASES: list[tuple[str, str]] = [
    ("qdq_per_channel_weight",
     case("xd = DequantizeLinear (xq, xs, xz)\nwd = DequantizeLinear <axis=0> (w, ws, wz)\n"
          "y = Conv <kernel_shape=[3,3], pads=[1,1,1,1]> (xd, wd)",
          init="int8[3,2,3,3] w, float[3] ws = {0.01, 0.02, 0.03}, int8[3] wz = {0, 0, 0}", outputs="float y")),
    ("qlinear_conv_bias",
     case("y = QLinearConv <kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]> (xq, xs, xz, w, ws, wz, ys, yz, b)",
          init="int8[3,2,3,3] w, float ws = {0.05}, int8 wz = {0}, int32[3] b = {40, -100, 7}")),
    ("qlinear_conv_per_channel",
     case("y = QLinearConv <kernel_shape=[1,1]> (xq, xs, xz, w, ws, wz, ys, yz)",
          init="int8[3,2,1,1] w, float[3] ws = {0.05, 0.02, 0.08}, int8[3] wz = {0, 0, 0}")),
    ("dynamic_conv_integer",
     f"{HEADER}\ng (float[1,2,4,4] x) => (float y) <uint8[3,2,3,3] w, float ws = {{0.02}}, uint8 wz = {{128}}> {{\n"
     "q, s, z = DynamicQuantizeLinear (x)\nc = ConvInteger <pads=[1,1,1,1]> (q, w, z, wz)\n"
     "f = Cast <to=1> (c)\nm = Mul (s, ws)\ny = Mul (f, m)\n}"),
    ("dynamic_matmul_integer",
     f"{HEADER}\ng (float[1,2,4,4] x) => (float y) <uint8[4,3] w, float ws = {{0.02}}, uint8 wz = {{128}}> {{\n"
     "q, s, z = DynamicQuantizeLinear (x)\nc = MatMulInteger (q, w, z, wz)\n"
     "f = Cast <to=1> (c)\nm = Mul (s, ws)\ny = Mul (f, m)\n}"),
    ("qlinear_matmul",
     case("y = QLinearMatMul (xq, xs, xz, w, ws, wz, ys, yz)", init="int8[4,3] w, float ws = {0.05}, int8 wz = {0}")),
    ("qgemm_trans_b_bias",  # com.microsoft QGemm, as quantize_static writes a Gemm (yolov1's FC layers)
     case("y = com.microsoft.QGemm <transB = 1, alpha = 0.5> (xq, xs, xz, w, ws, wz, b, ys, yz)",
          init="int8[3,4] w, float ws = {0.05}, int8 wz = {0}, int32[3] b = {40, -100, 9}",
          inputs="float[2,4] x")),  # C in units of a_scale·b_scale, scaled by alpha with A·B (bias 7 made a tie)
    ("qgemm_float_output",
     case("y = com.microsoft.QGemm <alpha = 0.5> (xq, xs, xz, w, ws, wz)",
          init="int8[4,3] w, float ws = {0.05}, int8 wz = {0}", inputs="float[2,4] x", outputs="float y")),
    ("qlinear_add",
     case("y = com.microsoft.QLinearAdd (xq, xs, xz, xq, xs, xz, ys, yz)")),
    ("qlinear_mul_sigmoid_silu",
     case("g = com.microsoft.QLinearSigmoid (xq, xs, xz, gs, gz)\n"
          "y = com.microsoft.QLinearMul (xq, xs, xz, g, gs, gz, ys, yz)",
          init="float gs = {0.004}, uint8 gz = {0}")),
    ("qlinear_leaky_relu",
     case("y = com.microsoft.QLinearLeakyRelu <alpha=0.1> (xq, xs, xz, ys, yz)")),
    ("qlinear_softmax",
     case("y = com.microsoft.QLinearSoftmax <axis=-1, opset=13> (xq, xs, xz, ss, sz)",
          init="float ss = {0.00390625}, uint8 sz = {0}")),
    ("qlinear_global_average_pool",
     case("y = com.microsoft.QLinearGlobalAveragePool (xq, xs, xz, ys, yz)")),
    ("qlinear_average_pool",  # quantize_static's AveragePool (yolov9c's ADown), padded, count_include_pad 0
     case("y = com.microsoft.QLinearAveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]> (xq, xs, xz, ys, yz)")),
    ("qlinear_average_pool_channels_last",
     case("y = com.microsoft.QLinearAveragePool <kernel_shape=[2,2], strides=[2,2], channels_last=1> (xq, xs, xz, ys, yz)",
          inputs="float[1,4,4,2] x")),
    ("qlinear_concat",
     case("y = com.microsoft.QLinearConcat <axis=1> (ys, yz, xq, xs, xz, xq, xs, xz)")),
]


def _feed(ev: Evaluator, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(-1.5, 1.5, s).astype(np.float32) for n, s in ev.input_shapes.items()}


@pytest.mark.parametrize("src", [c[1] for c in QUANT_CASES], ids=[c[0] for c in QUANT_CASES])
def test_quantized_op_matches_onnxruntime(write_model, src):
    path = write_model(parse(src))
    ev = Evaluator.from_model(path, device="cpu")
    require_parity(ev, None, _feed(ev), rtol=0.0, atol=0.005)
    assert ev.quantization  # the evaluator says what it did


def test_fake_quant_gradient_is_the_clipped_straight_through_estimator(write_model):
    """Q → DQ: the forward rounds to the grid; the gradient is 1 where x/s + z lies inside
    [0, 255] and 0 where the clamp cuts it (s = 0.02, z = 128: inside for x in [-2.56, 2.54])."""
    src = (f"{HEADER}\ng (float[1,1,1,6] x) => (float y) <float s = {{0.02}}, uint8 z = {{128}}> {{\n"
           "q = QuantizeLinear (x, s, z)\ny = DequantizeLinear (q, s, z)\n}")
    ev = Evaluator.from_model(write_model(parse(src)), device="cpu", dtype=torch.float64)
    x = torch.tensor([[[[-3.0, -2.0, -0.013, 0.5, 2.0, 3.0]]]], dtype=torch.float64, requires_grad=True)
    y = ev({"x": x})["y"]
    assert torch.allclose(y.detach(), torch.tensor([-2.56, -2.0, -0.02, 0.5, 2.0, 2.54], dtype=torch.float64)
                          .reshape(1, 1, 1, 6), atol=1e-12)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert grad.reshape(-1).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_quantized_weights_become_float_parameters(write_model):
    """A DequantizeLinear of an int8 initializer is a trainable float parameter named after its
    output, holding (w − z)·s per output channel; QLinearConv's weight and int32 bias too."""
    path = write_model(parse(QUANT_CASES[0][1]))
    ev = Evaluator.from_model(path, device="cpu")
    params = ev.named_onnx_parameters()
    assert list(params) == ["wd"]
    from graphpath import onnx_io

    w = onnx_io.open_model(path).arrays(["w"])["w"].astype(np.float64)
    expected = w * np.array([0.01, 0.02, 0.03]).reshape(3, 1, 1, 1)
    assert np.allclose(params["wd"].detach().numpy(), expected, atol=1e-7)

    ev2 = Evaluator.from_model(write_model(parse(QUANT_CASES[1][1]), "qconv.onnx"), device="cpu")
    assert sorted(ev2.named_onnx_parameters()) == ["b", "w"]
    b = ev2.named_onnx_parameters()["b"].detach().numpy()
    assert np.allclose(b, np.array([40, -100, 7]) * 0.02 * 0.05, atol=1e-7)


def test_weight_gradient_flows_through_the_quantized_conv(write_model):
    """The dequantized weights get a nonzero gradient through QLinearConv's output rounding."""
    ev = Evaluator.from_model(write_model(parse(QUANT_CASES[1][1])), device="cpu")
    x = torch.from_numpy(_feed(ev)["x"])
    params = {k: v.detach().clone().requires_grad_(True) for k, v in ev.named_onnx_parameters().items()}
    y = ev({"x": x}, params=params)["y"]
    grads = torch.autograd.grad(y.square().sum(), list(params.values()))
    assert all(float(g.abs().sum()) > 0 for g in grads)


def test_parity_reference_is_the_value_identical_uint8_weight_copy(write_model):
    """uint8 activations × int8 weights: the parity reference is onnxruntime on a copy whose int8
    weights and zero points are re-encoded as uint8 (+128). The values are the ONNX definition's
    (``Σ (x − x_z)(w − w_z)``, exact in int32): a 1×1 conv over 8 channels of x = 255 (x_z = 0) and
    w = ±127: x = 250 makes adjacent pairs of products 2·250·127 = 63500, past int16, where a U8S8
    kernel that adds pairs in saturating int16 (AVX2 without VNNI) gives 65533 instead of 127000."""
    from graphpath import onnx_io

    w = "127, 127, 127, 127, -127, -127, 127, 127"
    src = (f"{HEADER}\ng (float[1,8,2,2] x) => (float y) <float xs = {{1.0}}, uint8 xz = {{0}}, "
           f"int8[1,8,1,1] w = {{{w}}}, float ws = {{1.0}}, int8 wz = {{0}}, float ys = {{1024.0}}, "
           "uint8 yz = {0}> {\nxq = QuantizeLinear (x, xs, xz)\n"
           "q = QLinearConv <kernel_shape=[1,1]> (xq, xs, xz, w, ws, wz, ys, yz)\n"
           "y = DequantizeLinear (q, ys, yz)\n}")
    path = write_model(parse(src))
    model = onnx_io.open_model(path)
    blob, count = onnx_io.uint8_weights_bytes(model)
    assert count == 1

    import onnxruntime as ort

    x = np.full((1, 8, 2, 2), 250.0, np.float32)
    x[..., 1, :] = 40.0  # one row inside int16 either way
    (got,) = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(["y"], {"x": x})
    # 250·127·4 = 127000 → 124.02 steps of 1024; 40·127·4 = 20320 → 19.84 steps
    assert got[0, 0].tolist() == [[124 * 1024.0] * 2, [20 * 1024.0] * 2]

    ev = Evaluator.from_model(model, device="cpu", outputs=["y"])
    parity = require_parity(ev, model, {"x": x}, rtol=0.0, atol=0.005)
    assert "re-encoded as uint8" in parity.reference


# --------------------------------------------------------------------------- op by op (teacher forcing)

RELU_QDQ = (f"{HEADER}\ng (float[1,2,4,4] x) => (float y) <{QPARAMS}, float[2,2,1,1] w = {{0.9, -0.4, 0.3, 0.8}}> "
            f"{{\n{QIN}\nxd = DequantizeLinear (xq, xs, xz)\nc = Conv <kernel_shape=[1,1]> (xd, w)\nr = Relu (c)\n"
            "rq = QuantizeLinear (r, ys, yz)\ny = DequantizeLinear (rq, ys, yz)\n}")


@pytest.mark.parametrize("src", [c[1] for c in QUANT_CASES], ids=[c[0] for c in QUANT_CASES])
def test_every_quantized_op_agrees_on_onnxruntimes_inputs(write_model, src):
    from graphpath import onnx_io
    from graphpath.numeric.parity import check_op_parity

    path = write_model(parse(src))
    ev = Evaluator.from_model(path, device="cpu")
    result = check_op_parity(ev, onnx_io.open_model(path), _feed(ev))
    assert result.ok, result.describe()
    assert result.compared >= 1 and result.grid_max_steps <= 1.001


def test_op_parity_names_the_op_that_is_wrong(write_model, monkeypatch):
    """A Relu implemented 10 % off: each op reads onnxruntime's inputs, so the comparison stops at
    the Relu itself, not at the quantizer after it or the head."""
    from graphpath import onnx_io
    from graphpath.numeric.evaluator import ops_torch
    from graphpath.numeric.parity import check_op_parity

    monkeypatch.setitem(ops_torch.OPS, "Relu", lambda node, xs: torch.relu(xs[0]) * 1.1)
    path = write_model(parse(RELU_QDQ))
    ev = Evaluator.from_model(path, device="cpu")
    result = check_op_parity(ev, onnx_io.open_model(path), _feed(ev))
    assert not result.ok and result.first_bad is not None and result.first_bad[:2] == ("r", "Relu")
    assert "'r' differs" in result.describe()


def _failing_heads(monkeypatch):
    """check_parity as if rounding flips had grown through depth: every head beyond tolerance."""
    import dataclasses

    from graphpath.numeric import parity

    real = parity.check_parity

    def drifted(*args, **kwargs):
        res = real(*args, **kwargs)
        return dataclasses.replace(res, outputs=tuple(dataclasses.replace(o, ok=False, max_abs=0.08)
                                                      for o in res.outputs))

    monkeypatch.setattr(parity, "check_parity", drifted)


def test_heads_drift_with_every_op_right_is_accepted_and_said(write_model, monkeypatch):
    from graphpath.numeric.backward import run_backward
    from graphpath.numeric.options import BackwardOptions

    _failing_heads(monkeypatch)
    report = run_backward(write_model(parse(RELU_QDQ)), BackwardOptions(probes=1, device="cpu", max_blocks=0))
    note = " ".join(report.parity.notes)
    assert "op by op on onnxruntime's inputs every one of" in note and "rounding flips grown through depth" in note


def test_heads_drift_with_a_wrong_op_is_refused_naming_it(write_model, monkeypatch):
    from graphpath.errors import GraphpathError
    from graphpath.numeric.backward import run_backward
    from graphpath.numeric.evaluator import ops_torch
    from graphpath.numeric.options import BackwardOptions

    _failing_heads(monkeypatch)
    conv = ops_torch.OPS["Conv"]
    monkeypatch.setitem(ops_torch.OPS, "Conv", lambda node, xs: conv(node, xs) * 1.1)  # the head's own conv
    with pytest.raises(GraphpathError, match="Conv output 'c' differs"):
        run_backward(write_model(parse(RELU_QDQ)), BackwardOptions(probes=1, device="cpu", max_blocks=0))
