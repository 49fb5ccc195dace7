"""Residual-family detectors (repvgg, scaled_residual, residual) on the smallest graphs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from graphpath import onnx_io
from graphpath.blocks import block_counts, nest
from graphpath.blocks.base import REGISTRY, BlockMatch, DetectionContext
from graphpath.blocks.csp import CSPDetector  # noqa: F401  (registers the csp family)
from graphpath.blocks.residual import ResidualDetector  # noqa: F401  (registers this family)
from graphpath.model.layers import build_layers
from tests.conftest import RESIDUAL

#: The kinds of the residual and CSP families, in the order their detectors depend on.
FAMILY = ("repvgg", "scaled_residual", "residual", "csp", "c2f", "c3k2", "c2fcib")


class Net:
    """A tiny ONNX-text graph builder: convs (optionally SiLU), adds, concats, splits.

    >>> n = Net(4); y = n.conv(n.x, 4, 3); text = n.text(y)
    """

    def __init__(self, c: int, hw: int = 8) -> None:
        self.hw = hw
        self.x = "x"
        self.channels: dict[str, int] = {"x": c}
        self.lines: list[str] = []
        self.inits: list[str] = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def conv(self, src: str, cout: int, k: int, *, group: int = 1, act: bool = True, stride: int = 1) -> str:
        cin = self.channels[src]
        w, y = self._name("w"), self._name("c")
        self.inits.append(f"float[{cout},{cin // group},{k},{k}] {w}")
        p = k // 2
        self.lines.append(
            f"{y} = Conv <kernel_shape = [{k}, {k}], pads = [{p}, {p}, {p}, {p}], group = {group}, "
            f"strides = [{stride}, {stride}]> ({src}, {w})"
        )
        if act:
            s, a = self._name("s"), self._name("a")
            self.lines += [f"{s} = Sigmoid ({y})", f"{a} = Mul ({y}, {s})"]
            y = a
        self.channels[y] = cout
        return y

    def add(self, a: str, b: str) -> str:
        y = self._name("add")
        self.lines.append(f"{y} = Add ({a}, {b})")
        self.channels[y] = self.channels[a]
        return y

    def op(self, line: str, out: str, c: int) -> str:
        """Any other node, written out by the caller."""
        self.lines.append(line)
        self.channels[out] = c
        return out

    def cat(self, *xs: str) -> str:
        y = self._name("cat")
        self.lines.append(f"{y} = Concat <axis = 1> ({', '.join(xs)})")
        self.channels[y] = sum(self.channels[x] for x in xs)
        return y

    def split2(self, src: str) -> tuple[str, str]:
        half = self.channels[src] // 2
        sp, a, b = self._name("sp"), self._name("h"), self._name("h")
        self.lines += [
            f"{sp} = Constant <value = int64[2] {{{half}, {half}}}> ()",
            f"{a}, {b} = Split <axis = 1> ({src}, {sp})",
        ]
        self.channels[a] = self.channels[b] = half
        return a, b

    def slices2(self, src: str) -> tuple[str, str]:
        """Two Slice ops (what ``chunk`` exports to with dynamic shapes)."""
        c = self.channels[src]
        names = [self._name(s) for s in ("z", "m", "e", "ax", "h", "h")]
        z, m, e, ax, a, b = names
        self.lines += [
            f"{z} = Constant <value = int64[1] {{0}}> ()",
            f"{m} = Constant <value = int64[1] {{{c // 2}}}> ()",
            f"{e} = Constant <value = int64[1] {{{c}}}> ()",
            f"{ax} = Constant <value = int64[1] {{1}}> ()",
            f"{a} = Slice ({src}, {z}, {m}, {ax})",
            f"{b} = Slice ({src}, {m}, {e}, {ax})",
        ]
        self.channels[a] = self.channels[b] = c // 2
        return a, b

    def text(self, *outs: str) -> str:
        c, hw = self.channels["x"], self.hw
        ins = f"float[1,{c},{hw},{hw}] x"
        outputs = ", ".join(f"float[1,{self.channels[o]},{hw},{hw}] {o}" for o in outs)
        body = "\n    ".join(self.lines)
        inits = ", ".join(self.inits)
        return f"net ({ins}) => ({outputs})\n<{inits}>\n{{\n    {body}\n}}\n"


def family_matches(path: Path) -> list[BlockMatch]:
    """Run only this family's detectors (in dependency order) and nest their matches."""
    graph = onnx_io.load(path)
    layers = build_layers(graph)
    ctx = DetectionContext(layers=layers, graph=graph)
    for kind in FAMILY:
        ctx.found[kind] = REGISTRY[kind].detect(ctx)
    return list(nest([m for k in FAMILY for m in ctx.found[k]], layers, list(FAMILY)))


def counts(write_model: Callable[..., Path], text: str) -> dict[str, int]:
    return block_counts(family_matches(write_model(text)))


# --------------------------------------------------------------------------- residual


def test_bottleneck_with_identity_shortcut_is_one_residual(write_model):
    assert counts(write_model, RESIDUAL) == {"residual": 1}
    match = family_matches(write_model(RESIDUAL))[0]
    assert dict(match.structure)["branch_weighted"] == 2
    assert len(match.units) == 3  # two convs and the add, the fork excluded


