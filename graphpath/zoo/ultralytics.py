"""Ultralytics-style building blocks and the YOLOv8n reference builder.

The shared modules (:func:`Bottleneck`, :class:`C2f`, :class:`SPPF`, :class:`DFL`,
:class:`Detect`, :class:`Attention`, :class:`Residual`) are also used by the v10, YOLO11 and
YOLO12 builders. Every layer lives in a ``model`` :class:`~torch.nn.ModuleList`, as in the
official models, so TorchScript names read ``/model.2/cv1/conv/Conv``.

Written from the YOLOv8 configuration (``yolov8.yaml``) and the public description of its
modules; no code is taken from the original implementation.

Output of the exported detectors (like the official ONNX export without NMS): one tensor
``(1, 4 + nc, N)`` where ``N`` is the number of grid cells over the three levels; rows 0..3 are
the DFL-decoded box (centre x, centre y, width, height in input pixels) and the rest are class
scores after a sigmoid.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from graphpath.zoo.common import Block, Conv, ZooSpec, register, scaled

#: Detection levels of the P3/P4/P5 heads and their strides.
STRIDES = (8, 16, 32)
NC = 80


# --------------------------------------------------------------------------- scaling helpers


def repeats(n: int, depth: float) -> int:
    """A config's repeat count at a depth multiple (``n`` scale: 0.33), at least 1.

    >>> repeats(3, 0.33), repeats(6, 0.33)
    (1, 2)
    """
    return max(round(n * depth), 1) if n > 1 else n


def channels(c: int, width: float, max_channels: int = 1024) -> int:
    """A config's channel count at a width multiple, capped at ``max_channels`` first, then
    rounded up to a multiple of 8 (ultralytics' rule).

    >>> channels(1024, 0.25), channels(512, 0.1)
    (256, 56)
    """
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be a positive number, not {width}")
    return scaled(min(c, max_channels), width)


def dims(t: torch.Tensor) -> tuple[int, ...]:
    """A tensor's shape as plain ints.

    Under the TorchScript tracer shapes are traced values, so a view sized from them exports as
    ``Shape → Gather → Concat → Reshape``. The zoo exports at a fixed input size (as the
    official exports do after their graph simplifier), so the sizes are baked in as constants.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return tuple(int(d) for d in t.shape)


# --------------------------------------------------------------------------- plain layers


class Concat(nn.Module):
    """Channel concatenation of a list of tensors (a layer of its own, as in the configs)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


class MergeConcat(Block):
    """The Concat that closes an FPN (``fpn``) or PAN (``pan``) merge.

    The resize (FPN) or stride-2 downsample (PAN) of the merge is the layer just before it in
    ``model``; the block is recorded on the Concat so its scope is the merge's own layer.
    """

    def __init__(self, kind: str) -> None:
        if kind not in ("fpn", "pan"):
            raise ValueError(f"a merge is 'fpn' or 'pan', not {kind!r}")
        super().__init__(kind)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


class Residual(Block):
    """``x + f(x)`` where ``f`` (``self.m``) holds weighted units: one ``residual`` block.

    Used for the attention and feed-forward adds of PSA-style blocks.
    """

    def __init__(self, m: nn.Module) -> None:
        super().__init__("residual")
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


# --------------------------------------------------------------------------- bottleneck


class _BottleneckBody(nn.Module):
    """``conv k0 → conv k1`` with a hidden width of ``e * c2`` (shared by both bottlenecks)."""

    def __init__(self, c1: int, c2: int, g: int, k: tuple[int, int], e: float) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


class PlainBottleneck(_BottleneckBody):
    """A bottleneck without its shortcut (``shortcut=False`` or ``c1 != c2``): no block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x)


class ResidualBottleneck(Block):
    """A bottleneck with its identity shortcut: one ``residual`` block."""

    def __init__(self, c1: int, c2: int, g: int, k: tuple[int, int], e: float) -> None:
        super().__init__("residual")
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


