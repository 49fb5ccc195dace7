"""Which detector generation a graph looks like, with the evidence.

:func:`fingerprint` weighs two kinds of evidence:

* **block counts** (the ids of TOPOLOGIES.md, from :func:`graphpath.blocks.block_counts`):
  a C2f says v8, a GELAN says v9, an A2C2f says YOLO12 …;
* **structural facts** read off both views (:class:`GraphFacts`): the dominant activation of
  the body, the prediction convs (the last weighted units before the outputs) and their
  channels, objectness convs, the number of predictions per grid cell (anchors), DFL, TopK
  selection with or without an NMS op, attention, GridSample, Focus stem, ConvTranspose
  upsampling, fully connected heads.

Each generation has a :class:`Profile`: *clues* whose weights add up to its evidence budget,
*bonus* clues that add without being expected, and *contradictions* that subtract. A profile's
score is ``(matched − contradicted) / budget`` in [0, 1]; the confidence of a generation is its
score discounted by how close the best other generation comes
(``score × (1 − ½·(other/score)²)``). A generation is answered only when its score reaches
:data:`MIN_SCORE` and at least one of its *key* clues matched; otherwise the answer is
``"cnn"``, ``"transformer"`` or ``"unknown"`` with a low confidence — never a guess without
evidence.

How the close calls are resolved (the clue that decides is named in ``evidence``):

* **v3 / v4 / v5.** All three have coupled anchor heads (one 1×1 conv per level with
  anchors×(5+classes) channels). v3 is residual-only (Darknet-53: residual adds, no CSP split)
  with leaky ReLU and an FPN but no PAN; v4 is CSPDarknet (CSP with residuals inside) with Mish
  in the backbone, SPP and a PAN; v5 is C3 (``csp``) with SiLU and SPPF. Mish decides v4 even
  when a block is missed; SPP (v4) versus SPPF (v5) and leaky versus SiLU back it up. The v3
  key clue needs leaky ReLU, so a v5 whose C3 blocks were missed is not called v3.
  Ultralytics' "u" re-releases (YOLOv3u, YOLOv5u) keep the body and swap in v8's anchor-free
  DFL head (on SiLU): that head stands in for the anchor head and is no contradiction there.
* **v8 / v11 / v12.** All have SiLU, a decoupled head and DFL. v8 is C2f (and no C3k2); YOLO11
  is C3k2 plus C2PSA; YOLO12 is A2C2f (area attention, several attention blocks) and no
  C2PSA. Each block is a contradiction for the other two profiles.
* **v9 / v10.** Both sit on the v8 head (DFL). v9 is GELAN + ADown + SPPELAN (PGI and the
  auxiliary head only in training graphs); v10 is SCDown + PSA + C2fCIB on a C2f body, with a
  one-to-one head exported with TopK and no NMS op.
* **YOLOX / v6.** Both have an anchor-free decoupled head and no DFL. YOLOX is CSPDarknet
  (``csp``) with SiLU, a Focus stem (space-to-depth slices) and an objectness 1×1 conv per
  level beside the box (4) and class convs; v6 has a ReLU body, RepVGG blocks (training form)
  or the plain 3×3 chains they fuse into (deploy), ConvTranspose upsampling, SimCSPSPPF
  (``sppcspc``) and no objectness conv. ReLU alone is not a key clue (a ReLU RetinaFace also
  has box and class convs): v6 needs RepVGG, ConvTranspose upsampling or SimCSPSPPF.
* **v5 / v7.** Both coupled anchors with SiLU; v7 is ELAN + MP (+ SPPCSPC), v5 is C3 + SPPF.
  Without those blocks the structure cannot tell them apart and the answer is ``"cnn"``.
* **Activations.** A dominant body activation that a generation is not trained with (the
  hard-swish of PP-PicoDet for every YOLO, ReLU for v8 …) counts against it.
* **Tiny variants.** yolov2-tiny, yolov3-tiny and yolov4-tiny have none of their generation's
  defining blocks: each is a short leaky-ReLU conv stack downsampled by max pools, with one
  (v2) or two (v3, v4; joined by an FPN merge) coupled anchor head levels. They have profiles
  of their own (``variant="tiny"``), answered as their generation; v4-tiny is told from v3-tiny
  by its CSP-tiny blocks (half the channels of a conv routed through two convs and re-joined
  with the full map). yolov1-tiny's single fully connected output is not told from a
  classifier's and stays ``"cnn"``; yolov7-tiny has ELAN blocks and is v7.
* **RT-DETR.** Attention in numbers (transformer encoder/decoder), GridSample (deformable
  attention), TopK query selection without NMS, LayerNormalization, and no anchor or DFL head.
* **Families beyond the seeds** (each profile scores only where its defining structure is
  present, ``Profile.layout``, so the seed generations' confidences do not move; that structure
  is also a contradiction for every seed generation):

  - *PP-YOLOE / PP-YOLOE+*: channel-attention gates (``GraphFacts.se_gates``: EffectiveSE in the
    CSPRepResNet stages, ESEAttn in the ET-head) on CSP stages, DFL over 17 bins, SiLU. A CSP
    stage with SiLU and a residual is what a v5 C3 also shows; the gate is what tells them apart.
  - *YOLO-NAS*: a ReLU body of CSP stages, DFL over 17 bins (bonus: ConvTranspose up-stages, SPP).
  - *DAMO-YOLO*: RepGFPN queen-fusion concats (a same-level feature with two from other
    scales, ``gfpn_merges``) and GFL box convs of 4 × 17 channels.
  - *YOLO-World*: the v8 body (C2f) with class scores from a product with a baked text-embedding
    matrix (``embedding_heads``).
  - *YOLO26* (``v26``): the v11 body (C3k2, C2PSA) with a DFL-free head (4-channel box convs);
    that head counts against v11.

  A graph with a detection head whose family no profile recognises is ``unknown`` (confidence
  ≤ 0.3) with the closest generation in the evidence, never a guess; without a head it is ``cnn``.
* **Ultralytics' yolov3-tinyu**: the tiny Darknet layout on SiLU with v8's DFL head on two
  levels is v3 (variant ``tiny``), the head difference named in the evidence.

Example (the decision on block counts alone, without structural facts):
    >>> fp = decide(Signals({"c2f": 8, "sppf": 1, "decoupled_head": 3, "dfl": 1}, GraphFacts()))
    >>> fp.generation, fp.confidence >= 0.7, fp.evidence[0]
    ('v8', True, '8 C2f blocks (c2f)')
    >>> decide(Signals({}, GraphFacts())).generation
    'unknown'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphpath.blocks.base import BlockMatch
from graphpath.fingerprint.facts import GraphFacts, graph_facts
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph
from graphpath.report import round_float

#: Every answer :func:`fingerprint` can give.
GENERATIONS = (
    "v1", "v2", "v3", "v4", "v5", "yolox", "v6", "v7", "v8", "v9", "v10", "v11", "v12",
    "rtdetr", "v26", "yoloworld", "ppyoloe", "yolonas", "damoyolo", "cnn", "transformer", "unknown",
)

#: A profile must reach this score (and match a key clue) to be answered.
MIN_SCORE = 0.45
#: Generic answers never claim more than this.
FALLBACK_CONFIDENCE = 0.3


@dataclass(frozen=True)
class Fingerprint:
    """The generation a graph looks like.

    Attributes:
        generation: one of :data:`GENERATIONS`.
        confidence: in [0, 1].
        evidence: short sentences, the strongest first; contradictions start with "against:".
        alternatives: other candidates as ``(generation, confidence)``, best first.
        variant: ``"tiny"`` for Darknet's tiny layouts of v2–v4, else ``""``.
    """

    generation: str
    confidence: float
    evidence: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, float], ...] = ()
    variant: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "alternatives": [{"confidence": round_float(c, places=3), "generation": g}
                             for g, c in self.alternatives],
            "confidence": round_float(self.confidence, places=3),
            "evidence": list(self.evidence),
            "generation": self.generation,
            "variant": self.variant,
        }


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Signals:
    """What clues read: block counts and structural facts."""

    counts: Mapping[str, int]
    facts: GraphFacts

    def n(self, kind: str) -> int:
        return int(self.counts.get(kind, 0))


@dataclass(frozen=True)
class Clue:
    """One piece of evidence: ``check`` returns the evidence sentence when it holds."""

    weight: float
    check: Callable[[Signals], str | None]
    key: bool = False


def block(kind: str, weight: float, *, at_least: int = 1, key: bool = False, what: str = "") -> Clue:
    """At least ``at_least`` blocks of ``kind``."""

    def check(s: Signals) -> str | None:
        n = s.n(kind)
        return f"{n} {what or kind} block{'s' if n > 1 else ''} ({kind})" if n >= at_least else None

    return Clue(weight, check, key)


def activation(name: str, weight: float, *, share: float = 0.5, key: bool = False) -> Clue:
    """``name`` carries at least ``share`` of the body's activated units."""

    def check(s: Signals) -> str | None:
        got = s.facts.share(name)
        total = sum(n for _, n in s.facts.activations)
        if got >= share and total:
            return f"{name} on {round(got * total)} of {total} activated units"
        return None

    return Clue(weight, check, key)


