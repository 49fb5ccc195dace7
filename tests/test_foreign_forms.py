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
    return _checked_model(nodes, "body", inits, shape, out_shape)


def _checked_model(nodes: list, name: str, inits: list, in_shape: list, out_shape: list) -> onnx.ModelProto:
    """One float input ``images`` → one float output ``output0``, opset 17, IR 8, checked."""
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
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


# --------------------------------------------------------------------------- Keras upsampling and layout


def build_neck(form: str, seed: int = 0) -> onnx.ModelProto:
    """A one-merge top-down neck: stem conv (3×3 s2) → coarse conv (3×3 s2) → nearest 2×
    upsample → channel Concat with the stem (the lateral) → 1×1 fuse conv → 1×1 prediction conv.

    ``form`` is ``"torch"`` (NCHW, one Resize), ``"keras_tf"`` (tf2onnx's form of Keras'
    ``ops.repeat`` upsampling: NHWC between convs, each conv wrapped in a Transpose pair, the
    upsample an Unsqueeze → Tile → Reshape per spatial axis, Concat on the last axis) or
    ``"keras_torch"`` (the Keras torch backend's form: the same with Expand in place of Tile, a
    symbolic batch, Casts after each transpose, and the bias added after the conv as a
    channels-last ``(1, 1, 1, C)`` constant) or ``"keras_sim"`` (``keras_tf`` after onnxsim: the
    first repeat's Reshape to rank 4 and the second's Unsqueeze merged into one Reshape)."""
    rng = np.random.default_rng(seed)
    nhwc = form != "torch"
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    counter = [0]

    def node(op: str, ins: list[str], **attrs: Any) -> str:
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, ins, [out], name=f"/{op}_{counter[0]}", **attrs))
        return out

    def const(value: np.ndarray, tag: str) -> str:
        counter[0] += 1
        inits.append(numpy_helper.from_array(value, f"{tag}_{counter[0]}"))
        return inits[-1].name

    def conv(x: str, cin: int, cout: int, k: int, s: int, act: bool = True) -> str:
        w = const((rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32), "w")
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        h = node("Transpose", [x], perm=[0, 3, 1, 2]) if nhwc else x
        if form == "keras_torch":
            y = node("Transpose", [node("Conv", [h, w], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)],
                     perm=[0, 2, 3, 1])
            y = node("Add", [node("Cast", [y], to=TensorProto.FLOAT), const(b.reshape(1, 1, 1, cout), "b")])
        else:
            y = node("Conv", [h, w, const(b, "b")], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)
            y = node("Transpose", [y], perm=[0, 2, 3, 1]) if nhwc else y
        return node("Mul", [y, node("Sigmoid", [y])]) if act else y

    def repeat(x: str, axis: int, shape: list[int], unsqueeze: bool = True, then: int = 0) -> str:
        """``ops.repeat(x, 2, axis)`` on an NHWC tensor of static ``shape`` (batch 1); with
        ``then``, the Reshape back to rank 4 and the next repeat's Unsqueeze (before axis
        ``then``) are one Reshape, as onnxsim writes them."""
        u = node("Unsqueeze", [x, const(np.array([axis + 1], np.int64), "axes")]) if unsqueeze else x
        reps = [1] * 5
        reps[axis + 1] = 2
        if form in ("keras_tf", "keras_sim"):
            t = node("Tile", [u, const(np.array(reps, np.int64), "reps")])
        else:
            t = node("Expand", [u, const(np.array(reps, np.int64), "shape")])
        out = list(shape)
        out[axis] *= 2
        if then:
            out.insert(then + 1, 1)
        return node("Reshape", [t, const(np.array([-1, *out[1:]], np.int64), "shape")])

    c, hw = 8, 32
    stem = conv("images", 3, c, 3, 2)
    coarse = conv(stem, c, c, 3, 2)
    if form == "keras_sim":
        up = repeat(repeat(coarse, 1, [1, hw // 4, hw // 4, c], then=2), 2, [1, hw // 2, hw // 4, c], unsqueeze=False)
    elif nhwc:
        up = repeat(repeat(coarse, 1, [1, hw // 4, hw // 4, c]), 2, [1, hw // 2, hw // 4, c])
    else:
        up = node("Resize", [coarse, "", const(np.array([1, 1, 2, 2], np.float32), "scales")], mode="nearest")
    cat = node("Concat", [up, stem], axis=-1 if nhwc else 1)
    pred = conv(conv(cat, 2 * c, c, 1, 1), c, 6, 1, 1, act=False)
    nodes.append(helper.make_node("Identity", [pred], ["output0"], name="/Identity_out"))
    batch: int | str = "batch" if form == "keras_torch" else 1
    shape = [batch, hw, hw, 3] if nhwc else [batch, 3, hw, hw]
    out_shape = [batch, hw // 2, hw // 2, 6] if nhwc else [batch, 6, hw // 2, hw // 2]
    return _checked_model(nodes, "neck", inits, shape, out_shape)


@pytest.fixture(scope="module")
def necks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("necks")
    paths = {}
    for form in ("torch", "keras_tf", "keras_torch", "keras_sim"):
        paths[form] = root / f"{form}.onnx"
        onnx.save(build_neck(form), str(paths[form]))
    for form in ("qdq", "qop"):
        paths[f"keras_tf_{form}"] = quantized(paths["keras_tf"], form)
    return paths


def test_neck_forms_compute_the_same_upsample(necks):
    """The builder's Keras forms really are a nearest 2× upsample (same outputs as the Resize
    form, transposed), so the equalities below compare one architecture."""
    import onnxruntime as ort

    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    ref = ort.InferenceSession(str(necks["torch"])).run(None, {"images": x})[0]
    for form in ("keras_tf", "keras_torch", "keras_sim"):
        got = ort.InferenceSession(str(necks[form])).run(None, {"images": x.transpose(0, 2, 3, 1)})[0]
        np.testing.assert_allclose(got.transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)


def test_neck_reference_has_one_fpn_merge(necks):
    """From the builder: 4 convs on the longest path (stem, coarse, fuse, pred), one resample,
    one top-down merge."""
    f = facts(necks["torch"])
    assert f["units"]["weighted"] == 4 and f["units"]["resample"] == 1 and f["depth"] == 4
    assert f["blocks"].get("fpn") == 1


@pytest.mark.parametrize("form", ["keras_tf", "keras_torch", "keras_sim", "keras_tf_qdq", "keras_tf_qop"])
def test_keras_repeat_upsample_reads_as_resize(necks, form):
    """Unsqueeze → Tile/Expand → Reshape per axis is one resample unit, the channels-last Concat
    (QLinearConcat in the QOperator form) is a channel merge (an FPN merge), and a bias added
    after the conv is the conv's own."""
    assert facts(necks[form]) == facts(necks["torch"])


def test_keras_torch_bias_is_no_decode(necks):
    """A prediction conv's bias added after a transpose and a cast is not grid arithmetic."""
    model = onnx_io.open_model(necks["keras_torch"])
    assert "decode-in-graph" not in {n.code for n in export_notes({}, model.layers, model.graph, "v8")}


# --------------------------------------------------------------------------- QDQ: what the quantizer rewrites


def _relu_head(*, weight_in_constant: bool) -> onnx.ModelProto:
    """conv 3×3 → Relu → 1×1 conv whose weight is a ``Constant`` node (as the TorchScript
    exporter writes a buffer such as YOLO-NAS's DFL projection) or an initializer."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32), "w1")
    b1 = numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "b1")
    w2 = numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) / 3).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], name="/conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="/relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["output0"], name="/conv2")]
    inits = [w1, b1]
    if weight_in_constant:
        nodes.insert(0, helper.make_node("Constant", [], ["w2"], name="/const_w2", value=w2))
    else:
        inits.append(w2)
    graph = helper.make_graph(nodes, "relu", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _weighted(path: Path) -> list[tuple[int, str | None, object]]:
    layers = onnx_io.open_model(path).layers
    return [(u.params, u.activation, u.attr("weight_shape")) for u in layers.units() if u.weighted]


@pytest.mark.parametrize("form", ["qdq", "qop"])
@pytest.mark.parametrize("weight_in_constant", [False, True])
def test_quantized_relu_and_constant_weight_read_as_float(tmp_path, weight_in_constant, form):
    """onnxruntime's quantizer drops the Relu after a Conv (the output grid, zero point 0,
    clamps negatives instead: a QuantizeLinear in the QDQ form, the QLinearConv's own output
    zero point in the QOperator form) and, in the QDQ form, quantizes a Constant-held weight as
    an activation (Constant → QuantizeLinear → DequantizeLinear): the conv still carries a ReLU,
    the weight its parameters."""
    src = tmp_path / "relu.onnx"
    onnx.save(_relu_head(weight_in_constant=weight_in_constant), str(src))
    q = quantized(src, form)
    assert "Relu" not in {n.op_type for n in onnx.load(str(q)).graph.node}
    expected = [(8 * 3 * 9 + 8, "relu", (8, 3, 3, 3)), (4 * 8, None, (4, 8, 1, 1))]
    assert _weighted(src) == expected
    assert _weighted(q) == expected


@pytest.mark.parametrize("decomposed", [False, True])
def test_bn_written_as_affine_ops_is_not_fused(tmp_path, decomposed):
    """Inference BatchNormalization as (x − mean) · scale + shift after the conv (the Keras torch
    backend) is not folded into the conv: no ``bn-fused`` note. Without it the note stays."""
    rng = np.random.default_rng(0)
    inits, nodes, x = [], [], "images"
    for i in range(2):
        inits.append(numpy_helper.from_array((rng.standard_normal((8, 8 if i else 3, 3, 3)) / 5).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"/conv{i}", pads=[1, 1, 1, 1]))
        x = f"c{i}"
        if decomposed:
            for op, tag in (("Sub", "mean"), ("Mul", "scale"), ("Add", "shift")):
                inits.append(numpy_helper.from_array(rng.random((1, 8, 1, 1), dtype=np.float32), f"{tag}{i}"))
                nodes.append(helper.make_node(op, [x, f"{tag}{i}"], [f"{tag}_out{i}"], name=f"/{op}{i}"))
                x = f"{tag}_out{i}"
        nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"/relu{i}"))
        x = f"r{i}"
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    path = tmp_path / "bn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    model = onnx_io.open_model(path)
    codes = {n.code for n in export_notes({}, model.layers, model.graph, "v8")}
    assert ("bn-fused" in codes) is not decomposed


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


def test_a_zero_floor_on_a_prediction_conv_is_no_relu(write_model):
    """A clamp at zero after a conv that feeds another conv is a dropped ReLU; after the head's
    prediction conv (nothing weighted after it) it is not: a box conv whose bias starts at 1.0
    (Ultralytics' box bias) calibrates to a range starting at 0 with no ReLU in the model."""
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,4,4] x) => (float y)
    <float[8,8,1,1] w1, float[4,8,1,1] w2, float s = {0.05}, uint8 zp = {0}>
    {
        c1 = Conv <kernel_shape = [1, 1]> (x, w1)
        q1 = QuantizeLinear (c1, s, zp)
        d1 = DequantizeLinear (q1, s, zp)
        c2 = Conv <kernel_shape = [1, 1]> (d1, w2)
        q2 = QuantizeLinear (c2, s, zp)
        y = DequantizeLinear (q2, s, zp)
    }
    """
    from tests.conftest import parse

    layers = onnx_io.open_model(write_model(parse(text))).layers
    acts = {u.attr("weight_shape"): u.activation for u in layers.units() if u.kind == "weighted"}
    assert acts == {(8, 8, 1, 1): "relu", (4, 8, 1, 1): None}