def Bottleneck(
    c1: int, c2: int, shortcut: bool = True, g: int = 1, k: tuple[int, int] = (3, 3), e: float = 0.5,
) -> nn.Module:
    """The ultralytics bottleneck ``conv k[0] → conv k[1]`` (+ ``x`` when it has a shortcut).

    Only a bottleneck whose shortcut is on and whose input and output widths match adds ``x``,
    so only that one is a ``residual`` block (:class:`ResidualBottleneck`); any other is a
    :class:`PlainBottleneck`.

    >>> type(Bottleneck(16, 16)).__name__, type(Bottleneck(16, 16, shortcut=False)).__name__
    ('ResidualBottleneck', 'PlainBottleneck')
    """
    if shortcut and c1 == c2:
        return ResidualBottleneck(c1, c2, g, k, e)
    return PlainBottleneck(c1, c2, g, k, e)


# --------------------------------------------------------------------------- C2f, SPPF


class C2f(Block):
    """C2f (YOLOv8): ``conv 1×1 → split in 2``; the second half feeds ``n`` chained units; the
    Concat takes both halves and every unit's output (``2 + n`` inputs) → ``conv 1×1``.

    The chained units live in ``self.m``. Subclasses change the kind with the class attribute
    ``kind`` (or the ``kind`` argument) and the unit with :meth:`unit` (C2fCIB, C3k2).
    """

    kind = "c2f"

    def __init__(
        self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5,
        kind: str | None = None,
    ) -> None:
        super().__init__(kind or self.kind)
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(self.unit(self.c, shortcut, g) for _ in range(n))

    def unit(self, c: int, shortcut: bool, g: int) -> nn.Module:
        """One chained unit: in C2f a bottleneck with two 3×3 convs and no width reduction."""
        return Bottleneck(c, c, shortcut, g, k=(3, 3), e=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).split((self.c, self.c), 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(Block):
    """SPPF: ``conv 1×1 (c1/2) → maxpool k → maxpool k → maxpool k``, Concat of the 4 taps →
    ``conv 1×1``."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__("sppf")
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


# --------------------------------------------------------------------------- attention


class Attention(Block):
    """Multi-head self-attention over the feature map's pixels (PSA in v10, C2PSA in YOLO11):
    one 1×1 ``qkv`` conv, ``softmax(qᵀk · scale)``, values weighted, plus a depth-wise 3×3
    positional conv on ``v``, then a 1×1 ``proj``. Keys and queries use ``attn_ratio`` of the
    head width. One ``attention`` block (``MatMul → Softmax → MatMul``)."""

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5) -> None:
        super().__init__("attention")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        hidden = dim + 2 * self.key_dim * num_heads
        self.qkv = Conv(dim, hidden, 1, act="none")
        self.proj = Conv(dim, dim, 1, act="none")
        self.pe = Conv(dim, dim, 3, 1, g=dim, act="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = dims(x)
        n = h * w
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, n)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        out = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


# --------------------------------------------------------------------------- head


class DFL(Block):
    """Distribution focal loss decode: the ``4 × c1`` box bins → softmax over the ``c1`` bins →
    a fixed 1×1 conv with weights ``0 .. c1-1`` (the expected bin) → 4 distances.

    The fixed weights are a buffer, not a parameter, so seeded initialisation leaves them alone.
    """

    def __init__(self, c1: int = 16) -> None:
        super().__init__("dfl")
        self.c1 = c1
        self.register_buffer("weight", torch.arange(c1, dtype=torch.float32).view(1, c1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = dims(x)
        bins = x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)
        return F.conv2d(bins, self.weight).view(b, 4, a)


class DecoupledHead(Block):
    """One detection level's decoupled head: a box branch ``cv2`` (conv 3×3 → conv 3×3 →
    1×1 to ``4 × reg_max``) and a class branch ``cv3`` (conv 3×3 → conv 3×3 → 1×1 to ``nc``;
    with ``legacy=False`` each 3×3 becomes depth-wise 3×3 + 1×1, as in v10 and YOLO11)."""

    def __init__(self, c_in: int, c2: int, c3: int, nc: int, reg_max: int, legacy: bool = True) -> None:
        super().__init__("decoupled_head")
        self.cv2 = nn.Sequential(Conv(c_in, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
        if legacy:
            self.cv3 = nn.Sequential(Conv(c_in, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1))
        else:
            self.cv3 = nn.Sequential(
                nn.Sequential(Conv(c_in, c_in, 3, g=c_in), Conv(c_in, c3, 1)),
                nn.Sequential(Conv(c3, c3, 3, g=c3), Conv(c3, c3, 1)),
                nn.Conv2d(c3, nc, 1),
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cv2(x), self.cv3(x)


def head_levels(nc: int, ch: Sequence[int], reg_max: int = 16, legacy: bool = True) -> nn.ModuleList:
    """One :class:`DecoupledHead` per input level, with ultralytics' branch widths
    ``c2 = max(16, ch[0] / 4, 4 · reg_max)`` and ``c3 = max(ch[0], min(nc, 100))``."""
    c2 = max(16, ch[0] // 4, reg_max * 4)
    c3 = max(ch[0], min(nc, 100))
    return nn.ModuleList(DecoupledHead(c, c2, c3, nc, reg_max, legacy) for c in ch)


def make_anchors(
    feats: Sequence[torch.Tensor], strides: Sequence[int], offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid-cell centres ``(2, N)`` and their strides ``(1, N)`` over all levels."""
    points, strides_out = [], []
    for f, s in zip(feats, strides, strict=True):
        h, w = dims(f)[2:]
        sx = torch.arange(w, dtype=torch.float32) + offset
        sy = torch.arange(h, dtype=torch.float32) + offset
        gy, gx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        strides_out.append(torch.full((h * w, 1), float(s)))
    return torch.cat(points).transpose(0, 1), torch.cat(strides_out).transpose(0, 1)


