"""One architecture, many export forms: the layer view, the path counts and the blocks do not move.

The architecture is a tiny detector body: a 3×3 stride-2 stem, a residual bottleneck
(conv 1×1 → conv 3×3 → add), an SPPF (conv 1×1 → three chained 5×5 max pools → cat of four →
conv 1×1) and a 1×1 prediction conv; every conv SiLU-activated. It is written with
``onnx.helper`` in the PyTorch layout (NCHW), in tf2onnx's NHWC layout (a Transpose pair around
every conv and pool, activations and merges in NHWC — built directly, TensorFlow is not needed),
with explicit ``Pad`` nodes before the padded convs, with every node name stripped, and quantized
by onnxruntime.quantization in the QDQ form (static, per-channel int8) and the QOperator forms
(static ``QLinearConv`` + contrib ``QLinearAdd``/``QLinearConcat``/``QLinearSigmoid``/``QLinearMul``,
and dynamic ``ConvInteger`` + ``DynamicQuantizeLinear``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphpath import onnx_io
from graphpath.analysis import analyze
from graphpath.blocks.notes import export_notes
from graphpath.model.quantization import quantization_info

C = 8  # channels of the body
HW = 32


def _conv_specs() -> list[tuple[str, int, int, int, int]]:
    """(name, c_in, c_out, kernel, stride) of every conv, in order."""
    return [("stem", 3, C, 3, 2), ("res1", C, C, 1, 1), ("res2", C, C, 3, 1),
            ("spp1", C, C // 2, 1, 1), ("spp2", 2 * C, C, 1, 1), ("pred", C, 6, 1, 1)]


def build(*, nhwc: bool = False, explicit_pad: bool = False, names: bool = True, seed: int = 0) -> onnx.ModelProto:
    """The architecture of the module docstring in the requested form (float32)."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    counter = [0]

    def name(op: str) -> str:
        counter[0] += 1
        return f"/{op}_{counter[0]}" if names else ""

    def tensor(tag: str) -> str:
        counter[0] += 1
        return f"{tag}_{counter[0]}"

    def node(op: str, ins: list[str], **attrs: Any) -> str:
        out = tensor(op.lower())
        nodes.append(helper.make_node(op, ins, [out], name=name(op), **attrs))
        return out

    def to_nchw(x: str) -> str:
        return node("Transpose", [x], perm=[0, 3, 1, 2]) if nhwc else x

    def to_nhwc(x: str) -> str:
        return node("Transpose", [x], perm=[0, 2, 3, 1]) if nhwc else x

    specs = {s[0]: s for s in _conv_specs()}

    def conv(x: str, key: str, act: bool = True) -> str:
        _, cin, cout, k, s = specs[key]
        w = numpy_helper.from_array((rng.standard_normal((cout, cin, k, k)) * (1.0 / np.sqrt(cin * k * k)))
                                    .astype(np.float32), f"{key}.weight")
        b = numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), f"{key}.bias")
        inits.extend([w, b])
        p = k // 2
        h = to_nchw(x)
        if explicit_pad and p:
            pads = numpy_helper.from_array(np.array([0, 0, p, p, 0, 0, p, p], np.int64), tensor("pads"))
            inits.append(pads)
            h = node("Pad", [h, pads.name])
            y = node("Conv", [h, w.name, b.name], kernel_shape=[k, k], strides=[s, s])
        else:
            y = node("Conv", [h, w.name, b.name], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        y = to_nhwc(y)
        if act:
            y = node("Mul", [y, node("Sigmoid", [y])])
        return y

    def maxpool(x: str) -> str:
        return to_nhwc(node("MaxPool", [to_nchw(x)], kernel_shape=[5, 5], pads=[2, 2, 2, 2]))

    shape = [1, HW, HW, 3] if nhwc else [1, 3, HW, HW]
    stem = conv("images", "stem")
    r = conv(conv(stem, "res1"), "res2")
    body = node("Add", [stem, r])
    s1 = conv(body, "spp1")
    m1 = maxpool(s1)
    m2 = maxpool(m1)
    m3 = maxpool(m2)
    cat = node("Concat", [s1, m1, m2, m3], axis=3 if nhwc else 1)
    spp = conv(cat, "spp2")
    pred = conv(spp, "pred", act=False)
    nodes.append(helper.make_node("Identity", [pred], ["output0"], name=name("Identity")))
    out_shape = [1, HW // 2, HW // 2, 6] if nhwc else [1, 6, HW // 2, HW // 2]
    graph = helper.make_graph(nodes, "body", [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _reader(model_path: Path) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    model = onnx.load(str(model_path))
    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{inp.name: rng.random(shape, dtype=np.float32)} for _ in range(2)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    return Reader()


def quantized(src: Path, form: str) -> Path:
    """``src`` quantized by onnxruntime.quantization: ``qdq`` (static, per-channel int8 weights,
    uint8 activations), ``qop`` (static QOperator) or ``dynamic`` (quantize_dynamic)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    out = src.with_name(f"{src.stem}-{form}.onnx")
    if form == "dynamic":
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QUInt8)
    else:
        quantize_static(str(src), str(out), _reader(src),
                        quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
                        per_channel=form == "qdq", weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return out


def facts(path: Path) -> dict[str, Any]:
    d = analyze(path).to_dict()
    layers, paths = d["layers"], d["paths"]
    weighted_params = sorted(u.params for u in onnx_io.open_model(path).layers.units() if u.weighted)
    return {"units": layers["units"], "depth": layers["depth"], "activations": layers["activations"],
            "paths": paths["by_role"]["main"]["count"], "lengths": paths["length_histogram"]["bins"],
            "blocks": d["block_counts"], "weighted_params": weighted_params}


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forms")
    paths: dict[str, Path] = {}
    for key, kwargs in {"nchw": {}, "nhwc": {"nhwc": True}, "pad": {"explicit_pad": True},
                        "nhwc_pad": {"nhwc": True, "explicit_pad": True}, "stripped": {"names": False}}.items():
        paths[key] = root / f"{key}.onnx"
        onnx.save(build(**kwargs), str(paths[key]))  # type: ignore[arg-type]
    for form in ("qdq", "qop", "dynamic"):
        paths[form] = quantized(paths["nchw"], form)
    return paths


def test_reference_form_has_the_architecture(forms):
    """Written from the builder, not from graphpath: 6 convs, depth 6 (stem, res1, res2, spp1,
    spp2, pred), one residual block, one SPPF."""
    f = facts(forms["nchw"])
    assert f["units"]["weighted"] == 6 and f["depth"] == 6
    assert f["blocks"].get("residual") == 1 and f["blocks"].get("sppf") == 1
    assert f["activations"].get("silu") == 5
    # conv params: weights + biases of every conv of _conv_specs
    expected = sorted(co * ci * k * k + co for _, ci, co, k, _ in _conv_specs())
    assert f["weighted_params"] == expected


@pytest.mark.parametrize("form", ["nhwc", "pad", "nhwc_pad", "stripped", "qdq", "qop", "dynamic"])
def test_every_form_reads_as_the_reference(forms, form):
    assert facts(forms[form]) == facts(forms["nchw"])


@pytest.mark.parametrize("form", ["qdq", "qop", "dynamic"])
def test_quantized_forms_count_the_weights_not_their_scales(forms, form):
    """The model's parameter count is the float model's: the quantized weights and biases, not
    the scales and zero points (quantize_dynamic multiplies each weight's scale by the runtime
    activation scale, a float Mul that reads it like a weight), and a bias reshaped for the
    dequantising tail's Add is not a shared parameter."""
    expected = sum(co * ci * k * k + co for _, ci, co, k, _ in _conv_specs())
    ref = analyze(forms["nchw"]).to_dict()["model"]
    got = analyze(forms[form]).to_dict()["model"]
    assert ref["parameters"]["count"] == expected
    assert got["parameters"]["count"] == expected, got["parameters"]
    assert got["shared_parameters"] == {}


def test_quantized_forms_are_what_the_test_says(forms):
    """The quantizer really wrote the ops the test is about (so the equality above is not vacuous)."""
    ops = {k: {(n.domain, n.op_type) for n in onnx.load(str(forms[k])).graph.node} for k in ("qdq", "qop", "dynamic")}
    assert ("", "DequantizeLinear") in ops["qdq"] and ("", "Conv") in ops["qdq"]
    assert ("", "QLinearConv") in ops["qop"] and ("com.microsoft", "QLinearAdd") in ops["qop"]
    assert ("com.microsoft", "QLinearConcat") in ops["qop"] and ("com.microsoft", "QLinearSigmoid") in ops["qop"]
    assert ("", "ConvInteger") in ops["dynamic"] and ("", "DynamicQuantizeLinear") in ops["dynamic"]
    assert ("", "Transpose") in {(n.domain, n.op_type) for n in onnx.load(str(forms["nhwc"])).graph.node}


@pytest.mark.parametrize(("form", "expected"), [
    ("qdq", ("QDQ", ("INT8",), ("UINT8",), "per-channel")),
    ("qop", ("QOperator", ("INT8",), ("UINT8",), "per-tensor")),
    ("dynamic", ("QOperator (dynamic)", ("UINT8",), ("UINT8",), "per-tensor")),
])
def test_export_note_names_form_bits_and_granularity(forms, form, expected):
    model = onnx_io.open_model(forms[form])
    info = quantization_info(model.graph)
    assert info is not None
    assert (info.form, info.weight_types, info.activation_types, info.granularity) == expected
    assert info.weights == 6 and info.weight_bits == (8,)
    notes = {n.code: n for n in export_notes({}, model.layers, model.graph, "cnn")}
    assert notes["quantized"].evidence == info.describe()
    assert "straight-through" in notes["quantized"].message


def test_float_graph_has_no_quantization(forms):
    model = onnx_io.open_model(forms["nchw"])
    assert quantization_info(model.graph) is None
    assert "quantized" not in {n.code for n in export_notes({}, model.layers, model.graph, "cnn")}


# --------------------------------------------------------------------------- dropped ReLUs

RELU_BODY = """
relu_body (float[1,3,16,16] images) => (float[1,6,16,16] output0)
<float[8,3,3,3] w1, float[8] b1, float[8,8,3,3] w2, float[8] b2, float[8,8,1,1] w3, float[8] b3,
 float[6,8,1,1] w4, float[6] b4>
{
    c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (images, w1, b1)
    r1 = Relu (c1)
    c2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (r1, w2, b2)
    c3 = Conv <kernel_shape = [1, 1]> (r1, w3, b3)
    s = Add (c2, c3)
    r2 = Relu (s)
    output0 = Conv <kernel_shape = [1, 1]> (r2, w4, b4)
}
"""


def test_relus_the_quantizer_drops_are_read_from_its_clamp(tmp_path):
    """onnxruntime's quantizer drops a Relu after a conv (and after a RepVGG-style sum of two
    convs, v6's training branches) and lets the output quantizer clamp at zero (zero point at the
    type's minimum). Both quantized forms must still read two ReLUs — the conv's and the sum's —
    and the linear prediction conv none, as the float graph does."""
    from tests.conftest import parse

    src = tmp_path / "relu.onnx"
    onnx.save(parse(RELU_BODY), str(src))
    ref = onnx_io.open_model(src).layers
    expected = {u.id: u.activation for u in ref.units() if u.activation}
    assert sorted(expected.values()) == ["relu", "relu"]
    for form in ("qdq", "qop"):
        path = quantized(src, form)
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert "Relu" not in ops, (form, ops)  # the quantizer did drop them: the test is not vacuous
        layers = onnx_io.open_model(path).layers
        acts = sorted(u.activation for u in layers.units() if u.activation)
        assert acts == ["relu", "relu"], (form, acts)
        assert analyze(path).to_dict()["layers"]["activations"] == {"relu": 2}


def test_a_zero_floor_on_non_negative_data_is_no_relu(write_model):
    """The same clamp where the data cannot be negative is no dropped ReLU: the DFL's fixed conv
    over softmax outputs, a concat, a sum of two ReLU outputs."""
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1,16,4,4] x, float[1,8,4,4] a) => (float y, float z, float v)
    <float[1,16,1,1] w, float s = {0.05}, uint8 zp = {0}, float[8,8,1,1] wa>
    {
        p = Softmax <axis = 1> (x)
        d = Conv <kernel_shape = [1, 1]> (p, w)
        dq = QuantizeLinear (d, s, zp)
        y = DequantizeLinear (dq, s, zp)
        r1 = Relu (a)
        c = Conv <kernel_shape = [1, 1]> (r1, wa)
        r2 = Relu (c)
        cat = Concat <axis = 1> (r1, r2)
        cq = QuantizeLinear (cat, s, zp)
        z = DequantizeLinear (cq, s, zp)
        sum = Add (r1, r2)
        sq = QuantizeLinear (sum, s, zp)
        v = DequantizeLinear (sq, s, zp)
    }
    """
    from tests.conftest import parse

    layers = onnx_io.open_model(write_model(parse(text))).layers
    acts = {u.op_type: u.activation for u in layers.units() if u.kind in ("weighted", "merge")}
    assert acts["Concat"] is None and acts["Add"] is None
    dfl = next(u for u in layers.units() if u.kind == "weighted" and u.attr("weight_shape") == (1, 16, 1, 1))
    assert dfl.activation is None
