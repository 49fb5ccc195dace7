"""The loader: safe external data, opaque custom ops and subgraphs, shapes, parameters."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.model.summary import summarize_model
from tests.conftest import RESIDUAL, parse


def _with_external(tmp_path: Path, location: str = "weights.bin") -> Path:
    model = parse(RESIDUAL)
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    if location != "weights.bin":
        proto = onnx.load(str(path), load_external_data=False)
        for t in proto.graph.initializer:
            for entry in t.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save_model(proto, str(path))
    return path


def test_external_data_inside_the_folder_loads_and_reads(tmp_path):
    path = _with_external(tmp_path)
    graph = onnx_io.load(path)
    assert graph.meta["external_data"] is True
    assert summarize_model(graph).parameter_count == 4 * 4 + 4 * 4 * 9
    arrays = onnx_io.read_arrays(path)
    assert arrays["w2"].shape == (4, 4, 3, 3)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "symlinked_dir"])
def test_external_data_leaving_the_folder_is_refused(tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    inner = tmp_path / "model"
    inner.mkdir()
    _with_external(outside)  # a real weights.bin outside the model's folder
    if kind == "dotdot":
        path = _with_external(inner, "../outside/weights.bin")
    elif kind == "absolute":
        path = _with_external(inner, str(outside / "weights.bin"))
    elif kind == "symlink":
        os.symlink(outside / "weights.bin", inner / "link.bin")
        path = _with_external(inner, "link.bin")
    else:
        os.symlink(outside, inner / "sub")
        path = _with_external(inner, "sub/weights.bin")
    with pytest.raises(GraphpathError, match="refus"):
        onnx_io.load(path)


def test_huge_external_data_is_counted_from_metadata_without_reading(tmp_path):
    # A 4 GiB initializer in a sparse file: loading must not read it.
    w = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1048576])
    big = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1024, 1048576])
    big.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "big.bin"), ("offset", "0"), ("length", str(4 * 1024 * 1048576))):
        big.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big", [w], [y], [big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with open(tmp_path / "big.bin", "wb") as fh:
        fh.truncate(4 * 1024 * 1048576)
    path = tmp_path / "big.onnx"
    onnx.save_model(model, str(path))
    summary = summarize_model(onnx_io.load(path))
    assert summary.parameter_bytes == 4 * 1024 * 1048576
    assert summary.parameter_count == 1024 * 1048576


def test_custom_domain_op_is_kept_opaque(write_model):
    text = """
    <ir_version: 8, opset_import: ["" : 17, "com.acme" : 1]>
    custom (float[1,4,8,8] x) => (float[1,4,8,8] y)
    <float[4,4,1,1] w>
    {
        c = Conv <kernel_shape = [1, 1]> (x, w)
        y = com.acme.Frobnicate <strength = 3> (c)
    }
    """
    graph = onnx_io.load(write_model(text))
    op = next(op for op in graph.ops() if op.domain == "com.acme")
    assert op.attrs == {"strength": 3}
    summary = summarize_model(graph)
    assert summary.custom_domains == ("com.acme",)
    assert summary.custom_ops == (("com.acme::Frobnicate", 1),)


def test_if_subgraph_is_one_node_that_records_its_bodies(write_model):
    text = """
    cond (float[1,4] x, bool c) => (float[1,4] y)
    {
        y = If (c) <
            then_branch = then_g () => (float[1,4] t) { t = Relu (x) },
            else_branch = else_g () => (float[1,4] e) { e1 = Sigmoid (x)  e = Neg (e1) }
        >
    }
    """
    graph = onnx_io.load(write_model(text))
    assert graph.node_count == 1
    summary = summarize_model(graph)
    assert {(s.attr, s.node_count) for s in summary.subgraphs} == {("then_branch", 1), ("else_branch", 2)}
    # The body reads x from the outer scope: an implicit data input of the If node.
    assert graph.dag.nodes[next(iter(graph.dag.nodes))]["implicit"] == ("x",)


def test_fp16_and_bf16_parameters_are_counted_by_dtype(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4])
    w16 = numpy_helper.from_array(np.ones((4, 4), np.float16), "w16")
    wbf = helper.make_tensor("wbf", TensorProto.BFLOAT16, [4, 4], [1.0] * 16)
    nodes = [
        helper.make_node("MatMul", ["x", "w16"], ["h"]),
        helper.make_node("Cast", ["wbf"], ["wc"], to=TensorProto.FLOAT16),
        helper.make_node("MatMul", ["h", "wc"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "half", [x], [y], [w16, wbf]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "half.onnx"
    onnx.save(model, str(path))
    summary = summarize_model(onnx_io.load(path))
    assert dict(summary.parameter_dtypes) == {"BFLOAT16": 16, "FLOAT16": 16}
    assert summary.parameter_bytes == 64


def test_qdq_model_counts_int8_weights_once(write_model):
    text = """
    qdq (float[1,4,8,8] x) => (float[1,4,8,8] y)
    <int8[4,4,1,1] wq, float ws = {0.02}, int8 wz = {0}, float xs = {0.1}, uint8 xz = {128}>
    {
        xq = QuantizeLinear (x, xs, xz)
        xd = DequantizeLinear (xq, xs, xz)
        wd = DequantizeLinear (wq, ws, wz)
        y = Conv <kernel_shape = [1, 1]> (xd, wd)
    }
    """
    graph = onnx_io.load(write_model(text))
    assert graph.is_shape("wd")  # a dequantised weight is static
    summary = summarize_model(graph)
    assert dict(summary.parameter_dtypes)["INT8"] == 16


def test_dynamic_dimensions_are_kept_as_names(write_model):
    text = """
    dyn (float[N,4,H,W] x) => (float[N,4,H,W] y)
    <float[4,4,1,1] w>
    { y = Conv <kernel_shape = [1, 1]> (x, w) }
    """
    graph = onnx_io.load(write_model(text))
    assert graph.inputs[0].shape == ("N", 4, "H", "W")
    assert summarize_model(graph).dynamic_inputs is True


def test_shapes_reach_through_large_weights_and_small_shape_constants(tmp_path):
    """Shape inference runs on a copy without the weights' bytes; a Reshape target keeps its
    value, so the shapes after it are still known."""
    big = numpy_helper.from_array(np.ones((64, 8, 3, 3), np.float32), "w")  # 18 KiB
    target = numpy_helper.from_array(np.array([1, -1], np.int64), "target")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["c", "target"], ["y"], name="flat")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [big, target]))
    graph = onnx_io.load(_plain(tmp_path, model))
    assert graph.value_shapes["c"] == (1, 64, 4, 4)
    assert graph.value_shapes["y"] == (1, 1024)
    assert graph.params["w"].count == 64 * 8 * 9


def test_cycle_is_an_input_error(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "loop", [x], [y]))
    path = tmp_path / "cycle.onnx"
    onnx.save(model, str(path))
    with pytest.raises(GraphpathError, match="cycle"):
        onnx_io.load(path)


def test_dangling_input_is_an_input_error(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["x", "ghost"], ["y"])], "g", [x], [y]))
    path = tmp_path / "dangling.onnx"
    onnx.save(model, str(path))
    with pytest.raises(GraphpathError, match="ghost"):
        onnx_io.load(path)


def test_unsupported_ir_version_is_an_input_error(write_model):
    model = parse(RESIDUAL)
    model.ir_version = onnx.IR_VERSION + 5
    with pytest.raises(GraphpathError, match="IR version"):
        onnx_io.load(write_model(model))


def test_unsorted_nodes_are_ordered_topologically(tmp_path):
    model = parse(RESIDUAL)
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    path = tmp_path / "unsorted.onnx"
    onnx.save(model, str(path))
    ops = [op.op_type for op in onnx_io.load(path).ops()]
    assert ops[0] == "Conv" and ops[-1] == "Add"


def test_torchscript_and_dynamo_scopes(write_model):
    model = parse(RESIDUAL)
    model.graph.node[0].name = "/model.2/m.0/cv1/conv/Conv"
    prop = model.graph.node[3].metadata_props.add()
    prop.key, prop.value = "pkg.torch.onnx.name_scopes", "['', 'model.2', 'model.2.m.0.cv2']"
    graph = onnx_io.load(write_model(model))
    assert graph.scope("/model.2/m.0/cv1/conv/Conv") == "model.2.m.0.cv1.conv"
    assert graph.scope(graph.op(list(graph.dag.nodes)[3]).name) == "model.2.m.0.cv2"


@pytest.mark.parametrize(("value", "scope"), [
    ("['', 'model.2', \"model.2.it's\"]", "model.2.it's"),
    ("('', 'a\\\\b\\x41\\u00e9')", "a\\bA\u00e9"),
    ("['model.2', ]", "model.2"),
    ("__import__('os').getcwd()", ""),  # not a list of string literals: never evaluated
    ("['a'] + ['b']", ""),
    ("[1, 2]", ""),
    ("[" + "'m', " * 20000 + "'last']", ""),  # over the length bound
])
def test_dynamo_scopes_are_parsed_not_evaluated(write_model, value, scope):
    model = parse(RESIDUAL)
    prop = model.graph.node[3].metadata_props.add()
    prop.key, prop.value = "pkg.torch.onnx.name_scopes", value
    graph = onnx_io.load(write_model(model))
    assert graph.scope(graph.op(list(graph.dag.nodes)[3]).name) == scope


def test_weights_held_in_constant_nodes_count_as_parameters(tmp_path):
    """Paddle-style exports keep weights in Constant nodes: same count as initializers, and
    the conv is still a weighted unit."""
    from graphpath.model.layers import build_layers, unit_counts

    model = parse(RESIDUAL)
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    consts = [helper.make_node("Constant", [], [t.name], value=t, name=f"const_{t.name}")
              for t in folded.graph.initializer]
    del folded.graph.initializer[:]
    nodes = list(folded.graph.node)
    del folded.graph.node[:]
    folded.graph.node.extend(consts + nodes)
    path = tmp_path / "const.onnx"
    onnx.save(folded, str(path))
    graph, reference = onnx_io.load(path), onnx_io.load(_plain(tmp_path, model))
    assert summarize_model(graph).parameter_count == summarize_model(reference).parameter_count > 0
    assert unit_counts(build_layers(graph)) == unit_counts(build_layers(reference))
    values, expected = onnx_io.read_arrays(path), onnx_io.read_arrays(_plain(tmp_path, model))
    assert sorted(values) == sorted(expected)
    assert all(np.array_equal(values[k], expected[k]) for k in expected)


def test_one_element_constants_are_literals_not_parameters(tmp_path):
    """Exporters write a Constant for every literal (``x / 6``): those are not weights."""
    path = tmp_path / "literal.onnx"
    onnx.save(parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,4] x) => (float[1,4] y) {
            six = Constant <value = float[1] {6.0}> ()
            w = Constant <value = float[4] {1.0, 2.0, 3.0, 4.0}> ()
            d = Div (x, six)
            y = Mul (d, w)
        }"""), str(path))
    graph = onnx_io.load(path)
    assert set(graph.params) == {"w"}
    assert graph.is_shape("six")
    assert sorted(onnx_io.read_arrays(path, {"six", "w"})) == ["six", "w"]