def decode(
    levels: nn.ModuleList, dfl: DFL, feats: Sequence[torch.Tensor], strides: Sequence[int],
    xywh: bool = True,
) -> torch.Tensor:
    """Run the per-level heads and decode like the official export: box bins and class logits
    flattened and concatenated over the levels, DFL, distances → boxes around the grid-cell
    centres (``xywh`` or corners ``xyxy``) times the stride, sigmoid on the classes.

    Returns ``(b, 4 + nc, N)``.
    """
    outs = [lvl(f) for lvl, f in zip(levels, feats, strict=True)]
    box = torch.cat([o[0].view(*dims(o[0])[:2], -1) for o in outs], 2)
    cls = torch.cat([o[1].view(*dims(o[1])[:2], -1) for o in outs], 2)
    anchors, stride = make_anchors(feats, strides)
    dist = dfl(box)
    lt, rb = dist[:, :2], dist[:, 2:]
    x1y1, x2y2 = anchors - lt, anchors + rb
    if xywh:
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1)
    else:
        dbox = torch.cat((x1y1, x2y2), 1)
    return torch.cat((dbox * stride, cls.sigmoid()), 1)


class Detect(nn.Module):
    """The anchor-free decoupled head of v8 (and of v9–YOLO12 with ``legacy=False`` for the
    depth-wise class branch): one ``decoupled_head`` block per level and one ``dfl`` decode.

    Returns the decoded ``(b, 4 + nc, N)`` tensor (boxes ``xywh`` in pixels, class sigmoids).
    """

    def __init__(
        self, nc: int, ch: Sequence[int], reg_max: int = 16, *, legacy: bool = True,
        strides: Sequence[int] = STRIDES,
    ) -> None:
        super().__init__()
        self.nc, self.reg_max, self.strides = nc, reg_max, tuple(strides)
        self.level = head_levels(nc, ch, reg_max, legacy)
        self.dfl = DFL(reg_max)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return decode(self.level, self.dfl, feats, self.strides)


# --------------------------------------------------------------------------- the model


Source = int | tuple[int, ...]


