"""``graphpath annotate``: the copy carries the findings and nothing else changes (checker,
bit-identical onnxruntime outputs, equal analysis, names and order, external data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from graphpath import onnx_io
from graphpath.analysis import analyze
from graphpath.annotate import PREFIX
from graphpath.cli.main import cli
from graphpath.onnx_io.annotated import ANNOTATION_HEADER, check_model_file
from tests.conftest import RESIDUAL, parse

ROOT = Path(__file__).resolve().parent.parent
YOLOV8N = ROOT / "models" / "yolov8n.onnx"
#: What differs between two files with the same graph: the file's identity.
FILE_IDENTITY = ("file_name", "sha256", "file_bytes")


#: A residual between two convs: its block has one entry and one exit inside the measured scope.
INNER_RESIDUAL = """
inner (float[1,4,8,8] x) => (float[1,4,8,8] y)
<float[4,4,1,1] w0, float[4,4,1,1] w1, float[4,4,3,3] w2, float[4,4,1,1] w3>
{
    c0 = Conv <kernel_shape = [1, 1]> (x, w0)
    s0 = Sigmoid (c0)
    a0 = Mul (c0, s0)
    c1 = Conv <kernel_shape = [1, 1]> (a0, w1)
    s1 = Sigmoid (c1)
    a1 = Mul (c1, s1)
    c2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (a1, w2)
    s2 = Sigmoid (c2)
    a2 = Mul (c2, s2)
    r = Add (a0, a2)
    y = Conv <kernel_shape = [1, 1]> (r, w3)
}
"""


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def _analysis(path: Path) -> dict[str, object]:
    d = analyze(path).to_dict()
    d["model"] = {k: v for k, v in d["model"].items() if k not in FILE_IDENTITY}
    return d


def _outputs(path: Path, seed: int = 0) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
             for i in sess.get_inputs()}
    return list(sess.run(None, feeds))


def _assert_same_model(original: Path, annotated: Path, *, runs: bool = True) -> None:
    check_model_file(str(annotated))
    a, b = onnx.load(str(original), load_external_data=False), onnx.load(str(annotated), load_external_data=False)
    assert [(n.name, n.op_type, list(n.input), list(n.output)) for n in a.graph.node] == \
           [(n.name, n.op_type, list(n.input), list(n.output)) for n in b.graph.node]
    assert [t.name for t in a.graph.initializer] == [t.name for t in b.graph.initializer]
    assert a.graph.input == b.graph.input and a.graph.output == b.graph.output
    assert _analysis(original) == _analysis(annotated)
    if not runs:
        return
    out_a, out_b = _outputs(original), _outputs(annotated)
    assert len(out_a) == len(out_b) and all(np.array_equal(x, y) for x, y in zip(out_a, out_b, strict=True))


def _props(entries: object) -> dict[str, str]:
    return {p.key: p.value for p in entries}  # type: ignore[attr-defined]


def test_yolov8n_annotated_copy_is_the_same_model_with_the_findings(tmp_path):
    out = tmp_path / "annotated.onnx"
    res = run("annotate", str(YOLOV8N), "-o", str(out))
    assert res.exit_code == 0, res.output
    _assert_same_model(YOLOV8N, out)
    model = onnx.load(str(out))
    meta = _props(model.metadata_props)
    assert meta[PREFIX + "generation"] == "v8" and float(meta[PREFIX + "confidence"]) > 0.5
    assert meta[PREFIX + "paths_total"] == analyze(YOLOV8N).section("paths").total.text()
    assert "not measured" in meta[PREFIX + "numeric_condition"]
    node = next(n for n in model.graph.node if n.name == "/model.2/m.0/cv1/conv/Conv")
    assert "block: c2f model.2 › residual model.2.m.0" in node.doc_string.splitlines()
    props = _props(node.metadata_props)
    assert props[PREFIX + "block"] == "c2f model.2 › residual model.2.m.0"
    assert props[PREFIX + "depth"] == "4"
    shortest, longest = int(props[PREFIX + "shortest_to_output"]), int(props[PREFIX + "longest_to_output"])
    assert 1 <= shortest <= longest


def test_findings_match_the_path_analysis_on_a_residual(tmp_path, write_model):
    src = write_model(RESIDUAL)
    out = tmp_path / "out.onnx"
    assert run("annotate", str(src), "-o", str(out)).exit_code == 0
    _assert_same_model(src, out)
    model = onnx.load(str(out))
    by_output = {n.output[0]: _props(n.metadata_props) for n in model.graph.node}
    # x → conv c1 → conv c2 → add(x, ·): one path through each conv, two to y (the skip)
    assert by_output["c1"][PREFIX + "depth"] == "1" and by_output["c2"][PREFIX + "depth"] == "2"
    assert by_output["c1"][PREFIX + "paths_through"] == by_output["c2"][PREFIX + "paths_through"] == "1"
    assert by_output["c1"][PREFIX + "longest_to_output"] == "2"
    assert by_output["s1"] == by_output["a1"] == by_output["c1"]  # SiLU folded into the conv's unit
    assert _props(model.metadata_props)[PREFIX + "paths_total"] == "2"


def test_unnamed_and_repeated_node_names_follow_the_loader(tmp_path):
    proto = parse(RESIDUAL)
    for n in proto.graph.node:
        n.name = "same" if n.op_type == "Conv" else ""
    src = tmp_path / "m.onnx"
    onnx.save(proto, str(src))
    loaded = onnx_io.open_model(src)
    out = tmp_path / "out.onnx"
    assert run("annotate", str(src), "-o", str(out)).exit_code == 0
    _assert_same_model(src, out, runs=False)  # onnxruntime refuses repeated node names
    unit_of = {node: u.id for u in loaded.layers.units() for node in u.nodes}
    by_outputs = {loaded.graph.op(name).outputs: name for name in loaded.graph.dag.nodes}
    checked = 0
    for node in onnx.load(str(out)).graph.node:
        expected = unit_of.get(by_outputs[tuple(node.output)])
        assert _props(node.metadata_props).get(PREFIX + "unit") == expected
        checked += expected is not None
    assert checked >= 6  # both convs with their SiLU, repeated names and all


def test_existing_doc_strings_stay_and_a_second_annotate_replaces_the_first(tmp_path):
    proto = parse(RESIDUAL)
    proto.graph.node[0].doc_string = "exported by hand"
    proto.graph.node[0].metadata_props.add(key="owner", value="me")
    src = tmp_path / "m.onnx"
    onnx.save(proto, str(src))
    once, twice = tmp_path / "once.onnx", tmp_path / "twice.onnx"
    assert run("annotate", str(src), "-o", str(once)).exit_code == 0
    assert run("annotate", str(once), "-o", str(twice)).exit_code == 0
    first, second = onnx.load(str(once)).graph.node[0], onnx.load(str(twice)).graph.node[0]
    assert first.doc_string.startswith("exported by hand\n\n" + ANNOTATION_HEADER)
    assert second.doc_string == first.doc_string and second.doc_string.count(ANNOTATION_HEADER) == 1
    assert _props(second.metadata_props) == _props(first.metadata_props)
    assert _props(first.metadata_props)["owner"] == "me"


def _with_external(folder: Path) -> Path:
    folder.mkdir()
    proto = parse(RESIDUAL)
    path = folder / "m.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return path


def _locations(path: Path) -> set[str]:
    model = onnx.load(str(path), load_external_data=False)
    return {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}


def test_external_data_stays_referenced_beside_the_original(tmp_path):
    src = _with_external(tmp_path / "a")
    before = (src.parent / "weights.bin").read_bytes()
    out = src.parent / "annotated.onnx"
    res = run("annotate", str(src), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert _locations(out) == {"weights.bin"}
    assert (src.parent / "weights.bin").read_bytes() == before
    assert not (src.parent / "annotated.onnx.data").exists()
    _assert_same_model(src, out)


def test_external_data_elsewhere_needs_the_copy_flag_and_then_is_copied(tmp_path):
    src = _with_external(tmp_path / "a")
    (tmp_path / "b").mkdir()
    out = tmp_path / "b" / "annotated.onnx"
    res = run("annotate", str(src), "-o", str(out))
    assert res.exit_code == 2 and "--copy-external-data" in res.output and not out.exists()
    res = run("annotate", str(src), "-o", str(out), "--copy-external-data")
    assert res.exit_code == 0, res.output
    assert _locations(out) == {"annotated.onnx.data"} and (out.parent / "annotated.onnx.data").is_file()
    _assert_same_model(src, out)
    (src.parent / "weights.bin").unlink()  # the copy no longer needs the original's data
    check_model_file(str(out))
    assert _outputs(out)


def test_refuses_to_overwrite_the_input_or_its_data(tmp_path, write_model):
    src = write_model(RESIDUAL)
    before = src.read_bytes()
    res = run("annotate", str(src), "-o", str(src))
    assert res.exit_code == 2 and "refusing" in res.output and src.read_bytes() == before
    ext = _with_external(tmp_path / "x")
    data = (ext.parent / "weights.bin").read_bytes()
    res = run("annotate", str(ext), "-o", str(ext.parent / "weights.bin"))
    assert res.exit_code == 2 and "refusing" in res.output
    assert (ext.parent / "weights.bin").read_bytes() == data


def test_bad_input_is_one_line_and_no_output(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    out = tmp_path / "out.onnx"
    res = run("annotate", str(bad), "-o", str(out))
    assert res.exit_code == 2 and "Traceback" not in res.output and not out.exists()
    res = run("annotate", str(bad), "-o", str(tmp_path / "missing" / "out.onnx"))
    assert res.exit_code == 2
    assert list(tmp_path.iterdir()) == [bad]


def test_numeric_adds_the_measured_gradient_with_its_condition(tmp_path, write_model):
    pytest.importorskip("torch")
    src = write_model(INNER_RESIDUAL)
    out = tmp_path / "out.onnx"
    res = run("annotate", str(src), "-o", str(out), "--numeric", "--probes", "1", "-q")
    assert res.exit_code == 0, res.output
    _assert_same_model(src, out)
    model = onnx.load(str(out))
    meta = _props(model.metadata_props)
    assert "condition weights" in meta[PREFIX + "numeric_condition"]
    assert "seeds 0" in meta[PREFIX + "numeric_condition"] and PREFIX + "verdict" in meta
    measured = [_props(n.metadata_props) for n in model.graph.node if PREFIX + "rel_grad_norm" in
                _props(n.metadata_props)]
    assert measured
    for p in measured:
        assert float(p[PREFIX + "rel_grad_norm"]) > 0
        assert p[PREFIX + "numeric_condition"] == meta[PREFIX + "numeric_condition"]
    # the residual block's measured gain reaches the nodes of its units
    by_output = {n.output[0]: _props(n.metadata_props) for n in model.graph.node}
    gained = [p for p in measured if PREFIX + "block_gain" in p]
    assert by_output["c2"][PREFIX + "block_gain_block"] == by_output["r"][PREFIX + "block_gain_block"] == \
        "residual"
    assert by_output["y"][PREFIX + "block_gain_block"].startswith("coupled_head")
    assert all(float(p[PREFIX + "block_gain"]) > 0 for p in gained)