def _plain(tmp_path: Path, model: onnx.ModelProto) -> Path:
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------- external-data fuzzing
# Each model lies in tmp_path/m and is run from tmp_path, where a canary weights.bin waits: onnx
# and onnxruntime resolve a reference they are left to read against the working directory.

def _open_watch(path: Path) -> Callable[[], bool]:
    """Whether anything (Python, onnx's C++, onnxruntime) opens ``path`` from now on: Linux
    inotify through ctypes; elsewhere the check says no."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return lambda: False
    if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(path), 0x20) < 0:  # IN_OPEN
        return lambda: False

    def opened() -> bool:
        try:
            return bool(os.read(fd, 4096))
        except BlockingIOError:
            return False

    return opened


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """Runs the test from ``tmp_path`` with a canary ``weights.bin`` there, next to the model
    folder ``m`` (with its own weights.bin); ``canary()`` says whether the canary was opened."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.bin").write_bytes(np.ones(16, np.float32).tobytes())
    path = tmp_path / "weights.bin"
    path.write_bytes(np.full(16, 7, np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    return _open_watch(path)


def _external(tensor: TensorProto, location: str = "weights.bin", **entries: str) -> TensorProto:
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    return tensor


def _matmul(*extra: onnx.NodeProto, functions=(), domains=()) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), *extra]
    if not extra:
        nodes.append(helper.make_node("Relu", ["h"], ["y"], name="relu"))
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=opsets,
                             functions=list(functions))


