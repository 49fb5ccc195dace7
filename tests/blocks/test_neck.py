"""FPN and PAN merge detectors on the smallest graphs that show them, and near-misses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.blocks.test_elan import Net, counts

MINE = ("fpn", "pan")


class NeckNet(Net):
    """:class:`Net` with upsampling and a ConvTranspose."""

    def up(self, x: str) -> str:
        y, sc = self._name("up"), self._name("sc")
        self.decls.append(f"float[4] {sc} = {{1.0, 1.0, 2.0, 2.0}}")
        self.lines.append(f'{y} = Resize <mode = "nearest"> ({x}, , {sc})')
        return y

    def deconv(self, x: str, c: int) -> str:
        y, w = self._name("dc"), self._name("w")
        self.decls.append(f"float[{c},{c},2,2] {w}")
        self.lines.append(f"{y} = ConvTranspose <kernel_shape = [2, 2], strides = [2, 2]> ({x}, {w})")
        return y


def _pyramid(net: NeckNet) -> tuple[str, str, str]:
    """x → fine (stride 2) → coarse (stride 4): the backbone taps."""
    fine = net.conv("x", 8, 8, 3, 2)
    coarse = net.conv(fine, 8, 8, 3, 2)
    return fine, coarse, net.conv(coarse, 8, 8)


def test_top_down_and_bottom_up_merges(write_model: Callable[..., Path]) -> None:
    net = NeckNet()
    fine, coarse, top = _pyramid(net)
    p3 = net.conv(net.cat(net.up(top), fine), 16, 8)
    y = net.cat(net.conv(p3, 8, 8, 3, 2), top)
    assert counts(write_model, net, y, MINE) == {"fpn": 1, "pan": 1}


def test_convtranspose_upsample_with_three_inputs_is_one_fpn(write_model: Callable[..., Path]) -> None:
    net = NeckNet()
    finer = net.conv("x", 8, 8, 3, 1)
    fine = net.conv(finer, 8, 8, 3, 2)
    coarse = net.conv(fine, 8, 8, 3, 2)
    down = net.conv(net.conv(finer, 8, 8), 8, 8, 3, 2)
    y = net.cat(net.deconv(coarse, 8), net.conv(fine, 8, 8), down)  # v6 BiFusion
    assert counts(write_model, net, y, MINE) == {"fpn": 1}


def test_adown_fused_into_the_pan_concat_is_one_pan(write_model: Callable[..., Path]) -> None:
    net = NeckNet()
    fine, coarse, top = _pyramid(net)
    a, b = net.split(net.pool(fine, 2, 1, "AveragePool"), 8)
    y = net.cat(net.conv(a, 4, 4, 3, 2), net.conv(net.pool(b, 3, 2), 4, 4), top)
    assert counts(write_model, net, y, MINE) == {"pan": 1}


def test_mp_block_concat_is_not_a_pan(write_model: Callable[..., Path]) -> None:
    net = NeckNet()
    x = net.conv("x", 8, 8, 3)
    y = net.cat(net.conv(net.conv(x, 8, 4), 4, 4, 3, 2), net.conv(net.pool(x, 2, 2), 8, 4))
    assert counts(write_model, net, y, MINE) == {}


def test_concat_with_a_feature_computed_from_the_upsample_is_not_an_fpn(write_model: Callable[..., Path]) -> None:
    net = NeckNet()
    up = net.up(net.conv("x", 8, 8, 3, 2))
    y = net.cat(up, net.conv(up, 8, 8, 3))
    assert counts(write_model, net, y, MINE) == {}


def test_resize_and_sum_fusion_is_not_an_fpn(write_model: Callable[..., Path]) -> None:
    """CBFuse: stack of a resized chunk and a feature (Concat along axis 0) summed."""
    net = NeckNet()
    fine = net.conv("x", 8, 8, 3)
    up = net.up(net.conv(fine, 8, 8, 3, 2))
    ax = net._name("ax")
    net.decls.append(f"int64[1] {ax} = {{0}}")
    net.lines += [
        f"u1 = Unsqueeze ({up}, {ax})", f"u2 = Unsqueeze ({fine}, {ax})",
        "st = Concat <axis = 0> (u1, u2)", f"fused = ReduceSum <keepdims = 0> (st, {ax})",
    ]
    assert counts(write_model, net, "fused", MINE) == {}


def test_concat_of_two_unrelated_features_is_neither(write_model: Callable[..., Path]) -> None:
    net = NeckNet()
    y = net.cat(net.conv("x", 8, 8, 3), net.conv("x", 8, 8, 1))
    assert counts(write_model, net, y, MINE) == {}
