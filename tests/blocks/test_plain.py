"""Passthrough and plain-stage detectors on the smallest graphs that show them, near-misses
(the Focus stem, a YOLOv5-style head reshape, short or forked chains, claimed units), and the
YOLOv1/YOLOv2 references (no other blocks nearby)."""

from __future__ import annotations

import json
from pathlib import Path

from graphpath import onnx_io
from graphpath.blocks import block_counts, detect_blocks
from graphpath.blocks.base import BlockMatch, DetectionContext
from graphpath.blocks.plain import PassthroughDetector, PlainStageDetector
from graphpath.model.layers import build_layers
from tests.blocks.test_elan import Net, counts

MINE = ("plain_stage", "passthrough")
MODELS = Path(__file__).resolve().parents[2] / "models"


def reorg(net: Net, x: str, c: int, hw: int = 32, rank: int = 6) -> str:
    """Darknet ``[reorg] stride=2`` as Reshape → 6-D Transpose → Reshape (or, with ``rank=5``,
    a YOLOv5-style head ``view(b, 2, c/2, h, w).permute(0, 1, 3, 4, 2)`` flattened)."""
    y, s1, s2 = net._name("rg"), net._name("rs"), net._name("rs")
    h = hw // 2
    first: tuple[int, ...]
    perm: tuple[int, ...]
    last: tuple[int, ...]
    if rank == 6:
        first, perm, last = (1, c, h, 2, h, 2), (0, 3, 5, 1, 2, 4), (1, 4 * c, h, h)
    else:
        first, perm, last = (1, 2, c // 2, hw, hw), (0, 1, 3, 4, 2), (1, 2 * hw * hw, c // 2)
    net.decls += [f"int64[{len(first)}] {s1} = {{{', '.join(map(str, first))}}}",
                  f"int64[{len(last)}] {s2} = {{{', '.join(map(str, last))}}}"]
    net.lines += [f"{y}a = Reshape ({x}, {s1})",
                  f"{y}b = Transpose <perm = [{', '.join(map(str, perm))}]> ({y}a)",
                  f"{y} = Reshape ({y}b, {s2})"]
    return y


def s2d(net: Net, x: str) -> str:
    y = net._name("sd")
    net.lines.append(f"{y} = SpaceToDepth <blocksize = 2> ({x})")
    return y


def test_darknet_reorg_concat_is_a_passthrough(write_model):
    net = Net()
    fine = net.conv("x", 8, 8, 3)
    coarse = net.conv(fine, 8, 16, 3, s=2)
    y = net.conv(net.cat(reorg(net, net.conv(fine, 8, 4), 4), coarse), 32, 8, 3)
    graph = onnx_io.load(write_model(net.text(y)))
    ctx = DetectionContext(build_layers(graph), graph)
    (m,) = PassthroughDetector().detect(ctx)
    assert sorted(ctx.unit(u).op_type for u in m.units) == ["Concat", "Conv"]  # reduce conv + concat
    assert dict(m.structure)["stride"] == 2


def test_space_to_depth_op_is_a_passthrough(write_model):
    net = Net()
    fine = net.conv("x", 8, 8, 3)
    coarse = net.conv(fine, 8, 16, 3, s=2)
    y = net.conv(net.cat(s2d(net, net.conv(fine, 8, 4)), coarse), 32, 8, 3)
    assert counts(write_model, net, y, ("passthrough",)) == {"passthrough": 1}


def test_focus_stem_and_head_reshape_are_not_passthroughs(write_model):
    net = Net()  # YOLOv5/YOLOX Focus: four strided slices of the image → Concat
    parts = []
    for h0, w0 in ((0, 0), (1, 0), (0, 1), (1, 1)):
        y, st, en, ax, sp = (net._name(n) for n in ("f", "st", "en", "ax", "sp"))
        net.decls += [f"int64[2] {st} = {{{h0}, {w0}}}", f"int64[2] {en} = {{32, 32}}",
                      f"int64[2] {ax} = {{2, 3}}", f"int64[2] {sp} = {{2, 2}}"]
        net.lines.append(f"{y} = Slice (x, {st}, {en}, {ax}, {sp})")
        parts.append(y)
    y = net.conv(net.cat(*parts), 32, 8, 3)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # SpaceToDepth of the image itself is a stem too
    y = net.conv(net.cat(s2d(net, "x"), net.conv("x", 8, 8, 3, s=2)), 40, 8)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # YOLOv5-style head: 5-D view/permute, flattened to 3-D, levels concatenated
    a, b = net.conv("x", 8, 8, act=False), net.conv("x", 8, 8, act=False)
    y = net.cat(reorg(net, a, 8, rank=5), reorg(net, b, 8, rank=5))
    assert counts(write_model, net, y, MINE) == {}


def test_plain_chain_with_maxpools(write_model):
    net = Net()
    y = net.conv(net.conv(net.pool(net.conv("x", 8, 8, 3), 2, 2), 8, 8, 3), 8, 8, 1)
    graph = onnx_io.load(write_model(net.text(y)))
    ctx = DetectionContext(build_layers(graph), graph)
    (m,) = PlainStageDetector().detect(ctx)
    assert dict(m.structure) == {"weighted": 3, "units": 4}


def test_short_or_forked_chains_are_not_stages(write_model):
    net = Net()
    y = net.conv(net.conv("x", 8, 8, 3), 8, 8)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # three convs, a fork, two convs on each branch, concat: one stage (the first 3)
    stem = net.conv(net.conv(net.conv("x", 8, 8, 3), 8, 8), 8, 8, 3)
    a = net.conv(net.conv(stem, 8, 8), 8, 8, 3)
    b = net.conv(net.conv(stem, 8, 8), 8, 8, 3)
    y = net.cat(a, b)
    found = [m for m in detect_blocks(*_views(write_model, net, y)) if m.kind == "plain_stage"]
    assert len(found) == 1 and dict(found[0].structure)["weighted"] == 3
    net = Net()  # a merge starts a run: add of two convs, then three convs
    y = net.conv(net.conv(net.conv(net.add(net.conv("x", 8, 8), net.conv("x", 8, 8, 3)), 8, 8), 8, 8), 8, 8)
    assert counts(write_model, net, y, MINE) == {"plain_stage": 1}


def _views(write_model, net: Net, y: str):
    graph = onnx_io.load(write_model(net.text(y)))
    return build_layers(graph), graph


def test_units_claimed_by_other_blocks_break_a_stage(write_model):
    net = Net()
    c1 = net.conv("x", 8, 8, 3)
    y = net.conv(net.conv(net.conv(c1, 8, 8), 8, 8, 3), 8, 8)
    layers, graph = _views(write_model, net, y)
    ctx = DetectionContext(layers, graph)
    assert len(PlainStageDetector().detect(ctx)) == 1
    second = [u for u in layers.topo_order() if layers.unit(u).weighted][1]
    ctx.found["residual"] = [BlockMatch(kind="residual", units=frozenset({second}))]
    assert PlainStageDetector().detect(ctx) == []  # runs of 1 and 2 are left


def test_yolov1_and_yolov2_references():
    manifest = {m["name"]: m for m in json.loads((MODELS / "manifest.json").read_text())["models"]}
    for name in ("yolov1", "yolov2"):
        graph = onnx_io.load(MODELS / manifest[name]["file"])
        found = block_counts(detect_blocks(build_layers(graph), graph))
        truth = manifest[name]["block_counts"]
        for kind in MINE:
            assert found.get(kind, 0) == truth.get(kind, 0), (name, kind)
