"""YOLOv10n reference builder, in its training form and its end-to-end deploy form.

Written from the YOLOv10 paper (NMS-free training with consistent dual assignments, the
holistic efficiency/accuracy design: SCDown, CIB, PSA) and the public ``yolov10n.yaml``
configuration; no code is taken from the original implementation.

Forms:

``yolov10n-train``
    Both heads: the one-to-many head (the auxiliary output ``one2many``) and the one-to-one
    head on detached copies of the same features (``one2one``). Each output is decoded like the
    v8 export, ``(1, 4 + nc, N)`` with ``xywh`` boxes in pixels and class sigmoids. The
    large-kernel depth-wise unit of the CIB keeps its two training branches (7×7 ‖ 3×3 → add).
``yolov10n``
    The official end-to-end export: only the one-to-one head, decoded to corner boxes, then
    the NMS-free selection (``ReduceMax → TopK → GatherElements``, ``TopK`` over the flattened
    scores, ``GatherElements`` of the boxes) to ``(1, 300, 6)`` rows
    ``x1, y1, x2, y2, score, class``. No NMS op. The large-kernel unit is fused to one 7×7.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from graphpath.zoo.common import Block, Conv, ZooSpec, register
from graphpath.zoo.ultralytics import (
    DFL,
    NC,
    SPPF,
    STRIDES,
    Attention,
    C2f,
    LayerModel,
    MergeConcat,
    Residual,
    Source,
    channels,
    decode,
    dims,
    head_levels,
    repeats,
)

#: ``yolov10n.yaml`` scale ``n``: depth, width, max_channels.
V10_N = (0.33, 0.25, 1024)
#: Detections kept by the end-to-end export.
MAX_DET = 300


class SCDown(Block):
    """Spatial-channel decoupled downsampling: ``conv 1×1`` (channels) → depth-wise ``conv k×k
    stride s`` (space, no activation)."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 2) -> None:
        super().__init__("scdown")
        self.cv1 = Conv(c1, c2, 1, 1)
        self.cv2 = Conv(c2, c2, k, s, g=c2, act="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


class RepVGGDW(Block):
    """The CIB's large-kernel unit in training form: depth-wise 7×7 ‖ depth-wise 3×3 (both
    without activation) → add → SiLU. Structural re-parameterisation folds it into one 7×7, so
    it is a ``repvgg`` block only here (the deploy form builds the fused conv instead)."""

    def __init__(self, c: int) -> None:
        super().__init__("repvgg")
        self.conv = Conv(c, c, 7, 1, 3, g=c, act="none")
        self.conv1 = Conv(c, c, 3, 1, 1, g=c, act="none")
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x) + self.conv1(x))


def _cib_units(c1: int, c2: int, e: float, lk: bool, deploy: bool) -> nn.Sequential:
    """The CIB's five units: dw 3×3, 1×1 to ``2c_``, dw 3×3 (or the large-kernel unit), 1×1 to
    ``c2``, dw 3×3."""
    c_ = int(c2 * e)
    if not lk:
        mid: nn.Module = Conv(2 * c_, 2 * c_, 3, g=2 * c_)
    elif deploy:
        mid = Conv(2 * c_, 2 * c_, 7, 1, 3, g=2 * c_)
    else:
        mid = RepVGGDW(2 * c_)
    return nn.Sequential(
        Conv(c1, c1, 3, g=c1), Conv(c1, 2 * c_, 1), mid, Conv(2 * c_, c2, 1), Conv(c2, c2, 3, g=c2)
    )


