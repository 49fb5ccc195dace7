"""Known results of signal propagation at initialisation, measured with graphpath's own machinery.

Each test builds a synthetic conv chain in ONNX, opens it with :func:`graphpath.onnx_io.open_model`
and measures it with :func:`run_backward` under ``--condition init`` (He-normal fan-in weights,
biases 0), with ``--norm batch`` where the chain has train-mode BatchNorm (restored by the
evaluator after every conv but the prediction conv). "Ratio" is the report's per-element RMS
ratio ``ratio_rms`` of the first feature map's gradient to the probe at the raw head. These are
physics, not tuning targets: the ranges are the issue's (issue 15), the chains are as small as
keeps each test to a few seconds on two CPU cores.

Maps are 32×32, not 8×8: with zero padding a 3×3 conv's border outputs see fewer inputs, and on
an 8×8 map that boundary alone scales the backward variance per layer by ≈ 0.92 (the top
eigenvalue of the padded 3-tap sum is ``(1 + 2cos(π/9))/3`` per axis), so a He-initialised
30-layer ReLU chain reads ≈ 0.3 there instead of ≈ 1 — He et al.'s count assumes every output
sees ``fan_in`` inputs. At 32×32 the factor is ≈ 0.995.

Width 16 (32 for the plain BN chain) leaves a seed-to-seed spread of the log-ratio of about
±0.7 (finite-width fluctuations of a product of random matrices), so every figure is a mean over
a few seeds in log space.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("torch")

from graphpath import onnx_io
from graphpath.numeric.backward import BackwardOptions, NumericReport, run_backward

HW = 32


def _save(path: Path, nodes: list[onnx.NodeProto], names: list[str], width: int, hw: int) -> Path:
    """Save a chain of 3×3 convs ``names`` (weights w_*, biases b_*) with small random file weights
    (replaced under ``init``; the parity check runs on them)."""
    rng = np.random.default_rng(0)
    inits = []
    for n in names:
        inits.append(numpy_helper.from_array((0.1 * rng.standard_normal((width, width, 3, 3))).astype(np.float32), f"w_{n}"))
        inits.append(numpy_helper.from_array(np.zeros(width, np.float32), f"b_{n}"))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _conv(x: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, f"w_{out}", f"b_{out}"], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            name=f"conv_{out}")


def plain_chain(path: Path, layers: int, act: str = "Relu", width: int = 16, hw: int = HW) -> Path:
    """``layers`` conv–activation layers, then a prediction conv (``layers + 1`` weighted)."""
    nodes, names, h = [], [], "x"
    for i in range(layers):
        nodes += [_conv(h, f"c{i}"), helper.make_node(act, [f"c{i}"], [f"a{i}"], name=f"act{i}")]
        names.append(f"c{i}")
        h = f"a{i}"
    nodes.append(_conv(h, "y"))
    return _save(path, nodes, [*names, "y"], width, hw)


def preact_resnet(path: Path, blocks: int, width: int = 16, hw: int = HW, final_relu: bool = False) -> Path:
    """Stem conv, ``blocks`` × ``h + conv(ReLU(conv(ReLU(h))))``, (ReLU,) prediction conv."""
    nodes, names = [_conv("x", "h0")], ["h0"]
    for i in range(blocks):
        nodes += [helper.make_node("Relu", [f"h{i}"], [f"r{i}a"], name=f"relu{i}a"), _conv(f"r{i}a", f"c{i}a"),
                  helper.make_node("Relu", [f"c{i}a"], [f"r{i}b"], name=f"relu{i}b"), _conv(f"r{i}b", f"c{i}b"),
                  helper.make_node("Add", [f"h{i}", f"c{i}b"], [f"h{i + 1}"], name=f"add{i}")]
        names += [f"c{i}a", f"c{i}b"]
    last = f"h{blocks}"
    if final_relu:  # every block output then reads ReLU(stream): one constant factor for all
        nodes.append(helper.make_node("Relu", [last], ["r_final"], name="relu_final"))
        last = "r_final"
    nodes.append(_conv(last, "y"))
    return _save(path, nodes, [*names, "y"], width, hw)


def measure(path: Path, seed: int, norm: str = "none") -> NumericReport:
    opts = BackwardOptions(probes=2, seed=seed, device="cpu", power_iters=1, max_blocks=0, condition="init",
                           init="kaiming-normal", norm=norm)  # type: ignore[arg-type]
    return run_backward(onnx_io.open_model(path), opts)


def test_he_init_preserves_the_gradient_through_a_relu_chain(tmp_path: Path) -> None:
    """He et al. 2015: N(0, 2/fan_in) and ReLU keep the variance, so depth 30 gives ratio ≈ 1."""
    path = plain_chain(tmp_path / "relu.onnx", 29)
    ratios = [measure(path, seed).ratio_rms for seed in range(6)]
    mean = math.exp(float(np.mean(np.log(ratios))))
    assert 0.3 <= mean <= 3.0, f"geometric mean {mean:.3g} over seeds {ratios}"


def test_sigmoid_chain_vanishes(tmp_path: Path) -> None:
    """σ′ ≤ ¼ per layer: 30 sigmoid layers leave less than 1e-6 of the gradient."""
    path = plain_chain(tmp_path / "sigmoid.onnx", 29, act="Sigmoid")
    ratios = [measure(path, seed).ratio_rms for seed in range(2)]
    assert max(ratios) < 1e-6, ratios


def test_unnormalised_residual_chain_doubles_its_variance_per_block(tmp_path: Path) -> None:
    """Pre-activation blocks without normalisation: the He-initialised branch has the stream's
    variance, so the variance doubles per block and log₂(ratio) grows by ½ per block."""
    short, long_ = preact_resnet(tmp_path / "r4.onnx", 4), preact_resnet(tmp_path / "r16.onnx", 16)
    seeds = range(4)
    slope = float(np.mean([math.log2(measure(long_, s).ratio_rms) - math.log2(measure(short, s).ratio_rms)
                           for s in seeds])) / 12
    assert 0.35 <= slope <= 0.65, f"log2(ratio) per block {slope:.3f}"


def test_batchnorm_in_the_branch_grows_the_variance_linearly(tmp_path: Path) -> None:
    """The same chain with train-mode BN after each conv (De & Smith 2020): every branch adds unit
    variance, so the stream's variance grows linearly with depth (log–log slope ≈ 1 between
    blocks 16 and 64), and the gradient ratio grows polynomially, not exponentially."""
    short, long_ = (preact_resnet(tmp_path / f"b{n}.onnx", n, final_relu=True) for n in (16, 64))
    var_slopes, grad_slopes = [], []
    for seed in range(2):
        a, b = measure(short, seed, norm="batch"), measure(long_, seed, norm="batch")
        assert b.norm.mode == "batch" and len(b.norm.convs) == 2 * 64 + 1  # stem and branch convs, not the head
        blocks = sorted((p for p in b.signal if p.kind == "block"), key=lambda p: p.depth)
        assert len(blocks) == 64
        var_slopes.append(math.log(blocks[63].channel_var / blocks[15].channel_var) / math.log(4))
        grad_slopes.append(math.log(b.ratio_rms / a.ratio_rms) / math.log(4))
    var_slope, grad_slope = float(np.mean(var_slopes)), float(np.mean(grad_slopes))
    assert 0.8 <= var_slope <= 1.2, f"forward variance log–log slope {var_slope:.3f}"
    assert 0.5 <= grad_slope <= 1.5, f"gradient ratio log–log slope {grad_slope:.3f}"


def test_plain_batchnorm_chain_explodes_geometrically(tmp_path: Path) -> None:
    """Yang et al. 2019: in a plain conv–BN–ReLU chain at init the gradient grows by a constant
    factor per layer (≈ √(π/(π−1)) ≈ 1.21 for ReLU at large batch): log(ratio) is linear in depth."""
    depths = list(range(5, 41, 5))
    logs = np.mean([[math.log(measure(plain_chain(tmp_path / f"p{L}.onnx", L, width=32, hw=16), seed,
                                      norm="batch").ratio_rms) for L in depths] for seed in range(2)], axis=0)
    slope, icept = np.polyfit(depths, logs, 1)
    residual = logs - (slope * np.asarray(depths) + icept)
    r2 = 1.0 - float((residual ** 2).sum() / ((logs - logs.mean()) ** 2).sum())
    factor = math.exp(slope)
    assert r2 > 0.95, f"R² {r2:.3f} (factor {factor:.3f})"
    assert factor > 1.05, f"per-layer factor {factor:.3f} (R² {r2:.3f})"
