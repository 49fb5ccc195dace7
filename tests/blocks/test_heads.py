"""Head detectors (coupled, decoupled, DFL, auxiliary, one-to-one, NMS, FC) and
:func:`head_tensors` on the smallest graphs that show them, and near-misses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from graphpath import onnx_io
from graphpath.blocks import BLOCK_IDS, BlockMatch, block_counts, detect_blocks
from graphpath.blocks.heads import head_tensors
from graphpath.model.layers import build_layers
from tests.blocks.test_neck import NeckNet

MINE = ("fc_head", "coupled_head", "decoupled_head", "dfl", "aux_head", "one2one_head", "nms", "pgi")
NC = 3


class HeadNet(NeckNet):
    """:class:`NeckNet` with the decode ops of detection heads and several outputs."""

    def const(self, dtype: str, values: list[int] | list[float]) -> str:
        name = self._name("k")
        self.decls.append(f"{dtype}[{len(values)}] {name} = {{{', '.join(map(str, values))}}}")
        return name

    def op(self, text: str, *inputs: str) -> str:
        y = self._name("t")
        self.lines.append(f"{y} = {text} ({', '.join(inputs)})")
        return y

    def flat(self, x: str, c: int, n: int) -> str:
        return self.op("Reshape", x, self.const("int64", [1, c, n]))

    def decoupled_level(self, feat: str, c: int, hw: int, head: str = "") -> tuple[str, str]:
        """A v8 level: box branch to 4×16 bins and class branch to NC, flattened."""
        box = self.conv(self.conv(self.conv(feat, c, 8, 3), 8, 8, 3), 8, 64, act=False)
        cls = self.conv(self.conv(self.conv(feat, c, 8, 3), 8, 8, 3), 8, NC, act=False)
        return self.flat(box, 64, hw), self.flat(cls, NC, hw)

    def dfl_decode(self, boxes: list[str], classes: list[str], n: int) -> str:
        """Concat over levels → DFL (softmax over 16 bins, fixed 1×1 conv) → cat with sigmoids."""
        box = self.op("Concat <axis = 2>", *boxes)
        bins = self.op("Transpose <perm = [0, 2, 1, 3]>", self.op("Reshape", box, self.const("int64", [1, 4, 16, n])))
        w = self._name("dflw")
        self.decls.append(f"float[1,16,1,1] {w} = {{{', '.join(str(float(i)) for i in range(16))}}}")
        dist = self.op("Reshape", self.op("Conv", self.op("Softmax <axis = 1>", bins), w),
                       self.const("int64", [1, 4, n]))
        cls = self.op("Sigmoid", self.op("Concat <axis = 2>", *classes))
        return self.op("Concat <axis = 1>", dist, cls)

    def text_outputs(self, *outs: str) -> str:
        body = "\n    ".join([*self.lines, *(f"y{i} = Identity ({o})" for i, o in enumerate(outs))])
        outputs = ", ".join(f"float y{i}" for i in range(len(outs)))
        return f"net (float[1,8,32,32] x) => ({outputs})\n<{', '.join(self.decls)}>\n{{\n    {body}\n}}\n"


def _detect(write_model: Callable[..., Path], net: HeadNet, *outs: str) -> tuple[tuple[BlockMatch, ...], dict[str, int]]:
    graph = onnx_io.load(write_model(net.text_outputs(*outs)))
    blocks = detect_blocks(build_layers(graph), graph)
    found = block_counts(blocks)
    return blocks, {k: found[k] for k in BLOCK_IDS if k in MINE and k in found}


def _features(net: HeadNet) -> tuple[str, str]:
    """Two levels (16×16, 8×8), each the output of a merge, as neck features are."""
    stem = net.conv("x", 8, 8, 3, 2)
    p3 = net.conv(net.cat(stem, net.conv(stem, 8, 8, 3)), 16, 8)
    p4 = net.conv(net.cat(net.conv(p3, 8, 8, 3, 2), net.pool(p3, 2, 2)), 16, 8)
    return p3, p4


def _v8_head(net: HeadNet, p3: str, p4: str) -> str:
    l3, l4 = net.decoupled_level(p3, 8, 256), net.decoupled_level(p4, 8, 64)
    return net.dfl_decode([l3[0], l4[0]], [l3[1], l4[1]], 320)


def test_decoupled_levels_and_one_dfl(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    y = _v8_head(net, *_features(net))
    _, found = _detect(write_model, net, y)
    assert found == {"decoupled_head": 2, "dfl": 1}


def test_head_tensors_are_the_raw_convs_before_the_decode(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    y = _v8_head(net, *_features(net))
    graph = onnx_io.load(write_model(net.text_outputs(y)))
    tensors = head_tensors(build_layers(graph), graph)
    assert list(tensors) == ["y0"]
    convs = {graph.op(graph.producer_of[t]).op_type for t in tensors["y0"]}
    assert len(tensors["y0"]) == 4 and convs == {"Conv"}  # box and class convs of 2 levels, not the DFL


def test_coupled_anchor_heads_one_per_level(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    p3, p4 = _features(net)
    o3 = net.conv(net.conv(p3, 8, 8, 3), 8, 3 * (5 + NC), act=False)
    o4 = net.conv(net.conv(p4, 8, 8, 3), 8, 3 * (5 + NC), act=False)
    _, found = _detect(write_model, net, o3, o4)
    assert found == {"coupled_head": 2}


def test_an_activated_output_conv_is_no_head(write_model: Callable[..., Path]) -> None:
    """A segmentation prototype: a SiLU conv feeding an output is a feature map."""
    net = HeadNet()
    y = net.conv(net.conv("x", 8, 8, 3), 8, 8, 1)
    _, found = _detect(write_model, net, y)
    assert found == {}


def test_two_heads_on_the_same_features_are_one_to_many_and_one_to_one(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    p3, p4 = _features(net)
    many, one = _v8_head(net, p3, p4), _v8_head(net, p3, p4)
    blocks, found = _detect(write_model, net, many, one)
    assert found == {"decoupled_head": 4, "dfl": 2, "aux_head": 1, "one2one_head": 1}
    aux = next(m for m in blocks if m.kind == "aux_head")
    assert sorted(c.kind for c in aux.children) == ["decoupled_head", "decoupled_head", "dfl"]


def test_end_to_end_topk_selection_is_one_to_one_without_nms(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    y = _v8_head(net, *_features(net))
    scores = net.op("Slice", y, net.const("int64", [4]), net.const("int64", [4 + NC]), net.const("int64", [1]))
    best = net.op("ReduceMax <keepdims = 0>", scores, net.const("int64", [1]))
    net.lines.append(f"vals, idx = TopK <axis = -1> ({best}, {net.const('int64', [10])})")
    _, found = _detect(write_model, net, "vals")
    assert found == {"decoupled_head": 2, "dfl": 1, "one2one_head": 1}


def test_embedded_nms(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    y = _v8_head(net, *_features(net))
    boxes = net.op("Transpose <perm = [0, 2, 1]>", net.op(
        "Slice", y, net.const("int64", [0]), net.const("int64", [4]), net.const("int64", [1])))
    scores = net.op("Slice", y, net.const("int64", [4]), net.const("int64", [4 + NC]), net.const("int64", [1]))
    net.lines.append(f"sel = NonMaxSuppression ({boxes}, {scores}, {net.const('int64', [100])})")
    flat = net.op("Reshape", boxes, net.const("int64", [-1, 4]))
    picked = net.op("Gather <axis = 0>", flat, net.op("Gather <axis = 1>", "sel", net.const("int64", [2])))
    _, found = _detect(write_model, net, picked)
    assert found == {"decoupled_head": 2, "dfl": 1, "nms": 1}


def test_levels_sharing_an_output_are_one_head(write_model: Callable[..., Path]) -> None:
    """YOLOv7's training export: the decoded concat of every level, plus each level's raw map."""
    from graphpath.blocks.base import DetectionContext
    from graphpath.blocks.heads import analyze_heads

    net = HeadNet()
    p3, p4 = _features(net)
    o3 = net.conv(net.conv(p3, 8, 8, 3), 8, 3 * (5 + NC), act=False)
    o4 = net.conv(net.conv(p4, 8, 8, 3), 8, 3 * (5 + NC), act=False)
    decoded = net.op("Concat <axis = 2>", net.flat(o3, 3 * (5 + NC), 256), net.flat(o4, 3 * (5 + NC), 64))
    graph = onnx_io.load(write_model(net.text_outputs(decoded, o3, o4)))
    analysis = analyze_heads(DetectionContext(layers=build_layers(graph), graph=graph))
    assert len(analysis.heads) == 1 and len(analysis.heads[0].levels) == 2


def test_lead_and_auxiliary_heads_exported_as_raw_maps(write_model: Callable[..., Path]) -> None:
    """YOLOv7-W6's training graph: every level a raw output, the four lead maps first, then
    the auxiliary ones; the auxiliary head reads shallower features and shares only the
    largest level's feature with the lead head."""
    net = HeadNet()
    p3, p4 = _features(net)
    deep4 = net.conv(net.cat(net.conv(p3, 8, 8, 3, 2), p4), 16, 8)  # a PAN level below p4
    lead = [net.conv(net.conv(f, 8, 8, 3), 8, 3 * (5 + NC), act=False) for f in (p3, deep4)]
    aux = [net.conv(net.conv(f, 8, 8, 3), 8, 3 * (5 + NC), act=False) for f in (p3, p4)]
    blocks, found = _detect(write_model, net, *lead, *aux)
    assert found == {"coupled_head": 4, "aux_head": 1}
    assert dict(next(m for m in blocks if m.kind == "aux_head").structure)["outputs"] == ["y2", "y3"]


