"""Train-mode BatchNorm restored under the ``init`` condition: the rule, the evaluator option,
and the report's signal-propagation and gradient-to-weight measures."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.numeric.measures import GradWeightPoint, channel_moments, grad_to_weight, log_slope
from graphpath.numeric.norm import NormPlan, TrainNorm, resolve_norm
from graphpath.numeric.probes import all_heads, find_head_cuts

torch = pytest.importorskip("torch")
F = torch.nn.functional

from graphpath.formats.numeric_text import render_numeric_text  # noqa: E402
from graphpath.numeric import Evaluator  # noqa: E402
from graphpath.numeric.backward import BackwardOptions, run_backward  # noqa: E402
from graphpath.numeric.measures import block_jacobian_sigma  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models"
FAST = dict(probes=1, device="cpu", power_iters=3)

# conv+bias → relu → conv+bias → relu → prediction conv: the BN-fused signature
FUSED = """
fused (float[2,4,6,6] x) => (float[2,4,6,6] y)
<float[4,4,3,3] w1, float[4] b1, float[4,4,3,3] w2, float[4] b2, float[4,4,1,1] wh, float[4] bh>
{
    c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w1, b1)
    r1 = Relu (c1)
    c2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (r1, w2, b2)
    r2 = Relu (c2)
    y = Conv <kernel_shape = [1, 1]> (r2, wh, bh)
}
"""

# a bias-free conv with nothing normalising it: trained without BN
NO_BIAS = FUSED.replace("(r1, w2, b2)", "(r1, w2)")

# a training-form export: a bias-free conv feeding a BatchNormalization node
BN_NODE = """
bn (float[2,4,6,6] x) => (float[2,4,6,6] y)
<float[4,4,3,3] w1, float[4] g, float[4] beta, float[4] mu, float[4] var, float[4,4,1,1] wh, float[4] bh>
{
    c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w1)
    n1 = BatchNormalization (c1, g, beta, mu, var)
    r1 = Relu (n1)
    y = Conv <kernel_shape = [1, 1]> (r1, wh, bh)
}
"""

# after global pooling at batch 1 a conv sees one element per channel
POOLED = """
pooled (float[1,4,6,6] x) => (float[1,4,1,1] y)
<float[4,4,3,3] w1, float[4] b1, float[4,4,1,1] w2, float[4] b2, float[4,4,1,1] wh, float[4] bh>
{
    c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w1, b1)
    r1 = Relu (c1)
    p1 = GlobalAveragePool (r1)
    c2 = Conv <kernel_shape = [1, 1]> (p1, w2, b2)
    r2 = Relu (c2)
    y = Conv <kernel_shape = [1, 1]> (r2, wh, bh)
}
"""


def plan(path: Path, requested: str = "auto", condition: str = "init") -> NormPlan:
    model = onnx_io.open_model(path)
    heads = all_heads(find_head_cuts(model.graph, model.layers))
    ev = Evaluator.from_model(model, device="cpu", outputs=list(heads))
    scope = {t: s for t, s in ev.shapes.items() if t not in ev.folded and t not in model.graph.params}
    return resolve_norm(model, heads, scope, requested, condition)


# --------------------------------------------------------------------------- the rule


def test_auto_finds_the_bn_fused_convs(write_model: Callable[..., Path]) -> None:
    path = write_model(FUSED)
    p = plan(path)
    assert p.mode == "batch" and "BN-fused signature" in p.reason
    assert p.tensors == ("c1", "c2")  # the prediction conv y carries no BN
    assert p.train_norm == TrainNorm(tensors=frozenset({"c1", "c2"}))
    assert plan(path, condition="weights").mode == "none"   # the file's own statistics
    assert plan(path, "none").mode == "none" and plan(path, "none").train_norm is None
    assert plan(path, "batch", condition="weights").tensors == ("c1", "c2")


def test_a_bias_free_conv_without_norm_says_no_bn(write_model: Callable[..., Path]) -> None:
    p = plan(write_model(NO_BIAS))
    assert p.mode == "none" and "no bias" in p.reason
    assert plan(write_model(NO_BIAS), "batch").tensors == ("c1",)  # forced: only convs with a bias


def test_bn_nodes_decide_and_their_conv_is_not_normalised_twice(write_model: Callable[..., Path]) -> None:
    p = plan(write_model(BN_NODE))
    assert p.mode == "batch" and "BatchNormalization" in p.reason
    assert p.tensors == () and len(p.bn_nodes) == 1
    assert p.train_norm is not None and p.train_norm.bn_nodes


def test_yolov1_trained_without_bn() -> None:
    p = plan(MODELS / "yolov1.onnx")
    assert p.mode == "none" and "v1" in p.reason and p.candidates > 0
    assert len(plan(MODELS / "yolov1.onnx", "batch").tensors) == p.candidates


def test_unknown_norm(write_model: Callable[..., Path]) -> None:
    with pytest.raises(GraphpathError, match="--norm"):
        plan(write_model(FUSED), "group")


# --------------------------------------------------------------------------- the evaluator


def test_train_norm_is_torch_training_batchnorm(write_model: Callable[..., Path]) -> None:
    """Forward and parameter gradients equal F.batch_norm(training=True) without running stats."""
    ev = Evaluator.from_model(write_model(FUSED), device="cpu", dtype=torch.float64)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in ev.named_onnx_parameters().items()}
    x = torch.rand(2, 4, 6, 6, dtype=torch.float64)
    got = ev({"x": x}, params, train_norm=TrainNorm(frozenset({"c1", "c2"})))["y"]

    def ref(p: dict[str, torch.Tensor]) -> torch.Tensor:
        def bn(t: torch.Tensor) -> torch.Tensor:
            return F.batch_norm(t, None, None, training=True, eps=1e-5)
        h = F.relu(bn(F.conv2d(x, p["w1"], p["b1"], padding=1)))
        h = F.relu(bn(F.conv2d(h, p["w2"], p["b2"], padding=1)))
        return F.conv2d(h, p["wh"], p["bh"])

    want = ref(params)
    assert torch.allclose(got, want, atol=1e-12)
    cot = torch.randn_like(want)
    g_got = torch.autograd.grad((got * cot).sum(), list(params.values()))
    g_want = torch.autograd.grad((want * cot).sum(), list(params.values()))
    for a, b in zip(g_got, g_want, strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    # a bias before a train-mode BN gets no gradient
    assert float(g_got[list(params).index("b1")].abs().max()) < 1e-10
    # and forward-mode AD runs through it (block Jacobian bounds)
    at = ev({"x": x}, params, outputs=["r1"], train_norm=TrainNorm(frozenset({"c1", "c2"})))["r1"].detach()
    sigma, _, _, note = block_jacobian_sigma(ev, {"x": x}, {k: v.detach() for k, v in params.items()}, "r1", "r2",
                                             at, 10, 0, TrainNorm(frozenset({"c1", "c2"})))
    assert note == "" and sigma is not None and sigma > 0


def test_bn_nodes_use_batch_statistics(write_model: Callable[..., Path]) -> None:
    ev = Evaluator.from_model(write_model(BN_NODE), device="cpu", dtype=torch.float64)
    params = {k: v.detach() for k, v in ev.named_onnx_parameters().items()}
    x = torch.rand(2, 4, 6, 6, dtype=torch.float64)
    n1 = ev({"x": x}, params, outputs=["n1"], train_norm=TrainNorm(bn_nodes=True))["n1"]
    g, beta = params["g"], params["beta"]
    assert torch.allclose(n1.mean((0, 2, 3)), beta, atol=1e-10)
    assert torch.allclose(n1.var((0, 2, 3), unbiased=False), g * g, rtol=1e-3)
    running = ev({"x": x}, params, outputs=["n1"])["n1"]
    assert not torch.allclose(running, n1)


def test_one_element_per_channel_is_skipped_not_nan(write_model: Callable[..., Path]) -> None:
    path = write_model(POOLED)
    p = plan(path, "batch")
    assert p.skipped == ("c2",) and p.tensors == ("c1",)
    report = run_backward(path, BackwardOptions(condition="init", norm="batch", **FAST))  # type: ignore[arg-type]
    assert report.nonfinite == () and math.isfinite(report.ratio) and report.ratio > 0
    assert report.norm.skipped == ("c2",)
    assert "skipped" in render_numeric_text(report)


# --------------------------------------------------------------------------- run_backward


def test_init_condition_in_the_report(write_model: Callable[..., Path]) -> None:
    path = write_model(FUSED)
    report = run_backward(path, BackwardOptions(condition="init", init="xavier", **FAST))  # type: ignore[arg-type]
    d = report.to_dict()
    assert d["condition"]["name"] == "init" and d["condition"]["init"] == "xavier"
    assert d["condition"]["norm"]["mode"] == "batch" and d["condition"]["norm"]["normalised_convs"] == 2
    assert d["options"]["condition"] == "init" and d["options"]["norm"] == "auto"
    assert report.backend == "torch" and "train-mode BatchNorm" in report.backend_reason
    # biases zeroed out by the batch mean are not flagged as vanishing gradients
    assert not set(report.param_flags["vanishing"]) & {"b1", "b2"}
    json.dumps(d)
    weights = run_backward(path, BackwardOptions(**FAST))  # type: ignore[arg-type]
    assert weights.to_dict()["condition"] == {"name": "weights", "init": None, "norm": weights.norm.to_dict()}
    assert weights.norm.mode == "none" and weights.ratio != report.ratio
    text = render_numeric_text(report)
    assert "init (xavier)" in text and "train-mode BatchNorm after 2 convs" in text


def test_init_refuses_the_ort_backend(write_model: Callable[..., Path]) -> None:
    for backend in ("ort-training", "both"):
        with pytest.raises(GraphpathError, match="--condition init"):
            run_backward(write_model(FUSED), BackwardOptions(condition="init", backend=backend, **FAST))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- measures


def test_channel_moments() -> None:
    x = torch.tensor([[[[1.0, 3.0]], [[-2.0, -2.0]]]])  # (1, 2, 1, 2): channel means 2 and -2
    m2, var = channel_moments(x)
    assert m2 == pytest.approx((4 + 4) / 2) and var == pytest.approx((1 + 0) / 2)
    assert channel_moments(torch.ones(1, 3)) == (1.0, 0.0)  # one element per channel


def test_grad_to_weight_spread_and_slope() -> None:
    pts = [GradWeightPoint(f"u{d}", f"w{d}", d, 2.0 ** d, 1.0) for d in (1, 2, 3, 4)]
    pts.append(GradWeightPoint("zero", "wz", 5, 1.0, 0.0))  # a zero weight: listed, not used
    g = grad_to_weight(pts)
    assert g.used == 4 and g.spread == pytest.approx(8.0)
    assert g.log_slope == pytest.approx(math.log(2.0))
    assert g.to_dict()["factor_per_depth"] == pytest.approx(2.0)
    assert math.isnan(log_slope([1, 1], [1.0, 2.0])) and math.isnan(grad_to_weight([]).spread)


def test_signal_and_grad_to_weight_on_a_scaled_chain(tmp_path: Path) -> None:
    """A chain of 1×1 convs ``s·I``: the feature map at depth d is ``s^d·x``, so its channel
    moments are ``s^(2d)`` times the input's."""
    from tests.numeric.test_backward import C, chain

    s = 0.5
    path = chain(tmp_path, [s] * 3)
    x = np.random.default_rng(0).random((1, C, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    report = run_backward(path, BackwardOptions(input_file=str(tmp_path / "x.npy"), **FAST))  # type: ignore[arg-type]
    m2_x, var_x = channel_moments(torch.from_numpy(x))
    units = [p for p in report.signal if p.kind == "unit"]
    assert [p.depth for p in units] == [u.depth for u in report.curve]
    for p in units[:-1]:  # stem (weight I) at depth 1, then s·I blocks
        assert p.channel_var == pytest.approx(var_x * s ** (2 * (p.depth - 1)), rel=1e-5)
        assert p.channel_sq_mean == pytest.approx(m2_x * s ** (2 * (p.depth - 1)), rel=1e-5)
    gw = report.grad_to_weight
    assert gw.used == len(report.curve)
    for pt in gw.points:
        assert pt.ratio == pytest.approx(report.parameters[pt.weight] / pt.weight_norm)
    assert "‖∂L/∂W‖/‖W‖" in render_numeric_text(report)
