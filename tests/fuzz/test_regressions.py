"""One minimal reproducer per failure class the fuzzing found (issue 17), each through the CLI
in-process (click's runner): exit 2 with one ``graphpath: error:`` line naming the cause, or a
clean exit 0 where the model is valid. The external-data carriers read and refused are in
tests/test_onnx_io.py (``test_external_data_in_carriers_never_read_is_refused`` and
``test_malformed_external_reference_is_one_line_exit_2``); the ones here complete them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from graphpath import onnx_io
from graphpath.cli.main import cli
from graphpath.errors import GraphpathError
from tests.fuzz.cases import BOMBS, external_case, nested_if_bytes
from tests.fuzz.harness import materialize


def _run(args: list[str]) -> tuple[int, list[str]]:
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.stderr.strip().splitlines()


def _refused(path: Path | str, fragment: str, command: str = "analyze", *extra: str) -> str:
    code, lines = _run([command, str(path), *extra])
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("graphpath: error: "), lines
    assert fragment in lines[0], lines[0]
    return lines[0]


def _vi(name: str, dims: list[int] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _conv_model(**attrs: object) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])
    del node.attribute[:]
    for name, value in attrs.items():
        node.attribute.append(value if isinstance(value, AttributeProto) else helper.make_attribute(name, value))
    g = helper.make_graph([node], "g", [_vi("x", [1, 4, 8, 8])], [_vi("y", [1, 4, 8, 8])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _save(tmp_path: Path, model: onnx.ModelProto | bytes, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    return path


# --------------------------------------------------------------------------- attributes


@pytest.mark.parametrize(("attrs", "fragment"), [
    ({"group": b"abc"}, "attribute 'group' is STRING, but Conv takes INT"),
    ({"kernel_shape": numpy_helper.from_array(np.array([1, 1], np.int64))}, "attribute 'kernel_shape' is TENSOR"),
    ({"group": helper.make_graph([], "empty", [], [])}, "attribute 'group' is GRAPH"),
])
def test_attribute_of_the_wrong_type_is_refused(tmp_path, attrs, fragment):
    _refused(_save(tmp_path, _conv_model(**attrs)), fragment)


def test_attribute_given_twice_or_without_type_is_refused(tmp_path):
    model = _conv_model(group=1)
    model.graph.node[0].attribute.append(helper.make_attribute("group", 2))
    _refused(_save(tmp_path, model), "attribute 'group' is given twice")
    untyped = AttributeProto(name="group", i=1)
    _refused(_save(tmp_path, _conv_model(group=untyped)), "attribute 'group' has no type")


# --------------------------------------------------------------------------- sizes


def test_constant_claiming_huge_dims_over_few_values_is_refused(tmp_path):
    case = BOMBS["dims-2^40-constant"][0]()
    _refused(_save(tmp_path, case.model), "(1099511627776 elements of FLOAT) but holds 64 bytes")


def test_initializer_whose_dims_disagree_with_its_bytes_is_refused(tmp_path):
    case = BOMBS["dims-2^40-initializer"][0]()
    _refused(_save(tmp_path, case.model), "initializer tensor 't' has dims [1048576, 1048576, 1]")


def test_node_reading_one_tensor_many_times_loads_in_linear_time(tmp_path):
    """200 000 reads of one tensor: the edge used to grow read by read (quadratic; 100 000 reads
    took 27 s), now one pass. A regression shows as a test that runs for minutes."""
    n = 200_000
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Sum", ["r"] * n, ["y"], name="sum")]
    model = helper.make_model(helper.make_graph(nodes, "g", [_vi("x", [1, 4])], [_vi("y", [1, 4])]),
                              opset_imports=[helper.make_opsetid("", 17)])
    graph = onnx_io.load(_save(tmp_path, model))
    edge = graph.dag.edges["relu", "sum"]
    assert edge["tensors"] == ("r",) and edge["positions"] == tuple(range(n))


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("field", ["node", "tensor", "op_type", "producer"])
def test_names_that_are_not_utf8_are_refused(tmp_path, field):
    model = _conv_model(kernel_shape=[1, 1])
    placeholder = "QQQQQQQQ"
    if field == "node":
        model.graph.node[0].name = placeholder
    elif field == "tensor":
        model.graph.node[0].output[0] = model.graph.output[0].name = placeholder
    elif field == "op_type":
        model.graph.node[0].op_type = placeholder
    else:
        model.producer_name = placeholder
    data = model.SerializeToString().replace(placeholder.encode(), b"\xff\xfe\xfd\xfc\xc3\x28\xa0\xa1")
    _refused(_save(tmp_path, data), "is not valid UTF-8 text")


def test_huge_scope_metadata_is_not_parsed_and_not_evaluated(tmp_path):
    case = BOMBS["scope-metadata-2MB"][0]()
    code, lines = _run(["analyze", str(_save(tmp_path, case.model))])
    assert code == 0, lines


# --------------------------------------------------------------------------- depth


def test_nesting_past_the_protobuf_depth_limit_names_the_limit(tmp_path):
    _refused(_save(tmp_path, nested_if_bytes(50)), "nested deeper than the protobuf parser's limit")


def test_nesting_within_the_limit_loads(tmp_path):
    code, lines = _run(["analyze", str(_save(tmp_path, nested_if_bytes(30)))])
    assert code == 0, lines


# --------------------------------------------------------------------------- external data


@pytest.mark.parametrize(("carrier", "fragment"), [
    ("training-info", "external data in a training_info graph is not supported"),
    ("function-attribute-default", "external data in a model-local function is not supported"),
    ("sparse-initializer", "external data in a sparse initializer is not supported"),
])
def test_external_data_in_other_carriers_is_refused(tmp_path, monkeypatch, carrier, fragment):
    materialize(external_case(carrier, "in-folder"), tmp_path)
    monkeypatch.chdir(tmp_path)
    _refused("m/model.onnx", fragment)


@pytest.mark.parametrize("location", ["empty", "long", "offset-text", "offset-negative", "offset-huge",
                                      "length-huge"])
@pytest.mark.parametrize("carrier", ["tensors-attribute", "function-constant", "subgraph-constant"])
def test_malformed_references_in_any_carrier_are_one_line_exit_2(tmp_path, monkeypatch, carrier, location):
    materialize(external_case(carrier, location), tmp_path)
    monkeypatch.chdir(tmp_path)
    _refused("m/model.onnx", "m/model.onnx: tensor ")


def test_subgraph_constant_reads_the_model_folder_not_the_working_directory(tmp_path, monkeypatch):
    materialize(external_case("subgraph-constant", "in-folder-offset"), tmp_path)
    monkeypatch.chdir(tmp_path)
    model = onnx_io.open_model("m/model.onnx")
    inlined = model.inlined_proto()
    then_branch = next(a.g for a in inlined.graph.node[1].attribute if a.name == "then_branch")
    value = numpy_helper.to_array(then_branch.node[0].attribute[0].t)
    assert np.array_equal(value, np.ones(4, np.float32))  # m/weights.bin, not the canary


def test_external_data_of_the_wrong_size_is_refused_when_read(tmp_path, monkeypatch):
    """Without a length the reference reads to the end of the file: 256 bytes for 4 floats."""
    materialize(external_case("subgraph-constant", "in-folder"), tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GraphpathError, match=r"holds 256 bytes, but dims \[4\] of FLOAT need 16"):
        onnx_io.open_model("m/model.onnx").inlined_proto()


# --------------------------------------------------------------------------- the numeric pass


@pytest.mark.torch
@pytest.mark.parametrize(("bomb", "fragment"), [
    ("dims-2^40-input", "past the numeric pass's limit of 268435456 elements per input; raise it with "
                        "GRAPHPATH_MAX_INPUT_ELEMENTS"),
    ("batch-2^31-input", "GRAPHPATH_MAX_INPUT_ELEMENTS"),
    ("tile", "onnxruntime cannot run this model for the parity check"),
    ("expand", "onnxruntime cannot run this model for the parity check"),
])
def test_numeric_pass_refuses_what_it_cannot_run(tmp_path, bomb, fragment):
    pytest.importorskip("torch")
    _refused(_save(tmp_path, BOMBS[bomb][0]().model), fragment, "backward", "--probes", "1", "-q")


@pytest.mark.torch
def test_numeric_pass_reads_no_attribute_an_op_does_not_have(tmp_path):
    """A Mul with a list-valued ``axis`` (an attribute Mul does not even have): the evaluator
    once read ``axis`` of every op as an int and ended in a TypeError (exit 3; found by the
    10 000-case campaign on yolov10n, where onnxruntime's parity run came later)."""
    pytest.importorskip("torch")
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1])
    mul = helper.make_node("Mul", ["c", "two"], ["y"], name="mul", axis=[1, 2])
    g = helper.make_graph([conv, mul], "g", [_vi("x", [1, 4, 8, 8])], [_vi("y", [1, 4, 8, 8])], [w, two])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    from graphpath.numeric.evaluator.core import Evaluator

    path = _save(tmp_path, model)
    ev = Evaluator.from_model(onnx_io.open_model(path), device="cpu", outputs=["y"])  # Mul has no axis to read
    assert ev.output_names == ("y",)
    _refused(path, "Unrecognized attribute: axis for operator Mul", "backward", "--probes", "1", "-q")


