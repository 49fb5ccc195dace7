"""The backbone as graphpath reads it from structure (seed 001's table G.6): where it ends, its
stem, its path type and each block's path multiplicity, on the smallest graphs that show them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphpath import onnx_io
from graphpath.blocks.backbone import find_backbone


def conv(x: str, out: str, cin: int, cout: int, inits: dict[str, np.ndarray], k: int = 3) -> onnx.NodeProto:
    rng = np.random.default_rng(len(inits))
    inits[f"w_{out}"] = (0.3 * rng.standard_normal((cout, cin, k, k))).astype(np.float32)
    inits[f"b_{out}"] = np.zeros(cout, np.float32)
    return helper.make_node("Conv", [x, f"w_{out}", f"b_{out}"], [out], kernel_shape=[k, k],
                            pads=[k // 2] * 4, name=f"conv_{out}")


def save(path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], outputs: list[str]) -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_plain_chain_ends_before_its_prediction_layer(tmp_path: Path) -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = [conv("x", "a", 4, 4, inits), conv("a", "b", 4, 4, inits), conv("b", "y", 4, 4, inits, k=1)]
    m = onnx_io.open_model(save(tmp_path / "plain.onnx", nodes, inits, ["y"]))
    bb = find_backbone(m.layers, m.blocks)
    assert bb is not None
    assert bb.stem_tensor == "a" and bb.exit_tensor == "b"
    assert bb.path_type == "single chain"
    assert "no upsampling" in bb.rule


def test_residual_backbone_before_the_first_upsample(tmp_path: Path) -> None:
    """stem → residual block → (exit) → Resize → concat with the stem → prediction conv."""
    inits: dict[str, np.ndarray] = {"scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [
        conv("x", "s", 4, 4, inits),
        helper.make_node("MaxPool", ["s"], ["d"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        conv("d", "r1", 4, 4, inits), conv("r1", "r2", 4, 4, inits),
        helper.make_node("Add", ["d", "r2"], ["e"], name="add"),
        conv("e", "lat", 4, 4, inits, k=1),
        helper.make_node("Resize", ["lat", "", "scales"], ["up"], mode="nearest", name="up"),
        helper.make_node("Concat", ["up", "s"], ["cat"], axis=1, name="cat"),
        conv("cat", "y", 8, 4, inits, k=1),
    ]
    m = onnx_io.open_model(save(tmp_path / "res.onnx", nodes, inits, ["y"]))
    bb = find_backbone(m.layers, m.blocks)
    assert bb is not None
    assert bb.stem_tensor == "s" and bb.exit_tensor == "lat"
    assert "Resize" in bb.rule
    assert bb.path_type == "skip + main"
    assert ("residual", 2) in {(k, n) for k, _, n in bb.blocks}
    assert "2 paths per block" in bb.describe()
