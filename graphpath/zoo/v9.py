"""YOLOv9-c reference builders: deploy GELAN (``yolov9c``) and the PGI training graph
(``yolov9c-train``).

Written from the YOLOv9 paper (arXiv 2402.13616) and the layer tables of the official
``models/detect/gelan-c.yaml`` and ``models/detect/yolov9-c.yaml`` (full depth; width scaled):

* main branch (gelan-c layers 0–21; yolov9-c layers 1–22): conv 3×3 s2 (64) → conv 3×3 s2
  (128) → RepNCSPELAN4 (256, 128, 64) → ADown → RepNCSPELAN4 (512, 256, 128) → ADown →
  RepNCSPELAN4 (512, 512, 256) → ADown → RepNCSPELAN4 (512, 512, 256); SPPELAN (512, 256);
  PAN neck: two top-down merges (nearest ×2, cat ``[upsampled, lateral]``) and two bottom-up
  merges (ADown, cat ``[down-sampled, top-down]``), each followed by a RepNCSPELAN4;
* RepNCSPELAN4 = GELAN: ``cv1`` 1×1 → split in 2; the second half → ``cv2`` = [RepNCSP +
  conv 3×3] → ``cv3`` = [RepNCSP + conv 3×3]; cat of the 4 → ``cv4`` 1×1. RepNCSP is a CSP
  block (``cv1 → RepNBottleneck`` ‖ ``cv2``, cat → ``cv3``) whose bottleneck is
  ``x + conv3×3(RepConvN(x))`` (a residual);
* ADown: avg-pool 2 s1 → split in 2: conv 3×3 s2 ‖ maxpool 3 s2 → conv 1×1 → cat;
* SPPELAN: conv 1×1 → three chained maxpool 5 → cat of 4 → conv 1×1;
* DDetect: per level a box branch (conv 3×3 → conv 3×3 g4 → 1×1 g4 to 4×16 bins) and a class
  branch (conv 3×3 → conv 3×3 → 1×1 to 80), cat; then DFL (softmax over 16 bins → fixed 1×1
  conv with weights 0..15) and the dist2bbox decode with constant anchor points.

``yolov9c-train`` adds PGI as in yolov9-c: three CBLinear (a biased 1×1 conv whose output is
split into chunks) on main features P3, P4, P5; a second stem and backbone from the same image
(yolov9-c layers 26–37); three CBFuse (nearest resize of the chunks to the auxiliary feature's
size, stacked with it and summed) after the auxiliary ADowns; the auxiliary head on the
auxiliary backbone's P3–P5. Training form: every RepConvN is left unfused (3×3 ‖ 1×1 → add →
SiLU, counted ``repvgg``), in both branches. The official ``export.py`` fuses RepConvN before
exporting, so a real yolov9-c ONNX has those branches merged but keeps the PGI branch.

Both forms return decoded, concatenated predictions ``(1, 4 + 80, N)`` as the official export
does; the training form returns ``(auxiliary, main)``, the auxiliary head first as in
``DualDDetect``. Main-branch modules carry the gelan-c index in both forms (``model.2.cv1``),
the way the official re-parameterisation maps yolov9-c layer ``i + 1`` onto gelan-c layer ``i``;
the PGI modules sit under ``aux`` with their yolov9-c index (``aux.28.cv1``, head ``aux.38``).

Width: every channel count × 0.125 (multiples of 8, all ratios exact). Export facts (320²,
opset 17, TorchScript exporter), the same for the official code through this exporter:
``chunk`` exports as Shape→Gather→Div→Slice chains (shape arithmetic, not data); the exporter
fuses a Concat that feeds straight into another Concat on the same axis, so each neck ADown's
cat and the PAN cat after it are one 3-input Concat (config 40 cats → 38 Concat nodes in
``yolov9c``); the two DFLs' identical 0..15 weights are aliased through one ``Identity``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from graphpath.zoo.common import Block, Conv, Marker, ZooSpec, register, scaled

NC = 80
REG_MAX = 16
STRIDES = (8, 16, 32)


class RepConvN(Block):
    """RepConvN in training form: conv 3×3 (BN) ‖ conv 1×1 (BN) → add → SiLU, no identity
    branch. Deploy builders use one ``Conv`` 3×3 instead (the fused form)."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__("repvgg")
        self.conv1 = Conv(c1, c2, 3, act="none")
        self.conv2 = Conv(c1, c2, 1, act="none")
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1(x) + self.conv2(x))


