"""run_backward end to end on tiny graphs whose answers are known, plus one real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphpath.errors import GraphpathError

torch = pytest.importorskip("torch")

from graphpath.formats.numeric_text import render_numeric_text  # noqa: E402
from graphpath.numeric import backends  # noqa: E402
from graphpath.numeric.backward import BackwardOptions, run_backward  # noqa: E402
from graphpath.numeric.metrics import VERDICTS  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models"
C = 4
FAST = BackwardOptions(probes=2, device="cpu", power_iters=10)


def save(tmp_path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray],
         x_shape: tuple[int, ...] = (1, C, 6, 6), name: str = "m.onnx") -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def eye(scale: float) -> np.ndarray:
    return (scale * np.eye(C)).reshape(C, C, 1, 1)


def chain(tmp_path: Path, scales: list[float], *, residual: bool = False, name: str = "chain.onnx") -> Path:
    """stem conv → L blocks → head conv, all 1×1 and linear. A block is ``conv(h)`` (plain) or
    ``h + conv(h)`` (residual); block ``l`` has weight ``scales[l]·I`` (plain) or a small random
    matrix (residual), so the plain chain's Jacobian from the stem to the head is ∏ scales."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w_stem"], ["h0"], kernel_shape=[1, 1])]
    inits = {"w_stem": eye(1.0), "w_head": eye(1.0)}
    for i, s in enumerate(scales):
        w = f"w{i}"
        if residual:
            inits[w] = 0.05 * rng.standard_normal((C, C, 1, 1))
            nodes += [helper.make_node("Conv", [f"h{i}", w], [f"c{i}"], kernel_shape=[1, 1]),
                      helper.make_node("Add", [f"h{i}", f"c{i}"], [f"h{i + 1}"])]
        else:
            inits[w] = eye(s)
            nodes.append(helper.make_node("Conv", [f"h{i}", w], [f"h{i + 1}"], kernel_shape=[1, 1]))
    nodes.append(helper.make_node("Conv", [f"h{len(scales)}", "w_head"], ["y"], kernel_shape=[1, 1]))
    return save(tmp_path, nodes, inits, name=name)


@pytest.mark.parametrize(("scale", "expected"), [(0.2, "vanishing"), (5.0, "exploding"), (1.0, "very stable"),
                                                 (0.6, "moderate")])
def test_linear_chain_ratio_is_the_product_of_gains(tmp_path: Path, scale: float, expected: str) -> None:
    L = 6
    report = run_backward(chain(tmp_path, [scale] * L), FAST)
    # ∂L/∂F₀ = (∏ scale)·I applied to the probe: the ratio is exactly scale^L (head weight is I)
    assert report.ratio == pytest.approx(scale ** L, rel=1e-5)
    assert report.verdict == expected
    assert report.first_units == ("/Conv",) or len(report.first_units) == 1
    depths = [u.depth for u in report.curve]
    assert depths == list(range(1, L + 3))
    # relative gradient at depth d is scale^(L+1-d) for the blocks
    for u in report.curve[1:-1]:
        assert u.rel_grad_norm == pytest.approx(scale ** (L + 1 - u.depth), rel=1e-5)
    # the head's own gradient is the probe
    assert report.curve[-1].rel_grad_norm == pytest.approx(1.0, rel=1e-6)
    # operator norms from weights alone: scale·I has norm scale
    norms = {o.weight: o.sigma for o in report.operator_norms}
    assert norms["w0"] == pytest.approx(scale, rel=1e-6)


def test_residual_chain_keeps_ratio_near_one(tmp_path: Path) -> None:
    L = 10
    plain = run_backward(chain(tmp_path, [0.5] * L, name="plain.onnx"), FAST)
    res = run_backward(chain(tmp_path, [0.5] * L, residual=True, name="res.onnx"), FAST)
    assert plain.ratio == pytest.approx(0.5 ** L, rel=1e-5)
    assert 0.5 <= res.ratio <= 2.0
    assert res.verdict in ("stable", "very stable")
    assert plain.verdict in ("vanishing", "moderate")
    assert abs(np.log(res.ratio)) < abs(np.log(plain.ratio))


