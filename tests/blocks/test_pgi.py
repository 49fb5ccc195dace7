"""The PGI detector on the smallest auxiliary-branch graph, and near-misses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.blocks.test_heads import HeadNet, _detect, _features, _v8_head


def _cb_fuse(net: HeadNet, chunk: str, feat: str) -> str:
    """CBFuse: nearest resize of a CBLinear chunk to the feature's size, stacked and summed."""
    sc, ax = net.const("float", [1.0, 1.0, 0.5, 0.5]), net.const("int64", [0])
    small = net.op('Resize <mode = "nearest">', chunk, "", sc)
    stack = net.op("Concat <axis = 0>", net.op("Unsqueeze", small, ax), net.op("Unsqueeze", feat, ax))
    return net.op("ReduceSum <keepdims = 0>", stack, ax)


def _aux_head(net: HeadNet, feat: str) -> str:
    box, cls = net.decoupled_level(feat, 8, 64)
    return net.dfl_decode([box], [cls], 64)


def test_auxiliary_branch_with_second_stem_and_cbfuse_is_pgi(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    p3, p4 = _features(net)
    main = _v8_head(net, p3, p4)
    chunk, _ = net.split(net.conv(p3, 8, 16, act=False), 16)  # CBLinear
    aux_feat = net.conv(net.conv(net.conv("x", 8, 8, 3, 2), 8, 8, 3, 2), 8, 8)  # second stem
    aux = _aux_head(net, net.conv(_cb_fuse(net, chunk, aux_feat), 8, 8, 3))
    blocks, found = _detect(write_model, net, aux, main)
    assert found == {"decoupled_head": 3, "dfl": 2, "aux_head": 1, "pgi": 1}
    (pgi,) = [m for m in blocks if m.kind == "pgi"]
    assert [c.kind for c in pgi.children] == ["aux_head"]
    assert dict(pgi.structure)["stems"] == 1 and dict(pgi.structure)["fuses"] == 1


def test_auxiliary_head_on_a_plain_side_branch_is_not_pgi(write_model: Callable[..., Path]) -> None:
    """A second head on its own convs from a main feature: no second stem, no CBFuse."""
    net = HeadNet()
    p3, p4 = _features(net)
    main = _v8_head(net, p3, p4)
    aux = _aux_head(net, net.conv(net.cat(net.conv(p4, 8, 8, 3), net.conv(p4, 8, 8)), 16, 8))
    _, found = _detect(write_model, net, aux, main)
    assert found == {"decoupled_head": 3, "dfl": 2, "aux_head": 1}


def test_one_to_many_head_on_shared_features_is_not_pgi(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    p3, p4 = _features(net)
    _, found = _detect(write_model, net, _v8_head(net, p3, p4), _v8_head(net, p3, p4))
    assert "pgi" not in found