# --------------------------------------------------------------------------- -o


_FAILING = {
    "corrupt": lambda: b"\x08\x07\x3a\xff\xff",
    "cycle": lambda: _cycle(),
    "hostile-reference": lambda: external_case("tensors-attribute", "dotdot").model,
    "limit": lambda: nested_if_bytes(50),
    "wrong-attribute": lambda: _conv_model(group=b"abc").SerializeToString(),
}


def _cycle() -> bytes:
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2"),
             helper.make_node("Add", ["x", "a"], ["y"], name="add")]
    model = helper.make_model(helper.make_graph(nodes, "g", [_vi("x", [1])], [_vi("y", [1])]),
                              opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


@pytest.mark.parametrize("failure", sorted(_FAILING))
@pytest.mark.parametrize("command", ["analyze", "blocks", "paths", "audit", "report"])
def test_failed_run_leaves_no_output_file(tmp_path, command, failure):
    path = _save(tmp_path, _FAILING[failure]())
    out = tmp_path / "out"
    out.mkdir()
    code, lines = _run([command, str(path), "-o", str(out / "result.txt")])
    assert code == 2, lines
    assert list(out.iterdir()) == []


def test_unwritable_output_is_one_line_exit_2(tmp_path):
    model = _save(tmp_path, _conv_model(kernel_shape=[1, 1]))
    _refused(model, "cannot write", "report", "-o", str(tmp_path / "missing" / "table.md"))


def test_audit_writes_all_its_files_or_none(tmp_path):
    model = _save(tmp_path, _conv_model(kernel_shape=[1, 1]))
    sarif = tmp_path / "audit.sarif"
    code, lines = _run(["audit", str(model), "--write", f"sarif={sarif}", "-o",
                        str(tmp_path / "missing" / "audit.json"), "-q"])
    assert code == 2 and "cannot write" in lines[-1], lines
    assert not sarif.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.torch
@pytest.mark.parametrize(("value", "fragment"), [
    (float("nan"), "parameter 'w' holds NaN or Inf"),
    (float("inf"), "parameter 'w' holds NaN or Inf"),
    (3e38, "the torch evaluator disagrees with onnxruntime"),  # finite, overflows in the forward
])
def test_numeric_pass_refuses_non_finite_weights_in_one_line(tmp_path, value, fragment):
    pytest.importorskip("torch")
    w = numpy_helper.from_array(np.full((4, 4), value, np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [_vi("x", [1, 4])], [_vi("y", [1, 4])], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    _refused(_save(tmp_path, model), fragment, "backward", "--probes", "1", "-q")


@pytest.mark.torch
def test_numeric_input_limit_is_set_by_its_environment_variable(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [_vi("x", [1, 4])], [_vi("y", [1, 4])], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = _save(tmp_path, model)
    monkeypatch.setenv("GRAPHPATH_MAX_INPUT_ELEMENTS", "3")
    _refused(path, "input 'x' has shape (1, 4) (4 elements), past the numeric pass's limit of 3", "backward",
             "--probes", "1", "-q")
    monkeypatch.setenv("GRAPHPATH_MAX_INPUT_ELEMENTS", "lots")
    _refused(path, "GRAPHPATH_MAX_INPUT_ELEMENTS='lots' is not a whole number", "backward", "--probes", "1", "-q")
