"""Reference builder for YOLOv6n (release 3.0), in deploy and in training form.

Follows ``configs/yolov6n.py`` of meituan/YOLOv6 v3.0 for depth and wiring: EfficientRep
backbone (``num_repeats`` 1, 6, 12, 18, 6 at depth 0.33 → RepBlock n = 2, 4, 6, 2) with
``fuse_P2`` and ``cspsppf`` (SimCSPSPPF), RepBiFPANNeck (two BiFusion top-down merges, two
stride-2 bottom-up merges, RepBlock n = 4 each) and the efficient decoupled head (``use_dfl``
off, ``reg_max`` 0: per level a 1×1 stem, one 3×3 conv + 1×1 pred on each of the cls and reg
branches). The width argument is the config's ``width_multiple`` on the base channels
(backbone 64 … 1024, neck 256, 128, 128, 256, 256, 512): the official n scale is 0.25.

The two forms differ only in the RepVGG units (``training_mode='repvgg'``):

* training form: ``rbr_dense`` (3×3 conv-BN) ‖ ``rbr_1x1`` (1×1 conv-BN) ‖ ``rbr_identity``
  (a bare BatchNorm, only when in == out and stride 1) → add → ReLU; each is a ``repvgg``
  block. The identity BN cannot be folded into a conv and exports as BatchNormalization.
* deploy form: each unit re-parameterised to one 3×3 conv with bias + ReLU (``rbr_reparam``),
  as ``deploy.py`` / ``export_onnx.py`` leave it. The backbone stages and neck RepBlocks then
  become chains of plain 3×3 convs, recorded as ``plain_stage`` blocks.

Activations as in v3.0: ReLU in the backbone and neck (RepVGG, ConvBNReLU, SimCSPSPPF), SiLU
in the head (``ConvBNSiLU``). The output follows the official ONNX export without
``--end2end``: one tensor ``outputs`` of shape ``(1, N, 85)`` = boxes (xywh, decoded from
ltrb distances with anchor points and strides), a constant objectness of 1, class scores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from graphpath.zoo.common import Block, Conv, Marker, ZooSpec, register, scaled
from graphpath.zoo.v5_yolox import Merge

NUM_CLASSES = 80
STRIDES = (8, 16, 32)
BACKBONE_CHANNELS = (64, 128, 256, 512, 1024)
NECK_CHANNELS = (256, 128, 128, 256, 256, 512)
#: num_repeats of yolov6n.py after depth 0.33 (``round(n·0.33)`` when n > 1): backbone, neck.
BACKBONE_REPEATS = (1, 2, 4, 6, 2)
NECK_REPEATS = (4, 4, 4, 4)
#: Channels are rounded to multiples of 4 (the original rounds to 8) so that at the zoo's width
#: the concat widths still add up (c6 + c7 = c8, c5 + c9 = c10): then the first units of Rep_n3
#: and Rep_n4 keep their identity branch as they have at the official n scale.
CHANNEL_DIVISOR = 4

#: A RepVGG unit factory: ``unit(c1, c2, stride)``.
Unit = Callable[..., nn.Module]


class RepVGGTrain(Block):
    """Training-form RepVGGBlock: ``ReLU(dense3x3(x) + conv1x1(x) [+ BN(x)])``."""

    def __init__(self, c1: int, c2: int, s: int = 1) -> None:
        super().__init__("repvgg")
        self.rbr_identity = nn.BatchNorm2d(c1) if c1 == c2 and s == 1 else None
        self.rbr_dense = Conv(c1, c2, 3, s, act="none")
        self.rbr_1x1 = Conv(c1, c2, 1, s, p=0, act="none")
        self.nonlinearity = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.nonlinearity(y)


class RepVGGDeploy(nn.Module):
    """Deploy-form RepVGGBlock: the three branches fused into one 3×3 conv with bias."""

    def __init__(self, c1: int, c2: int, s: int = 1) -> None:
        super().__init__()
        self.rbr_reparam = nn.Conv2d(c1, c2, 3, s, 1, bias=True)
        self.nonlinearity = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinearity(self.rbr_reparam(x))


class RepBlock(nn.Module):
    """YOLOv6 RepBlock: ``conv1`` (c1 → c2) then ``n − 1`` units on c2, a plain chain of n
    RepVGG units (no shortcut of its own)."""

    def __init__(self, unit: Unit, c1: int, c2: int, n: int) -> None:
        super().__init__()
        self.conv1 = unit(c1, c2)
        self.block = nn.Sequential(*(unit(c2, c2) for _ in range(n - 1))) if n > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return x if self.block is None else self.block(x)


class SimCSPSPPF(Block):
    """v3.0 SimCSPSPPF (``cspsppf=True``): an SPPF inside a CSP split. Main path ``cv1 → cv3
    (3×3) → cv4``, three chained 5×5 max-pools, cat of 4 taps, ``cv5 → cv6 (3×3)``; bypass
    ``cv2``; cat of both → ``cv7``. Counted as ``sppcspc`` (v7's SPPCSPC has the same CSP
    wiring with parallel pools)."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__("sppcspc")
        c_ = int(c2 * 0.5)
        self.cv1 = Conv(c1, c_, 1, act="relu")
        self.cv2 = Conv(c1, c_, 1, act="relu")
        self.cv3 = Conv(c_, c_, 3, act="relu")
        self.cv4 = Conv(c_, c_, 1, act="relu")
        self.m = nn.MaxPool2d(k, 1, k // 2)
        self.cv5 = Conv(4 * c_, c_, 1, act="relu")
        self.cv6 = Conv(c_, c_, 3, act="relu")
        self.cv7 = Conv(2 * c_, c2, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.m(x1)
        y2 = self.m(y1)
        y3 = self.cv6(self.cv5(torch.cat((x1, y1, y2, self.m(y2)), 1)))
        return self.cv7(torch.cat((self.cv2(x), y3), 1))


class EfficientRep(nn.Module):
    """EfficientRep: RepVGG stem (stride 2), four ERBlocks (stride-2 unit + RepBlock), the last
    ending in SimCSPSPPF. With ``fuse_P2`` it returns P2, P3, P4, P5."""

    def __init__(self, unit: Unit, c: list[int], deploy: bool) -> None:
        super().__init__()
        n = BACKBONE_REPEATS
        self.stem = unit(3, c[0], 2)
        self.ERBlock_2 = nn.Sequential(unit(c[0], c[1], 2), RepBlock(unit, c[1], c[1], n[1]))
        self.ERBlock_3 = nn.Sequential(unit(c[1], c[2], 2), RepBlock(unit, c[2], c[2], n[2]))
        self.ERBlock_4 = nn.Sequential(unit(c[2], c[3], 2), RepBlock(unit, c[3], c[3], n[3]))
        self.ERBlock_5 = nn.Sequential(
            unit(c[3], c[4], 2), RepBlock(unit, c[4], c[4], n[4]), SimCSPSPPF(c[4], c[4])
        )
        if deploy:
            # Fused, the units between taps are fork-free chains of 3x3 convs. Registered after
            # their members so the exported scopes keep the official names.
            self.plain_p2 = Marker("plain_stage", stem=self.stem, stage=self.ERBlock_2)
            self.plain_p3 = Marker("plain_stage", stage=self.ERBlock_3)
            self.plain_p4 = Marker("plain_stage", stage=self.ERBlock_4)
            self.plain_p5 = Marker("plain_stage", down=self.ERBlock_5[0], rep=self.ERBlock_5[1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p2 = self.ERBlock_2(self.stem(x))
        p3 = self.ERBlock_3(p2)
        p4 = self.ERBlock_4(p3)
        return p2, p3, p4, self.ERBlock_5(p4)


class Transpose(nn.Module):
    """YOLOv6 learned ×2 upsample: ConvTranspose 2×2 stride 2 with bias."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.upsample_transpose = nn.ConvTranspose2d(c1, c2, 2, 2, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample_transpose(x)


class BiFusion(Block):
    """v3.0 BiC top-down merge: ``cv3(cat(up(coarse), cv1(lateral), down(cv2(finer))))``.
    One ``fpn`` merge; its upsample is a transposed conv rather than a Resize."""

    def __init__(self, c_lateral: int, c_finer: int, c2: int) -> None:
        super().__init__("fpn")
        self.cv1 = Conv(c_lateral, c2, 1, act="relu")
        self.cv2 = Conv(c_finer, c2, 1, act="relu")
        self.cv3 = Conv(3 * c2, c2, 1, act="relu")
        self.upsample = Transpose(c2, c2)
        self.downsample = Conv(c2, c2, 3, 2, act="relu")

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor, finer: torch.Tensor) -> torch.Tensor:
        x0 = self.upsample(coarse)
        x1 = self.cv1(lateral)
        x2 = self.downsample(self.cv2(finer))
        return self.cv3(torch.cat((x0, x1, x2), 1))


class RepBiFPANNeck(nn.Module):
    """RepBiFPANNeck: reduce → BiFusion → RepBlock twice top-down, then two stride-2 ConvBNReLU
    + cat + RepBlock bottom-up. Channel indices are those of the combined ``channels_list``."""

    def __init__(self, unit: Unit, c: list[int], deploy: bool) -> None:
        super().__init__()
        n = NECK_REPEATS
        self.reduce_layer0 = Conv(c[4], c[5], 1, act="relu")
        self.Bifusion0 = BiFusion(c[3], c[2], c[5])
        self.Rep_p4 = RepBlock(unit, c[5], c[5], n[0])
        self.reduce_layer1 = Conv(c[5], c[6], 1, act="relu")
        self.Bifusion1 = BiFusion(c[2], c[1], c[6])
        self.Rep_p3 = RepBlock(unit, c[6], c[6], n[1])
        self.downsample2 = Conv(c[6], c[7], 3, 2, act="relu")
        self.cat_n3 = Merge("pan")
        self.Rep_n3 = RepBlock(unit, c[6] + c[7], c[8], n[2])
        self.downsample1 = Conv(c[8], c[9], 3, 2, act="relu")
        self.cat_n4 = Merge("pan")
        self.Rep_n4 = RepBlock(unit, c[5] + c[9], c[10], n[3])
        if deploy:
            self.plain_p4 = Marker("plain_stage", rep=self.Rep_p4, reduce=self.reduce_layer1)
            self.plain_p3 = Marker("plain_stage", rep=self.Rep_p3)
            self.plain_n3 = Marker("plain_stage", rep=self.Rep_n3)
            self.plain_n4 = Marker("plain_stage", rep=self.Rep_n4)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        p2, p3, p4, p5 = feats
        fpn_out0 = self.reduce_layer0(p5)
        f_out0 = self.Rep_p4(self.Bifusion0(fpn_out0, p4, p3))
        fpn_out1 = self.reduce_layer1(f_out0)
        pan_out2 = self.Rep_p3(self.Bifusion1(fpn_out1, p3, p2))
        pan_out1 = self.Rep_n3(self.cat_n3([self.downsample2(pan_out2), fpn_out1]))
        pan_out0 = self.Rep_n4(self.cat_n4([self.downsample1(pan_out1), fpn_out0]))
        return pan_out2, pan_out1, pan_out0


class EffiDeLevel(Block):
    """One level of the efficient decoupled head: 1×1 stem; cls 3×3 → 1×1 (80, sigmoid); reg
    3×3 → 1×1 (4 ltrb distances). Returns ``(cls, reg)`` flattened to ``(b, ch, h·w)``."""

    def __init__(self, c: int) -> None:
        super().__init__("decoupled_head")
        self.stem = Conv(c, c, 1, act="silu")
        self.cls_conv = Conv(c, c, 3, act="silu")
        self.reg_conv = Conv(c, c, 3, act="silu")
        self.cls_pred = nn.Conv2d(c, NUM_CLASSES, 1)
        self.reg_pred = nn.Conv2d(c, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        x = self.stem(x)
        cls_out = torch.sigmoid(self.cls_pred(self.cls_conv(x)))
        reg_out = self.reg_pred(self.reg_conv(x))
        return cls_out.reshape(b, NUM_CLASSES, h * w), reg_out.reshape(b, 4, h * w)


class EffiDeHead(nn.Module):
    """Detect: three levels, then the eval decode: anchor points at cell centres, ltrb → xywh,
    times the stride, cat with a ones column and the class scores."""

    def __init__(self, chs: tuple[int, int, int], imgsz: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(EffiDeLevel(c) for c in chs)
        points, strides = [], []
        for s in STRIDES:
            n = imgsz // s
            ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
            points.append(torch.stack((xs, ys), -1).reshape(-1, 2))
            strides.append(torch.full((n * n, 1), float(s)))
        self.register_buffer("anchor_points", torch.cat(points), persistent=False)
        self.register_buffer("stride_tensor", torch.cat(strides), persistent=False)

    def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        cls_list, reg_list = zip(*(level(x) for level, x in zip(self.levels, xs, strict=True)), strict=True)
        cls_scores = torch.cat(cls_list, -1).permute(0, 2, 1)
        dist = torch.cat(reg_list, -1).permute(0, 2, 1)
        lt, rb = torch.split(dist, 2, -1)
        x1y1 = self.anchor_points - lt
        x2y2 = self.anchor_points + rb
        boxes = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), -1) * self.stride_tensor
        ones = torch.ones((boxes.shape[0], boxes.shape[1], 1), dtype=boxes.dtype)
        return torch.cat((boxes, ones, cls_scores), -1)


class YOLOv6(nn.Module):
    """YOLOv6 ``Model``: ``backbone``, ``neck``, ``detect``."""

    def __init__(self, width: float, imgsz: int, deploy: bool) -> None:
        super().__init__()
        c = [scaled(ch, width, CHANNEL_DIVISOR) for ch in BACKBONE_CHANNELS + NECK_CHANNELS]
        unit: Unit = RepVGGDeploy if deploy else RepVGGTrain
        self.backbone = EfficientRep(unit, c, deploy)
        self.neck = RepBiFPANNeck(unit, c, deploy)
        self.detect = EffiDeHead((c[6], c[8], c[10]), imgsz)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detect(self.neck(self.backbone(x)))


def build_yolov6n(width: float, imgsz: int) -> nn.Module:
    return YOLOv6(width, imgsz, deploy=True)


def build_yolov6n_train(width: float, imgsz: int) -> nn.Module:
    return YOLOv6(width, imgsz, deploy=False)


_NOTES = (
    "configs/yolov6n.py (v3.0) at depth 0.33: EfficientRep RepBlock n=2,4,6,2, fuse_P2, "
    "SimCSPSPPF, RepBiFPANNeck RepBlock n=4, efficient decoupled head without DFL; "
    "width_multiple 0.0875 (channels rounded to 4) instead of 0.25; ReLU body, SiLU head; "
    "decoded output (1, N, 85)"
)

register(
    ZooSpec(
        name="yolov6n",
        generation="v6",
        scale="n",
        form="deploy",
        width=0.0875,
        imgsz=256,
        builder=build_yolov6n,
        output_names=("outputs",),
        seed=601,
        notes=_NOTES + "; RepVGG units fused to single 3x3 convs",
    )
)

register(
    ZooSpec(
        name="yolov6n-train",
        generation="v6",
        scale="n",
        form="training",
        width=0.0875,
        imgsz=256,
        builder=build_yolov6n_train,
        output_names=("outputs",),
        seed=602,
        notes=_NOTES + "; RepVGG units in training form (3x3 || 1x1 || identity BN -> add)",
    )
)
