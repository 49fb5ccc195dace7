"""Reference builders of the Darknet-era generations: YOLO v1, v2, v3 and v4.

Each builder follows the layer list of its paper and official Darknet configuration (layer
numbers in the comments are the ``cfg`` indices). Depth and wiring are kept: the same convs,
maxpools, shortcuts, routes (concats), taps and heads. Widths are scaled down with
:func:`~graphpath.zoo.common.scaled` so that every export stays small; detection-tensor
widths (``anchors x (5 + classes)``, v1's ``S*S*(B*5+C)``) are never scaled.

Every model returns the raw head tensors, undecoded: v1 the flat ``(1, S*S*(B*5+C))`` output
of its last FC layer, v2-v4 one ``(1, anchors*(5+80), H, W)`` map per detection level, in the
order Darknet emits its ``[region]``/``[yolo]`` layers. The grid/anchor decode of the
``[region]``/``[yolo]`` layers is left out, so the graphs hold no decode arithmetic.

Block ground truth follows ``docs/block-conventions.md``: a ``plain_stage`` is a maximal run
of at least three weighted units without fork or merge, so its module boundaries follow the
graph's forks (a run that ends where a route branches off stops there), not Darknet's
backbone/head split. Convs that belong to another block never count toward a plain run:
an ``fpn`` holds its 1x1 reduce conv (and v4's lateral 1x1), a ``pan`` its stride-2 3x3, an
``spp`` the 1x1 before and after the pools, a ``csp`` its five 1x1s, a ``coupled_head`` only
the final 1x1 output conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from graphpath.zoo.common import Block, Conv, ZooSpec, register, scaled

#: COCO classes, the detection tensors' class count for v2-v4.
NC = 80


# --------------------------------------------------------------------------- shared blocks


class PlainStage(Block):
    """A chain of Conv (and maxpool) layers with no fork or merge: ``plain_stage``."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__("plain_stage")
        self.m = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class Residual(Block):
    """Darknet-53 residual unit, ``x + conv3x3(conv1x1(x))`` (a cfg ``[shortcut] from=-3``).

    ``hidden`` is the 1x1 reduction: half of ``c`` in Darknet-53, equal to ``c`` inside
    CSPDarknet53 stages 2-5.
    """

    def __init__(self, c: int, hidden: int, act: str) -> None:
        super().__init__("residual")
        self.cv1 = Conv(c, hidden, 1, act=act)
        self.cv2 = Conv(hidden, c, 3, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class CoupledHead(Block):
    """One detection level's output conv: 1x1, ``anchors*(5+nc)`` channels, bias, linear
    activation (the conv right before a ``[region]``/``[yolo]`` layer)."""

    def __init__(self, c: int, anchors: int, nc: int = NC) -> None:
        super().__init__("coupled_head")
        self.conv = nn.Conv2d(c, anchors * (5 + nc), 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Detect(nn.Module):
    """Container of the per-level coupled heads, applied to the head inputs in output order."""

    def __init__(self, channels: list[int], anchors: int, nc: int = NC) -> None:
        super().__init__()
        self.m = nn.ModuleList(CoupledHead(c, anchors, nc) for c in channels)

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(head(x) for head, x in zip(self.m, xs, strict=True))


class FPNMerge(Block):
    """Top-down merge: 1x1 conv on the coarse feature, nearest x2 upsample, concat with the
    lateral feature (an ``[upsample]`` followed by a two-layer ``[route]``).

    v4 also runs a 1x1 conv on the lateral tap (``lateral`` channels) and puts the lateral
    first in the concat (``route -1,-3``); v3 concatenates the raw backbone tap after the
    upsampled map (``route -1,61``).
    """

    def __init__(
        self, c_coarse: int, c_up: int, c_lat: int, lateral: int | None, act: str,
        lateral_first: bool,
    ) -> None:
        super().__init__("fpn")
        self.cv = Conv(c_coarse, c_up, 1, act=act)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lat = Conv(c_lat, lateral, 1, act=act) if lateral is not None else nn.Identity()
        self.lateral_first = lateral_first
        self.c_out = c_up + (c_lat if lateral is None else lateral)

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up, lat = self.up(self.cv(coarse)), self.lat(lateral)
        return torch.cat([lat, up] if self.lateral_first else [up, lat], 1)


class PANMerge(Block):
    """Bottom-up merge: 3x3 stride-2 conv on the fine feature, concat with the top-down
    feature of the next level (v4 ``route -1,-16`` / ``route -1,-37``)."""

    def __init__(self, c_fine: int, c_down: int, act: str) -> None:
        super().__init__("pan")
        self.cv = Conv(c_fine, c_down, 3, 2, act=act)

    def forward(self, fine: torch.Tensor, top_down: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cv(fine), top_down], 1)


def conv_chain(c1: int, channels: list[int], act: str) -> tuple[list[Conv], int]:
    """Alternating 1x1 / 3x3 convs (1x1 first) with the given output channels, Darknet's
    detection-neck pattern; returns the convs and the last width."""
    convs = []
    for i, c2 in enumerate(channels):
        convs.append(Conv(c1, c2, 1 if i % 2 == 0 else 3, act=act))
        c1 = c2
    return convs, c1


# --------------------------------------------------------------------------- YOLOv1

#: YOLOv1 (Redmon et al., 2016, Fig. 3): (kernel, filters, stride), "M" = maxpool 2x2 s2.
V1_LAYERS: tuple[tuple[int, int, int] | str, ...] = (
    (7, 64, 2), "M",
    (3, 192, 1), "M",
    (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
    *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
    *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
    (3, 1024, 1), (3, 1024, 1),
)
V1_GRID, V1_BOXES, V1_CLASSES = 7, 2, 20  # S, B, C of the paper (PASCAL VOC)


class FCHead(Block):
    """v1's head: flatten, FC 4096 (leaky), dropout 0.5, FC ``S*S*(B*5+C)`` (linear)."""

    def __init__(self, c_in: int, hidden: int, c_out: int) -> None:
        super().__init__("fc_head")
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(c_in, hidden)
        self.act = nn.LeakyReLU(0.1)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(self.flatten(x)))))