class RepNBottleneck(Block):
    """``x + cv2(cv1(x))`` with ``cv1`` a RepConvN 3×3 and ``cv2`` a conv 3×3 (e = 1.0)."""

    def __init__(self, c: int, train: bool) -> None:
        super().__init__("residual")
        self.cv1 = RepConvN(c, c) if train else Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class RepNCSP(Block):
    """CSP block: ``cv1 → n × RepNBottleneck`` ‖ ``cv2``, cat → ``cv3``; hidden ``c2 / 2``."""

    def __init__(self, c1: int, c2: int, n: int, train: bool) -> None:
        super().__init__("csp")
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(RepNBottleneck(c_, train) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class GELAN(Block):
    """RepNCSPELAN4 (c1 → c2 with args c3, c4, n): ``cv1`` 1×1 to c3, split in 2; the second
    half → ``cv2`` [RepNCSP + 3×3] → ``cv3`` [RepNCSP + 3×3]; cat of 4 → ``cv4``."""

    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int, train: bool) -> None:
        super().__init__("gelan")
        self.cv1 = Conv(c1, c3, 1)
        self.cv2 = nn.Sequential(RepNCSP(c3 // 2, c4, n, train), Conv(c4, c4, 3))
        self.cv3 = nn.Sequential(RepNCSP(c4, c4, n, train), Conv(c4, c4, 3))
        self.cv4 = Conv(c3 + 2 * c4, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.append(self.cv2(y[-1]))
        y.append(self.cv3(y[-1]))
        return self.cv4(torch.cat(y, 1))


class ADown(Block):
    """avg-pool 2 s1 → split: ``cv1`` 3×3 s2 ‖ maxpool 3 s2 → ``cv2`` 1×1; cat."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__("adown")
        c = c2 // 2
        self.cv1 = Conv(c1 // 2, c, 3, 2, 1)
        self.cv2 = Conv(c1 // 2, c, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2, 1, 0, False, True)
        x1, x2 = x.chunk(2, 1)
        return torch.cat((self.cv1(x1), self.cv2(F.max_pool2d(x2, 3, 2, 1))), 1)


class SPPELAN(Block):
    """``cv1`` 1×1 → three chained maxpool 5 → cat of the 4 taps → ``cv5`` 1×1."""

    def __init__(self, c1: int, c2: int, c3: int) -> None:
        super().__init__("sppelan")
        self.cv1 = Conv(c1, c3, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.cv5 = Conv(4 * c3, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv5(torch.cat(y, 1))


class TopDown(Block):
    """One FPN merge (gelan-c layers 10–11, 13–14): nearest ×2, cat ``[upsampled, lateral]``."""

    def __init__(self) -> None:
        super().__init__("fpn")
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.up(coarse), lateral), 1)


class BottomUp(Block):
    """One PAN merge (gelan-c layers 16–17, 19–20): ADown, cat ``[down-sampled, top-down]``
    (the ``adown`` nests in the ``pan``)."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__("pan")
        self.down = ADown(c1, c2)

    def forward(self, fine: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.down(fine), top), 1)


class DecoupledHead(Block):
    """One level of DDetect: box branch ``cv2`` (to 4×16 bins) ‖ class branch ``cv3``, cat."""

    def __init__(self, c1: int, c2: int, c3: int, nc: int = NC) -> None:
        super().__init__("decoupled_head")
        self.cv2 = nn.Sequential(
            Conv(c1, c2, 3), Conv(c2, c2, 3, g=4), nn.Conv2d(c2, 4 * REG_MAX, 1, groups=4)
        )
        self.cv3 = nn.Sequential(Conv(c1, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.cv2(x), self.cv3(x)), 1)


class DFL(Block):
    """Distribution focal loss decode: ``(b, 64, a)`` → ``(b, 4, 16, a)`` → softmax over the 16
    bins → fixed 1×1 conv with weights 0..15 → ``(b, 4, a)``.

    The fixed weights are a buffer, not an ``nn.Conv2d`` parameter: the zoo's seeded
    initialisation rewrites every ``nn.Conv2d`` weight, and a buffer also carries no gradient
    (the official conv has ``requires_grad=False``). It exports as the same Conv node.
    """

    def __init__(self, c1: int = REG_MAX) -> None:
        super().__init__("dfl")
        self.c1 = c1
        self.register_buffer("weight", torch.arange(c1, dtype=torch.float32).view(1, c1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape
        y = x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)
        return F.conv2d(y, self.weight).view(b, 4, a)


class _Head(nn.Module):
    """DDetect body shared by the main head (a plain module) and the auxiliary head (an
    ``aux_head`` block): three decoupled levels, DFL, and the constant-anchor decode."""

    def _init_head(self, chs: Sequence[int], c2: int, c3: int, imgsz: int) -> None:
        self.levels = nn.ModuleList(DecoupledHead(c, c2, c3) for c in chs)
        self.dfl = DFL()
        points, strides = [], []
        for s in STRIDES:
            n = imgsz // s
            ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
            points.append(torch.stack((xs, ys), 0).view(2, -1))
            strides.append(torch.full((1, n * n), float(s)))
        self.register_buffer("anchors", torch.cat(points, 1).unsqueeze(0), persistent=False)
        self.register_buffer("strides", torch.cat(strides, 1), persistent=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        xs = [level(x) for level, x in zip(self.levels, feats, strict=True)]
        b, no = xs[0].shape[:2]
        box, cls = torch.cat([x.view(b, no, -1) for x in xs], 2).split((4 * REG_MAX, NC), 1)
        lt, rb = self.dfl(box).chunk(2, 1)  # dist2bbox, xywh
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class DDetect(_Head):
    """The main (deploy) detection head."""

    def __init__(self, chs: Sequence[int], c2: int, c3: int, imgsz: int) -> None:
        super().__init__()
        self._init_head(chs, c2, c3, imgsz)


class AuxDDetect(_Head, Block):
    """The auxiliary head of DualDDetect (its ``cv2``/``cv3``/``dfl``), one graph output."""

    def __init__(self, chs: Sequence[int], c2: int, c3: int, imgsz: int) -> None:
        Block.__init__(self, "aux_head")
        self._init_head(chs, c2, c3, imgsz)


class CBLinear(nn.Module):
    """A biased 1×1 conv (no BN, no activation) whose output is split into ``c2s`` chunks."""

    def __init__(self, c1: int, c2s: Sequence[int]) -> None:
        super().__init__()
        self.c2s = list(c2s)
        self.conv = nn.Conv2d(c1, sum(c2s), 1, 1, 0, bias=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.conv(x).split(self.c2s, dim=1)


class CBFuse(nn.Module):
    """Nearest resize of chunk ``idx[i]`` of each CBLinear output to the last input's size,
    stacked with it and summed (``ReduceSum`` over the stack, as the official code does)."""

    def __init__(self, idx: Sequence[int]) -> None:
        super().__init__()
        self.idx = list(idx)

    def forward(self, chunks: list[tuple[torch.Tensor, ...]], x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        res = [F.interpolate(c[i], size=size, mode="nearest") for i, c in zip(self.idx, chunks, strict=True)]
        return torch.sum(torch.stack([*res, x]), dim=0)


def head_widths(c_first: int, width: float) -> tuple[int, int]:
    """DDetect's hidden widths at full width, ``max(ch0 // 4, 64, 16)`` (box) and
    ``max(ch0, min(2·nc, 128))`` (class), then scaled like every other layer."""
    c2 = max(c_first // 4, 4 * REG_MAX, 16)
    c3 = max(c_first, min(2 * NC, 128))
    return scaled(c2, width), scaled(c3, width)


class YOLOv9(nn.Module):
    """gelan-c main branch (``train=False``: deploy, RepConvN fused), or yolov9-c with the PGI
    auxiliary branch and unfused RepConvN (``train=True``)."""

    def __init__(self, width: float, imgsz: int, train: bool = False) -> None:
        super().__init__()
        self.train_form = train

        def c(n: int) -> int:
            return scaled(n, width)

        def gelan(c1: int, c2: int, c3: int, c4: int) -> GELAN:
            """RepNCSPELAN4 with the config's (c2, c3, c4) scaled; ``c1`` is already scaled.
            Concatenated inputs are sums of their parts (rounding is not additive)."""
            return GELAN(c1, c(c2), c(c3), c(c4), 1, train)

        self.model = nn.ModuleDict({
            "0": Conv(3, c(64), 3, 2),
            "1": Conv(c(64), c(128), 3, 2),
            "2": gelan(c(128), 256, 128, 64),
            "3": ADown(c(256), c(256)),
            "4": gelan(c(256), 512, 256, 128),  # P3
            "5": ADown(c(512), c(512)),
            "6": gelan(c(512), 512, 512, 256),  # P4
            "7": ADown(c(512), c(512)),
            "8": gelan(c(512), 512, 512, 256),  # P5
            "9": SPPELAN(c(512), c(512), c(256)),
            "10": TopDown(),  # 10–11
            "12": gelan(c(512) + c(512), 512, 512, 256),
            "13": TopDown(),  # 13–14
            "15": gelan(c(512) + c(512), 256, 256, 128),  # P3 out
            "16": BottomUp(c(256), c(256)),  # 16–17
            "18": gelan(c(256) + c(512), 512, 512, 256),  # P4 out
            "19": BottomUp(c(512), c(512)),  # 19–20
            "21": gelan(c(512) + c(512), 512, 512, 256),  # P5 out
            "22": DDetect((c(256), c(512), c(512)), *head_widths(256, width), imgsz),
        })
        if train:
            self.aux = Marker(
                "pgi",
                **{
                    "23": CBLinear(c(512), [c(256)]),
                    "24": CBLinear(c(512), [c(256), c(512)]),
                    "25": CBLinear(c(512), [c(256), c(512), c(512)]),
                    "26": Conv(3, c(64), 3, 2),
                    "27": Conv(c(64), c(128), 3, 2),
                    "28": gelan(c(128), 256, 128, 64),
                    "29": ADown(c(256), c(256)),
                    "30": CBFuse([0, 0, 0]),
                    "31": gelan(c(256), 512, 256, 128),
                    "32": ADown(c(512), c(512)),
                    "33": CBFuse([1, 1]),
                    "34": gelan(c(512), 512, 512, 256),
                    "35": ADown(c(512), c(512)),
                    "36": CBFuse([2]),
                    "37": gelan(c(512), 512, 512, 256),
                    "38": AuxDDetect((c(512), c(512), c(512)), *head_widths(512, width), imgsz),
                },
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        b2 = m["2"](m["1"](m["0"](x)))
        b4 = m["4"](m["3"](b2))
        b6 = m["6"](m["5"](b4))
        b8 = m["8"](m["7"](b6))
        n9 = m["9"](b8)
        n12 = m["12"](m["10"](n9, b6))
        n15 = m["15"](m["13"](n12, b4))
        n18 = m["18"](m["16"](n15, n12))
        n21 = m["21"](m["19"](n18, n9))
        main = m["22"]([n15, n18, n21])
        if not self.train_form:
            return main
        a = dict(self.aux.named_children())
        cb23, cb24, cb25 = a["23"](b4), a["24"](b6), a["25"](b8)
        y = a["29"](a["28"](a["27"](a["26"](x))))
        a31 = a["31"](a["30"]([cb23, cb24, cb25], y))
        a34 = a["34"](a["33"]([cb24, cb25], a["32"](a31)))
        a37 = a["37"](a["36"]([cb25], a["35"](a34)))
        return a["38"]([a31, a34, a37]), main


def build_yolov9c(width: float, imgsz: int) -> nn.Module:
    return YOLOv9(width, imgsz)


def build_yolov9c_train(width: float, imgsz: int) -> nn.Module:
    return YOLOv9(width, imgsz, train=True)


WIDTH = 0.125
IMGSZ = 320

register(ZooSpec(
    name="yolov9c", generation="v9", scale="c", form="deploy", width=WIDTH, imgsz=IMGSZ,
    builder=build_yolov9c, output_names=("output0",), seed=9001,
    notes=(
        "gelan-c.yaml (= converted yolov9-c) at full depth: 8 RepNCSPELAN4 (RepConvN fused), "
        "5 ADown, SPPELAN, 2 FPN + 2 PAN, DDetect + DFL; decoded output (1, 84, N)"
    ),
))

register(ZooSpec(
    name="yolov9c-train", generation="v9", scale="c", form="training", width=WIDTH, imgsz=IMGSZ,
    builder=build_yolov9c_train, output_names=("output0", "output1"),
    auxiliary_outputs=("output0",), seed=9002,
    notes=(
        "yolov9-c.yaml with PGI: main branch as yolov9c plus CBLinear x3, a second stem and "
        "backbone from the image, CBFuse x3 and the auxiliary DDetect (first output); every "
        "RepConvN left unfused (repvgg)"
    ),
))
