"""Reference builders for YOLO11 and YOLO12 (the ultralytics ``yolo11.yaml`` / ``yolo12.yaml``
configurations), written from the papers and the public configuration facts.

Both models keep the official layer table (``model.0`` … ``model.23`` for YOLO11n,
``model.0`` … ``model.21`` for YOLO12n) so TorchScript scopes read like real exports
(``/model.2/m.0/cv1/conv/Conv``). Depth follows the n scale exactly (depth multiple 0.5:
repeats 2 → 1 and 4 → 2); the channel width is reduced from the official 0.25 to 0.08 so
each fp32 export stays under 4 MB and the whole zoo under 40 MB (the official n models have ~2.6 M parameters, ~10 MB).
Attention head counts never drop below the n-scale ones (at the thinner width the head
dimension shrinks instead), so the attention structure is the official one.

Config facts used here:

* depth multiple 0.5, width multiple 0.25, max channels 1024 (scale ``n``); channels are
  rounded up to a multiple of 8 after the width factor; repeats ``max(round(n * 0.5), 1)``.
* ``C3k2(c1, c2, n, c3k=False, e=0.5, shortcut=True)``: a C2f whose chained units are
  bottlenecks (hidden ratio 0.5, both convs 3×3, identity shortcut) or, with ``c3k``, C3k
  blocks (a C3 with 2 bottlenecks of hidden ratio 1.0). Only scales m/l/x force ``c3k``;
  at n it is what the YAML says.
* ``C2PSA(c, c, n)``: conv 1×1 → split in halves; one half → ``n`` PSA blocks
  (attention + residual, FFN 1×1 → 1×1 + residual); cat → conv 1×1. Attention heads =
  channels // 64, key dim = head dim × 0.5, depth-wise 3×3 positional conv on v.
* ``A2C2f(c1, c2, n, a2, area, residual=False, mlp_ratio=2.0, e=0.5)``: conv 1×1 → ``n``
  units chained, each two area-attention blocks (heads = hidden // 32, depth-wise 7×7
  positional conv on v, MLP ratio 2.0) or, with ``a2=False``, a C3k; cat of the first conv's
  output and every unit → conv 1×1. The learned scaled residual (``x + γ·y``, and MLP ratio
  1.2) is added by the config parser only for scales l/x, so the n model has none.
* Head: the shared :class:`~graphpath.zoo.ultralytics.Detect` with ``legacy=False`` (the
  config parser's choice for C3k2/A2C2f models): per level a box branch (conv 3×3, conv 3×3,
  conv 1×1 → 4×16 bins) and a class branch with depth-wise convs (DW 3×3 → conv 1×1, twice,
  then conv 1×1 → classes); DFL decode; output ``(1, 4 + nc, N)`` as the official export.
* ``yolo12.yaml`` is the original release (plain convs at layers 1 and 3, 272 layers at n),
  not the later "turbo" variant with grouped convs there.
* Scopes differ from real exports in two places: the head's per-level modules
  (``/model.23/level.0/cv2/…`` for ``/model.23/cv2.0/…``) and the PSA/ABlock adds, which sit
  inside ``residual`` wrappers (``/m.0/attn/m/qkv`` for ``/m.0/attn/qkv``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from graphpath.zoo.common import Block, Conv, ZooSpec, register
from graphpath.zoo.ultralytics import (
    SPPF,
    Attention,
    Bottleneck,
    C2f,
    Detect,
    LayerModel,
    MergeConcat,
    Residual,
    Source,
    channels,
    make_anchors,
    repeats,
)

NC = 80
#: Scale ``n`` of both configs: depth, width, max_channels.
SCALE_N = (0.50, 0.25, 1024)
#: Width the zoo builds at: the official n width (0.25) exports ~10 MB, over the 4 MB limit.
ZOO_WIDTH = 0.08
IMGSZ = 320

#: Attention heads at the official n width, the least kept at thinner widths (the head
#: dimension shrinks instead): C2PSA uses channels // 64 = 128 // 64; A2C2f uses
#: hidden // 32 = 64 // 32 at P4 and 128 // 32 at P5.
C2PSA_HEADS = channels(1024, SCALE_N[1]) // 2 // 64
A2C2F_HEADS = {
    512: channels(512, SCALE_N[1]) // 2 // 32,
    1024: channels(1024, SCALE_N[1]) // 2 // 32,
}


def fit_heads(dim: int, heads: int) -> int:
    """The largest head count ≤ ``heads`` that divides ``dim`` (only matters at odd widths).

    >>> fit_heads(32, 2), fit_heads(24, 4), fit_heads(8, 16)
    (2, 4, 8)
    """
    heads = max(1, min(heads, dim))
    while dim % heads:
        heads -= 1
    return heads


# --------------------------------------------------------------------------- C3k, C3k2


class C3k(Block):
    """C3k: a C3 (``csp``) with ``n`` bottlenecks of hidden ratio 1.0 and kernel ``k``:
    ``conv 1×1 → bottlenecks`` ‖ ``conv 1×1`` (bypass) → cat → ``conv 1×1``."""

    def __init__(
        self, c1: int, c2: int, n: int = 2, shortcut: bool = True, g: int = 1, e: float = 0.5, k: int = 3,
    ) -> None:
        super().__init__("csp")
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, k=(k, k), e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(C2f):
    """C3k2 (``c3k2``): a C2f whose chained units are bottlenecks with hidden ratio 0.5 (both
    convs 3×3) or, with ``c3k``, C3k blocks of 2 bottlenecks. Unlike C2f the shortcut is on by
    default, and the YAML rows never turn it off."""

    kind = "c3k2"

    def __init__(
        self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, g: int = 1,
        shortcut: bool = True,
    ) -> None:
        self.c3k = c3k  # read by unit() during C2f.__init__
        super().__init__(c1, c2, n, shortcut, g, e)

    def unit(self, c: int, shortcut: bool, g: int) -> nn.Module:
        if self.c3k:
            return C3k(c, c, 2, shortcut, g)
        return Bottleneck(c, c, shortcut, g)


# --------------------------------------------------------------------------- C2PSA (YOLO11)


class PSABlock(nn.Module):
    """Attention with a residual add, then a feed-forward (conv 1×1 to 2c → conv 1×1 back,
    no activation on the second) with a residual add: two ``residual`` blocks, the first
    holding the ``attention``."""

    def __init__(self, c: int, num_heads: int, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.attn = Residual(Attention(c, num_heads, attn_ratio))
        self.ffn = Residual(nn.Sequential(Conv(c, 2 * c, 1), Conv(2 * c, c, 1, act="none")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.attn(x))


class C2PSA(Block):
    """C2PSA (``c2psa``): ``conv 1×1 → split`` in halves; the second half → ``n`` PSA blocks;
    cat of both → ``conv 1×1``. Heads: channels // 64 (the config's rule), at least
    ``min_heads``."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, min_heads: int = 1) -> None:
        super().__init__("c2psa")
        if c1 != c2:
            raise ValueError("C2PSA keeps its width (c1 == c2)")
        self.c = int(c1 * e)
        heads = fit_heads(self.c, max(min_heads, self.c // 64))
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, heads) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


# --------------------------------------------------------------------------- A2C2f (YOLO12)


class AAttn(Block):
    """Area attention (``attention``): one 1×1 ``qkv`` conv; the H×W tokens, in row-major
    order, are cut into ``area`` equal groups (horizontal strips) that become batch entries
    and attend only within themselves; ``softmax(qᵀk / √d)``, values weighted; a depth-wise
    7×7 positional conv on ``v`` is added; then a 1×1 ``proj``."""

    def __init__(self, dim: int, num_heads: int, area: int = 1) -> None:
        super().__init__("attention")
        self.area = area
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        inner = self.head_dim * num_heads
        self.qkv = Conv(dim, 3 * inner, 1, act="none")
        self.proj = Conv(inner, dim, 1, act="none")
        self.pe = Conv(inner, dim, 7, 1, 3, g=dim, act="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.qkv(x).flatten(2).transpose(1, 2)  # (b, h*w, 3c)
        if self.area > 1:
            tokens = tokens.reshape(b * self.area, h * w // self.area, 3 * c)
        groups, n, _ = tokens.shape
        q, k, v = (
            tokens.view(groups, n, self.num_heads, 3 * self.head_dim)
            .permute(0, 2, 3, 1)
            .split([self.head_dim] * 3, dim=2)
        )  # each (groups, heads, head_dim, n)
        attn = ((q.transpose(-2, -1) @ k) * self.head_dim**-0.5).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).permute(0, 3, 1, 2)  # (groups, n, heads, head_dim)
        v = v.permute(0, 3, 1, 2)
        y = y.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        v = v.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return self.proj(y + self.pe(v))


class ABlock(nn.Module):
    """Area attention with a residual add, then an MLP (conv 1×1 to ``mlp_ratio``·dim →
    conv 1×1 back, no activation) with a residual add: two ``residual`` blocks."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.2, area: int = 1) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.attn = Residual(AAttn(dim, num_heads, area))
        self.mlp = Residual(nn.Sequential(Conv(dim, hidden, 1), Conv(hidden, dim, 1, act="none")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class ScaledOutput(Block):
    """``x + γ·y`` with a learned per-channel ``γ`` (``scaled_residual``), A2C2f at l/x only."""

    def __init__(self, c: int) -> None:
        super().__init__("scaled_residual")
        self.gamma = nn.Parameter(0.01 * torch.ones(c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + self.gamma.view(1, -1, 1, 1) * y


class A2C2f(Block):
    """A2C2f / R-ELAN (``a2c2f``): ``conv 1×1`` → ``n`` chained units, each two ABlocks (or,
    with ``a2`` off, a C3k); cat of the first conv's output and every unit's →
    ``conv 1×1``. ``residual`` (set by the config parser for l/x only) adds ``x + γ·y``.
    Heads: hidden // 32 (the config's rule), at least ``min_heads``."""

    def __init__(
        self, c1: int, c2: int, n: int = 1, a2: bool = True, area: int = 1, residual: bool = False,
        mlp_ratio: float = 2.0, e: float = 0.5, g: int = 1, shortcut: bool = True,
        min_heads: int = 1,
    ) -> None:
        super().__init__("a2c2f")
        c_ = int(c2 * e)
        heads = fit_heads(c_, max(min_heads, c_ // 32))
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv((1 + n) * c_, c2, 1)
        self.m = nn.ModuleList(
            nn.Sequential(*(ABlock(c_, heads, mlp_ratio, area) for _ in range(2))) if a2
            else C3k(c_, c_, 2, shortcut, g)
            for _ in range(n)
        )
        self.scale = ScaledOutput(c2) if a2 and residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = [self.cv1(x)]
        for unit in self.m:
            ys.append(unit(ys[-1]))
        y = self.cv2(torch.cat(ys, 1))
        return y if self.scale is None else self.scale(x, y)


# --------------------------------------------------------------------------- head


class DetectDW(Detect):
    """The YOLO11/YOLO12 head: the shared :class:`~graphpath.zoo.ultralytics.Detect` with the
    depth-wise class branch (``legacy=False``: DW 3×3 → conv 1×1, twice, → conv 1×1), one
    ``decoupled_head`` per level and one ``dfl``, decoded with the official export's wiring:
    per level a Concat of the box bins and class logits, a Concat of the flattened levels,
    one Split back into box and class, DFL, anchor arithmetic, and a final Concat.
    """

    def __init__(self, nc: int, ch: tuple[int, ...], reg_max: int = 16) -> None:
        super().__init__(nc, ch, reg_max, legacy=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        b = feats[0].shape[0]
        no = 4 * self.reg_max + self.nc
        levels = [torch.cat(lvl(f), 1) for lvl, f in zip(self.level, feats, strict=True)]
        box, cls = torch.cat([y.view(b, no, -1) for y in levels], 2).split((4 * self.reg_max, self.nc), 1)
        anchors, stride = make_anchors(feats, self.strides)
        lt, rb = self.dfl(box).chunk(2, 1)
        x1y1, x2y2 = anchors - lt, anchors + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1)
        return torch.cat((xywh * stride, cls.sigmoid()), 1)


# --------------------------------------------------------------------------- the models


def _check(width: float, imgsz: int) -> None:
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be positive, not {width}")
    if imgsz <= 0 or imgsz % 32:
        raise ValueError(f"imgsz must be a positive multiple of 32, not {imgsz}")


def yolo11(width: float, imgsz: int, nc: int = NC, depth: float = SCALE_N[0]) -> LayerModel:
    """YOLO11 from ``yolo11.yaml``: backbone Conv 64/3/2, Conv 128/3/2, C3k2×2 256 (e 0.25),
    Conv 256/3/2, C3k2×2 512 (e 0.25), Conv 512/3/2, C3k2×2 512 (c3k), Conv 1024/3/2,
    C3k2×2 1024 (c3k), SPPF 1024 k5, C2PSA×2 1024; head: upsample + cat P4 → C3k2×2 512,
    upsample + cat P3 → C3k2×2 256 (P3 out), Conv 256/3/2 + cat → C3k2×2 512 (P4 out),
    Conv 512/3/2 + cat → C3k2×2 1024 c3k (P5 out), Detect on layers 16, 19, 22 with the
    depth-wise class branch. Repeats scale by ``depth`` (n: 2 → 1); channels by ``width``
    (n: 0.25, cap 1024). ``imgsz`` only checks the size (the head reads the grid off the
    features)."""
    _check(width, imgsz)
    c64, c128, c256, c512, c1024 = (channels(v, width, SCALE_N[2]) for v in (64, 128, 256, 512, 1024))
    n2 = repeats(2, depth)
    layers: list[tuple[Source, nn.Module]] = [
        (-1, Conv(3, c64, 3, 2)),  # 0 P1/2
        (-1, Conv(c64, c128, 3, 2)),  # 1 P2/4
        (-1, C3k2(c128, c256, n2, False, 0.25)),  # 2
        (-1, Conv(c256, c256, 3, 2)),  # 3 P3/8
        (-1, C3k2(c256, c512, n2, False, 0.25)),  # 4
        (-1, Conv(c512, c512, 3, 2)),  # 5 P4/16
        (-1, C3k2(c512, c512, n2, True)),  # 6
        (-1, Conv(c512, c1024, 3, 2)),  # 7 P5/32
        (-1, C3k2(c1024, c1024, n2, True)),  # 8
        (-1, SPPF(c1024, c1024, 5)),  # 9
        (-1, C2PSA(c1024, c1024, n2, min_heads=C2PSA_HEADS)),  # 10
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 11
        ((-1, 6), MergeConcat("fpn")),  # 12 cat backbone P4
        (-1, C3k2(c1024 + c512, c512, n2, False)),  # 13
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 14
        ((-1, 4), MergeConcat("fpn")),  # 15 cat backbone P3
        (-1, C3k2(c512 + c512, c256, n2, False)),  # 16 P3 out
        (-1, Conv(c256, c256, 3, 2)),  # 17
        ((-1, 13), MergeConcat("pan")),  # 18 cat head P4
        (-1, C3k2(c256 + c512, c512, n2, False)),  # 19 P4 out
        (-1, Conv(c512, c512, 3, 2)),  # 20
        ((-1, 10), MergeConcat("pan")),  # 21 cat head P5
        (-1, C3k2(c512 + c1024, c1024, n2, True)),  # 22 P5 out
        ((16, 19, 22), DetectDW(nc, (c256, c512, c1024))),  # 23
    ]
    return LayerModel(layers)


def yolo12(width: float, imgsz: int, nc: int = NC, depth: float = SCALE_N[0]) -> LayerModel:
    """YOLO12 from ``yolo12.yaml``: backbone Conv 64/3/2, Conv 128/3/2, C3k2×2 256 (e 0.25),
    Conv 256/3/2, C3k2×2 512 (e 0.25), Conv 512/3/2, A2C2f×4 512 (attention, area 4),
    Conv 1024/3/2, A2C2f×4 1024 (attention, area 1); head: upsample + cat P4 → A2C2f×2 512
    (no attention: C3k units), upsample + cat P3 → A2C2f×2 256 (P3 out), Conv 256/3/2 + cat →
    A2C2f×2 512 (P4 out), Conv 512/3/2 + cat → C3k2×2 1024 c3k (P5 out), Detect on layers 14,
    17, 20 with the depth-wise class branch. Repeats scale by ``depth`` (n: 4 → 2, 2 → 1).

    Area attention at P4 needs the ``(imgsz / 16)²`` tokens to split into 4 areas, which any
    multiple of 32 satisfies.
    """
    _check(width, imgsz)
    c64, c128, c256, c512, c1024 = (channels(v, width, SCALE_N[2]) for v in (64, 128, 256, 512, 1024))
    n2, n4 = repeats(2, depth), repeats(4, depth)
    layers: list[tuple[Source, nn.Module]] = [
        (-1, Conv(3, c64, 3, 2)),  # 0 P1/2
        (-1, Conv(c64, c128, 3, 2)),  # 1 P2/4
        (-1, C3k2(c128, c256, n2, False, 0.25)),  # 2
        (-1, Conv(c256, c256, 3, 2)),  # 3 P3/8
        (-1, C3k2(c256, c512, n2, False, 0.25)),  # 4
        (-1, Conv(c512, c512, 3, 2)),  # 5 P4/16
        (-1, A2C2f(c512, c512, n4, True, 4, min_heads=A2C2F_HEADS[512])),  # 6
        (-1, Conv(c512, c1024, 3, 2)),  # 7 P5/32
        (-1, A2C2f(c1024, c1024, n4, True, 1, min_heads=A2C2F_HEADS[1024])),  # 8
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 9
        ((-1, 6), MergeConcat("fpn")),  # 10 cat backbone P4
        (-1, A2C2f(c1024 + c512, c512, n2, False, -1)),  # 11
        (-1, nn.Upsample(scale_factor=2.0, mode="nearest")),  # 12
        ((-1, 4), MergeConcat("fpn")),  # 13 cat backbone P3
        (-1, A2C2f(c512 + c512, c256, n2, False, -1)),  # 14 P3 out
        (-1, Conv(c256, c256, 3, 2)),  # 15
        ((-1, 11), MergeConcat("pan")),  # 16 cat head P4
        (-1, A2C2f(c256 + c512, c512, n2, False, -1)),  # 17 P4 out
        (-1, Conv(c512, c512, 3, 2)),  # 18
        ((-1, 8), MergeConcat("pan")),  # 19 cat head P5
        (-1, C3k2(c512 + c1024, c1024, n2, True)),  # 20 P5 out
        ((14, 17, 20), DetectDW(nc, (c256, c512, c1024))),  # 21
    ]
    return LayerModel(layers)


_SIZE_NOTE = (
    "depth 0.5 (n) exact; width 0.08 of the config channels instead of the official 0.25 to "
    "stay under 4 MB (width 0.25 gives the official channels and parameter count); attention "
    "heads kept at the n counts (narrower head dim). Output (1, 84, N): DFL-decoded xywh boxes "
    "and class sigmoids, no NMS."
)

register(
    ZooSpec(
        name="yolo11n", generation="v11", scale="n", form="deploy", width=ZOO_WIDTH, imgsz=IMGSZ,
        builder=yolo11, output_names=("output0",), seed=11,
        notes="yolo11.yaml: C3k2 + SPPF + C2PSA backbone, PAN with C3k2, decoupled head with "
        "depth-wise class branch + DFL; " + _SIZE_NOTE,
    )
)

register(
    ZooSpec(
        name="yolo12n", generation="v12", scale="n", form="deploy", width=ZOO_WIDTH, imgsz=IMGSZ,
        builder=yolo12, output_names=("output0",), seed=12,
        notes="yolo12.yaml: C3k2 + A2C2f area attention (4 areas at P4, 1 at P5) backbone, "
        "A2C2f (C3k units) + C3k2 PAN, no scaled residual at n, decoupled head with depth-wise "
        "class branch + DFL; " + _SIZE_NOTE,
    )
)