class YOLOv1(nn.Module):
    """24 convs with maxpools (one plain stage: the chain never forks) and the FC head.

    The FC hidden width (4096 in the paper) is scaled by the same ``width`` as the convs;
    its input size follows the last feature map at ``imgsz``.
    """

    def __init__(self, width: float, imgsz: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c1 = 3
        for item in V1_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            assert not isinstance(item, str)
            k, c, s = item
            c2 = scaled(c, width)
            layers.append(Conv(c1, c2, k, s, act="leaky"))
            c1 = c2
        stage = PlainStage(*layers)
        with torch.no_grad():
            feat = stage(torch.zeros(1, 3, imgsz, imgsz))
        c_out = V1_GRID * V1_GRID * (V1_BOXES * 5 + V1_CLASSES)
        head = FCHead(feat[0].numel(), scaled(4096, width), c_out)
        self.model = nn.ModuleList([stage, head])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.model:
            x = layer(x)
        return x


# --------------------------------------------------------------------------- YOLOv2


class Passthrough(Block):
    """yolov2.cfg passthrough: 1x1 conv (64) on the stride-16 feature, ``[reorg] stride=2``
    as a Reshape/Transpose space-to-depth, then ``route -1,-4`` (reorg first, coarse
    second)."""

    def __init__(self, c_fine: int, c_red: int, fine_hw: int) -> None:
        super().__init__("passthrough")
        self.cv = Conv(c_fine, c_red, 1, act="leaky")
        self.c, self.hw = c_red, fine_hw  # static sizes keep shape arithmetic out of the graph

    def reorg(self, x: torch.Tensor) -> torch.Tensor:
        c, h = self.c, self.hw // 2
        x = x.reshape(1, c, h, 2, h, 2).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(1, 4 * c, h, h)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.reorg(self.cv(fine)), coarse], 1)


