"""Detection-head detectors: ``fc_head``, ``coupled_head``, ``decoupled_head``, ``dfl`` and
``nms`` (see GUIDE.md); :mod:`graphpath.blocks.head_roles` tells auxiliary and one-to-one
heads apart on the heads found here.

Every head is found from the graph outputs backwards. :func:`analyze_heads` walks from each
output through the *decode tail* (every unit that is not weighted: reshapes, sigmoids, grid and
anchor arithmetic, the Concat over levels, TopK/GatherElements selection, with the DFL's fixed
1×1 conv crossed as part of the tail) and stops at the first weighted unit on every path: those
are the *raw head units*, the last learned layers before the decode. :func:`head_tensors` names
their tensors for the numeric backward pass.

Raw units are then grouped into detection *levels*: walking back from each raw unit through
single-input weighted units gives its branch; raw units whose branches meet belong to one
level (the cls, box and objectness branches of one scale meet at their stem or at the neck
feature). A level of one 1×1 conv is coupled; a level of two or more parallel branches is
decoupled. Levels that share an output form one *head*; levels exported as raw maps, one
output each, are joined into heads in output order (a head ends where a resolution repeats).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from graphpath.blocks.base import BlockMatch, DetectionContext, register
from graphpath.fingerprint.facts import dfl_product_bins
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph, channel_gate
from graphpath.model.ops import float_op_type

#: Activations a hidden layer ends with; a raw head conv is linear (or its decode sigmoid is
#: folded into it), so a unit with one of these is a feature map (a segmentation prototype),
#: not a detection level.
HIDDEN_ACTIVATIONS = frozenset(
    {"silu", "relu", "leaky_relu", "prelu", "elu", "selu", "celu", "gelu", "mish", "hardswish", "tanh", "softplus"}
)

#: Block kinds a head stem is never part of: a level's shared root unit that belongs to one of
#: them is the neck's output, not the head's stem.
BODY_KINDS = (
    "csp", "c2f", "c3k2", "elan", "e_elan", "gelan", "sppf", "spp", "sppcspc", "sppelan", "psa",
    "c2psa", "a2c2f", "c2fcib", "repvgg", "residual", "scaled_residual", "fpn", "pan",
)

#: Longest branch followed back from a raw head unit (a head branch is a few convs deep).
MAX_BRANCH = 12


@dataclass(frozen=True)
class Level:
    """One detection level: its raw head units, the outputs they reach, its root (the unit
    where its branches meet, ``None`` for a single branch) and the units it covers."""

    raw: tuple[str, ...]
    outputs: frozenset[str]
    root: str | None
    units: frozenset[str]

    @property
    def decoupled(self) -> bool:
        return len(self.raw) >= 2


@dataclass(frozen=True)
class Head:
    """Levels that share outputs, with the DFL convs and decode-tail units of those outputs."""

    outputs: tuple[str, ...]
    levels: tuple[Level, ...]
    dfl: tuple[str, ...]
    tail: frozenset[str]

    @property
    def units(self) -> frozenset[str]:
        return frozenset(self.tail | {u for lv in self.levels for u in lv.units} | set(self.dfl))


@dataclass(frozen=True)
class HeadAnalysis:
    """Everything the head detectors share: per output the raw head units and the tail units,
    the DFL convs with the outputs they reach, the levels and the heads."""

    raw: dict[str, tuple[str, ...]]
    tail: dict[str, frozenset[str]]
    dfl: dict[str, frozenset[str]]
    levels: tuple[Level, ...]
    heads: tuple[Head, ...]


# --------------------------------------------------------------------------- the decode tail


def is_dfl_conv(layers: LayerGraph, uid: str, graph: ModelGraph | None = None) -> bool:
    """The DFL's fixed conv: a 1×1 Conv to one channel whose input went through a softmax
    (the softmax over the bins is folded into the producer of the conv's input; with ``graph``
    the folded ops are read, since a Split unit folds its cls branch's sigmoid too), or the
    same projection as a product (:func:`graphpath.fingerprint.facts.dfl_product_bins`)."""
    unit = layers.unit(uid)
    if dfl_product_bins(layers, uid, graph):
        return True
    if unit.kind != "weighted" or unit.op_type != "Conv":
        return False
    w = unit.attr("weight_shape")
    if isinstance(w, tuple) and len(w) == 4 and (w[0] != 1 or tuple(w[2:]) != (1, 1) or w[1] < 4):
        return False
    preds = list(layers.dag.predecessors(uid))
    if len(preds) != 1:
        return False
    feed = layers.unit(preds[0])
    if graph is not None:
        return any(float_op_type(graph.op(n).op_type) == "Softmax" for n in feed.nodes)
    return feed.activation == "softmax"


def _walk_tail(layers: LayerGraph, out: str, graph: ModelGraph | None = None) -> tuple[list[str], set[str], set[str]]:
    """Raw head units, tail units and DFL convs reached backwards from output unit ``out``."""
    raw: list[str] = []
    tail: set[str] = set()
    dfl: set[str] = set()
    seen = {out}
    todo = [out]
    while todo:
        uid = todo.pop()
        for p in layers.dag.predecessors(uid):
            if p in seen:
                continue
            seen.add(p)
            unit = layers.unit(p)
            if unit.kind == "input":
                continue
            if unit.kind == "weighted":
                if is_dfl_conv(layers, p, graph):
                    dfl.add(p)
                    todo.append(p)
                else:
                    raw.append(p)
                continue
            tail.add(p)
            todo.append(p)
    rank = {u: i for i, u in enumerate(layers.topo_order())}
    raw.sort(key=rank.__getitem__)
    return raw, tail, dfl


def head_units(layers: LayerGraph, graph: ModelGraph | None = None) -> dict[str, tuple[str, ...]]:
    """Raw head units per graph output: the last weighted units before the decode tail.

    Keys are the output tensor names; values unit ids in topological order. The DFL's fixed
    conv is part of the tail, not a raw unit. An output fed straight by a conv (a raw Darknet
    map) has that conv as its only raw unit. Pass ``graph`` to recognise the DFL's softmax
    among the ops folded into a multi-output Split unit.

    >>> g = LayerGraph.from_edges([("x", "a"), ("a", "b"), ("a", "c"), ("b", "y"), ("c", "y")],
    ...                           weighted={"a", "b", "c"}, outputs=["y"])
    >>> head_units(g)
    {'y': ('b', 'c')}
    """
    return {layers.unit(o).tensor or o: tuple(_walk_tail(layers, o, graph)[0]) for o in layers.outputs}


def head_tensors(layers: LayerGraph, graph: ModelGraph) -> dict[str, tuple[str, ...]]:
    """The raw head tensors per graph output, for probing a backward pass.

    Each is the output tensor of a raw head unit's weighted op itself (the Conv/Gemm output),
    before any reshape or sigmoid the layer view folded into the unit: the decode tail (DFL
    softmax and fixed conv, sigmoids, grid/anchor arithmetic, the Concat over levels,
    TopK/GatherElements/NMS selection) is left out. Keys are output tensor names.
    """
    result: dict[str, tuple[str, ...]] = {}
    for out, units in head_units(layers, graph).items():
        tensors = []
        for uid in units:
            op = graph.op(layers.unit(uid).nodes[0])
            tensors.append(op.outputs[0] if op.outputs else layers.unit(uid).tensor)
        result[out] = tuple(tensors)
    return result


# --------------------------------------------------------------------------- levels and heads


def branch(ctx: DetectionContext, raw: str) -> list[str]:
    """``raw`` and the weighted units behind it, followed while each unit has one input.

    A strided conv ends the branch (head branches keep their level's resolution; a stride-2
    conv is the backbone or neck going down to the next level).
    """
    chain = [raw]
    cur = raw
    while len(chain) < MAX_BRANCH:
        preds = ctx.preds(cur)
        if len(preds) != 1 or not ctx.is_weighted(preds[0]) or preds[0] in chain:
            break
        info = ctx.conv(preds[0])
        if info is not None and info.stride >= 2:
            break
        cur = preds[0]
        chain.append(cur)
    return chain


def _level(ctx: DetectionContext, raw: list[str], outputs: frozenset[str], chains: dict[str, list[str]],
           others: set[str]) -> Level:
    """A level from its raw units: the branches up to the unit where they all meet (the root),
    and the root itself when it feeds only the level and no other block claims it (a stem)."""
    if len(raw) == 1:
        return Level(raw=tuple(raw), outputs=outputs, root=None, units=frozenset(raw))
    common = set(chains[raw[0]]).intersection(*(set(chains[r]) for r in raw[1:]))
    root = next((u for u in chains[raw[0]] if u in common), None)
    if root is None:  # branches that meet only at the feature they all read
        feeds = set(ctx.preds(chains[raw[0]][-1])).intersection(*(set(ctx.preds(chains[r][-1])) for r in raw[1:]))
        root = min(feeds) if len(feeds) == 1 else None
    units: set[str] = set()
    for r in raw:
        for u in chains[r]:
            if u == root:
                break
            units.add(u)
    if (root is not None and ctx.is_weighted(root) and root not in others
            and all(s in units for s in ctx.succs(root))):
        units.add(root)
    return Level(raw=tuple(raw), outputs=outputs, root=root, units=frozenset(units))


def analyze_heads(ctx: DetectionContext) -> HeadAnalysis:
    """Walk every output's decode tail and group the raw head units into levels and heads.

    The three steps (walk the tails, union raw units whose branches share a unit, group the
    groups into levels and heads) read the same per-output maps, so they stay in one function
    in that order."""
    layers = ctx.layers
    raw_of: dict[str, tuple[str, ...]] = {}
    tail_of: dict[str, frozenset[str]] = {}
    reach: dict[str, set[str]] = {}
    dfl_reach: dict[str, set[str]] = {}
    for out in layers.outputs:
        raw, tail, dfl = _walk_tail(layers, out, ctx.graph)
        raw_of[out], tail_of[out] = tuple(raw), frozenset(tail)
        for r in raw:
            reach.setdefault(r, set()).add(out)
        for d in dfl:
            dfl_reach.setdefault(d, set()).add(out)

    rank = {u: i for i, u in enumerate(layers.topo_order())}
    detect_raw = [
        r for r in sorted(reach, key=rank.__getitem__)
        if (ctx.unit(r).op_type in ("Conv", "QLinearConv", "ConvInteger") or _embedding_product(ctx, r))
        and ctx.unit(r).activation not in HIDDEN_ACTIVATIONS
    ]
    chains = {r: branch(ctx, r) for r in detect_raw}

    # Union raw units whose branches share a unit.
    parent = {r: r for r in detect_raw}

    def find(r: str) -> str:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    owner: dict[str, str] = {}
    size = {r: ctx.spatial(r) for r in detect_raw}

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb and not (size[a] and size[b] and size[a] != size[b]):  # levels differ in size
            parent[ra] = rb

    for r in detect_raw:
        # A branch's units, and the feature it reads (branches of one level may meet only there).
        keys = chains[r] + [f"feed:{p}" for p in _feeds(ctx, chains[r][-1])]
        for u in keys:
            if u in owner:
                union(r, owner[u])
            else:
                owner[u] = r
    groups: dict[str, list[str]] = {}
    for r in detect_raw:
        groups.setdefault(find(r), []).append(r)

    others = {u for kind in BODY_KINDS for m in ctx.matches(kind) for u in m.units}
    levels: list[Level] = []
    for members in groups.values():
        # Two complete heads on the same features (v10's one-to-many and one-to-one): split a
        # group by the outputs it reaches when every part still has parallel branches.
        parts: dict[frozenset[str], list[str]] = {}
        for r in members:
            parts.setdefault(frozenset(reach[r]), []).append(r)
        if len(parts) > 1 and (all(len(p) >= 2 for p in parts.values()) or _repeated_conv(ctx, parts.values())):
            split = list(parts.items())
        else:
            split = [(frozenset(o for r in members for o in reach[r]), members)]
        for outs, raw in split:
            levels.append(_level(ctx, raw, outs, chains, others))
    levels.sort(key=lambda lv: rank[lv.raw[0]])

    # Levels that share an output form one head (an export may also emit each level's raw
    # tensor beside the decoded concat: those levels still belong together).
    by_outputs: dict[frozenset[str], list[Level]] = {}
    for lv in levels:
        joined = [k for k in by_outputs if k & lv.outputs]
        outs = frozenset(lv.outputs).union(*joined)
        by_outputs[outs] = sorted([m for k in joined for m in by_outputs.pop(k)] + [lv],
                                  key=lambda m: rank[m.raw[0]])
    out_index = {o: i for i, o in enumerate(layers.outputs)}
    by_outputs = _join_raw_maps(ctx, by_outputs, out_index)
    heads = []
    for outs, lvls in by_outputs.items():
        ordered = tuple(sorted(outs, key=out_index.__getitem__))
        head_dfl = tuple(sorted((d for d, r in dfl_reach.items() if r <= outs), key=rank.__getitem__))
        head_tail = frozenset(u for o in ordered for u in tail_of[o])
        heads.append(Head(outputs=ordered, levels=tuple(lvls), dfl=head_dfl, tail=head_tail))
    heads.sort(key=lambda h: min(out_index[o] for o in h.outputs))
    return HeadAnalysis(
        raw={layers.unit(o).tensor or o: raw_of[o] for o in layers.outputs},
        tail=tail_of,
        dfl={d: frozenset(r) for d, r in dfl_reach.items()},
        levels=tuple(levels),
        heads=tuple(heads),
    )


def _embedding_product(ctx: DetectionContext, uid: str) -> bool:
    """A conv feature map multiplied by a static embedding matrix (rank ≥ 3, one per batch
    item): the class branch of a text-contrastive head (YOLO-World), whose class scores are the
    product of the image embedding with the baked text embeddings."""
    unit = ctx.unit(uid)
    shape = unit.attr("weight_shape")
    preds = ctx.preds(uid)
    return (ctx.is_weighted(uid) and unit.op_type in ("MatMul", "Einsum") and isinstance(shape, tuple)
            and len(shape) >= 3 and len(preds) == 1 and ctx.conv(preds[0]) is not None)


def _feeds(ctx: DetectionContext, uid: str) -> list[str]:
    """The units a head branch starting at ``uid`` reads: its inputs and, behind a
    channel-attention gate on a feature or a residual add around a feature, that feature
    (PP-YOLOE's ET-head: the class branch reads ``stem(feat · gate) + feat``, the box branch
    ``feat · gate``; both are the level's feature ``feat``)."""
    out: list[str] = []
    for p in ctx.preds(uid):
        out.append(p)
        gated = channel_gate(ctx.layers, p)
        if gated is not None:
            out.append(gated[0])
            continue
        unit = ctx.unit(p)
        pair = ctx.preds(p)
        if unit.kind == "merge" and unit.op_type == "Add" and len(pair) == 2:
            a, b = pair
            if nx.has_path(ctx.layers.dag, a, b):
                out.append(a)
            elif nx.has_path(ctx.layers.dag, b, a):
                out.append(b)
    return out


def _repeated_conv(ctx: DetectionContext, parts: Iterable[list[str]]) -> bool:
    """One prediction conv per part, all of one width, each reaching its own outputs: the
    same level of two heads (v7's lead and auxiliary heads on one neck feature), not the
    branches of one decoupled level (those differ in width: box, class, objectness)."""
    convs = [ctx.conv(p[0]) if len(p) == 1 else None for p in parts]
    return all(c is not None for c in convs) and len({c.cout for c in convs if c is not None}) == 1


def _join_raw_maps(ctx: DetectionContext, by_outputs: dict[frozenset[str], list[Level]],
                   out_index: dict[str, int]) -> dict[frozenset[str], list[Level]]:
    """Levels exported as raw maps, one output each, joined into heads in output order; a
    head ends where a resolution repeats (v7's four lead outputs, then its four auxiliary ones;
    a Darknet export's three maps are one head)."""
    singles = sorted((k for k, v in by_outputs.items() if len(v) == 1 and len(k) == 1 and not v[0].decoupled),
                     key=lambda k: out_index[next(iter(k))])
    if len(singles) < 2:
        return by_outputs
    joined = {k: v for k, v in by_outputs.items() if k not in singles}
    outs: frozenset[str] = frozenset()
    group: list[Level] = []
    for k in singles:
        size = ctx.spatial(by_outputs[k][0].raw[0])
        if group and (size is None or size in {ctx.spatial(lv.raw[0]) for lv in group}):
            joined[outs] = group
            outs, group = frozenset(), []
        outs, group = outs | k, group + by_outputs[k]
    joined[outs] = group
    return joined


def detection_heads(analysis: HeadAnalysis) -> list[Head]:
    """Heads that detect: at least two levels, or one decoupled level, or a DFL decode."""
    return [h for h in analysis.heads if len(h.levels) >= 2 or any(lv.decoupled for lv in h.levels) or h.dfl]


def nms_ops(graph: ModelGraph) -> list[str]:
    """ONNX nodes that are a non-maximum suppression (standard or a vendor plug-in)."""
    return [op.name for op in graph.ops() if op.op_type == "NonMaxSuppression" or "NMS" in op.op_type.upper()]


# --------------------------------------------------------------------------- detectors


class CoupledHeadDetector:
    """One coupled anchor head per level: a single linear 1×1 conv (anchors × (5 + classes)
    channels) feeding the decode or an output, with no parallel branch beside it.

    Evidence: "a single linear 1×1 conv of N channels is this level's only raw head output".
    """

    kind = "coupled_head"
    after: tuple[str, ...] = BODY_KINDS

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        analysis = analyze_heads(ctx)
        found = []
        for lv in analysis.levels:
            if lv.decoupled:
                continue
            conv = ctx.conv(lv.raw[0])
            if conv is None or conv.kernel not in ((1, 1), (1,)) or conv.groups != 1:
                continue
            found.append(ctx.make_match(
                self.kind, lv.units, structure={"channels": conv.cout},
                evidence=f"a single linear 1x1 conv of {conv.cout} channels is this level's only raw head output",
            ))
        return found


class DecoupledHeadDetector:
    """One decoupled head per level: two or more parallel branches (classification, box,
    objectness) from one stem or neck feature, each ending in its own raw head conv.

    Evidence: "N parallel branches from one feature end in raw head convs of C channels".
    """

    kind = "decoupled_head"
    after: tuple[str, ...] = BODY_KINDS

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        analysis = analyze_heads(ctx)
        found = []
        for lv in analysis.levels:
            if not lv.decoupled:
                continue
            widths = [c.cout for c in (ctx.conv(r) for r in lv.raw) if c is not None]
            found.append(ctx.make_match(
                self.kind, lv.units,
                structure={"branches": len(lv.raw), "stem": lv.root in lv.units, "widths": widths},
                evidence=(f"{len(lv.raw)} parallel branches from one feature end in raw head convs "
                          f"of {', '.join(map(str, widths))} channels"),
            ))
        return found


class DflDetector:
    """One DFL decode per detection output: box bins → softmax over the bins → a fixed 1×1
    conv to one channel (the expected bin), or the same projection as a product with a
    ``(bins, 1)`` vector (GFL's ``Integral``, DAMO-YOLO). DFL convs reaching the same outputs
    are one decode.

    Evidence: "softmax over N bins into a fixed 1x1 conv to one channel" (or "… into a fixed
    projection to one value (a product with the bin values)").
    """

    kind = "dfl"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        analysis = analyze_heads(ctx)
        groups: dict[frozenset[str], list[str]] = {}
        for d in sorted(analysis.dfl, key={u: i for i, u in enumerate(ctx.layers.topo_order())}.__getitem__):
            groups.setdefault(analysis.dfl[d], []).append(d)
        found = []
        for convs in groups.values():
            info = ctx.conv(convs[0])
            product = dfl_product_bins(ctx.layers, convs[0], ctx.graph)
            bins = product or (info.cin if info is not None and info.cin else "the")
            found.append(ctx.make_match(
                self.kind, convs, structure={"bins": bins},
                evidence=(f"softmax over {bins} bins into a fixed projection to one value (a product with "
                          f"the bin values)" if product else
                          f"softmax over {bins} bins into a fixed 1x1 conv to one channel"),
            ))
        return found


class FcHeadDetector:
    """v1's fully connected head: a feature map flattened into a fully connected layer,
    chained into a second one that is a raw head output (Flatten → Gemm → Gemm) — or, as in
    Darknet's ``yolov1.cfg``, a locally connected layer (unshared weights per position,
    exported as an Einsum over the unfolded map) chained into the fully connected output.

    Evidence: "flattened feature map into two chained fully connected layers" /
    "locally connected layer into a fully connected layer".
    """

    kind = "fc_head"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        raw = {r for units in head_units(ctx.layers, ctx.graph).values() for r in units}
        for r in sorted(raw):
            if not _is_fc(ctx, r):
                continue
            preds = ctx.preds(r)
            if len(preds) != 1 or not (_is_fc(ctx, preds[0]) or _is_local(ctx, preds[0])) \
                    or len(ctx.succs(preds[0])) != 1:
                continue
            first = preds[0]
            if _is_local(ctx, first):
                return [ctx.make_match(self.kind, [first, r], structure={"layers": 2, "local": True},
                                       evidence="locally connected layer into a fully connected layer")]
            feed = ctx.preds(first)
            if len(feed) != 1 or not _flattens(ctx, feed[0]):
                continue
            return [ctx.make_match(self.kind, [first, r], structure={"layers": 2},
                                   evidence="flattened feature map into two chained fully connected layers")]
        return []


def _is_fc(ctx: DetectionContext, uid: str) -> bool:
    return ctx.is_weighted(uid) and ctx.unit(uid).op_type in ("Gemm", "MatMul", "FusedMatMul")


def _is_local(ctx: DetectionContext, uid: str) -> bool:
    """A locally connected layer: a weighted Einsum whose weight has one matrix per position."""
    shape = dict(ctx.unit(uid).attrs).get("weight_shape")
    return ctx.is_weighted(uid) and ctx.unit(uid).op_type == "Einsum" and isinstance(shape, tuple) and len(shape) >= 3


def _flattens(ctx: DetectionContext, uid: str) -> bool:
    """The unit's output went through a Flatten or Reshape (a feature map made a vector)."""
    return any(ctx.graph.op(n).op_type in ("Flatten", "Reshape") for n in ctx.unit(uid).nodes[1:])


class NmsDetector:
    """An embedded non-maximum suppression: a NonMaxSuppression node (or a vendor NMS plug-in)
    and the selection after it. One per model.

    Evidence: "NonMaxSuppression selects the detections".
    """

    kind = "nms"
    after: tuple[str, ...] = ()

    def detect(self, ctx: DetectionContext) -> list[BlockMatch]:
        nms = nms_ops(ctx.graph)
        if not nms:
            return []
        ops = set(nms)
        for n in nms:
            ops |= nx.descendants(ctx.graph.dag, n)
        units = _units_of(ctx, ops)
        if not units:  # NMS is not a data op: use the units that feed it
            feeds = {ctx.graph.producer_of.get(t, "") for n in nms for t in ctx.graph.op(n).inputs}
            units = _units_of(ctx, feeds)
        if not units:
            return []
        op_type = ctx.graph.op(nms[0]).op_type
        return [ctx.make_match(self.kind, units, structure={"op": op_type},
                               evidence=f"{op_type} selects the detections")]


def _units_of(ctx: DetectionContext, ops: Iterable[str]) -> set[str]:
    wanted = set(ops)
    return {
        u for u in ctx.layers.dag.nodes
        if ctx.unit(u).kind not in ("input", "output") and wanted.intersection(ctx.unit(u).nodes)
    }


for _detector in (FcHeadDetector(), CoupledHeadDetector(), DecoupledHeadDetector(), DflDetector(),
                  NmsDetector()):
    register(_detector)
