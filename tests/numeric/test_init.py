"""The init schemes of the ``init`` condition and the condition options."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.numeric.options import BackwardOptions
from graphpath.numeric.reinit import INIT_SCHEMES, init_parameters, reinit_parameters

torch = pytest.importorskip("torch")

LAYERS = """
layers (float[1,32,8,8] x) => (float y)
<float[256,32,3,3] w1, float[256] b1, float[256] g, float[256] beta, float[256] mu, float[256] var,
 float[256,64,2,2] wt, float[64] bt, float[64,512] wl, float[512] bl, float[8,512] wm>
{
    c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w1, b1)
    n1 = BatchNormalization (c1, g, beta, mu, var)
    t1 = ConvTranspose <kernel_shape = [2, 2], strides = [2, 2]> (n1, wt, bt)
    p1 = GlobalAveragePool (t1)
    f1 = Flatten (p1)
    l1 = Gemm <transB = 0> (f1, wl, bl)
    y = MatMul (wm, l1)
}
"""


@pytest.fixture
def layers(write_model: Callable[..., Path]) -> tuple[object, dict[str, np.ndarray]]:
    model = onnx_io.open_model(write_model(LAYERS))
    return model.graph, model.arrays()


def test_torch_default_draws_what_torch_draws(layers: tuple[object, dict[str, np.ndarray]]) -> None:
    """Same bounds as nn.Conv2d / nn.ConvTranspose2d / nn.Linear reset_parameters (uniform)."""
    graph, arrays = layers
    new = init_parameters(graph, arrays, seed=0, scheme="torch-default")  # type: ignore[arg-type]
    torch.manual_seed(0)
    ref = {"w1": torch.nn.Conv2d(32, 256, 3).weight, "b1": torch.nn.Conv2d(32, 256, 3).bias,
           "wt": torch.nn.ConvTranspose2d(256, 64, 2).weight, "bt": torch.nn.ConvTranspose2d(256, 64, 2).bias,
           "wl": torch.nn.Linear(64, 512).weight, "bl": torch.nn.Linear(64, 512).bias}
    bounds = {"w1": 1 / math.sqrt(32 * 9), "b1": 1 / math.sqrt(32 * 9),
              # torch's fan-in of a ConvTranspose weight (C_in, C_out, k, k) is C_out·k²
              "wt": 1 / math.sqrt(64 * 4), "bt": 1 / math.sqrt(64 * 4),
              "wl": 1 / math.sqrt(64), "bl": 1 / math.sqrt(64)}
    for name, bound in bounds.items():
        ours, theirs = np.abs(new[name]), ref[name].detach().abs().numpy()
        assert ours.shape == arrays[name].shape
        assert ours.max() <= bound and theirs.max() <= bound, name
        assert ours.max() > 0.95 * bound and theirs.max() > 0.95 * bound, name
        assert ours.std() == pytest.approx(theirs.std(), rel=0.1), name
    # normalisation scale / shift as torch starts them; running statistics untouched
    assert np.all(new["g"] == 1) and np.all(new["beta"] == 0)
    assert "mu" not in new and "var" not in new
    # MatMul W·x: fan-in is W's last dimension
    assert np.abs(new["wm"]).max() <= 1 / math.sqrt(512)


def test_xavier_and_kaiming_bounds(layers: tuple[object, dict[str, np.ndarray]]) -> None:
    graph, arrays = layers
    xavier = init_parameters(graph, arrays, 1, "xavier")  # type: ignore[arg-type]
    bound = math.sqrt(6 / (32 * 9 + 256 * 9))
    assert np.abs(xavier["w1"]).max() <= bound and np.abs(xavier["w1"]).max() > 0.95 * bound
    assert np.all(xavier["b1"] == 0) and np.all(xavier["bl"] == 0)
    he = init_parameters(graph, arrays, 1, "kaiming-normal")  # type: ignore[arg-type]
    assert he["w1"].std() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.02)
    # the true fan-in of the transposed conv: C_in / groups · k²
    assert he["wt"].std() == pytest.approx(math.sqrt(2 / (256 * 4)), rel=0.05)
    assert np.all(he["b1"] == 0)


def test_kaiming_normal_is_the_reinit_draw(layers: tuple[object, dict[str, np.ndarray]]) -> None:
    """``--reinit kaiming-normal`` keeps its values: weights drawn in sorted-name order from
    ``default_rng([seed, 3])``, nothing drawn for biases."""
    graph, arrays = layers
    got = reinit_parameters(graph, arrays, 7)  # type: ignore[arg-type]
    rng = np.random.default_rng([7, 3])
    fans = {"w1": 32 * 9, "wl": 64, "wm": 512, "wt": 256 * 4}
    for name in sorted(fans):
        want = rng.normal(0.0, math.sqrt(2.0 / fans[name]), size=arrays[name].shape).astype(np.float32)
        assert np.array_equal(got[name], want), name


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_init_is_seeded(layers: tuple[object, dict[str, np.ndarray]], scheme: str) -> None:
    graph, arrays = layers
    a = init_parameters(graph, arrays, 3, scheme)  # type: ignore[arg-type]
    b = init_parameters(graph, arrays, 3, scheme)  # type: ignore[arg-type]
    c = init_parameters(graph, arrays, 4, scheme)  # type: ignore[arg-type]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["w1"], c["w1"])
    assert all(v.dtype == np.float32 for v in a.values())


def test_unknown_scheme() -> None:
    with pytest.raises(GraphpathError, match="init scheme"):
        init_parameters(None, {}, 0, "orthogonal")  # type: ignore[arg-type]


def test_condition_options() -> None:
    legacy = BackwardOptions(reinit="kaiming-normal")
    assert (legacy.condition, legacy.init, legacy.norm) == ("init", "kaiming-normal", "none")
    assert BackwardOptions(reinit="kaiming-normal", norm="batch").norm == "batch"
    plain = BackwardOptions()
    assert (plain.condition, plain.init, plain.norm) == ("weights", "torch-default", "auto")
    echo = BackwardOptions(condition="init", init="xavier").echo()
    assert (echo["condition"], echo["init"], echo["norm"]) == ("init", "xavier", "auto")
    assert plain.echo()["init"] is None  # no init scheme under the file's own weights
    for bad in ({"condition": "trained"}, {"init": "orthogonal"}, {"norm": "group"}, {"reinit": "xavier"}):
        with pytest.raises(GraphpathError):
            BackwardOptions(**bad)  # type: ignore[arg-type]
