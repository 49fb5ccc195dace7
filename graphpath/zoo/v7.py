"""YOLOv7 reference builders: the base model (``yolov7``) and an E-ELAN variant (``yolov7-e-elan``).

Written from the YOLOv7 paper (arXiv 2207.02696) and the layer table of the official
``cfg/deploy/yolov7.yaml`` (depth and wiring at full depth; width scaled down):

* stem: conv 3×3 (32) → conv 3×3 s2 (64) → conv 3×3 (64) → conv 3×3 s2 (128), official
  layers 0–3, a run of four weighted units (one ``plain_stage``);
* four backbone ELANs (layers 4–11, 17–24, 30–37, 43–50): ``conv 1×1`` ‖ ``conv 1×1 → four
  conv 3×3``; cat of the taps ``[-1, -3, -5, -6]`` (last 3×3, second 3×3, the chain's 1×1, the
  bypass 1×1) → conv 1×1;
* three MP down-sampling blocks (12–16, 25–29, 38–42): ``maxpool 2 s2 → conv 1×1`` ‖
  ``conv 1×1 → conv 3×3 s2``, cat ``[conv branch, pool branch]``;
* SPPCSPC (51): ``cv1 → cv3 3×3 → cv4`` → maxpool 5 ‖ 9 ‖ 13 + identity → cat → ``cv5 → cv6
  3×3``, cat with the bypass ``cv2`` → ``cv7``;
* PAN neck: two top-down merges (52–55, 64–67: 1×1 on the coarse feature → nearest ×2, 1×1
  lateral on the backbone feature, cat ``[lateral, upsampled]``), two bottom-up merges (76–80,
  89–93: an MP block whose cat also takes the top-down feature, one 3-input Concat), and four
  ELAN-W blocks (56–63, 68–75, 81–88, 94–101: cat of all six taps, the 3×3 chain at half width);
* RepConv 3×3 (102–104) before each of the three coupled anchor heads (105, one 1×1 conv with
  3 × (5 + 80) = 255 channels per level). Deploy form: each RepConv is fused into one 3×3 conv,
  so no ``repvgg`` is counted.

The forward returns the decoded, concatenated predictions ``(1, N, 85)`` the way the official
``export.py --grid`` writes them: per level sigmoid → split (xy, wh, conf) → ``xy·2s + s·(grid
− 0.5)`` and ``wh²·4·anchor`` with constant grids → cat → reshape; one cat over the levels.

Module keys are the official index of each block's first layer, so exported scopes read
``model.102`` for the first RepConv and ``model.4.cv1`` for the first ELAN's bypass conv.
nc = 80 (the training config and released weights; the deploy yaml in the repository says 1).

Width: every channel count of the config × 0.08, rounded up to a multiple of 8 (at least 8), to
keep the whole zoo under 40 MB; v7 has no identity shortcuts, so rounding changes no wiring. Export (320², opset 17): 92 Conv, 21 Concat
(17 of the config + 4 in the decode), 8 MaxPool, no data Add — the official deploy export's
numbers. ``yolov7-e-elan`` adds 28 Conv, 4 Concat and 4 data Add (the pair sums).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from graphpath.zoo.common import Block, Conv, ZooSpec, register, scaled

#: Anchors of ``yolov7.yaml`` (pixels), one row of three (w, h) pairs per level P3, P4, P5.
ANCHORS = (
    (12, 16, 19, 36, 40, 28),
    (36, 75, 76, 55, 72, 146),
    (142, 110, 192, 243, 459, 401),
)
STRIDES = (8, 16, 32)
NC = 80


class Stem(Block):
    """Official layers 0–3: four chained convs, no fork or merge (a ``plain_stage``)."""

    def __init__(self, c0: int, c1: int, c2: int) -> None:
        super().__init__("plain_stage")
        self.conv0 = Conv(3, c0, 3, 1)
        self.conv1 = Conv(c0, c1, 3, 2)
        self.conv2 = Conv(c1, c1, 3, 1)
        self.conv3 = Conv(c1, c2, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(self.conv0(x))))


class ELAN(Block):
    """ELAN computational block: ``cv1`` (bypass 1×1) ‖ ``cv2`` (1×1) → ``m`` (four 3×3).

    ``wide=False`` is the backbone ELAN (cat of ``[-1, -3, -5, -6]``: 4 taps); ``wide=True`` is
    the neck's ELAN-W (cat of all six taps ``[-1 … -6]``). ``cv3`` is the 1×1 after the cat.
    """

    def __init__(self, c1: int, c_: int, ch: int, c2: int, wide: bool = False) -> None:
        super().__init__("elan")
        self.wide = wide
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.m = nn.ModuleList(Conv(c_ if i == 0 else ch, ch, 3) for i in range(4))
        taps = 2 * c_ + (4 if wide else 2) * ch
        self.cv3 = Conv(taps, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bypass = self.cv1(x)
        chain = [self.cv2(x)]
        for conv in self.m:
            chain.append(conv(chain[-1]))
        if self.wide:  # [-1, -2, -3, -4, -5, -6]
            taps = [*reversed(chain), bypass]
        else:  # [-1, -3, -5, -6]: last 3×3, second 3×3, the chain's 1×1, the bypass
            taps = [chain[4], chain[2], chain[0], bypass]
        return self.cv3(torch.cat(taps, 1))


class EELAN(Block):
    """E-ELAN as in the e6e configs: two ELAN computational blocks on the same input, outputs
    summed (the official ``Shortcut`` layer after each pair)."""

    def __init__(self, c1: int, c_: int, c2: int) -> None:
        super().__init__("e_elan")
        self.a = ELAN(c1, c_, c_, c2)
        self.b = ELAN(c1, c_, c_, c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


class MP(Block):
    """MP down-sampling: ``pool → cv1`` ‖ ``cv2 → cv3 (3×3 s2)``, cat ``[cv3, cv1, *extra]``.

    In the neck the same Concat also takes the top-down feature (``[-1, -3, 63]`` in the
    config), which ``extra`` carries.
    """

    def __init__(self, c1: int, c_: int) -> None:
        super().__init__("mp")
        self.pool = nn.MaxPool2d(2, 2)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(c_, c_, 3, 2)

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cv3(self.cv2(x)), self.cv1(self.pool(x)), *extra], 1)


class SPPCSPC(Block):
    """SPP inside a CSP split (official layer 51), hidden width ``c_ = c2``."""

    def __init__(self, c1: int, c2: int, k: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__("sppcspc")
        c_ = c2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(c_, c_, 3)
        self.cv4 = Conv(c_, c_, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(x, 1, x // 2) for x in k)
        self.cv5 = Conv(4 * c_, c_, 1)
        self.cv6 = Conv(c_, c_, 3)
        self.cv7 = Conv(2 * c_, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv4(self.cv3(self.cv1(x)))
        y = self.cv6(self.cv5(torch.cat([y, *(m(y) for m in self.m)], 1)))
        return self.cv7(torch.cat([y, self.cv2(x)], 1))


class TopDown(Block):
    """One FPN merge (layers 52–55 / 64–67): ``cv`` 1×1 on the coarse feature → nearest ×2;
    ``lateral`` 1×1 on the backbone feature; cat ``[lateral, upsampled]``."""

    def __init__(self, c_coarse: int, c_fine: int, c: int) -> None:
        super().__init__("fpn")
        self.cv = Conv(c_coarse, c, 1)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.lateral = Conv(c_fine, c, 1)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.lateral(fine), self.up(self.cv(coarse))], 1)


class BottomUp(Block):
    """One PAN merge (layers 76–80 / 89–93): the MP block down-samples the fine feature and
    its Concat takes the top-down feature as a third input (the ``mp`` nests in the ``pan``)."""

    def __init__(self, c1: int, c_: int) -> None:
        super().__init__("pan")
        self.down = MP(c1, c_)

    def forward(self, fine: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        return self.down(fine, top)


class CoupledHead(Block):
    """One level of the anchor head: a 1×1 conv to ``anchors × (5 + nc)`` channels."""

    def __init__(self, c1: int, no: int) -> None:
        super().__init__("coupled_head")
        self.conv = nn.Conv2d(c1, no, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Detect(nn.Module):
    """Official layer 105 in its export form: three coupled heads and the constant-grid
    decode of ``export.py --grid``; returns ``(1, Σ 3·ny·nx, 85)``."""

    def __init__(self, chs: tuple[int, ...], imgsz: int, nc: int = NC) -> None:
        super().__init__()
        self.na, self.no = 3, nc + 5
        self.m = nn.ModuleList(CoupledHead(c, self.na * self.no) for c in chs)
        for i, (stride, anchors) in enumerate(zip(STRIDES, ANCHORS, strict=True)):
            n = imgsz // stride
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            grid = torch.stack((xs, ys), 2).view(1, 1, n, n, 2).float()
            wh = torch.tensor(anchors, dtype=torch.float32).view(1, self.na, 1, 1, 2)
            # The export's folded constants: xy·(2s) + s·(grid − 0.5) and wh²·(4·anchor).
            self.register_buffer(f"xy_offset{i}", stride * (grid - 0.5), persistent=False)
            self.register_buffer(f"wh_scale{i}", 4.0 * wh.expand(1, self.na, n, n, 2).clone(), persistent=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        z = []
        for i, (head, x) in enumerate(zip(self.m, feats, strict=True)):
            x = head(x)
            bs, _, ny, nx = x.shape
            y = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            xy, wh, conf = y.split((2, 2, self.no - 4), 4)
            xy = xy * (2.0 * STRIDES[i]) + getattr(self, f"xy_offset{i}")
            wh = wh**2 * getattr(self, f"wh_scale{i}")
            z.append(torch.cat((xy, wh, conf), 4).view(bs, -1, self.no))
        return torch.cat(z, 1)


class YOLOv7(nn.Module):
    """YOLOv7 (deploy form) at width factor ``width``; ``e_elan=True`` swaps each backbone
    ELAN for an E-ELAN pair (the rest of the base network kept)."""

    def __init__(self, width: float, imgsz: int, e_elan: bool = False) -> None:
        super().__init__()

        def c(n: int) -> int:
            return scaled(n, width)

        # Concatenated inputs are written as the sum of their parts so any width factor
        # stays consistent (rounding to multiples of 8 is not additive).

        def stage(c1: int, c_: int, c2: int) -> nn.Module:
            return EELAN(c1, c_, c2) if e_elan else ELAN(c1, c_, c_, c2)

        layers: dict[str, nn.Module] = {
            "0": Stem(c(32), c(64), c(128)),
            "4": stage(c(128), c(64), c(256)),
            "12": MP(c(256), c(128)),
            "17": stage(2 * c(128), c(128), c(512)),  # P3
            "25": MP(c(512), c(256)),
            "30": stage(2 * c(256), c(256), c(1024)),  # P4
            "38": MP(c(1024), c(512)),
            "43": stage(2 * c(512), c(256), c(1024)),  # P5
            "51": SPPCSPC(c(1024), c(512)),
            "52": TopDown(c(512), c(1024), c(256)),
            "56": ELAN(2 * c(256), c(256), c(128), c(256), wide=True),  # 63
            "64": TopDown(c(256), c(512), c(128)),
            "68": ELAN(2 * c(128), c(128), c(64), c(128), wide=True),  # 75
            "76": BottomUp(c(128), c(128)),
            "81": ELAN(2 * c(128) + c(256), c(256), c(128), c(256), wide=True),  # 88
            "89": BottomUp(c(256), c(256)),
            "94": ELAN(2 * c(256) + c(512), c(512), c(256), c(512), wide=True),  # 101
            # RepConv in deploy form: one fused 3×3 conv each.
            "102": Conv(c(128), c(256), 3),
            "103": Conv(c(256), c(512), 3),
            "104": Conv(c(512), c(1024), 3),
        }
        layers["105"] = Detect((c(256), c(512), c(1024)), imgsz)
        self.model = nn.ModuleDict(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m["4"](m["0"](x))
        p3 = m["17"](m["12"](x))
        p4 = m["30"](m["25"](p3))
        p5 = m["43"](m["38"](p4))
        s51 = m["51"](p5)
        n63 = m["56"](m["52"](s51, p4))
        n75 = m["68"](m["64"](n63, p3))
        n88 = m["81"](m["76"](n75, n63))
        n101 = m["94"](m["89"](n88, s51))
        return m["105"]([m["102"](n75), m["103"](n88), m["104"](n101)])


def build_yolov7(width: float, imgsz: int) -> nn.Module:
    return YOLOv7(width, imgsz)


def build_yolov7_e_elan(width: float, imgsz: int) -> nn.Module:
    return YOLOv7(width, imgsz, e_elan=True)


WIDTH = 0.08
IMGSZ = 320

register(ZooSpec(
    name="yolov7", generation="v7", scale="base", form="deploy", width=WIDTH, imgsz=IMGSZ,
    builder=build_yolov7, output_names=("output0",), seed=7001,
    notes=(
        "yolov7.yaml deploy form at full depth: 4-conv stem, 4 ELAN (4 taps), 3 MP, SPPCSPC, "
        "2 FPN + 2 PAN (MP cat with the top-down feature), 4 ELAN-W (6 taps), fused RepConv, "
        "3 coupled anchor heads; decoded output as export.py --grid"
    ),
))

register(ZooSpec(
    name="yolov7-e-elan", generation="v7", scale="e6e", form="deploy", width=WIDTH, imgsz=IMGSZ,
    builder=build_yolov7_e_elan, output_names=("output0",), seed=7002,
    notes=(
        "yolov7 base with each backbone ELAN replaced by an E-ELAN pair (two ELANs on one input, "
        "outputs added, as the e6e configs' Shortcut); e6e's ReOrg stem, DownC, P6 level and "
        "paired neck ELANs are not reproduced"
    ),
))