def _vector(name: str = "t") -> TensorProto:
    return numpy_helper.from_array(np.ones(4, np.float32), name)


def _tensors_attribute() -> onnx.ModelProto:
    ts = [_external(_vector("t0")), _vector("t1")]
    return _matmul(helper.make_node("Frobnicate", ["h"], ["y"], domain="com.acme", name="frob", ts=ts),
                   domains=["com.acme"])


def _sparse_tensor_attribute() -> onnx.ModelProto:
    s = helper.make_sparse_tensor(_external(_vector("s")), numpy_helper.from_array(np.arange(4), "i"), [8])
    return _matmul(helper.make_node("Frobnicate", ["h"], ["y"], domain="com.acme", name="frob", s=s),
                   domains=["com.acme"])


def _sparse_initializer() -> onnx.ModelProto:
    model = _matmul()
    values = _external(_vector("s"), offset="0", length="16")
    model.graph.sparse_initializer.append(
        helper.make_sparse_tensor(values, numpy_helper.from_array(np.arange(4), "i"), [8]))
    return model


def _function_constant() -> onnx.ModelProto:
    body = [helper.make_node("Constant", [], ["c"], value=_external(_vector("c"))),
            helper.make_node("Add", ["a", "c"], ["b"])]
    f = helper.make_function("local", "AddC", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    return _matmul(helper.make_node("AddC", ["h"], ["y"], domain="local", name="addc"),
                   functions=[f], domains=["local"])


def _save(model: onnx.ModelProto) -> str:
    onnx.save(model, "m/model.onnx")
    return "m/model.onnx"


def _refused(command: str, model: str, fragment: str):
    if command == "backward":
        pytest.importorskip("torch")
    from click.testing import CliRunner

    from graphpath.cli.main import cli

    args = [command, model] + (["--probes", "1", "-q"] if command == "backward" else [])
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphpath: error: m/model.onnx: tensor "), res.stderr
    assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["analyze", "backward"])
