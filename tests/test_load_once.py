"""One command, one parse: ``report --numeric`` and ``audit --numeric`` read the model file once
(``onnx_io.load_proto``, the one function that parses a file) and open one onnxruntime session,
for the forward parity check. The torch route: onnxruntime-training is hidden."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from graphpath import onnx_io
from graphpath.cli.main import cli

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


def _model(path: Path) -> Path:
    """Conv → Clip (bounds in Constant nodes, which used to cost a parse each) → Conv."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((2, 4, 1, 1)) * 0.3).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6.0, np.float32))),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["out"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 16, 16])],
                              initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class Counts:
    """Parses and onnxruntime sessions, counted through a log file: report and audit run each
    model in a forked worker, which inherits the patched functions but not the parent's memory."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def record(self, what: str) -> None:
        with self.log.open("a") as fh:
            fh.write(what + "\n")

    def as_dict(self) -> dict[str, int]:
        seen = self.log.read_text().split() if self.log.exists() else []
        return {"parses": seen.count("parse"), "sessions": seen.count("session")}

    def __eq__(self, other: object) -> bool:
        return self.as_dict() == other

    def __repr__(self) -> str:
        return repr(self.as_dict())


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Counts:
    seen = Counts(tmp_path / "counts.log")
    parse, session = onnx_io.load_proto, ort.InferenceSession

    def counted_parse(*args: Any, **kwargs: Any) -> Any:
        seen.record("parse")
        return parse(*args, **kwargs)

    def counted_session(*args: Any, **kwargs: Any) -> Any:
        seen.record("session")
        return session(*args, **kwargs)

    monkeypatch.setattr(onnx_io, "load_proto", counted_parse)
    monkeypatch.setattr(ort, "InferenceSession", counted_session)
    monkeypatch.setitem(sys.modules, "onnxruntime.training", None)  # the torch route
    return seen


def test_report_numeric_parses_once(tmp_path: Path, counts: Counts) -> None:
    path = _model(tmp_path / "m.onnx")
    res = CliRunner().invoke(cli, ["report", str(path), "--numeric", "--format", "json", "-q", "--no-cache"])
    assert res.exit_code == 0, res.output
    assert '"numeric_verdict"' in res.stdout
    assert counts == {"parses": 1, "sessions": 1}


def test_audit_with_a_numeric_rule_parses_once(tmp_path: Path, counts: Counts) -> None:
    path = _model(tmp_path / "m.onnx")
    res = CliRunner().invoke(cli, ["audit", str(path), "--numeric", "--format", "json", "-q", "--exit-zero", "--no-cache"])
    assert res.exit_code == 0, res.output
    assert '"GP301"' in res.stdout
    assert counts == {"parses": 1, "sessions": 1}
