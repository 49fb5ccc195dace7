"""Numeric metrics: verdict thresholds, depths, dead fractions, power iteration, head cuts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphpath import onnx_io
from graphpath.model.layers import LayerGraph, build_layers
from graphpath.numeric.metrics import (
    VERDICTS,
    VerdictThresholds,
    unit_depths,
    verdict,
)
from graphpath.numeric.probes import all_heads, raw_head_tensors

torch = pytest.importorskip("torch")

from graphpath.numeric.metrics import conv_operator_norm, dead_fraction, power_iteration  # noqa: E402


def save(tmp_path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], x_shape: list[int],
         outputs: list[str], name: str = "m.onnx") -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------- verdict


@pytest.mark.parametrize(("ratio", "expected"), [
    (1e-5, "vanishing"), (5e-3, "moderate"), (0.3, "stable"), (1.0, "very stable"), (50.0, "moderate"),
    (1e4, "exploding"), (math.nan, "nan"),
])
def test_verdict_bands(ratio: float, expected: str) -> None:
    value, reason = verdict(ratio, [1.0, 2.0], [])
    assert value == expected and value in VERDICTS
    assert reason


def test_verdict_nonfinite_wins_and_thresholds_configurable() -> None:
    assert verdict(1.0, [1.0], ["forward:y"])[0] == "nan"
    strict = VerdictThresholds(vanishing_below=0.5)
    assert verdict(0.3, [1.0], [], strict)[0] == "vanishing"
    # a wide curve spread demotes "very stable" to "stable"
    assert verdict(1.0, [1e-4, 1.0], [])[0] == "stable"


def test_unit_depths_longest_weighted_path() -> None:
    layers = LayerGraph.from_edges([("x", "a"), ("a", "b"), ("x", "m"), ("b", "m"), ("m", "c"), ("c", "y")],
                                   weighted={"a", "b", "c"})
    d = unit_depths(layers)
    assert (d["a"], d["b"], d["m"], d["c"]) == (1, 2, 2, 3)


# --------------------------------------------------------------------------- activations


def test_dead_fraction_per_kind() -> None:
    x = torch.tensor([-3.0, -1.0, 0.5, 2.0])
    assert dead_fraction("relu", x, {}) == (2, 4)
    assert dead_fraction("leaky_relu", x, {"alpha": 0.1}) == (0, 4)  # slope 0.1 ≥ threshold
    assert dead_fraction("leaky_relu", x, {"alpha": 0.001}) == (2, 4)
    assert dead_fraction("sigmoid", torch.tensor([-20.0, 0.0, 20.0]), {}) == (2, 3)  # saturated
    assert dead_fraction("silu", torch.tensor([-30.0, 0.0, 3.0]), {}) == (1, 3)
    assert dead_fraction("clip", x, {}, bounds=(0.0, 1.0)) == (3, 4)
    assert dead_fraction("no-such-kind", x, {}) is None


# --------------------------------------------------------------------------- spectral norms


def test_power_iteration_lower_bound_close_to_svd() -> None:
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((12, 9)))
    true = float(np.linalg.svd(a.numpy(), compute_uv=False)[0])
    est = power_iteration(lambda v: a @ v, lambda u: a.T @ u, torch.ones(9, dtype=torch.float64), iters=200,
                          tol=1e-10)
    assert est.sigma <= true * (1 + 1e-9)
    assert est.sigma >= 0.99 * true
    assert est.iterations >= 2 and est.last_change < 1e-3


@pytest.mark.parametrize(("stride", "pads", "groups"), [(1, [1, 1, 1, 1], 1), (2, [1, 0, 0, 1], 1), (1, [1, 1, 1, 1], 2)])
def test_conv_operator_norm_matches_explicit_matrix(stride: int, pads: list[int], groups: int) -> None:
    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.standard_normal((4, 4 // groups, 3, 3)))
    est = conv_operator_norm(w, strides=[stride, stride], pads=pads, dilations=[1, 1], groups=groups,
                             in_hw=[6, 6], iters=300)

    def op(x: Any) -> Any:
        x = torch.nn.functional.pad(x, [pads[1], pads[3], pads[0], pads[2]])
        return torch.nn.functional.conv2d(x, w, stride=stride, groups=groups)

    jac = torch.autograd.functional.jacobian(op, torch.zeros(1, 4, 6, 6, dtype=torch.float64))
    mat = jac.reshape(-1, 4 * 36).numpy()
    true = float(np.linalg.svd(mat, compute_uv=False)[0])
    assert est.sigma <= true * (1 + 1e-9)
    assert est.sigma >= 0.97 * true


def test_conv_operator_norm_on_a_crop_is_a_lower_bound() -> None:
    w = torch.from_numpy(np.random.default_rng(2).standard_normal((3, 3, 3, 3)))
    kw = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], groups=1, iters=200)
    small = conv_operator_norm(w, in_hw=[32, 32], max_hw=8, **kw)  # type: ignore[arg-type]
    large = conv_operator_norm(w, in_hw=[32, 32], max_hw=32, **kw)  # type: ignore[arg-type]
    assert small.sigma <= large.sigma * (1 + 1e-6)


# --------------------------------------------------------------------------- head cuts


def test_raw_heads_cut_sigmoid_and_dfl_tail(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["f"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["f", "wc"], ["cls"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["cls"], ["p"]),
        helper.make_node("Conv", ["f", "wb"], ["box"], kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["box"], ["sm"], axis=1),
        helper.make_node("Conv", ["sm", "dfl"], ["d"], kernel_shape=[1, 1]),  # DFL integral
        helper.make_node("Concat", ["d", "p"], ["y"], axis=1),
    ]
    inits = {"w0": rng.standard_normal((4, 3, 1, 1)), "wc": rng.standard_normal((2, 4, 1, 1)),
             "wb": rng.standard_normal((8, 4, 1, 1)), "dfl": np.arange(8.0).reshape(1, 8, 1, 1)}
    path = save(tmp_path, nodes, inits, [1, 3, 4, 4], ["y"])
    graph = onnx_io.load(path)
    cuts = raw_head_tensors(graph, build_layers(graph))
    assert len(cuts) == 1
    assert set(all_heads(cuts)) == {"cls", "box"}
    tail = dict(cuts[0].tail_ops)
    assert tail == {"Concat": 1, "Conv": 1, "Sigmoid": 1, "Softmax": 1}


def test_dead_fraction_under_no_grad() -> None:
    with torch.no_grad():
        assert dead_fraction("mish", torch.tensor([-40.0, 1.0]), {}) == (1, 2)