def test_dead_relu_fraction_half(tmp_path: Path) -> None:
    bias = np.array([-10.0, -10.0, 10.0, 10.0])  # inputs in [0, 1): two channels never fire
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], kernel_shape=[1, 1])]
    report = run_backward(save(tmp_path, nodes, {"w1": eye(1.0), "b1": bias, "w2": eye(1.0)}), FAST)
    assert report.dead["relu"].fraction == pytest.approx(0.5)
    assert report.dead["relu"].units == 1


def test_clip_bounds_held_in_constant_nodes(tmp_path: Path) -> None:
    """Paddle exports give Clip its bounds through Constant nodes, not initializers."""
    bias = np.array([-10.0, -10.0, 10.0, 10.0])  # channels 0-1 sit below the lower bound
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.float32(0.0), "lo")),
             helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.float32(6.0), "hi")),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], kernel_shape=[1, 1])]
    report = run_backward(save(tmp_path, nodes, {"w1": eye(1.0), "b1": bias, "w2": eye(1.0)}), FAST)
    # channels 0-1 below 0 and channels 2-3 above 6: every element is saturated
    assert report.dead["clip"].fraction == pytest.approx(1.0)


def test_nan_gives_a_verdict_not_a_crash(tmp_path: Path) -> None:
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("Log", ["c1"], ["l1"]),  # log of a negative number: NaN
             helper.make_node("Conv", ["l1", "w2"], ["y"], kernel_shape=[1, 1])]
    path = save(tmp_path, nodes, {"w1": eye(1.0), "b1": np.full(C, -5.0), "w2": eye(1.0)})
    report = run_backward(path, FAST)
    assert report.verdict == "nan"
    assert any(n.startswith("forward:") for n in report.nonfinite)
    json.dumps(report.to_dict())  # still valid JSON: non-finite floats are strings


def test_block_jacobian_bound_below_and_close_to_svd(tmp_path: Path) -> None:
    from graphpath.numeric.evaluator.core import Evaluator
    from graphpath.numeric.measures import block_jacobian_sigma

    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "w3"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c", "w4"], ["y"], kernel_shape=[1, 1])]
    inits = {k: rng.standard_normal(s) for k, s in
             {"w1": (C, C, 1, 1), "w2": (C, C, 3, 3), "w3": (C, C, 3, 3), "w4": (C, C, 1, 1)}.items()}
    path = save(tmp_path, nodes, inits, x_shape=(1, C, 4, 4))
    ev = Evaluator.from_model(path, device="cpu", dtype=torch.float64, outputs=["y"])
    x = {"x": torch.rand(1, C, 4, 4, dtype=torch.float64)}
    params = {k: v.detach() for k, v in ev.named_onnx_parameters().items()}
    at = ev(x, params, outputs=["a"])["a"]
    sigma, iters, change, note = block_jacobian_sigma(ev, x, params, "a", "c", at, 100, 0)
    jac = torch.autograd.functional.jacobian(lambda v: ev(x, params, outputs=["c"], replace={"a": v})["c"], at)
    true = float(np.linalg.svd(jac.reshape(C * 16, C * 16).numpy(), compute_uv=False)[0])
    assert note == "" and sigma is not None
    assert sigma <= true * (1 + 1e-9)
    assert sigma >= 0.97 * true
    assert 2 <= iters <= 100


def test_to_dict_is_deterministic(tmp_path: Path) -> None:
    path = chain(tmp_path, [0.9, 1.1, 0.8])
    a = json.dumps(run_backward(path, FAST).to_dict(), sort_keys=False)
    b = json.dumps(run_backward(path, FAST).to_dict(), sort_keys=False)
    assert a == b
    d = json.loads(a)
    assert list(d) == sorted(d)
    assert d["verdict"]["value"] in VERDICTS and "timings" not in d


def test_parity_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphpath.numeric.evaluator import ops_torch

    conv = ops_torch.OPS["Conv"]
    monkeypatch.setitem(ops_torch.OPS, "Conv", lambda node, xs: conv(node, xs) + 0.5)  # type: ignore[operator]
    with pytest.raises(GraphpathError, match="disagrees with onnxruntime"):
        run_backward(chain(tmp_path, [1.0, 1.0]), FAST)


