"""Reference builders for YOLOv5s (v6.0+ layout) and YOLOX-s.

Both follow their public configurations at the named scale for depth and wiring (same convs,
bottlenecks, taps and heads); only the width is scaled down so the exports stay small. The
width argument of each builder is the config's ``width_multiple`` applied to the base channels
(64 … 1024): the official s scale is 0.50, the zoo uses 0.125.

Outputs follow the official ONNX exports:

* YOLOv5 (``export.py``): one tensor ``output0`` of shape ``(1, N, 85)``, decoded per level
  (sigmoid, grid offset, anchor scaling) and concatenated over the three levels.
* YOLOX (``tools/export_onnx.py``, ``decode_in_inference`` off): one tensor ``output`` of shape
  ``(1, N, 85)`` = per level ``cat(reg, sigmoid(obj), sigmoid(cls))``, flattened, concatenated
  over levels and permuted; box decoding is left to the caller as in the official export.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from graphpath.zoo.common import Block, Conv, ZooSpec, register, scaled

NUM_CLASSES = 80
STRIDES = (8, 16, 32)
#: YOLOv5 default anchors (pixels) for P3, P4, P5, three per level.
V5_ANCHORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)


class Merge(Block):
    """The Concat of one neck merge, counted as ``fpn`` (top-down: upsampled coarse feature +
    lateral) or ``pan`` (bottom-up: stride-2 downsampled fine feature + top-down feature).

    The resampling op stays where the official model has it (its own layer or module); this
    block is the concat that joins the two paths.
    """

    def __init__(self, kind: str) -> None:
        if kind not in ("fpn", "pan"):
            raise ValueError(f"a neck merge is fpn or pan, not {kind!r}")
        super().__init__(kind)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


# --------------------------------------------------------------------------------------------
# YOLOv5
# --------------------------------------------------------------------------------------------


class ResidualBottleneck(Block):
    """YOLOv5/YOLOX bottleneck with shortcut: ``x + conv3x3(conv1x1(x))`` (expansion 1.0)."""

    def __init__(self, c: int, act: str = "silu") -> None:
        super().__init__("residual")
        self.cv1 = Conv(c, c, 1, act=act)
        self.cv2 = Conv(c, c, 3, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class PlainBottleneck(nn.Module):
    """The same bottleneck without its shortcut (``shortcut=False`` in the v5 head C3s and the
    YOLOX neck/dark5 CSP layers): two convs, no add, so not a residual."""

    def __init__(self, c: int, act: str = "silu") -> None:
        super().__init__()
        self.cv1 = Conv(c, c, 1, act=act)
        self.cv2 = Conv(c, c, 3, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


def bottlenecks(c: int, n: int, shortcut: bool) -> nn.Sequential:
    """``n`` bottlenecks on ``c`` channels, residual when ``shortcut``."""
    unit = ResidualBottleneck if shortcut else PlainBottleneck
    return nn.Sequential(*(unit(c) for _ in range(n)))


class C3(Block):
    """YOLOv5 C3: ``cv3(cat(m(cv1(x)), cv2(x)))`` with hidden width ``c2 / 2`` (e=0.5)."""

    def __init__(self, c1: int, c2: int, n: int, shortcut: bool = True) -> None:
        super().__init__("csp")
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = bottlenecks(c_, n, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(Block):
    """YOLOv5 SPPF: ``cv1`` (halves channels), three chained 5×5 max-pools, cat of the four
    taps, ``cv2``."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__("sppf")
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(4 * c_, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class V5Level(Block):
    """One level of the v5 Detect head: a 1×1 conv to ``na × (5 + nc)`` channels, then the
    export-time decode (v7.0 ``Detect.forward``): sigmoid, ``xy = (2·σ + grid − 0.5)·stride``,
    ``wh = (2·σ)²·anchor``, flattened to ``(b, na·ny·nx, 5 + nc)``."""

    def __init__(self, c1: int, anchors: tuple[tuple[int, int], ...], stride: int, imgsz: int) -> None:
        super().__init__("coupled_head")
        self.na, self.no, self.stride = len(anchors), NUM_CLASSES + 5, stride
        self.conv = nn.Conv2d(c1, self.na * self.no, 1)
        n = imgsz // stride
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        grid = torch.stack((xs, ys), 2).float().expand(1, self.na, n, n, 2) - 0.5
        wh = torch.tensor(anchors, dtype=torch.float32).view(1, self.na, 1, 1, 2)
        self.register_buffer("grid", grid.contiguous(), persistent=False)
        self.register_buffer("anchor_grid", wh.expand(1, self.na, n, n, 2).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, ny, nx = x.shape
        p = self.conv(x).view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
        xy, wh, conf = p.sigmoid().split((2, 2, self.no - 4), 4)
        xy = (xy * 2 + self.grid) * self.stride
        wh = (wh * 2) ** 2 * self.anchor_grid
        return torch.cat((xy, wh, conf), 4).view(b, -1, self.no)


class V5Detect(nn.Module):
    """Layer 24 of yolov5s.yaml: ``Detect`` on layers 17, 20, 23; ``m.i`` is level i."""

    def __init__(self, chs: tuple[int, int, int], imgsz: int) -> None:
        super().__init__()
        self.m = nn.ModuleList(
            V5Level(c, a, s, imgsz) for c, a, s in zip(chs, V5_ANCHORS, STRIDES, strict=True)
        )

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([level(x) for level, x in zip(self.m, xs, strict=True)], 1)


class YOLOv5(nn.Module):
    """yolov5s.yaml (v6.0+): layers 0–9 backbone, 10–23 PAN head, 24 Detect.

    ``model.i`` is layer i of the yaml, so exported scopes read ``model.2.m.0.cv1``. Repeats at
    depth 0.33: backbone C3 n = 1, 2, 3, 1 (with shortcut); head C3 n = 1 (no shortcut).
    """

    def __init__(self, width: float, imgsz: int) -> None:
        super().__init__()
        c = [scaled(ch, width) for ch in (64, 128, 256, 512, 1024)]
        layers: list[nn.Module] = [
            Conv(3, c[0], 6, 2, 2),  # 0 P1/2: 6×6 stem
            Conv(c[0], c[1], 3, 2),  # 1 P2/4
            C3(c[1], c[1], 1),  # 2
            Conv(c[1], c[2], 3, 2),  # 3 P3/8
            C3(c[2], c[2], 2),  # 4
            Conv(c[2], c[3], 3, 2),  # 5 P4/16
            C3(c[3], c[3], 3),  # 6
            Conv(c[3], c[4], 3, 2),  # 7 P5/32
            C3(c[4], c[4], 1),  # 8
            SPPF(c[4], c[4]),  # 9
            Conv(c[4], c[3], 1),  # 10
            nn.Upsample(scale_factor=2, mode="nearest"),  # 11
            Merge("fpn"),  # 12 cat backbone P4 (layer 6)
            C3(2 * c[3], c[3], 1, shortcut=False),  # 13
            Conv(c[3], c[2], 1),  # 14
            nn.Upsample(scale_factor=2, mode="nearest"),  # 15
            Merge("fpn"),  # 16 cat backbone P3 (layer 4)
            C3(2 * c[2], c[2], 1, shortcut=False),  # 17 P3/8 out
            Conv(c[2], c[2], 3, 2),  # 18
            Merge("pan"),  # 19 cat head P4 (layer 14)
            C3(2 * c[2], c[3], 1, shortcut=False),  # 20 P4/16 out
            Conv(c[3], c[3], 3, 2),  # 21
            Merge("pan"),  # 22 cat head P5 (layer 10)
            C3(2 * c[3], c[4], 1, shortcut=False),  # 23 P5/32 out
            V5Detect((c[2], c[3], c[4]), imgsz),  # 24
        ]
        self.model = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        saved: dict[int, torch.Tensor] = {}
        for i in range(10):  # the backbone is a chain; layers 4 and 6 are the P3/P4 taps
            x = saved[i] = m[i](x)
        x = saved[10] = m[10](x)
        x = m[13](m[12]([m[11](x), saved[6]]))
        x = saved[14] = m[14](x)
        p3 = m[17](m[16]([m[15](x), saved[4]]))
        p4 = m[20](m[19]([m[18](p3), saved[14]]))
        p5 = m[23](m[22]([m[21](p4), saved[10]]))
        return m[24]([p3, p4, p5])


def build_yolov5s(width: float, imgsz: int) -> nn.Module:
    return YOLOv5(width, imgsz)


# --------------------------------------------------------------------------------------------
# YOLOX
# --------------------------------------------------------------------------------------------


class Focus(nn.Module):
    """YOLOX stem: space-to-depth of the image (four stride-2 slices, concatenated) and a 3×3
    conv. Not a ``passthrough`` block: nothing coarse is joined, it is the input reshaped."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv = Conv(4 * c1, c2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tl, tr = x[..., ::2, ::2], x[..., ::2, 1::2]
        bl, br = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), 1))


class CSPLayer(Block):
    """YOLOX CSPLayer: ``conv3(cat(m(conv1(x)), conv2(x)))``, hidden width ``c2 / 2``; the
    same wiring as v5's C3 under YOLOX's names."""

    def __init__(self, c1: int, c2: int, n: int, shortcut: bool = True) -> None:
        super().__init__("csp")
        c_ = int(c2 * 0.5)
        self.conv1 = Conv(c1, c_, 1)
        self.conv2 = Conv(c1, c_, 1)
        self.conv3 = Conv(2 * c_, c2, 1)
        self.m = bottlenecks(c_, n, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), 1))


class SPPBottleneck(Block):
    """YOLOX SPP in dark5: ``conv1`` (halves channels), parallel 5/9/13 max-pools, cat with the
    identity, ``conv2``."""

    def __init__(self, c1: int, c2: int, ks: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__("spp")
        c_ = c1 // 2
        self.conv1 = Conv(c1, c_, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in ks)
        self.conv2 = Conv(c_ * (len(ks) + 1), c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], 1))


class CSPDarknet(nn.Module):
    """YOLOX CSPDarknet at depth 0.33: base depth 1, so dark2..dark5 CSP n = 1, 3, 3, 1; dark5
    is conv s2 → SPP → CSP without shortcut. Returns dark3, dark4, dark5."""

    def __init__(self, width: float) -> None:
        super().__init__()
        c = int(64 * width)
        self.stem = Focus(3, c)
        self.dark2 = nn.Sequential(Conv(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, 1))
        self.dark3 = nn.Sequential(Conv(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, 3))
        self.dark4 = nn.Sequential(Conv(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, 3))
        self.dark5 = nn.Sequential(
            Conv(8 * c, 16 * c, 3, 2),
            SPPBottleneck(16 * c, 16 * c),
            CSPLayer(16 * c, 16 * c, 1, shortcut=False),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        d3 = self.dark3(x)
        d4 = self.dark4(d3)
        return d3, d4, self.dark5(d4)


class YOLOPAFPN(nn.Module):
    """YOLOX PAFPN: two top-down merges (nearest ×2 + cat), two bottom-up merges (3×3 s2 conv
    + cat), each followed by a CSP layer without shortcut (n = round(3·0.33) = 1)."""

    def __init__(self, width: float) -> None:
        super().__init__()
        c3, c4, c5 = int(256 * width), int(512 * width), int(1024 * width)
        self.backbone = CSPDarknet(width)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = Conv(c5, c4, 1)
        self.cat_p4 = Merge("fpn")
        self.C3_p4 = CSPLayer(2 * c4, c4, 1, shortcut=False)
        self.reduce_conv1 = Conv(c4, c3, 1)
        self.cat_p3 = Merge("fpn")
        self.C3_p3 = CSPLayer(2 * c3, c3, 1, shortcut=False)
        self.bu_conv2 = Conv(c3, c3, 3, 2)
        self.cat_n3 = Merge("pan")
        self.C3_n3 = CSPLayer(2 * c3, c4, 1, shortcut=False)
        self.bu_conv1 = Conv(c4, c4, 3, 2)
        self.cat_n4 = Merge("pan")
        self.C3_n4 = CSPLayer(2 * c4, c5, 1, shortcut=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d3, d4, d5 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(d5)
        f_out0 = self.C3_p4(self.cat_p4([self.upsample(fpn_out0), d4]))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(self.cat_p3([self.upsample(fpn_out1), d3]))
        pan_out1 = self.C3_n3(self.cat_n3([self.bu_conv2(pan_out2), fpn_out1]))
        pan_out0 = self.C3_n4(self.cat_n4([self.bu_conv1(pan_out1), fpn_out0]))
        return pan_out2, pan_out1, pan_out0


class YOLOXLevel(Block):
    """One level of YOLOXHead: 1×1 stem to ``256·width``; cls branch (two 3×3 convs → 1×1 to
    80); reg branch (two 3×3 convs → 1×1 to 4 and the 1×1 objectness on the same features).
    Eval output ``cat(reg, sigmoid(obj), sigmoid(cls))``."""

    def __init__(self, c1: int, hidden: int) -> None:
        super().__init__("decoupled_head")
        self.stem = Conv(c1, hidden, 1)
        self.cls_convs = nn.Sequential(Conv(hidden, hidden, 3), Conv(hidden, hidden, 3))
        self.reg_convs = nn.Sequential(Conv(hidden, hidden, 3), Conv(hidden, hidden, 3))
        self.cls_pred = nn.Conv2d(hidden, NUM_CLASSES, 1)
        self.reg_pred = nn.Conv2d(hidden, 4, 1)
        self.obj_pred = nn.Conv2d(hidden, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        cls_out = self.cls_pred(self.cls_convs(x))
        reg_feat = self.reg_convs(x)
        return torch.cat((self.reg_pred(reg_feat), self.obj_pred(reg_feat).sigmoid(), cls_out.sigmoid()), 1)


class YOLOXHead(nn.Module):
    """Three decoupled levels; outputs flattened, concatenated over levels, permuted to
    ``(b, N, 85)`` (no box decode, as in the official ONNX export)."""

    def __init__(self, width: float) -> None:
        super().__init__()
        hidden = int(256 * width)
        self.levels = nn.ModuleList(YOLOXLevel(int(c * width), hidden) for c in (256, 512, 1024))

    def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        outs = [level(x).flatten(start_dim=2) for level, x in zip(self.levels, xs, strict=True)]
        return torch.cat(outs, 2).permute(0, 2, 1)


class YOLOX(nn.Module):
    """YOLOX-s (depth 0.33): ``backbone`` (PAFPN around CSPDarknet) and ``head``, as in Megvii's
    ``yolox/models/yolox.py``."""

    def __init__(self, width: float) -> None:
        super().__init__()
        self.backbone = YOLOPAFPN(width)
        self.head = YOLOXHead(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_yoloxs(width: float, imgsz: int) -> nn.Module:
    del imgsz  # anchor-free and undecoded: nothing depends on the input size
    return YOLOX(width)


register(
    ZooSpec(
        name="yolov5s",
        generation="v5",
        scale="s",
        form="deploy",
        width=0.125,
        imgsz=256,
        builder=build_yolov5s,
        output_names=("output0",),
        seed=501,
        notes=(
            "yolov5s.yaml v6.0+ at depth 0.33 (C3 n=1,2,3,1 backbone, 1 head, no shortcut in the "
            "head), 6x6 stem, SPPF, PAN; width_multiple 0.125 instead of 0.50; single decoded "
            "output (1, N, 85) as export.py writes it"
        ),
    )
)

register(
    ZooSpec(
        name="yoloxs",
        generation="yolox",
        scale="s",
        form="deploy",
        width=0.125,
        imgsz=256,
        builder=build_yoloxs,
        output_names=("output",),
        seed=511,
        notes=(
            "YOLOX-s at depth 0.33 (Focus stem, CSP n=1,3,3,1, SPP in dark5, PAFPN, decoupled "
            "head with objectness); width 0.125 instead of 0.50; output (1, N, 85) undecoded "
            "as tools/export_onnx.py writes it"
        ),
    )
)