def test_chain_of_residuals_counts_each_add(write_model):
    n = Net(4)
    y = n.x
    for _ in range(3):
        y = n.add(y, n.conv(n.conv(y, 4, 1), 4, 3))
    assert counts(write_model, n.text(y)) == {"residual": 3}


def test_add_of_two_independent_branches_is_not_a_residual(write_model):
    n = Net(4)
    y = n.add(n.conv(n.conv(n.x, 4, 3), 4, 3), n.conv(n.x, 4, 3))
    assert counts(write_model, n.text(y)) == {}


def test_add_without_weighted_branch_is_not_a_residual(write_model):
    n = Net(4)
    pool = n.op("p = MaxPool <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x)", "p", 4)
    y = n.add(n.x, pool)
    assert counts(write_model, n.text(y)) == {}


def test_branch_that_leaks_to_another_consumer_is_not_a_residual(write_model):
    n = Net(4)
    inner = n.conv(n.x, 4, 1)
    y = n.add(n.x, n.conv(inner, 4, 3))
    assert counts(write_model, n.text(y, inner)) == {}


def test_shape_arithmetic_add_is_never_a_residual(write_model):
    text = """
    shp (float[1,4,8,8] x) => (float[1,4,8,8] y)
    <float[4,4,3,3] w>
    {
        c = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w)
        s = Shape (c)
        one = Constant <value = int64[4] {0, 0, 0, 0}> ()
        t = Add (s, one)
        y = Reshape (c, t)
    }
    """
    assert counts(write_model, text) == {}


# --------------------------------------------------------------------------- repvgg


def test_linear_3x3_and_1x1_summed_is_repvgg(write_model):
    n = Net(4)
    y = n.add(n.conv(n.x, 8, 3, act=False, stride=2), n.conv(n.x, 8, 1, act=False, stride=2))
    y = n.op(f"r = Relu ({y})", "r", 8)
    n.hw = 4
    assert counts(write_model, n.text(y)) == {"repvgg": 1}


def test_repvgg_identity_branch_belongs_to_the_block_not_to_a_residual(write_model):
    n = Net(4)
    pair = n.add(n.conv(n.x, 4, 3, act=False), n.conv(n.x, 4, 1, act=False))
    y = n.add(pair, n.x)
    found = family_matches(write_model(n.text(y)))
    assert block_counts(found) == {"repvgg": 1}
    assert dict(found[0].structure)["identity"] is True
    assert len(found[0].units) == 4


def test_depthwise_7x7_and_3x3_pair_is_repvgg(write_model):
    n = Net(8)
    y = n.add(n.conv(n.x, 8, 7, group=8, act=False), n.conv(n.x, 8, 3, group=8, act=False))
    found = family_matches(write_model(n.text(y)))
    assert block_counts(found) == {"repvgg": 1}
    assert dict(found[0].structure)["depthwise"] is True


def test_activated_or_equal_kernel_pairs_are_not_repvgg(write_model):
    n = Net(4)
    activated = n.add(n.conv(n.x, 4, 3), n.conv(n.x, 4, 1))
    equal = n.add(n.conv(n.x, 4, 3, act=False), n.conv(n.x, 4, 3, act=False))
    assert counts(write_model, n.text(activated, equal)) == {}


# --------------------------------------------------------------------------- scaled residual


def test_branch_times_learned_channel_scale_is_a_scaled_residual(write_model):
    n = Net(4)
    branch = n.conv(n.conv(n.x, 4, 1), 4, 3)
    n.inits.append("float[1,4,1,1] gamma")
    scaled = n.op(f"g = Mul (gamma, {branch})", "g", 4)
    y = n.add(n.x, scaled)
    assert counts(write_model, n.text(y)) == {"scaled_residual": 1}


def test_scalar_constant_scale_stays_a_plain_residual(write_model):
    n = Net(4)
    branch = n.conv(n.conv(n.x, 4, 1), 4, 3)
    n.lines.append("half = Constant <value = float {0.5}> ()")
    scaled = n.op(f"g = Mul ({branch}, half)", "g", 4)
    y = n.add(n.x, scaled)
    assert counts(write_model, n.text(y)) == {"residual": 1}


def test_projection_shortcut_is_a_scaled_residual(write_model):
    n = Net(4)
    branch = n.conv(n.conv(n.x, 8, 3), 8, 3, act=False)
    y = n.add(n.conv(n.x, 8, 1, act=False), branch)
    assert counts(write_model, n.text(y)) == {"scaled_residual": 1}


def test_pooled_projection_shortcut_is_a_scaled_residual(write_model):
    n = Net(4)
    branch = n.conv(n.conv(n.x, 8, 3, stride=2), 8, 3, act=False)
    pooled = n.op("p = AveragePool <kernel_shape = [2, 2], strides = [2, 2]> (x)", "p", 4)
    y = n.add(n.conv(pooled, 8, 1, act=False), branch)
    n.hw = 4
    found = family_matches(write_model(n.text(y)))
    assert block_counts(found) == {"scaled_residual": 1}
    assert dict(found[0].structure)["shortcut"] == "pool+conv1x1"