def test_reinit_and_options(tmp_path: Path) -> None:
    path = chain(tmp_path, [0.1] * 4)
    report = run_backward(path, BackwardOptions(probes=1, device="cpu", power_iters=5, reinit="kaiming-normal"))
    assert report.reinit == "kaiming-normal"
    assert report.ratio != pytest.approx(0.1 ** 4)  # the weights were replaced
    with pytest.raises(GraphpathError, match="--imgsz"):
        run_backward(path, BackwardOptions(probes=1, device="cpu", imgsz=320))
    with pytest.raises(GraphpathError, match="reinit"):
        run_backward(path, BackwardOptions(probes=1, reinit="xavier"))
    image = np.random.default_rng(0).random((1, C, 6, 6)).astype(np.float32)
    np.save(tmp_path / "img.npy", image)
    fixed = run_backward(path, BackwardOptions(probes=1, device="cpu", power_iters=5,
                                               input_file=str(tmp_path / "img.npy")))
    assert fixed.to_dict()["options"]["input_file"] == "img.npy"


def test_backend_selection_without_ort_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(backends, "_ort_backend", lambda: None)
    chosen, why = backends.select_backends("auto")
    assert [b.name for b in chosen] == ["torch"] and "not installed" in why
    with pytest.raises(GraphpathError):
        backends.select_backends("ort-training")
    with pytest.raises(GraphpathError):
        backends.select_backends("nope")
    assert isinstance(backends.TorchBackend(), backends.Backend)


def test_torch_backend_parameter_gradients_match_report(tmp_path: Path) -> None:
    path = chain(tmp_path, [0.5, 2.0])
    tb = backends.TorchBackend("cpu")
    x = {"x": np.ones((1, C, 6, 6), dtype=np.float32)}
    cot = {"y": np.ones((1, C, 6, 6), dtype=np.float32)}
    grads = tb.parameter_gradients(path, x, ["y"], cot)
    # L = Σ y, y = W_head·W1·W0·W_stem·x with W0 = 0.5·I, W1 = 2·I and x = 1: every pixel adds
    # cot ⊗ input, so ∂L/∂W_head = 36·(1 1ᵀ) and ∂L/∂W0 = 36·(W1ᵀ 1)(1)ᵀ = 72·(1 1ᵀ)
    assert np.allclose(grads["w_head"].reshape(C, C), 36.0)
    assert np.allclose(grads["w0"].reshape(C, C), 72.0)
    assert set(grads) == {"w_stem", "w0", "w1", "w_head"}


def test_yolov8n_end_to_end() -> None:
    report = run_backward(MODELS / "yolov8n.onnx", BackwardOptions(probes=1, device="cpu", power_iters=5, max_blocks=6))
    assert report.parity.ok is True
    assert report.verdict in VERDICTS and report.verdict != "nan"
    assert len(report.cuts) == 1 and len(report.cuts[0].heads) == 6
    assert dict(report.cuts[0].tail_ops)["Softmax"] == 1
    assert len(report.curve) > 50 and report.curve[0].depth == 1
    assert report.dead["silu"].units > 50
    # every single-entry block gets its gain; the first --max-blocks also a Jacobian bound
    bounded, gain_only = report.blocks[:6], report.blocks[6:]
    assert all(b.jacobian_sigma is not None for b in bounded)
    assert gain_only and all(b.jacobian_sigma is None and b.note.startswith("gain only") for b in gain_only)
    assert {b.kind for b in gain_only} >= {"residual"}  # nested blocks too
    assert all(np.isfinite(b.gain) and b.gain > 0 for b in report.blocks)
    text = render_numeric_text(report)
    assert "verdict" in text and report.verdict in text


class _FakeOrt(backends.TorchBackend):
    """Stands in for the onnxruntime-training backend: the same gradients under another name."""

    name = "ort-training"

    def __init__(self) -> None:
        super().__init__("cpu")