def fact(predicate: Callable[[Signals], bool], sentence: str, weight: float, *, key: bool = False) -> Clue:
    return Clue(weight, lambda s: sentence if predicate(s) else None, key)


def coupled(weight: float, *, key: bool = False) -> Clue:
    """Coupled anchor heads: counted blocks, or prediction convs all of A×(5+classes) channels."""

    def check(s: Signals) -> str | None:
        if s.n("coupled_head"):
            return f"{s.n('coupled_head')} coupled anchor head level(s)"
        ch = set(s.facts.pred_channels)
        if len(ch) == 1 and s.facts.anchors and s.facts.anchors > 1:
            c = ch.pop()
            a = s.facts.anchors
            if c % a == 0 and c // a > 5:
                return f"prediction convs of {c} = {a} anchors × (5 + {c // a - 5}) channels"
        return None

    return Clue(weight, check, key)


def _topk_without_nms(s: Signals) -> bool:
    return s.facts.op("TopK") > 0 and not s.facts.op("NonMaxSuppression") and not s.n("nms")


def _attention(s: Signals) -> int:
    return max(s.n("attention"), s.facts.attention_merges // 2)


@dataclass(frozen=True)
class Profile:
    """A generation's evidence; ``variant`` names a second layout of the same generation
    (``"tiny"``), scored on its own and answered as its generation, and only where its
    ``layout`` holds (so it never discounts the confidence of unrelated graphs)."""

    generation: str
    clues: tuple[Clue, ...]
    bonus: tuple[Clue, ...] = ()
    against: tuple[Clue, ...] = ()
    variant: str = ""
    layout: Callable[[Signals], bool] | None = None

    @property
    def budget(self) -> float:
        return sum(c.weight for c in self.clues)

    def score(self, s: Signals) -> tuple[float, bool, list[str], list[str]]:
        """(score, a key clue matched, supporting sentences, contradicting sentences)."""
        if self.layout is not None and not self.layout(s):
            return 0.0, False, [], []
        got = 0.0
        key = False
        support: list[tuple[float, str]] = []
        for c in self.clues + self.bonus:
            text = c.check(s)
            if text:
                got += c.weight
                key = key or c.key
                support.append((c.weight, text))
        against: list[tuple[float, str]] = []
        for c in self.against:
            text = c.check(s)
            if text:
                got -= c.weight
                against.append((c.weight, text))
        value = max(0.0, min(1.0, got / self.budget)) if self.budget else 0.0
        support.sort(key=lambda t: -t[0])
        against.sort(key=lambda t: -t[0])
        return value, key, [t for _, t in support], [t for _, t in against]


_SILU = activation("silu", 0.5)


def decoupled(weight: float, *, key: bool = False) -> Clue:
    """Decoupled heads: counted blocks, or box and class prediction convs apart."""

    def check(s: Signals) -> str | None:
        if s.n("decoupled_head"):
            return f"{s.n('decoupled_head')} decoupled head level(s)"
        if s.facts.decoupled:
            return "separate box and class prediction convs (decoupled head)"
        return None

    return Clue(weight, check, key)


def dfl(weight: float) -> Clue:
    """DFL decodes: counted blocks, or fixed softmax → 1×1 projections."""

    def check(s: Signals) -> str | None:
        n = s.n("dfl") or s.facts.dfl
        return f"{n} DFL decode{'s' if n > 1 else ''} (softmax over bins → fixed 1×1 conv)" if n else None

    return Clue(weight, check)


def _u_head(s: Signals) -> bool:
    """The anchor-free decoupled DFL head of v8 on an older body: Ultralytics' "u" re-releases
    (YOLOv3u, YOLOv5u) keep the Darknet-53 / C3 body and swap the anchor head for this one."""
    return bool((s.n("decoupled_head") or s.facts.decoupled) and (s.n("dfl") or s.facts.dfl))


def anchor_head(weight: float, body: Callable[[Signals], bool]) -> Clue:
    """Coupled anchor heads, or the "u" re-release's DFL head in their place on the
    generation's own ``body`` (so the v8 head alone is no evidence for v3 or v5)."""
    anchors = coupled(weight)

    def check(s: Signals) -> str | None:
        return anchors.check(s) or ("anchor-free decoupled DFL head in place of the anchor head "
                                    "(Ultralytics 'u' variant)" if _u_head(s) and body(s) else None)

    return Clue(weight, check)


def _no_late_blocks(s: Signals) -> bool:
    return not any(s.n(k) for k in _LATE)


def _darknet53(s: Signals) -> bool:
    """Residual stages with no CSP split and none of the later generations' blocks."""
    return s.n("residual") >= 4 and not s.n("csp") and _no_late_blocks(s)


def _c3_body(s: Signals) -> bool:
    """C3/CSP blocks and none of the later generations' blocks (C3k2 holds CSP splits too)."""
    return s.n("csp") > 0 and _no_late_blocks(s)


def _tiny_darknet(s: Signals) -> bool:
    """Darknet's tiny layout: a short leaky-ReLU conv stack downsampled by stride-2 max pools,
    with no residual, CSP or later-generation block (yolov2/v3/v4-tiny.cfg); on SiLU with the
    anchor-free DFL head in Ultralytics' yolov3-tinyu."""
    f = s.facts
    act = f.share("leaky_relu") >= 0.5 or (_u_head(s) and f.share("silu") >= 0.5)
    return (act and f.maxpool_downsamples >= 3 and 0 < f.convs <= 40
            and not s.n("residual") and not s.n("csp") and _no_late_blocks(s))


def tiny(levels: int, weight: float) -> Clue:
    """``levels`` coupled anchor head levels (an FPN merge joins two) on the tiny layout, which
    the tiny profiles check first (``Profile.layout``)."""

    def check(s: Signals) -> str | None:
        u = _u_head(s) and s.n("decoupled_head") == levels and not s.n("coupled_head")
        if (s.n("coupled_head") != levels and not u) or (levels > 1) != (s.n("fpn") > 0):
            return None
        f = s.facts
        if u:
            return (f"tiny Darknet layout: {f.convs} convs, {f.maxpool_downsamples} stride-2 max pools, "
                    f"{levels} levels of the anchor-free decoupled DFL head in place of the anchor head "
                    "(Ultralytics 'u' variant), no residual or CSP bottleneck")
        return (f"tiny Darknet layout: {f.convs} leaky-ReLU convs, {f.maxpool_downsamples} stride-2 max pools, "
                f"{levels} coupled anchor head level{'s' if levels > 1 else ''}, no residual or CSP bottleneck")

    return Clue(weight, check, key=True)


_HALF_SPLITS = fact(lambda s: s.facts.half_splits >= 2,
                    "half-channel route splits re-joined with the full map (CSP-tiny blocks)", 3.0)
_NO_HALF_SPLITS = fact(lambda s: s.facts.half_splits < 2, "no half-channel route splits (CSP-tiny blocks)", 3.0)


def unless_u_head(clue: Clue, body: Callable[[Signals], bool]) -> Clue:
    """``clue``, except on a "u" re-release (the v8 head on the generation's own ``body``)."""
    return Clue(clue.weight, lambda s: None if _u_head(s) and body(s) else clue.check(s), clue.key)


_DECOUPLED = decoupled(1.0)
_DFL = dfl(1.0)
_NOT_COUPLED = block("coupled_head", 1.5, what="coupled anchor head level")
_NOT_DECOUPLED = decoupled(1.5)
_OBJ = fact(lambda s: s.facts.objectness, "an objectness 1×1 conv beside box and class convs", 1.5)
_NMS_FREE = fact(_topk_without_nms, "TopK selection without an NMS op (NMS-free head)", 1.0)
_RELU = activation("relu", 2.0)
_MISH = activation("mish", 2.0, share=0.3, key=True)
_LEAKY = activation("leaky_relu", 1.0)

# Blocks that only one of the later generations has: each contradicts the others.
_LATE = {
    "c2f": ("v8", "v10"), "c3k2": ("v11", "v12", "v26"), "c2psa": ("v11", "v26"), "a2c2f": ("v12",),
    "gelan": ("v9",), "adown": ("v9",), "sppelan": ("v9",), "scdown": ("v10",), "psa": ("v10",),
    "c2fcib": ("v10",), "elan": ("v7",), "mp": ("v7",), "e_elan": ("v7",), "passthrough": ("v2",),
    "fc_head": ("v1",),
}


#: Body activations each generation is trained with (a dominant other one is evidence against;
#: those with a clue of their own in the profile are listed here so they do not count twice).
_ACTIVATIONS = {
    "v1": {"leaky_relu"}, "v2": {"leaky_relu"}, "v3": {"leaky_relu", "mish", "silu"},
    "v4": {"mish", "leaky_relu", "silu"}, "v5": {"silu", "hardswish", "leaky_relu", "mish", "relu"},
    "yolox": {"silu", "relu"}, "v6": {"relu", "silu"}, "v7": {"silu", "leaky_relu", "relu"},
    "v8": {"silu"}, "v9": {"silu"}, "v10": {"silu"}, "v11": {"silu"}, "v12": {"silu"},
    "v26": {"silu"}, "yoloworld": {"silu"}, "ppyoloe": {"silu", "hardswish"}, "yolonas": {"relu"},
    "damoyolo": {"relu", "silu"},
}


def foreign(generation: str, weight: float = 2.0) -> Clue:
    """The body's dominant activation is one ``generation`` is not trained with."""

    def check(s: Signals) -> str | None:
        name, share = s.facts.dominant_activation
        if name and share >= 0.5 and name not in _ACTIVATIONS[generation]:
            return f"body activation {name} is not one {generation} uses"
        return None

    return Clue(weight, check)


#: The generations of the seed table (the families beyond it carry evidence against them).
_SEEDS = frozenset({"v1", "v2", "v3", "v4", "v5", "yolox", "v6", "v7", "v8", "v9", "v10", "v11", "v12"})


def _against_late(generation: str, weight: float = 1.5, *, family: bool = True) -> tuple[Clue, ...]:
    """Blocks of other generations, a foreign body activation and, for the seed generations,
    the defining structure of the families beyond them (ESE gates, text-embedding heads, GFPN)."""
    late = tuple(block(k, weight) for k, owners in _LATE.items() if generation not in owners)
    family_clues = _FOREIGN_FAMILY if family and generation in _SEEDS else ()
    return late + (foreign(generation),) + family_clues


def _dfl_free(s: Signals) -> bool:
    """A decoupled head whose box convs emit the 4 distances directly (no DFL bins): YOLO26."""
    return bool((s.n("decoupled_head") or s.facts.decoupled) and not (s.n("dfl") or s.facts.dfl)
                and 4 in s.facts.pred_channels)


_SE = fact(lambda s: s.facts.se_gates >= 1, "channel-attention gates (SE/ESE: sigmoid of a 1×1 conv of the "
           "global average, times the feature)", 2.0)
_DFL17 = fact(lambda s: s.facts.dfl_bins == 17, "DFL over 17 bins (reg_max 16, not Ultralytics' 16 bins)", 1.0)
_EMBED = fact(lambda s: s.facts.embedding_heads > 0, "class scores from a product with a static embedding "
              "matrix (text-embedding contrastive head)", 3.0, key=True)
_GFPN = fact(lambda s: s.facts.gfpn_merges >= 2, "RepGFPN queen-fusion merges (concat of a same-level "
             "feature with two from other scales)", 3.0, key=True)
_DFL_FREE = fact(_dfl_free, "decoupled head with 4-channel box convs and no DFL (DFL-free)", 2.0)
#: What the families outside the Ultralytics/Darknet line carry: evidence against every seed.
_FOREIGN_FAMILY = (_SE, fact(lambda s: s.facts.embedding_heads > 0,
                             "a text-embedding class head", 2.0), _GFPN)


PROFILES: tuple[Profile, ...] = (
    Profile("v1", (
        block("fc_head", 3.0, key=True, what="fully connected head"),
        block("plain_stage", 1.0, what="plain conv stage"),
        _LEAKY,
        fact(lambda s: s.facts.op("Gemm") >= 2 and s.facts.linears >= 2, "Gemm layers after the convs", 1.0),
    ), against=(block("residual", 1.0), block("csp", 1.0), _NOT_COUPLED, _NOT_DECOUPLED)
       + _against_late("v1")),
    Profile("v2", (
        block("passthrough", 3.0, key=True, what="passthrough/reorg"),
        coupled(1.0),
        block("plain_stage", 1.0, what="plain conv stage"),
        _LEAKY,
        fact(lambda s: s.facts.anchors == 5, "5 anchors per cell", 0.5),
    ), against=(block("residual", 1.5), block("csp", 1.5), block("fpn", 1.0), _NOT_DECOUPLED)
       + _against_late("v2")),
    Profile("v2", (
        tiny(1, 3.0),
        coupled(1.0),
        _LEAKY,
        fact(lambda s: s.facts.anchors == 5, "5 anchors per cell", 0.5),
    ), against=(block("fpn", 1.5), _HALF_SPLITS) + _against_late("v2"), variant="tiny", layout=_tiny_darknet),
    Profile("v3", (
        tiny(2, 3.0),
        block("fpn", 1.0, what="FPN top-down merge"),
        anchor_head(1.5, _tiny_darknet),
        _LEAKY,
    ), bonus=(fact(lambda s: s.facts.anchors == 3, "3 anchors per cell", 0.25),),
       against=(_HALF_SPLITS, block("pan", 1.0), block("sppf", 1.0)) + _against_late("v3"),
       variant="tiny", layout=_tiny_darknet),
    Profile("v4", (
        tiny(2, 3.0),
        block("fpn", 1.0, what="FPN top-down merge"),
        anchor_head(1.5, _tiny_darknet),
        _LEAKY,
    ), bonus=(fact(lambda s: s.facts.anchors == 3, "3 anchors per cell", 0.25), _HALF_SPLITS),
       against=(_NO_HALF_SPLITS, block("pan", 1.0), block("sppf", 1.0)) + _against_late("v4"),
       variant="tiny", layout=_tiny_darknet),
    Profile("v3", (
        fact(lambda s: _darknet53(s) and (s.facts.share("leaky_relu") >= 0.5 or _u_head(s)),
             "residual stages without CSP splits (Darknet-53), leaky ReLU or the 'u' head", 3.0, key=True),
        block("fpn", 1.0, what="FPN top-down merge"),
        anchor_head(1.5, _darknet53),
        _LEAKY,
    ), bonus=(fact(lambda s: s.facts.anchors == 3, "3 anchors per cell", 0.25),),
       against=(block("pan", 1.0), block("csp", 1.5), block("sppf", 1.0), activation("mish", 1.5, share=0.3),
                unless_u_head(activation("silu", 2.0), _darknet53), unless_u_head(_NOT_DECOUPLED, _darknet53))
       + _against_late("v3")),
    Profile("v4", (
        block("csp", 1.5, key=True, what="CSP"),
        _MISH,
        block("spp", 1.0, what="SPP"),
        block("pan", 0.5, what="PAN bottom-up merge"),
        coupled(1.0),
        block("residual", 0.5, what="residual"),
    ), bonus=(activation("leaky_relu", 0.5, share=0.2),),
       against=(block("sppf", 1.0), activation("silu", 1.5), _NOT_DECOUPLED, _DFL)
       + _against_late("v4")),
    Profile("v5", (
        block("csp", 2.0, key=True, what="C3/CSP"),
        block("sppf", 1.0, what="SPPF"),
        activation("silu", 1.0),
        anchor_head(2.0, _c3_body),
        block("pan", 0.5, what="PAN bottom-up merge"),
    ), bonus=(fact(lambda s: s.facts.stem == (6, 2), "6×6 stride-2 stem conv", 0.5),
              fact(lambda s: s.facts.anchors == 3, "3 anchors per cell", 0.25)),
       against=(_MISH, block("spp", 0.5), unless_u_head(_NOT_DECOUPLED, _c3_body), unless_u_head(_DFL, _c3_body),
                _OBJ, _RELU)
       + _against_late("v5")),
    Profile("yolox", (
        block("csp", 1.5, what="CSP"),
        decoupled(1.5),
        fact(lambda s: s.facts.objectness, "an objectness 1×1 conv beside box and class convs", 2.0, key=True),
        activation("silu", 1.0),
        fact(lambda s: s.facts.focus, "Focus stem: the image is sliced space-to-depth and concatenated",
             1.0, key=True),
    ), bonus=(block("spp", 0.25, what="SPP"),
              fact(lambda s: s.facts.anchors == 1, "one prediction per grid cell (anchor-free)", 0.25)),
       against=(_NOT_COUPLED, _DFL, _RELU, block("repvgg", 1.0), block("sppcspc", 1.0))
       + _against_late("yolox")),
    Profile("v6", (
        activation("relu", 2.0),
        decoupled(1.5),
        fact(lambda s: s.n("repvgg") > 0 or s.n("plain_stage") >= 3,
             "RepVGG blocks or the plain 3×3 chains they fuse into", 1.5),
        fact(lambda s: s.facts.op("ConvTranspose") > 0 and (s.n("fpn") > 0 or s.facts.levels >= 2
                                                           or s.facts.decoupled),
             "ConvTranspose upsampling in the neck", 1.0, key=True),
        block("sppcspc", 0.5, key=True, what="SimCSPSPPF/SPPCSPC"),
    ), bonus=(block("repvgg", 0.25, key=True, what="training-form RepVGG"),
              fact(lambda s: (s.n("decoupled_head") > 0 or s.facts.decoupled) and not s.facts.objectness
                   and not (s.n("dfl") or s.facts.dfl),
                   "decoupled head without objectness or DFL", 0.25),),
       against=(_NOT_COUPLED, _OBJ, activation("silu", 1.0), block("csp", 1.0), block("spp", 1.0))
       + _against_late("v6")),
    Profile("v7", (
        block("elan", 3.0, key=True, what="ELAN"),
        block("mp", 1.5, key=True, what="MP downsampling"),
        block("sppcspc", 1.0, what="SPPCSPC"),
        coupled(1.5),
        activation("silu", 0.5),
    ), bonus=(block("e_elan", 0.5, what="E-ELAN"), block("repvgg", 0.25, what="RepConv"),
              block("aux_head", 0.25, what="auxiliary head")),
       against=(_NOT_DECOUPLED, _DFL, _RELU) + _against_late("v7")),
    Profile("v8", (
        block("c2f", 3.0, key=True, what="C2f"),
        block("sppf", 1.0, what="SPPF"),
        _DECOUPLED,
        _DFL,
        _SILU,
    ), against=(_NOT_COUPLED, _OBJ, block("one2one_head", 1.5), block("csp", 0.5)) + _against_late("v8")),
    Profile("v9", (
        block("gelan", 3.0, key=True, what="GELAN (RepNCSPELAN4)"),
        block("adown", 1.5, key=True, what="ADown"),
        block("sppelan", 1.0, what="SPPELAN"),
        _DFL,
        _DECOUPLED,
        _SILU,
    ), bonus=(block("pgi", 0.5, what="PGI auxiliary branch"), block("aux_head", 0.25, what="auxiliary head")),
       against=(_NOT_COUPLED, _OBJ, block("sppf", 1.0)) + _against_late("v9")),
    Profile("v10", (
        block("scdown", 1.5, key=True, what="SCDown"),
        block("psa", 1.5, key=True, what="PSA"),
        block("c2fcib", 1.5, key=True, what="C2fCIB"),
        block("one2one_head", 1.5, key=True, what="one-to-one head"),
        block("c2f", 1.0, what="C2f"),
        _DFL,
        _SILU,
    ), bonus=(_NMS_FREE,),
       against=(_NOT_COUPLED, _OBJ) + _against_late("v10")),
    Profile("v11", (
        block("c3k2", 3.0, key=True, what="C3k2"),
        block("c2psa", 2.0, key=True, what="C2PSA"),
        block("sppf", 1.0, what="SPPF"),
        _DFL,
        _DECOUPLED,
        _SILU,
    ), against=(_NOT_COUPLED, _OBJ, block("one2one_head", 1.0), _DFL_FREE) + _against_late("v11")),
    Profile("v12", (
        block("a2c2f", 3.0, key=True, what="A2C2f area-attention"),
        block("c3k2", 1.0, what="C3k2"),
        fact(lambda s: _attention(s) >= 2, "several attention blocks", 1.0),
        _DFL,
        _DECOUPLED,
        _SILU,
    ), against=(_NOT_COUPLED, _OBJ, block("sppf", 0.5), block("one2one_head", 1.0))
       + _against_late("v12")),
    Profile("rtdetr", (
        fact(lambda s: s.facts.op("GridSample") > 0, "GridSample (deformable attention)", 2.5, key=True),
        fact(lambda s: _attention(s) >= 3, "attention in numbers (transformer encoder/decoder)", 1.5, key=True),
        fact(_topk_without_nms, "TopK query selection without an NMS op", 1.0),
        fact(lambda s: s.facts.op("LayerNormalization") > 0 or s.facts.op("ReduceMean") >= 4,
             "layer normalisation", 0.5),
    ), against=(_NOT_COUPLED, _DFL, _OBJ, block("c2f", 1.0), block("c3k2", 1.0))),
    Profile("v26", (
        block("c3k2", 3.0, key=True, what="C3k2"),
        Clue(2.0, _DFL_FREE.check, key=True),
        block("c2psa", 1.0, what="C2PSA"),
        block("sppf", 0.5, what="SPPF"),
        _SILU,
    ), bonus=(block("one2one_head", 0.5, what="one-to-one head"), _NMS_FREE),
       against=(_NOT_COUPLED, _OBJ, dfl(2.0), block("a2c2f", 1.5), _SE, _GFPN) + _against_late("v26"),
       layout=lambda s: s.n("c3k2") > 0 and _dfl_free(s)),
    Profile("yoloworld", (
        _EMBED,
        block("c2f", 2.0, what="C2f"),
        _DFL,
        _SILU,
        block("sppf", 0.5, what="SPPF"),
    ), against=(_NOT_COUPLED, _OBJ, _SE, _GFPN) + _against_late("v8", family=False),
       layout=lambda s: s.facts.embedding_heads > 0),
    Profile("ppyoloe", (
        Clue(3.0, _SE.check, key=True),
        block("csp", 1.5, what="CSPRepResNet stage (CSP)"),
        _DFL,
        _DFL17,
        _DECOUPLED,
        _SILU,
    ), bonus=(fact(lambda s: s.facts.hard_se_gates >= 2, "hard-sigmoid gates (EffectiveSE)", 0.5),
              block("spp", 0.25, what="SPP")),
       against=(_NOT_COUPLED, _OBJ, block("c2f", 1.5), block("c3k2", 1.5), block("sppf", 0.5), _RELU,
                fact(lambda s: s.facts.embedding_heads > 0, "a text-embedding class head", 2.0), _GFPN),
       layout=lambda s: s.facts.se_gates >= 1),
    Profile("yolonas", (
        activation("relu", 2.0),
        block("csp", 2.0, key=True, what="YoloNAS CSP stage"),
        Clue(1.5, _DFL17.check, key=True),
        _DFL,
        _DECOUPLED,
    ), bonus=(fact(lambda s: s.facts.op("ConvTranspose") > 0, "ConvTranspose upsampling", 0.5),
              block("spp", 0.5, what="SPP"), block("scaled_residual", 0.25, what="scaled residual (QARepVGG alpha)")),
       against=(_NOT_COUPLED, _OBJ, _SE, _GFPN, activation("silu", 2.0), block("sppf", 1.0),
                block("sppcspc", 1.0), block("c2f", 1.5), block("c3k2", 1.5)),
       layout=lambda s: s.facts.dfl_bins == 17 and s.facts.share("relu") >= 0.5),
    Profile("damoyolo", (
        _GFPN,
        fact(lambda s: 68 in s.facts.pred_channels, "box convs of 4 × 17 distribution bins (GFL head)", 1.0),
        fact(lambda s: s.n("decoupled_head") > 0 or s.facts.decoupled or 68 in s.facts.pred_channels,
             "separate box and class prediction convs", 1.0),
    ), against=(_NOT_COUPLED, _OBJ, _SE, block("c2f", 1.5), block("c3k2", 1.5), block("elan", 1.0)),
       layout=lambda s: s.facts.gfpn_merges >= 2),
)


# --------------------------------------------------------------------------- the decision


def fingerprint(
    counts: Mapping[str, int], layers: LayerGraph, graph: ModelGraph,
    matches: Sequence[BlockMatch] = (),
) -> Fingerprint:
    """Which generation the model looks like, with the evidence (see the module docstring).

    Args:
        counts: flat block counts by id (``block_counts`` of the detected blocks). When empty
            and ``matches`` are given, the counts are taken from the matches.
        layers, graph: the layer view and the op view of the model.
        matches: the detected blocks (optional; only their counts are used).
    """
    if not counts and matches:
        from graphpath.blocks import block_counts

        counts = block_counts(matches)
    facts = graph_facts(layers, graph)
    return decide(Signals(counts=dict(counts), facts=facts))


def decide(signals: Signals) -> Fingerprint:
    """Score every profile and pick the answer (the pure part of :func:`fingerprint`)."""
    scored = [(p, p.score(signals)) for p in PROFILES]
    raw: dict[str, float] = {}  # generation → its best profile's score
    for p, (value, *_) in scored:
        raw[p.generation] = max(raw.get(p.generation, 0.0), value)

    def confidence(g: str, s: float | None = None) -> float:
        s = raw[g] if s is None else s
        if s <= 0:
            return 0.0
        other = max((v for k, v in raw.items() if k != g), default=0.0)
        return s * (1.0 - 0.5 * min(1.0, other / s) ** 2)

    ranked = sorted(raw, key=lambda g: (-raw[g], GENERATIONS.index(g)))
    eligible = sorted(((p, sc) for p, sc in scored if sc[0] >= MIN_SCORE and sc[1]),
                      key=lambda t: (-t[1][0], GENERATIONS.index(t[0].generation), t[0].variant))
    if eligible:
        profile, (value, _, support, against) = eligible[0]
        best = profile.generation
        evidence = tuple(support) + tuple(f"against: {t}" for t in against)
        alternatives = tuple((g, round_float(confidence(g), places=3))
                             for g in ranked if raw[g] > 0.2 and g != best)
        return Fingerprint(best, round_float(confidence(best, value), places=3), evidence, alternatives[:3],
                           profile.variant)
    generic, conf, why = _generic(signals)
    if generic == "cnn" and _detection_head(signals):
        # A detector of a family graphpath has no profile for: say so rather than "cnn".
        generic, why = "unknown", ("a detection head but no known generation's defining blocks", *why[:1])
    candidates = tuple((g, round_float(confidence(g), places=3)) for g in ranked if raw[g] > 0.2)[:3]
    if candidates:
        why += (f"closest generation {candidates[0][0]} lacks its defining blocks",)
    return Fingerprint(generic, conf, why, candidates)


def _detection_head(s: Signals) -> bool:
    f = s.facts
    return bool(s.n("decoupled_head") or s.n("coupled_head") or s.n("dfl") or f.dfl or f.decoupled or f.objectness
                or coupled(1.0).check(s))


def _generic(s: Signals) -> tuple[str, float, tuple[str, ...]]:
    """The answer when no generation has enough evidence."""
    f = s.facts
    attn = _attention(s)
    if attn >= 2 and f.linears >= f.convs:
        return "transformer", 0.25, (
            f"{attn} attention products and {f.linears} linear layers against {f.convs} convs",
            "no generation-specific block",
        )
    if f.convs >= 3:
        act, _ = f.dominant_activation
        parts = [f"{f.convs} conv layers" + (f" ({act})" if act else "")]
        parts.append("no generation-specific block or head")
        return "cnn", round_float(min(FALLBACK_CONFIDENCE, 0.1 + f.convs / 200), places=3), tuple(parts)
    return "unknown", 0.05 if f.weighted else 0.0, (f"{f.weighted} weighted layer(s): too little structure",)