class ResidualCIB(Block):
    """Compact inverted block with its identity shortcut: one ``residual`` block."""

    def __init__(self, c1: int, c2: int, e: float, lk: bool, deploy: bool) -> None:
        super().__init__("residual")
        self.cv1 = _cib_units(c1, c2, e, lk, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv1(x)


class PlainCIB(nn.Module):
    """Compact inverted block without a shortcut: no block of its own."""

    def __init__(self, c1: int, c2: int, e: float, lk: bool, deploy: bool) -> None:
        super().__init__()
        self.cv1 = _cib_units(c1, c2, e, lk, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv1(x)


def CIB(
    c1: int, c2: int, shortcut: bool = True, e: float = 0.5, lk: bool = False, deploy: bool = False,
) -> nn.Module:
    """A compact inverted block; it adds ``x`` (a ``residual`` block) only with ``shortcut`` on
    and equal widths."""
    if shortcut and c1 == c2:
        return ResidualCIB(c1, c2, e, lk, deploy)
    return PlainCIB(c1, c2, e, lk, deploy)


class C2fCIB(C2f):
    """C2f whose chained units are CIBs (``e=1``), optionally with the large-kernel unit."""

    kind = "c2fcib"

    def __init__(
        self, c1: int, c2: int, n: int = 1, shortcut: bool = False, lk: bool = False, g: int = 1,
        e: float = 0.5, deploy: bool = False,
    ) -> None:
        super().__init__(c1, c2, n, shortcut, g, e)
        self.m = nn.ModuleList(CIB(self.c, self.c, shortcut, e=1.0, lk=lk, deploy=deploy) for _ in range(n))


class PSA(Block):
    """Partial self-attention: ``conv 1×1 → split in 2``; one half → multi-head attention with a
    residual add → feed-forward (1×1 to 2c, 1×1 back, no activation) with a residual add; Concat
    with the untouched half → ``conv 1×1``. Heads: ``c / 64`` (at least 1), key width half the
    head width."""

    def __init__(self, c1: int, c2: int, e: float = 0.5) -> None:
        super().__init__("psa")
        if c1 != c2:
            raise ValueError("PSA keeps its width")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.attn = Residual(Attention(self.c, num_heads=max(self.c // 64, 1), attn_ratio=0.5))
        self.ffn = Residual(nn.Sequential(Conv(self.c, 2 * self.c, 1), Conv(2 * self.c, self.c, 1, act="none")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), 1)
        b = self.ffn(self.attn(b))
        return self.cv2(torch.cat((a, b), 1))


class HeadBranch(Block):
    """One of v10's two heads (``aux_head`` for the one-to-many head, ``one2one_head`` for the
    NMS-free one): a decoupled head per level with the depth-wise class branch, and its DFL."""

    def __init__(self, kind: str, nc: int, ch: tuple[int, ...], reg_max: int = 16, xywh: bool = True) -> None:
        super().__init__(kind)
        self.xywh = xywh
        self.level = head_levels(nc, ch, reg_max, legacy=False)
        self.dfl = DFL(reg_max)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return decode(self.level, self.dfl, feats, STRIDES, xywh=self.xywh)


def select_topk(y: torch.Tensor, nc: int, max_det: int = MAX_DET) -> torch.Tensor:
    """NMS-free selection of the end-to-end export: the ``max_det`` anchors with the best class
    score, then the best ``max_det`` (anchor, class) pairs among them.

    ``y`` is ``(b, 4 + nc, N)`` with corner boxes; returns ``(b, max_det, 6)`` rows
    ``x1, y1, x2, y2, score, class``.
    """
    preds = y.transpose(1, 2)
    k = min(max_det, dims(preds)[1])
    boxes, scores = preds.split((4, nc), dim=-1)
    index = scores.amax(dim=-1).topk(k)[1].unsqueeze(-1)
    boxes = boxes.gather(1, index.repeat(1, 1, 4))
    scores = scores.gather(1, index.repeat(1, 1, nc))
    scores, index = scores.flatten(1).topk(k)
    boxes = boxes.gather(1, (index // nc).unsqueeze(-1).repeat(1, 1, 4))
    return torch.cat((boxes, scores.unsqueeze(-1), (index % nc).unsqueeze(-1).float()), -1)


class V10Detect(nn.Module):
    """v10's head. Training form: ``(one2many, one2one)``, the one-to-one head reading detached
    copies of the features (a no-op in the exported graph). Deploy form: the one-to-one head
    only, followed by :func:`select_topk`."""

    def __init__(self, nc: int, ch: tuple[int, ...], training_form: bool) -> None:
        super().__init__()
        self.nc = nc
        self.training_form = training_form
        if training_form:
            self.one2many = HeadBranch("aux_head", nc, ch)
        self.one2one = HeadBranch("one2one_head", nc, ch, xywh=training_form)
        if training_form:
            # The original shares one DFL between both heads. Sharing the fixed weight tensor
            # keeps that in the graph (one initializer, two Conv readers) while each head keeps
            # its own ``dfl`` block; two equal copies would be aliased through an Identity.
            self.one2one.dfl.weight = self.one2many.dfl.weight

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.training_form:
            return self.one2many(feats), self.one2one([f.detach() for f in feats])
        return select_topk(self.one2one(feats), self.nc)


def yolov10(width: float, imgsz: int, training_form: bool, nc: int = NC, depth: float = V10_N[0]) -> LayerModel:
    """YOLOv10 from ``yolov10n.yaml``: backbone Conv 64/3/2, Conv 128/3/2, C2f×3 128 (shortcut),
    Conv 256/3/2, C2f×6 256, SCDown 512/3/2, C2f×6 512, SCDown 1024/3/2, C2f×3 1024, SPPF 1024
    k5, PSA 1024; head: upsample + cat P4 → C2f×3 512 (13), upsample + cat P3 → C2f×3 256 (16,
    P3 out), Conv 256/3/2 + cat 13 → C2f×3 512 (19, P4 out), SCDown 512/3/2 + cat 10 →
    C2fCIB×3 1024 shortcut, large kernel (22, P5 out), v10Detect on 16, 19, 22. Repeats scaled
    by ``depth`` (n: 1, 2, 2, 1 in the backbone, 1 in the head), channels by ``width``.
    """
    del imgsz
    deploy = not training_form
    c = [channels(v, width, V10_N[2]) for v in (64, 128, 256, 512, 1024)]
    n3, n6 = repeats(3, depth), repeats(6, depth)
    layers: list[tuple[Source, nn.Module]] = [
        (-1, Conv(3, c[0], 3, 2)),  # 0 P1/2
        (-1, Conv(c[0], c[1], 3, 2)),  # 1 P2/4
        (-1, C2f(c[1], c[1], n3, shortcut=True)),  # 2
        (-1, Conv(c[1], c[2], 3, 2)),  # 3 P3/8
        (-1, C2f(c[2], c[2], n6, shortcut=True)),  # 4
        (-1, SCDown(c[2], c[3], 3, 2)),  # 5 P4/16
        (-1, C2f(c[3], c[3], n6, shortcut=True)),  # 6
        (-1, SCDown(c[3], c[4], 3, 2)),  # 7 P5/32
        (-1, C2f(c[4], c[4], n3, shortcut=True)),  # 8
        (-1, SPPF(c[4], c[4], 5)),  # 9
        (-1, PSA(c[4], c[4])),  # 10
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 11
        ((-1, 6), MergeConcat("fpn")),  # 12
        (-1, C2f(c[4] + c[3], c[3], n3)),  # 13
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 14
        ((-1, 4), MergeConcat("fpn")),  # 15
        (-1, C2f(c[3] + c[2], c[2], n3)),  # 16 P3 out
        (-1, Conv(c[2], c[2], 3, 2)),  # 17
        ((-1, 13), MergeConcat("pan")),  # 18
        (-1, C2f(c[2] + c[3], c[3], n3)),  # 19 P4 out
        (-1, SCDown(c[3], c[3], 3, 2)),  # 20
        ((-1, 10), MergeConcat("pan")),  # 21
        (-1, C2fCIB(c[3] + c[4], c[4], n3, shortcut=True, lk=True, deploy=deploy)),  # 22 P5 out
        ((16, 19, 22), V10Detect(nc, (c[2], c[3], c[4]), training_form)),  # 23
    ]
    return LayerModel(layers)


def _yolov10n_deploy(width: float, imgsz: int) -> nn.Module:
    return yolov10(width, imgsz, training_form=False)


def _yolov10n_train(width: float, imgsz: int) -> nn.Module:
    return yolov10(width, imgsz, training_form=True)


#: The official n width (0.25) exports ~9 MB deploy / ~11 MB training, over the zoo's 4 MB
#: limit per file; depth and wiring stay the official n ones.
V10N_ZOO_WIDTH = 0.1

_WIDTH_NOTE = (
    "yolov10n.yaml at n depth (0.33); width 0.1 of the config channels (8/16/32/56/104) instead "
    "of the official 0.25 (16/32/64/128/256) to stay under 4 MB."
)

register(
    ZooSpec(
        name="yolov10n",
        generation="v10",
        scale="n",
        form="deploy",
        width=V10N_ZOO_WIDTH,
        imgsz=320,
        builder=_yolov10n_deploy,
        output_names=("output0",),
        seed=10001,
        notes=_WIDTH_NOTE + (
            " End-to-end export: one-to-one head only, corner boxes, ReduceMax/TopK/"
            "GatherElements selection to (1, 300, 6) = x1 y1 x2 y2 score class; no NMS op; "
            "the CIB's 7x7 || 3x3 depth-wise unit fused to one 7x7."
        ),
    )
)

register(
    ZooSpec(
        name="yolov10n-train",
        generation="v10",
        scale="n",
        form="training",
        width=V10N_ZOO_WIDTH,
        imgsz=320,
        builder=_yolov10n_train,
        output_names=("one2many", "one2one"),
        auxiliary_outputs=("one2many",),
        seed=10002,
        notes=_WIDTH_NOTE + (
            " Training form: one-to-many head (auxiliary output one2many) and one-to-one head "
            "on detached features (one2one), each decoded to (1, 84, N) xywh + sigmoids; the "
            "CIB's large-kernel unit keeps its 7x7 || 3x3 branches (counted as repvgg)."
        ),
    )
)