def test_backend_both_reports_agreement(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(backends, "_ort_backend", _FakeOrt)
    path = chain(tmp_path, [0.9, 1.2])
    calls: list[tuple[int, int, str]] = []
    report = run_backward(path, BackwardOptions(probes=2, device="cpu", power_iters=5, backend="both"),
                          progress=lambda d, t, label: calls.append((d, t, label)))
    assert report.backend == "torch+ort-training"
    assert report.backend_agreement is not None
    assert report.backend_agreement is not None
    assert report.backend_agreement.max_rel_diff < 1e-6 and report.backend_agreement.missing == ()
    assert calls[-1][0] == calls[-1][1] and [c[0] for c in calls] == sorted(c[0] for c in calls)
    auto = run_backward(path, BackwardOptions(probes=1, device="cpu", power_iters=5))
    assert auto.backend == "ort-training" and "installed and able" in auto.backend_reason


def test_zero_initialised_head_says_why_nothing_flows(tmp_path: Path) -> None:
    """YOLOv6 initialises its prediction convs to zero: the ratio is exactly 0, and the reason
    names the zero weights rather than only the number."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], kernel_shape=[1, 1])]
    report = run_backward(save(tmp_path, nodes, {"w1": eye(1.0), "w2": eye(0.0)}), FAST)
    assert report.ratio == 0.0 and report.verdict == "vanishing"
    assert "1 of the 1 raw head convs have all-zero weights" in report.reason


def test_seeds_give_intervals_and_share_one_parse(tmp_path: Path) -> None:
    """Under ``init`` every seed draws its own weights; the ratio gets a 95 % interval over the
    seeds, and a verdict decided on it. One seed under ``weights``: the interval is over probes."""
    path = chain(tmp_path, [1.0, 1.0, 1.0])
    rep = run_backward(path, BackwardOptions(probes=2, device="cpu", power_iters=5, condition="init",
                                             init="kaiming-normal", norm="none", seeds=3, seed_offset=4))
    iv = rep.intervals["ratio"]
    assert rep.seeds == (4, 5, 6) and iv.n == 3 and iv.over == "seeds" and iv.low <= iv.mean <= iv.high
    assert rep.verdict in (*VERDICTS, "inconclusive")
    data = json.loads(json.dumps(rep.to_dict()))
    assert data["seeds"] == [4, 5, 6] and data["options"]["seeds"] == [4, 5, 6]
    assert data["intervals"]["ratio"]["over"] == "seeds"
    one = run_backward(path, FAST)
    assert one.seeds == (0,) and one.intervals["ratio"].over == "probes" and one.intervals["ratio"].n == 2
    assert one.ratio == pytest.approx(1.0, rel=1e-6)  # the plain identity chain: the interval is a point


def test_the_dead_fraction_gets_a_linear_interval_over_seeds(tmp_path: Path) -> None:
    """Over seeds every measured cell has an interval; the dead fraction's is linear and stays
    inside [0, 1] (a t-interval on a fraction near 0 would otherwise go negative)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], kernel_shape=[1, 1])]
    path = save(tmp_path, nodes, {"w1": eye(1.0), "w2": eye(1.0)})
    rep = run_backward(path, BackwardOptions(probes=2, device="cpu", power_iters=5, condition="init",
                                             init="kaiming-normal", norm="none", seeds=3))
    dead = rep.intervals["dead_fraction"]
    assert dead.n == 3 and not dead.log and 0.0 <= dead.low <= dead.mean <= dead.high <= 1.0


def test_float16_graph_is_compared_at_half_precision_tolerance(tmp_path: Path) -> None:
    """A float16 graph: evaluated in float32, compared with onnxruntime's half-precision run at
    a tolerance of 8 units of half-precision roundoff of each head's range, which the parity
    line states (a float32 graph keeps the default 1e-4)."""
    rng = np.random.default_rng(0)
    w1, w2 = (rng.standard_normal((C, C, 3, 3)) * 0.3 for _ in range(2))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, C, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)],
        [numpy_helper.from_array(w1.astype(np.float16), "w1"), numpy_helper.from_array(w2.astype(np.float16), "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "half.onnx"))
    report = run_backward(tmp_path / "half.onnx", FAST)
    assert report.parity.atol == 8 * 2.0 ** -11
    assert any("float16 graph evaluated in float32" in n for n in report.parity.notes)
    full = run_backward(chain(tmp_path, [0.5] * 3), FAST)
    assert full.parity.atol == FAST.parity_atol and not any("float16" in n for n in full.parity.notes)
