"""ELAN, E-ELAN and GELAN detectors on the smallest graphs that show them, and near-misses.

:class:`Net` writes ONNX text for small conv graphs (SiLU-activated convs, pools, Concat,
Split/Slice); :mod:`tests.blocks.test_pooling` uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from graphpath import onnx_io
from graphpath.blocks import BLOCK_IDS, BlockMatch, block_counts, detect_blocks
from graphpath.model.layers import build_layers


class Net:
    """A tiny conv graph written as ONNX text; every method returns its output tensor."""

    def __init__(self, channels: int = 8) -> None:
        self.c = channels
        self.lines: list[str] = []
        self.decls: list[str] = []
        self.n = 0

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def conv(self, x: str, cin: int, cout: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True) -> str:
        y, w = self._name("c"), self._name("w")
        self.decls.append(f"float[{cout},{cin // g},{k},{k}] {w}")
        p = k // 2
        self.lines.append(
            f"{y} = Conv <kernel_shape = [{k}, {k}], strides = [{s}, {s}], pads = [{p}, {p}, {p}, {p}], "
            f"group = {g}> ({x}, {w})"
        )
        if not act:
            return y
        self.lines.append(f"{y}s = Sigmoid ({y})")
        self.lines.append(f"{y}a = Mul ({y}, {y}s)")
        return f"{y}a"

    def pool(self, x: str, k: int, s: int = 1, op: str = "MaxPool") -> str:
        y = self._name("p")
        p = k // 2 if s == 1 else (k - 1) // 2
        self.lines.append(f"{y} = {op} <kernel_shape = [{k}, {k}], strides = [{s}, {s}], pads = [{p}, {p}, {p}, {p}]> ({x})")
        return y

    def cat(self, *xs: str) -> str:
        y = self._name("cat")
        self.lines.append(f"{y} = Concat <axis = 1> ({', '.join(xs)})")
        return y

    def add(self, a: str, b: str) -> str:
        y = self._name("add")
        self.lines.append(f"{y} = Add ({a}, {b})")
        return y

    def split(self, x: str, c: int) -> tuple[str, str]:
        """``.chunk(2, 1)`` as one Split with two outputs (onnxsim, dynamo)."""
        a, b, sp = self._name("sa"), self._name("sb"), self._name("sp")
        self.decls.append(f"int64[2] {sp} = {{{c // 2}, {c // 2}}}")
        self.lines.append(f"{a}, {b} = Split <axis = 1> ({x}, {sp})")
        return a, b

    def slices(self, x: str, c: int) -> tuple[str, str]:
        """``.chunk(2, 1)`` as two Slices (TorchScript with constant bounds)."""
        outs = []
        for lo, hi in ((0, c // 2), (c // 2, c)):
            y, st, en, ax = self._name("sl"), self._name("st"), self._name("en"), self._name("ax")
            self.decls += [f"int64[1] {st} = {{{lo}}}", f"int64[1] {en} = {{{hi}}}", f"int64[1] {ax} = {{1}}"]
            self.lines.append(f"{y} = Slice ({x}, {st}, {en}, {ax})")
            outs.append(y)
        return outs[0], outs[1]

    def text(self, out: str, cin: int | None = None) -> str:
        cin = cin or self.c
        body = "\n    ".join([*self.lines, f"y = Identity ({out})"])
        return (
            f"net (float[1,{cin},32,32] x) => (float y)\n<{', '.join(self.decls)}>\n{{\n    {body}\n}}\n"
        )


def detect(write_model: Callable[..., Path], net: Net, out: str) -> tuple[BlockMatch, ...]:
    graph = onnx_io.load(write_model(net.text(out)))
    return detect_blocks(build_layers(graph), graph)


def counts(write_model: Callable[..., Path], net: Net, out: str, kinds: tuple[str, ...]) -> dict[str, int]:
    found = block_counts(detect(write_model, net, out))
    return {k: found[k] for k in BLOCK_IDS if k in kinds and k in found}


MINE = ("elan", "e_elan", "gelan")


def elan(net: Net, x: str, c: int, wide: bool = False, chain: int = 4) -> str:
    bypass = net.conv(x, c, c // 2)
    taps = [net.conv(x, c, c // 2)]
    for _ in range(chain):
        taps.append(net.conv(taps[-1], c // 2, c // 2, 3))
    picked = list(reversed(taps)) if wide or chain < 4 else [taps[-1], taps[-3], taps[0]]
    return net.conv(net.cat(*picked, bypass), (len(picked) + 1) * (c // 2), c)


def test_backbone_elan_four_taps(write_model):
    net = Net()
    y = elan(net, "x", 8)
    (m,) = [m for m in detect(write_model, net, y) if m.kind == "elan"]
    assert dict(m.structure)["taps"] == 4 and dict(m.structure)["chain"] == 4
    assert len(m.units) == 8  # 2 × 1×1, 4 × 3×3, Concat, transition 1×1


def test_elan_w_six_taps_and_tiny_elan(write_model):
    net = Net()
    y = elan(net, elan(net, "x", 8, wide=True), 8, chain=2)
    assert counts(write_model, net, y, MINE) == {"elan": 2}


def test_e_elan_is_two_elans_on_one_input_summed(write_model):
    net = Net()
    stem = net.conv("x", 8, 8, 3)
    y = net.add(elan(net, stem, 8), elan(net, stem, 8))
    blocks = detect(write_model, net, y)
    assert counts(write_model, net, y, MINE) == {"elan": 2, "e_elan": 1}
    (top,) = [m for m in blocks if m.kind == "e_elan"]
    assert [c.kind for c in top.children] == ["elan", "elan"]


def test_add_of_elans_on_different_inputs_is_not_e_elan(write_model):
    net = Net()
    a = net.conv("x", 8, 8, 3)
    b = net.conv("x", 8, 8, 3)
    y = net.add(elan(net, a, 8), elan(net, b, 8))
    assert counts(write_model, net, y, MINE) == {"elan": 2}


def test_concat_of_unrelated_convs_is_not_elan(write_model):
    net = Net()
    branches = [net.conv(net.conv("x", 8, 4), 4, 4, 3) for _ in range(4)]
    y = net.conv(net.cat(*branches), 16, 8)
    assert counts(write_model, net, y, MINE) == {}


def test_chain_without_bypass_is_not_elan(write_model):
    # VoVNet-style one-shot aggregation: the fork itself is a tap, no bypass 1×1.
    net = Net()
    stem = net.conv("x", 8, 8)
    taps = [net.conv(stem, 8, 4)]
    for _ in range(3):
        taps.append(net.conv(taps[-1], 4, 4, 3))
    y = net.conv(net.cat(stem, *taps), 24, 8)
    assert counts(write_model, net, y, MINE) == {}


def csp(net: Net, x: str, c: int) -> str:
    a = net.conv(x, c, c // 2)
    inner = net.add(a, net.conv(net.conv(a, c // 2, c // 2, 3), c // 2, c // 2, 3))
    return net.conv(net.cat(inner, net.conv(x, c, c // 2)), c, c)


def gelan(net: Net, x: str, c: int, split: str = "slices", unit: str = "csp") -> str:
    first = net.conv(x, c, c)
    a, b = net.split(first, c) if split == "split" else net.slices(first, c)
    half = c // 2
    u1 = net.conv(csp(net, b, half), half, half, 3) if unit == "csp" else net.conv(b, half, half, 3)
    u2 = net.conv(csp(net, u1, half), half, half, 3) if unit == "csp" else net.conv(u1, half, half, 3)
    return net.conv(net.cat(a, b, u1, u2), 2 * c, c)


def test_gelan_with_slices_and_with_split(write_model):
    for split in ("slices", "split"):
        net = Net()
        y = gelan(net, "x", 8, split=split)
        blocks = detect(write_model, net, y)
        (m,) = [m for m in blocks if m.kind == "gelan"]
        assert dict(m.structure)["units"] == ["csp", "csp"], split


def test_elan1_units_of_one_conv_are_gelan(write_model):
    net = Net()
    y = gelan(net, "x", 8, unit="conv")
    assert counts(write_model, net, y, MINE) == {"gelan": 1}


def test_c2f_with_two_bottlenecks_is_not_gelan(write_model):
    net = Net()
    first = net.conv("x", 8, 8)
    a, b = net.split(first, 8)
    m1 = net.conv(net.conv(b, 4, 4, 3), 4, 4, 3)
    m2 = net.conv(net.conv(m1, 4, 4, 3), 4, 4, 3)
    y = net.conv(net.cat(a, b, m1, m2), 16, 8)
    assert counts(write_model, net, y, MINE) == {}


def test_c3k2_units_ending_in_csp_1x1_are_not_gelan(write_model):
    net = Net()
    first = net.conv("x", 8, 8)
    a, b = net.split(first, 8)
    m1 = csp(net, b, 4)
    m2 = csp(net, m1, 4)
    y = net.conv(net.cat(a, b, m1, m2), 16, 8)
    assert counts(write_model, net, y, MINE) == {}