class LayerModel(nn.Module):
    """Layers in config order in ``model``, each reading the output of the layers named in its
    ``from`` entry (``-1`` the previous one, a tuple for a Concat or the head)."""

    def __init__(self, layers: Sequence[tuple[Source, nn.Module]]) -> None:
        super().__init__()
        self.sources: tuple[Source, ...] = tuple(src for src, _ in layers)
        self.model = nn.ModuleList(m for _, m in layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs: list[torch.Tensor] = []
        for src, m in zip(self.sources, self.model, strict=True):
            if isinstance(src, tuple):
                x = m([x if j == -1 else outs[j] for j in src])
            else:
                x = m(x if src == -1 else outs[src])
            outs.append(x)
        return x


#: ``yolov8.yaml`` scale ``n``: depth, width, max_channels.
V8_N = (0.33, 0.25, 1024)


def yolov8(width: float, imgsz: int, nc: int = NC, depth: float = V8_N[0]) -> LayerModel:
    """YOLOv8 from ``yolov8.yaml``: backbone Conv 64/3/2, Conv 128/3/2, C2f×3 128 (shortcut),
    Conv 256/3/2, C2f×6 256, Conv 512/3/2, C2f×6 512, Conv 1024/3/2, C2f×3 1024, SPPF 1024 k5;
    head: upsample + cat P4 → C2f×3 512, upsample + cat P3 → C2f×3 256 (P3 out), Conv 256/3/2
    + cat → C2f×3 512 (P4 out), Conv 512/3/2 + cat → C2f×3 1024 (P5 out), Detect on layers
    15, 18, 21. Repeats are scaled by ``depth`` (n: 0.33 → 1, 2, 2, 1 in the backbone and 1 in
    the head); channels by ``width`` on the config numbers (n: 0.25, cap 1024).

    ``imgsz`` is not needed to build (the head works out its grid from the features).
    """
    del imgsz
    c = [channels(v, width, V8_N[2]) for v in (64, 128, 256, 512, 1024)]
    n3, n6 = repeats(3, depth), repeats(6, depth)
    layers: list[tuple[Source, nn.Module]] = [
        (-1, Conv(3, c[0], 3, 2)),  # 0 P1/2
        (-1, Conv(c[0], c[1], 3, 2)),  # 1 P2/4
        (-1, C2f(c[1], c[1], n3, shortcut=True)),  # 2
        (-1, Conv(c[1], c[2], 3, 2)),  # 3 P3/8
        (-1, C2f(c[2], c[2], n6, shortcut=True)),  # 4
        (-1, Conv(c[2], c[3], 3, 2)),  # 5 P4/16
        (-1, C2f(c[3], c[3], n6, shortcut=True)),  # 6
        (-1, Conv(c[3], c[4], 3, 2)),  # 7 P5/32
        (-1, C2f(c[4], c[4], n3, shortcut=True)),  # 8
        (-1, SPPF(c[4], c[4], 5)),  # 9
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 10
        ((-1, 6), MergeConcat("fpn")),  # 11
        (-1, C2f(c[4] + c[3], c[3], n3)),  # 12
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 13
        ((-1, 4), MergeConcat("fpn")),  # 14
        (-1, C2f(c[3] + c[2], c[2], n3)),  # 15 P3 out
        (-1, Conv(c[2], c[2], 3, 2)),  # 16
        ((-1, 12), MergeConcat("pan")),  # 17
        (-1, C2f(c[2] + c[3], c[3], n3)),  # 18 P4 out
        (-1, Conv(c[3], c[3], 3, 2)),  # 19
        ((-1, 9), MergeConcat("pan")),  # 20
        (-1, C2f(c[3] + c[4], c[4], n3)),  # 21 P5 out
        ((15, 18, 21), Detect(nc, (c[2], c[3], c[4]))),  # 22
    ]
    return LayerModel(layers)


def _yolov8n(width: float, imgsz: int) -> nn.Module:
    return yolov8(width, imgsz)


#: Width of the zoo's yolov8n: the official n width (0.25) exports ~12 MB, over the zoo's 4 MB
#: limit per file, so the zoo model is thinner; depth and wiring are the official n ones.
V8N_ZOO_WIDTH = 0.1

register(
    ZooSpec(
        name="yolov8n",
        generation="v8",
        scale="n",
        form="deploy",
        width=V8N_ZOO_WIDTH,
        imgsz=320,
        builder=_yolov8n,
        output_names=("output0",),
        seed=8001,
        notes=(
            "yolov8.yaml at n depth (0.33); width 0.1 of the config channels (8/16/32/56/104) "
            "instead of the official 0.25 (16/32/64/128/256, ~12 MB) to stay under 4 MB. "
            "Output (1, 84, N): DFL-decoded xywh boxes and class sigmoids, no NMS."
        ),
    )
)