class YOLOv2(nn.Module):
    """yolov2.cfg (COCO): Darknet-19 without its classifier conv (18 convs, 5 maxpools), three
    3x3 1024 detection convs, the passthrough and a 1x1 ``5*(5+80)`` head: 23 convs.

    The backbone forks after cfg layer 16 (the passthrough tap), so Darknet-19 splits into two
    plain stages: layers 0-16 and the stride-32 part with the two detection 3x3 convs.
    """

    def __init__(self, width: float, imgsz: int) -> None:
        super().__init__()

        def w(c: int) -> int:
            return scaled(c, width)

        def conv(c1: int, c2: int, k: int) -> Conv:
            return Conv(w(c1), w(c2), k, act="leaky")

        mp = nn.MaxPool2d  # 2x2 stride 2 in the cfg
        stage1 = PlainStage(
            Conv(3, w(32), 3, act="leaky"), mp(2, 2),                               # 0-1
            conv(32, 64, 3), mp(2, 2),                                               # 2-3
            conv(64, 128, 3), conv(128, 64, 1), conv(64, 128, 3), mp(2, 2),          # 4-7
            conv(128, 256, 3), conv(256, 128, 1), conv(128, 256, 3), mp(2, 2),       # 8-11
            conv(256, 512, 3), conv(512, 256, 1), conv(256, 512, 3),                 # 12-14
            conv(512, 256, 1), conv(256, 512, 3),                                    # 15-16
        )
        stage2 = PlainStage(
            mp(2, 2),                                                                # 17
            conv(512, 1024, 3), conv(1024, 512, 1), conv(512, 1024, 3),              # 18-20
            conv(1024, 512, 1), conv(512, 1024, 3),                                  # 21-22
            conv(1024, 1024, 3), conv(1024, 1024, 3),                                # 23-24
        )
        passthrough = Passthrough(w(512), w(64), imgsz // 16)                        # 25-28
        post = Conv(4 * w(64) + w(1024), w(1024), 3, act="leaky")                    # 29
        head = Detect([w(1024)], anchors=5)                                          # 30
        self.model = nn.ModuleList([stage1, stage2, passthrough, post, head])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage1, stage2, passthrough, post, head = self.model
        fine = stage1(x)
        y = post(passthrough(fine, stage2(fine)))
        return head([y])[0]


# --------------------------------------------------------------------------- YOLOv3


class ResidualStage(nn.Module):
    """``n`` residual units of width ``c``: a Darknet-53 stage body (scopes ``model.2.m.0``)."""

    def __init__(self, c: int, n: int, hidden: int, act: str) -> None:
        super().__init__()
        self.m = residual_stage(c, n, hidden, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


def residual_stage(c: int, n: int, hidden: int, act: str) -> nn.Sequential:
    """``n`` residual units of width ``c`` in a chain."""
    return nn.Sequential(*(Residual(c, hidden, act) for _ in range(n)))


class YOLOv3(nn.Module):
    """yolov3.cfg: Darknet-53 (52 convs; residual stages 1, 2, 8, 8, 4), FPN over 3 scales and
    a 1x1 ``3*(5+80)`` head per scale: 75 convs, 23 shortcuts, 2 upsample+concat merges.

    Outputs in cfg order: stride 32, 16, 8.
    """

    def __init__(self, width: float, imgsz: int) -> None:
        super().__init__()

        def w(c: int) -> int:
            return scaled(c, width)

        act = "leaky"
        # model.0-10 = cfg 0-74: stem conv, then per stage a stride-2 conv and the residuals.
        m: list[nn.Module] = [Conv(3, w(32), 3, act=act)]
        c = w(32)
        for c_full, n in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
            m.append(Conv(c, w(c_full), 3, 2, act=act))
            m.append(ResidualStage(w(c_full), n, w(c_full // 2), act))
            c = w(c_full)
        # model.6 / model.8 end at the stride-8 / stride-16 taps (cfg 36 / 61).
        s5, c5 = conv_chain(c, [w(512), w(1024), w(512), w(1024), w(512)], act)
        fpn4 = FPNMerge(c5, w(256), w(512), None, act, lateral_first=False)
        s4, c4 = conv_chain(fpn4.c_out, [w(256), w(512), w(256), w(512), w(256)], act)
        fpn3 = FPNMerge(c4, w(128), w(256), None, act, lateral_first=False)
        s3, _ = conv_chain(fpn3.c_out, [w(128), w(256)] * 3, act)
        m += [
            PlainStage(*s5),                         # model.11 = cfg 75-79 (79 forks)
            Conv(c5, w(1024), 3, act=act),           # model.12 = cfg 80
            fpn4,                                    # model.13 = cfg 83-86
            PlainStage(*s4),                         # model.14 = cfg 87-91 (91 forks)
            Conv(c4, w(512), 3, act=act),            # model.15 = cfg 92
            fpn3,                                    # model.16 = cfg 95-98
            PlainStage(*s3),                         # model.17 = cfg 99-104
            Detect([w(1024), w(512), w(256)], anchors=3),  # model.18 = cfg 81, 93, 105
        ]
        self.model = nn.ModuleList(m)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        taps = []
        for i in range(11):
            x = m[i](x)
            taps.append(x)
        p3, p4 = taps[6], taps[8]
        t5 = m[11](x)
        h5 = m[12](t5)
        t4 = m[14](m[13](t5, p4))
        h4 = m[15](t4)
        h3 = m[17](m[16](t4, p3))
        return m[18]([h5, h4, h3])


# --------------------------------------------------------------------------- YOLOv4


class CSPStage(Block):
    """One CSPDarknet53 stage body after its stride-2 conv (yolov4.cfg): a 1x1 bypass conv
    (``route -2`` branch), a 1x1 conv into ``n`` residual units and a 1x1 conv after them,
    concat ``[main, bypass]`` and a 1x1 transition conv.

    The first stage keeps full width on both halves (64, residual hidden 32); stages 2-5 halve
    the width on both halves and use residual units without reduction.
    """

    def __init__(self, c: int, n: int, half: int, hidden: int, act: str = "mish") -> None:
        super().__init__("csp")
        self.cv_bypass = Conv(c, half, 1, act=act)
        self.cv_in = Conv(c, half, 1, act=act)
        self.m = residual_stage(half, n, hidden, act)
        self.cv_post = Conv(half, half, 1, act=act)
        self.cv_out = Conv(2 * half, c, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.cv_post(self.m(self.cv_in(x)))
        return self.cv_out(torch.cat([main, self.cv_bypass(x)], 1))


class SPP(Block):
    """yolov4.cfg SPP (layers 107-114): 1x1 conv, maxpools 5/9/13 stride 1 in parallel,
    concat ``[mp13, mp9, mp5, x]`` (``route -1,-3,-5,-6``), 1x1 conv."""

    def __init__(self, c1: int, c_: int, c2: int, act: str = "leaky") -> None:
        super().__init__("spp")
        self.cv1 = Conv(c1, c_, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13))
        self.cv2 = Conv(4 * c_, c2, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([pool(x) for pool in reversed(self.m)] + [x], 1))


class YOLOv4(nn.Module):
    """yolov4.cfg: CSPDarknet53 (72 convs, Mish; CSP stages 1, 2, 8, 8, 4), SPP, a PAN neck
    with leaky ReLU and a 1x1 ``3*(5+80)`` head per scale: 110 convs, 23 shortcuts,
    10 concats, 3 maxpools.

    Outputs in cfg order: stride 8, 16, 32.
    """

    def __init__(self, width: float, imgsz: int) -> None:
        super().__init__()

        def w(c: int) -> int:
            return scaled(c, width)

        # model.0-10 = cfg 0-104: stem conv, then per stage a stride-2 conv and the CSP body.
        m: list[nn.Module] = [Conv(3, w(32), 3, act="mish")]
        c = w(32)
        for c_full, n in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
            m.append(Conv(c, w(c_full), 3, 2, act="mish"))
            if c_full == 64:  # stage 1: halves stay at 64, residual 1x1 reduces to 32
                m.append(CSPStage(w(64), n, w(64), w(32)))
            else:
                m.append(CSPStage(w(c_full), n, w(c_full // 2), w(c_full // 2)))
            c = w(c_full)
        # model.6 / model.8 end at the stride-8 / stride-16 taps (cfg 54 / 85).
        leaky = "leaky"
        fpn4 = FPNMerge(w(512), w(256), w(512), w(256), leaky, lateral_first=True)
        n4, c4 = conv_chain(fpn4.c_out, [w(256), w(512), w(256), w(512), w(256)], leaky)
        fpn3 = FPNMerge(c4, w(128), w(256), w(128), leaky, lateral_first=True)
        n3, c3 = conv_chain(fpn3.c_out, [w(128), w(256), w(128), w(256), w(128)], leaky)
        pan4 = PANMerge(c3, w(256), leaky)
        o4, c4b = conv_chain(w(256) + c4, [w(256), w(512), w(256), w(512), w(256)], leaky)
        pan5 = PANMerge(c4b, w(512), leaky)
        o5, c5 = conv_chain(w(512) + w(512), [w(512), w(1024)] * 3, leaky)
        m += [
            Conv(c, w(512), 1, act=leaky),              # model.11 = cfg 105
            Conv(w(512), w(1024), 3, act=leaky),        # model.12 = cfg 106
            SPP(w(1024), w(512), w(512)),               # model.13 = cfg 107-114
            Conv(w(512), w(1024), 3, act=leaky),        # model.14 = cfg 115
            Conv(w(1024), w(512), 1, act=leaky),        # model.15 = cfg 116 (forks)
            fpn4,                                       # model.16 = cfg 117-121
            PlainStage(*n4),                            # model.17 = cfg 122-126 (126 forks)
            fpn3,                                       # model.18 = cfg 127-131
            PlainStage(*n3),                            # model.19 = cfg 132-136 (136 forks)
            Conv(c3, w(256), 3, act=leaky),             # model.20 = cfg 137
            pan4,                                       # model.21 = cfg 140-142
            PlainStage(*o4),                            # model.22 = cfg 143-147 (147 forks)
            Conv(c4b, w(512), 3, act=leaky),            # model.23 = cfg 148
            pan5,                                       # model.24 = cfg 151-153
            PlainStage(*o5),                            # model.25 = cfg 154-159
            Detect([w(256), w(512), c5], anchors=3),    # model.26 = cfg 138, 149, 160
        ]
        self.model = nn.ModuleList(m)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        taps = []
        for i in range(16):
            x = m[i](x)
            taps.append(x)
        p3, p4, n5 = taps[6], taps[8], x
        n4 = m[17](m[16](n5, p4))
        n3 = m[19](m[18](n4, p3))
        h3 = m[20](n3)
        o4 = m[22](m[21](n3, n4))
        h4 = m[23](o4)
        h5 = m[25](m[24](o4, n5))
        return m[26]([h3, h4, h5])


# --------------------------------------------------------------------------- registry

register(ZooSpec(
    name="yolov1", generation="v1", scale="full", form="deploy", width=1 / 32, imgsz=448,
    builder=YOLOv1, output_names=("output",), seed=1001,
    notes=(
        "YOLOv1 paper (Fig. 3): 24 conv (leaky 0.1) + 4 maxpool, flatten, FC 4096 (leaky), "
        "dropout, FC 7*7*(2*5+20)=1470 (VOC, S=7 B=2 C=20, unscaled), as in the paper; "
        "yolov1.cfg's local 3x3 256 + connected 1715 tail is not used. Width 1/32 on the "
        "convs and on the FC hidden layer (4096 -> 128); FC1 input is 7*7*32=1568. Conv BN "
        "(batch_normalize=1 in yolov1.cfg) is fused at export. Output: raw flat (1, 1470)."
    ),
))

register(ZooSpec(
    name="yolov2", generation="v2", scale="full", form="deploy", width=1 / 16, imgsz=320,
    builder=YOLOv2, output_names=("p5",), seed=1002,
    notes=(
        "yolov2.cfg (COCO): Darknet-19 (18 conv, 5 maxpool) + 3 detection 3x3 convs + "
        "passthrough (1x1 64, reorg as Reshape/Transpose space-to-depth, concat) + 1x1 "
        "5*(5+80)=425 head: 23 conv. Width 1/16. Output: raw (1, 425, 10, 10)."
    ),
))

register(ZooSpec(
    name="yolov3", generation="v3", scale="full", form="deploy", width=1 / 16, imgsz=320,
    builder=YOLOv3, output_names=("p5", "p4", "p3"), seed=1003,
    notes=(
        "yolov3.cfg: Darknet-53 (residual stages 1,2,8,8,4) + FPN (2 upsample+concat) + 3 "
        "coupled 1x1 heads 3*(5+80)=255: 75 conv, 23 shortcut adds. Width 1/16. Outputs: "
        "raw maps at strides 32, 16, 8 (cfg order)."
    ),
))

register(ZooSpec(
    name="yolov4", generation="v4", scale="full", form="deploy", width=1 / 16, imgsz=320,
    builder=YOLOv4, output_names=("p3", "p4", "p5"), seed=1004,
    notes=(
        "yolov4.cfg: CSPDarknet53 with Mish (CSP stages 1,2,8,8,4, 1x1 conv on both halves "
        "and after the residuals) + SPP 5/9/13 + PAN (leaky) + 3 coupled 1x1 heads 255: "
        "110 conv, 23 shortcut adds, 10 concats, 3 maxpools. Width 1/16. Outputs: raw maps "
        "at strides 8, 16, 32 (cfg order)."
    ),
))
