"""Audit fixtures: a CLI group with the audit commands, and tiny residual ONNX models."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner, Result
from onnx import TensorProto, helper, numpy_helper

from graphpath.cli.audit import audit, rules
from graphpath.cli.main import GraphpathGroup

#: Block detection is being written; until it lands end-to-end audits run without it.
BLOCKS_READY = importlib.util.find_spec("graphpath.blocks.notes") is not None
NO_BLOCKS: list[str] = [] if BLOCKS_READY else ["--no-blocks"]


def residual_chain(blocks: int = 3, shortcuts: bool = True, channels: int = 4, seed: int = 0) -> onnx.ModelProto:
    """``blocks`` residual blocks (conv 1×1 → SiLU → conv 3×3 → SiLU → add(x, ·)); with
    ``shortcuts=False`` the adds are gone (the branch output feeds the next block directly)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "images"
    for i in range(blocks):
        for j, k in ((1, 1), (2, 3)):
            w = f"b{i}.w{j}"
            inits.append(numpy_helper.from_array(
                (rng.standard_normal((channels, channels, k, k)) * 0.3).astype(np.float32), w))
        src = x
        pads = [1, 1, 1, 1]
        nodes += [
            helper.make_node("Conv", [src, f"b{i}.w1"], [f"b{i}.c1"], name=f"/model.{i}/cv1/Conv", kernel_shape=[1, 1]),
            helper.make_node("Sigmoid", [f"b{i}.c1"], [f"b{i}.s1"], name=f"/model.{i}/cv1/Sigmoid"),
            helper.make_node("Mul", [f"b{i}.c1", f"b{i}.s1"], [f"b{i}.a1"], name=f"/model.{i}/cv1/Mul"),
            helper.make_node("Conv", [f"b{i}.a1", f"b{i}.w2"], [f"b{i}.c2"], name=f"/model.{i}/cv2/Conv",
                             kernel_shape=[3, 3], pads=pads),
            helper.make_node("Sigmoid", [f"b{i}.c2"], [f"b{i}.s2"], name=f"/model.{i}/cv2/Sigmoid"),
            helper.make_node("Mul", [f"b{i}.c2", f"b{i}.s2"], [f"b{i}.a2"], name=f"/model.{i}/cv2/Mul"),
        ]
        out = f"b{i}.y"
        if shortcuts:
            nodes.append(helper.make_node("Add", [src, f"b{i}.a2"], [out], name=f"/model.{i}/Add"))
        else:
            nodes.append(helper.make_node("Identity", [f"b{i}.a2"], [out], name=f"/model.{i}/Identity"))
        x = out
    nodes.append(helper.make_node("Conv", [x, "head.w"], ["output0"], name="/head/Conv", kernel_shape=[1, 1]))
    inits.append(numpy_helper.from_array((rng.standard_normal((6, channels, 1, 1)) * 0.3).astype(np.float32), "head.w"))
    graph = helper.make_graph(
        nodes, "residual_chain",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 8, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="graphpath-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def save_model(tmp_path: Path) -> Callable[..., Path]:
    def _save(model: onnx.ModelProto, rel: str = "model.onnx") -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path

    return _save


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Invoke ``graphpath <args>`` (audit and rules registered) with ``tmp_path`` as the
    current folder; stdout and stderr apart."""
    group = GraphpathGroup(commands={"audit": audit, "rules": rules})
    monkeypatch.chdir(tmp_path)

    def _run(*args: str) -> Result:
        try:
            runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
        except TypeError:  # click >= 8.2 keeps them apart already
            runner = CliRunner()
        return runner.invoke(group, list(args), catch_exceptions=False)

    return _run