@pytest.mark.parametrize(("build", "fragment"), [
    (_tensors_attribute, "(node 'frob' attribute 'ts'[0]): external data in a TENSORS attribute is not supported"),
    (_sparse_tensor_attribute, "external data in a sparse tensor attribute is not supported"),
    (_sparse_initializer, "(sparse_initializer values): external data in a sparse initializer is not supported"),
    (_function_constant, "(function 'local::AddC'/node #0 (Constant) attribute 'value'): external data in a "
                         "model-local function is not supported"),
])
def test_external_data_in_carriers_never_read_is_refused(canary, command, build, fragment):
    """Carriers graphpath never reads (onnx or onnxruntime would, against the working
    directory): refused at load, by every command; the canary in the cwd is never opened."""
    _refused(command, _save(build()), fragment)
    assert not canary()


@pytest.mark.parametrize("command", ["analyze", "backward"])
@pytest.mark.parametrize(("location", "entries", "fragment"), [
    ("weights.bin\0.x", {}, r"location 'weights.bin\x00.x' contains a control character"),
    ("../weights.bin\0", {}, r"location '../weights.bin\x00' contains a control character"),
    ("", {}, "external data without a location"),
    ("a" * 300, {}, "is too long (300 bytes"),
    ("weights.bin", {"offset": "abc"}, "offset 'abc' in 'weights.bin' is not a non-negative integer"),
    ("weights.bin", {"length": "1e3"}, "length '1e3' in 'weights.bin' is not a non-negative integer"),
    ("weights.bin", {"offset": "-4"}, "offset '-4' in 'weights.bin' is not a non-negative integer"),
    ("weights.bin", {"offset": str(2**70)}, f"offset '{2**70}' in 'weights.bin' is past"),
    ("weights.bin", {"length": str(10**11)}, "length 100000000000 runs past the end of 'weights.bin' (64 bytes)"),
    ("weights.bin", {"offset": "8", "length": "64"}, "offset 8 + length 64 runs past the end"),
])
def test_malformed_external_reference_is_one_line_exit_2(canary, command, location, entries, fragment):
    model = _matmul()
    _external(model.graph.initializer[0], location, **entries)
    line = _refused(command, _save(model), fragment)
    assert "(initializer)" in line
    assert not canary()


def test_constant_with_external_data_is_read_from_the_model_folder(canary):
    """``read_arrays`` used to hand a Constant's external tensor to onnx, which read the
    working directory's weights.bin."""
    const = helper.make_node("Constant", [], ["c"], value=_external(numpy_helper.from_array(
        np.ones((4, 4), np.float32), "c"), offset="0", length="64"), name="const")
    model = _matmul(const, helper.make_node("MatMul", ["h", "c"], ["y"], name="mm2"))
    path = _save(model)
    assert onnx_io.load(path).params["c"].external
    assert np.array_equal(onnx_io.read_arrays(path)["c"], np.ones((4, 4), np.float32))
    assert not canary()


def test_malformed_inline_attribute_is_an_input_error(write_model):
    model = _matmul()
    bad = TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[4], raw_data=b"\0" * 3)
    model.graph.node.append(helper.make_node("Constant", [], ["v"], value=bad, name="const"))
    with pytest.raises(GraphpathError, match=r"node 'const' \(Constant\): cannot decode an attribute"):
        onnx_io.load(write_model(model))