def test_branches_of_one_level_exported_apart_stay_one_level(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    p3, _ = _features(net)
    box, cls = net.decoupled_level(p3, 8, 256)
    _, found = _detect(write_model, net, box, cls)
    assert found == {"decoupled_head": 1}


def _et_level(net: HeadNet, feat: str, c: int, hw: int) -> tuple[str, str]:
    """A PP-YOLOE ET-head level (ppdet/modeling/heads/ppyoloe_head.py): ``avg = mean(feat)``;
    class ``pred_cls(ESEAttn(feat, avg) + feat)``, box ``pred_reg(ESEAttn(feat, avg))``, where
    ``ESEAttn = conv 1×1(feat · sigmoid(fc(avg)))``; the prediction convs are 3×3."""
    avg = net.op("GlobalAveragePool", feat)

    def ese(feat: str) -> str:
        gate = net.op("Sigmoid", net.conv(avg, c, c, 1, act=False))
        return net.conv(net.op("Mul", feat, gate), c, c, 1)

    cls = net.conv(net.add(ese(feat), feat), c, NC, 3, act=False)
    box = net.conv(ese(feat), c, 68, 3, act=False)
    return net.flat(box, 68, hw), net.op("Sigmoid", net.flat(cls, NC, hw))


def test_et_head_branches_behind_gates_and_a_residual_are_one_level(write_model: Callable[..., Path]) -> None:
    """PP-YOLOE: the class and box branches of a level meet only at the level's feature, one
    behind a channel-attention gate plus a residual add, the other behind a gate. One decoupled
    level per scale, one head: exported as two outputs (scores, box bins), not two heads (the
    eval graph of PPYOLOEHead has no auxiliary head)."""
    net = HeadNet()
    p3, p4 = _features(net)
    l3, l4 = _et_level(net, p3, 8, 256), _et_level(net, p4, 8, 64)
    cls = net.op("Concat <axis = 2>", l3[1], l4[1])
    box = net.op("Concat <axis = 2>", l3[0], l4[0])
    _, found = _detect(write_model, net, cls, box)
    assert found == {"decoupled_head": 2}


def test_fc_head(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    f = net.op("Flatten", net.conv(net.conv("x", 8, 2, 3, 4), 2, 2, 3, 2))  # 2×4×4 = 32
    w1, w2 = net._name("fw"), net._name("fw")
    net.decls += [f"float[32,16] {w1}", f"float[16,10] {w2}"]
    y = net.op("Gemm", net.op("Relu", net.op("Gemm", f, w1)), w2)
    _, found = _detect(write_model, net, y)
    assert found == {"fc_head": 1}


def test_fc_head_after_a_locally_connected_layer(write_model: Callable[..., Path]) -> None:
    """Darknet's yolov1.cfg: a ``local`` layer (one weight matrix per position, an Einsum)
    into the fully connected output."""
    net = HeadNet()
    f = net.op("Reshape", net.conv("x", 8, 2, 3, 4), net.const("int64", [1, 2, 16]))  # 16 positions
    wl, w2 = net._name("lw"), net._name("fw")
    net.decls += [f"float[16,4,2] {wl}", f"float[64,10] {w2}"]
    local = net.op('Einsum <equation = "bcp,pdc->bdp">', f, wl)
    y = net.op("Gemm", net.op("Flatten", net.op("LeakyRelu", local)), w2)
    _, found = _detect(write_model, net, y)
    assert found == {"fc_head": 1}


def test_one_fully_connected_layer_is_no_fc_head(write_model: Callable[..., Path]) -> None:
    net = HeadNet()
    f = net.op("Flatten", net.conv("x", 8, 2, 3, 4))
    w1 = net._name("fw")
    net.decls.append(f"float[128,10] {w1}")
    _, found = _detect(write_model, net, net.op("Gemm", f, w1))
    assert found == {}


def test_levels_on_a_plain_strided_pyramid_stay_apart(write_model: Callable[..., Path]) -> None:
    """The next level is a stride-2 conv of this level's feature (no merge between them)."""
    net = HeadNet()
    p3 = net.conv("x", 8, 8, 3, 2)
    y = _v8_head(net, p3, net.conv(p3, 8, 8, 3, 2))
    _, found = _detect(write_model, net, y)
    assert found == {"decoupled_head": 2, "dfl": 1}
