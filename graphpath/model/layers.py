"""The layer view: the canonical DAG of units every gradient analysis walks.

See DESIGN.md "Two views of one graph". A *unit* is a weighted layer (Conv, ConvTranspose,
Gemm, MatMul with a weight), a merge (Add/Sum/Sub of two data tensors, Concat, data×data Mul,
attention MatMul), a split, a pooling or resampling op, or a graph input/output. Activation
diamonds and transparent ops are folded into the unit that produces their input; shape
arithmetic is never part of it. Each unit keeps the ONNX node names it stands for.

Edges carry ``count``: how many data edges join the two units (``Add(x, x)`` is two), so
gradient-path counts stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx

from graphpath.model.graph import ModelGraph, OpNode
from graphpath.model.ops import QUANTIZED_FLOAT_OPS, QUANTIZED_PARAM_INPUTS

#: Unit kinds. Only ``weighted`` units add to a gradient path's length.
UNIT_KINDS = ("input", "output", "weighted", "merge", "split", "pool", "resample", "other")


@dataclass(frozen=True)
class Unit:
    """One unit of the layer view.

    Attributes:
        id: stable identifier (the anchoring ONNX node's name, or the tensor name for graph
            inputs and outputs).
        kind: one of :data:`UNIT_KINDS`.
        op_type: the anchoring ONNX op (``Conv``, ``Concat`` …; ``Input``/``Output``).
        nodes: every ONNX node name the unit stands for (anchor first, folded ops after).
        tensor: the data tensor the unit produces after folding (its last folded op's output).
        activation: the folded activation's name (``silu``, ``mish`` …) or ``None``.
        scope: the name scope of the anchoring node (``model.2.m.0.cv1``) or ``""``.
        params: parameter count owned by the unit.
        attrs: small facts detectors need (kernel, stride, groups, channels, axis …).
    """

    id: str
    kind: str
    op_type: str
    nodes: tuple[str, ...] = ()
    tensor: str = ""
    activation: str | None = None
    scope: str = ""
    params: int = 0
    attrs: tuple[tuple[str, object], ...] = ()

    @property
    def weighted(self) -> bool:
        return self.kind == "weighted"

    def attr(self, key: str, default: object = None) -> object:
        return dict(self.attrs).get(key, default)


@dataclass
class LayerGraph:
    """The layer view of one model: ``dag`` maps unit ids to units (node attribute ``unit``),
    edges carry ``count``. ``inputs`` and ``outputs`` are unit ids in graph order."""

    dag: nx.DiGraph
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    _order: list[str] | None = field(default=None, repr=False, compare=False)

    def unit(self, uid: str) -> Unit:
        return self.dag.nodes[uid]["unit"]

    def units(self) -> Iterable[Unit]:
        return (self.dag.nodes[u]["unit"] for u in self.topo_order())

    def topo_order(self) -> list[str]:
        """Units in a deterministic topological order (ties broken by insertion order)."""
        if self._order is None:
            rank = self._rank()
            # Builders insert units in topological order; checking that is linear, while the
            # lexicographic sort is O(E log V) and dominates at 10^6 units.
            if all(rank[v] > rank[u] for u, nbrs in self.dag.adjacency() for v in nbrs):
                self._order = list(self.dag.nodes)
            else:
                self._order = list(nx.lexicographical_topological_sort(self.dag, key=rank.__getitem__))
        return self._order

    def _rank(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.dag.nodes)}

    def edge_count(self, u: str, v: str) -> int:
        return int(self.dag.edges[u, v].get("count", 1))

    @classmethod
    def from_edges(
        cls,
        edges: Sequence[tuple[str, str]],
        weighted: Iterable[str] = (),
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> LayerGraph:
        """Build a layer graph from a literal edge list (for tests and synthetic benchmarks).

        Repeated edges raise ``count``. Units named in ``weighted`` are weighted; sources and
        sinks default to inputs and outputs.

        >>> g = LayerGraph.from_edges([("x", "a"), ("a", "y"), ("x", "y")], weighted={"a"})
        >>> g.inputs, g.outputs, g.unit("a").kind
        (('x',), ('y',), 'weighted')
        """
        dag = nx.DiGraph()
        wset = set(weighted)
        for u, v in edges:
            for n in (u, v):
                if n not in dag:
                    dag.add_node(n)
            if dag.has_edge(u, v):
                dag.edges[u, v]["count"] += 1
            else:
                dag.add_edge(u, v, count=1)
        for n in wset:
            if n not in dag:
                dag.add_node(n)
        ins = tuple(inputs) if inputs is not None else tuple(n for n in dag if dag.in_degree(n) == 0)
        outs = tuple(outputs) if outputs is not None else tuple(n for n in dag if dag.out_degree(n) == 0)
        for n in dag:
            kind = "weighted" if n in wset else "input" if n in ins else "output" if n in outs else "other"
            dag.nodes[n]["unit"] = Unit(id=n, kind=kind, op_type=kind.capitalize(), nodes=(n,))
        return cls(dag=dag, inputs=ins, outputs=outs)


# --------------------------------------------------------------------------- building

#: Ops folded into the unit that produces their (single) data input.
TRANSPARENT_OPS = frozenset(
    """BatchNormalization Identity Dropout Cast CastLike Reshape Transpose Flatten Squeeze
    Unsqueeze Expand Tile Pad InstanceNormalization LayerNormalization GroupNormalization
    LpNormalization MeanVarianceNormalization QuantizeLinear DequantizeLinear DynamicQuantizeLinear
    ReduceMean ReduceSum ReduceMax ReduceMin ReduceL2 ReduceProd CumSum
    Relu LeakyRelu PRelu Elu Selu Celu Gelu Sigmoid HardSigmoid HardSwish Tanh Softplus Softsign
    Mish Erf Exp Log Sqrt Abs Neg Reciprocal Clip Sin Cos Softmax LogSoftmax Hardmax ThresholdedRelu
    Shrink Swish Add Sub Mul Div Pow Max Min Sum Mean Where""".split()
)

#: Transparent ops that are activations, with the name they give the folded activation.
ACTIVATION_OPS = {
    "Relu": "relu", "LeakyRelu": "leaky_relu", "PRelu": "prelu", "Elu": "elu", "Selu": "selu",
    "Celu": "celu", "Gelu": "gelu", "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign",
    "Mish": "mish", "Erf": "erf", "Clip": "clip", "Softmax": "softmax", "LogSoftmax": "log_softmax",
    "ThresholdedRelu": "thresholded_relu", "Swish": "silu",
}

_ACTIVATION_PRECEDENCE = ("Softmax", "LogSoftmax", *(op for op in ACTIVATION_OPS if op not in ("Softmax", "LogSoftmax")))

WEIGHTED_OPS = frozenset(
    {"Conv", "ConvTranspose", "Gemm", "QLinearConv", "ConvInteger", "DeformConv"}
)
MATMUL_OPS = frozenset({"MatMul", "QLinearMatMul", "MatMulInteger", "Einsum", "FusedMatMul"})
ELEMENTWISE_MERGES = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where"})
CONCAT_OPS = frozenset({"Concat", "ConcatFromSequence"})
SPLIT_OPS = frozenset({"Split", "Slice", "Gather", "GatherElements", "GatherND", "Chunk"})
POOL_OPS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "MaxRoiPool", "RoiAlign"})
RESAMPLE_OPS = frozenset({"Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "GridSample", "ConvTransposeNearest"})
#: Ops that replicate a tensor along a new axis: with an Unsqueeze before and a Reshape after,
#: a nearest upsample written as repetition (``ops.repeat`` in Keras, ``repeat_interleave``).
REPEAT_OPS = frozenset({"Tile", "Expand"})


#: Marker folded into a unit for a quantizer that clamps its output at real zero
#: (:attr:`ModelGraph.zero_floor_ops`): a ReLU when the unit has no other activation.
ZERO_FLOOR = "ZeroFloor"


#: Activations whose output is never negative.
NON_NEGATIVE = frozenset({"relu", "sigmoid", "hardsigmoid", "softmax", "softplus"})


def _clamp_is_relu(kind: str, op_type: str, inputs: list[Unit]) -> bool:
    """Whether a quantizer's clamp at zero on a unit without another activation stands for a
    ReLU the quantizer dropped: the calibrated range starting at exactly 0 means no negative
    value was seen, which for a signed feature map is the ReLU's doing. So: a weighted unit
    (a conv's output is signed), except one reading only softmax outputs (the DFL's fixed conv:
    an expectation over bins, non-negative by construction); a sum or difference of which some
    input is a signed feature map (a weighted unit or merge without a non-negative activation:
    v6's RepVGG training branches, conv + conv + BN before the dropped ReLU). Not a concat, pool
    or resample (they keep their inputs' signs), nor decode arithmetic on slices of
    non-negative distances. Nor a unit whose output reaches no further weighted unit (a head's
    prediction conv, checked by the caller): detector heads are linear, and a prediction conv
    whose calibrated range starts at 0 owes it to its bias initialisation (Ultralytics sets the
    box conv's bias to 1.0), not to a dropped ReLU."""
    if kind == "weighted":
        return not inputs or any(u.activation != "softmax" for u in inputs)
    return kind == "merge" and op_type in ("Add", "Sub", "Sum") and any(
        u.kind in ("weighted", "merge") and u.activation not in NON_NEGATIVE for u in inputs)


def _activation_name(op_types: list[str]) -> str | None:
    """Name the activation a folded run of ops implements (diamonds included); a quantizer's
    clamp at zero (:data:`ZERO_FLOOR`) is not one by itself (see :func:`_clamp_is_relu`)."""
    s = set(op_types)
    if {"Softplus", "Tanh", "Mul"} <= s:
        return "mish"
    if {"HardSigmoid", "Mul"} <= s:
        return "hardswish"
    if {"Sigmoid", "Mul"} <= s:
        return "silu"
    if "Erf" in s or "Gelu" in s or ({"Tanh", "Pow"} <= s):
        return "gelu"
    # A unit with two activations (a multi-output Split folding the class sigmoid and the DFL
    # softmax) is named by a fixed precedence, not by op order, which quantizers reorder.
    for op in _ACTIVATION_PRECEDENCE:
        if op in s:
            return ACTIVATION_OPS[op]
    return None


def _unit_attrs(graph: ModelGraph, name: str) -> tuple[tuple[str, object], ...]:
    op = graph.op(name)
    facts: dict[str, object] = {}
    for key in ("kernel_shape", "strides", "group", "axis", "mode", "dilations", "pads"):
        if key in op.attrs:
            value = op.attrs[key]
            facts[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    params = graph.dag.nodes[name]["params"]
    if op.op_type in QUANTIZED_FLOAT_OPS:
        facts["quantized"] = op.op_type
    if op.op_type in WEIGHTED_OPS | MATMUL_OPS:
        weights = [p for p in params if len(p.shape) >= 2]
        if weights:
            facts["weight_shape"] = weights[0].shape
            if op.op_type in ("Conv", "QLinearConv", "ConvInteger") and "kernel_shape" not in facts:
                facts["kernel_shape"] = weights[0].shape[2:]
        elif op.op_type in MATMUL_OPS:
            facts.update(_computed_weight(graph, op))
    out = op.outputs[0] if op.outputs else ""
    shape = graph.value_shapes.get(out)
    if shape is not None:
        facts["shape"] = shape
    if op.op_type in SPLIT_OPS:
        facts["outputs"] = len([o for o in op.outputs if o])
    return tuple(sorted(facts.items()))


def build_layers(graph: ModelGraph) -> LayerGraph:
    """Fold the op view into the layer view (see the module docstring).

    Each data tensor is mapped to the unit that produces it after folding; an op becomes a
    unit of its own only when it is weighted, a merge of two or more *different* units, a
    split, a pooling or resampling op, or unknown. A binary elementwise op whose operands both
    come from one unit (``x * sigmoid(x)``, ``x * tanh(softplus(x))``) is an activation gate
    and folds into that unit.

    One function (with the local helpers ``add_unit`` and ``connect``) because the fold is one
    topological pass over five maps that every step reads and writes; split up, each piece
    would take all five.
    """
    from graphpath.model.ops import QUANTIZE_OPS, carries_gradient, carries_output_gradient, float_op_type

    dag = nx.DiGraph()
    unit_of: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    folded_ops: dict[str, list[str]] = {}
    tensor_of: dict[str, str] = {}

    def add_unit(uid: str, kind: str, op_type: str, scope: str = "", params: int = 0,
                 attrs: tuple[tuple[str, object], ...] = ()) -> None:
        dag.add_node(uid)
        dag.nodes[uid]["proto"] = dict(kind=kind, op_type=op_type, scope=scope, params=params, attrs=attrs,
                                       attrs_op=op_type)
        members[uid] = []
        folded_ops[uid] = []

    def connect(src: str, dst: str) -> None:
        if dag.has_edge(src, dst):
            dag.edges[src, dst]["count"] += 1
        else:
            dag.add_edge(src, dst, count=1)

    repeats = _repeat_upsamples(graph)
    inputs = []
    for info in graph.inputs:
        uid = info.name
        add_unit(uid, "input", "Input", attrs=(("shape", info.shape),))
        unit_of[info.name] = uid
        tensor_of[uid] = info.name
        inputs.append(uid)

    for op in graph.ops():
        data = [
            (pos, t) for pos, t in enumerate(op.inputs)
            if t and t in unit_of and carries_gradient(op.op_type, pos)
        ]
        # If/Loop/Scan bodies read outer-scope tensors: those are data inputs too.
        data += [(-1, t) for t in graph.dag.nodes[op.name]["implicit"] if t in unit_of]
        if not data:
            continue  # static: shapes, constants, parameters
        sources = [unit_of[t] for _, t in data]
        distinct = list(dict.fromkeys(sources))
        # Quantized ops are read as the float op they compute (QLinearConv as Conv, the
        # contrib QLinearAdd as Add …); Q/DQ and dynamic quantisers are transparent.
        ot = float_op_type(op.op_type)
        known = op.is_standard or op.op_type in QUANTIZED_FLOAT_OPS or op.op_type in QUANTIZE_OPS
        if op.name in repeats:
            # a nearest upsample written as repetition: a second axis's repeat joins the first
            host_proto = dag.nodes[distinct[0]]["proto"]
            kind = "fold" if host_proto["kind"] == "resample" and host_proto["attrs_op"] in REPEAT_OPS else "resample"
        elif ot in WEIGHTED_OPS or (ot in MATMUL_OPS and len(distinct) == 1 and _has_static_operand(graph, op)):
            kind = "weighted"
        elif ot in MATMUL_OPS:
            kind = "merge"
        elif ot in CONCAT_OPS:
            kind = "merge" if len(data) >= 2 else "fold"
        elif ot in ELEMENTWISE_MERGES:
            kind = "merge" if len(distinct) >= 2 else "fold"
        elif ot in TRANSPARENT_OPS and known:
            kind = "fold" if len(distinct) == 1 else "merge"
        elif ot in SPLIT_OPS:
            kind = "fold" if _whole_slice(graph, op) else "split"
        elif ot in POOL_OPS:
            kind = "pool"
        elif ot in RESAMPLE_OPS:
            kind = "resample"
        else:
            kind = "other"
        if kind == "fold":
            host = distinct[0]
            if ot == "Add" and _separate_bias(graph, op, dag.nodes[host]["proto"], folded_ops[host], members[host]):
                # a float Conv without a bias input whose bias is added just after it (the Keras
                # torch backend, after its NCHW → NHWC transpose): the conv's own parameters
                dag.nodes[host]["proto"]["params"] += sum(p.count for p in graph.dag.nodes[op.name]["params"])
            members[host].append(op.name)
            # A product with a constant (a layer scale, YOLOv7's ImplicitM) is no gate of an
            # activation diamond: only ``x * f(x)`` makes the unit a SiLU, Mish or HardSwish.
            folded_ops[host].append(f"{ot}(const)" if ot in ELEMENTWISE_MERGES and len(data) < 2 else ot)
            if op.name in graph.zero_floor_ops:
                folded_ops[host].append(ZERO_FLOOR)
            if ot == "Add" and dag.nodes[host]["proto"]["attrs_op"] == "ConvInteger":
                # ConvInteger has no bias input: the dequantising tail adds it (a float Conv's own)
                dag.nodes[host]["proto"]["params"] += sum(p.count for p in graph.dag.nodes[op.name]["params"])
            for pos, o in enumerate(op.outputs):
                if o and carries_output_gradient(op.op_type, pos):
                    unit_of[o] = host
            if op.outputs and op.outputs[0]:
                tensor_of[host] = op.outputs[0]
            continue
        uid = op.name
        params = _unit_params(graph, op) if kind == "weighted" else 0
        add_unit(uid, kind, ot, scope=graph.scope(op.name), params=params, attrs=_unit_attrs(graph, op.name))
        dag.nodes[uid]["proto"]["attrs_op"] = op.op_type
        members[uid].append(op.name)
        if op.name in graph.zero_floor_ops:
            folded_ops[uid].append(ZERO_FLOOR)
        for src in sources:
            connect(src, uid)
        for pos, o in enumerate(op.outputs):
            if o and carries_output_gradient(op.op_type, pos):
                unit_of[o] = uid
        tensor_of[uid] = op.outputs[0] if op.outputs else ""

    outputs = []
    for info in graph.outputs:
        uid = f"output:{info.name}"
        add_unit(uid, "output", "Output", attrs=(("shape", info.shape),))
        tensor_of[uid] = info.name
        if info.name in unit_of:
            connect(unit_of[info.name], uid)
        outputs.append(uid)

    activation = {uid: _activation_name(folded_ops[uid]) for uid in dag.nodes}
    # Whether a unit's output reaches a weighted unit other than one reading only softmax
    # outputs (the DFL's fixed conv): a prediction conv does not (units are in topological order).
    feeds: dict[str, bool] = {}
    for uid in reversed(list(dag.nodes)):
        feeds[uid] = any(feeds[s] or (dag.nodes[s]["proto"]["kind"] == "weighted" and any(
            activation[p] != "softmax" for p in dag.predecessors(s))) for s in dag.successors(uid))
    for uid in dag.nodes:  # in topological order: a unit reads its inputs' finished units
        proto = dag.nodes[uid].pop("proto")
        if activation[uid] is None and ZERO_FLOOR in folded_ops[uid] and feeds[uid] and _clamp_is_relu(
                proto["kind"], proto["op_type"], [dag.nodes[p]["unit"] for p in dag.predecessors(uid)]):
            activation[uid] = "relu"
        dag.nodes[uid]["unit"] = Unit(
            id=uid, kind=proto["kind"], op_type=proto["op_type"], nodes=tuple(members[uid]),
            tensor=tensor_of.get(uid, ""), activation=activation[uid],
            scope=proto["scope"], params=proto["params"], attrs=proto["attrs"],
        )
    return LayerGraph(dag=dag, inputs=tuple(inputs), outputs=tuple(outputs))


def _computed_weight(graph: ModelGraph, op: OpNode) -> dict[str, object]:
    """A product's weight computed at load rather than stored as an initializer (a Constant
    node's tensor expanded, normalised or reshaped by static ops: YOLO-World's baked text
    embeddings): its inferred shape and which operand it is (``weight_input``; 0 when it is the
    left factor, so the product's output features are its second-to-last axis)."""
    from graphpath.model.ops import carries_gradient

    for pos, t in enumerate(op.inputs):
        if not t or not graph.is_shape(t) or not carries_gradient(op.op_type, pos):
            continue
        shape = graph.value_shapes.get(t)
        # a leading broadcast axis that shape inference left symbolic (an Expand to the batch)
        # is kept as it is: the matrix is the last two axes
        if shape is not None and len(shape) >= 2 and all(isinstance(d, int) and d > 0 for d in shape[-2:]):
            return {"weight_shape": tuple(shape), "weight_input": pos}
    return {}


def _repeat_upsamples(graph: ModelGraph) -> frozenset[str]:
    """Tile/Expand ops that repeat a feature map along one of its spatial axes: the data input
    is a rank-5 tensor with a size-1 axis after the batch and the next axis (index >= 2), made
    by an Unsqueeze of a rank-4 tensor or by a Reshape (onnxsim merges the Reshape back to rank
    4 of one axis's repeat with the next axis's Unsqueeze), and the output, through layout-only
    ops (Transpose, Cast, Identity, Q/DQ), reaches a Reshape to rank 4 or 5. That is
    ``repeat(x, r, axis)``: Keras' ``UpSampling2D``/``ops.repeat`` as tf2onnx and the Keras torch
    backend export it (one such op per axis), a nearest upsample that a PyTorch export writes as
    one Resize. Ranks come from shape inference; where it reached none the op stays a fold."""
    found = set()
    for op in graph.ops():
        if op.op_type not in REPEAT_OPS or not op.inputs or not op.outputs:
            continue
        src = graph.producer_of.get(op.inputs[0])
        if src is None or graph.op(src).op_type not in ("Unsqueeze", "Reshape"):
            continue
        before = graph.value_shapes.get(graph.op(src).inputs[0])
        after = graph.value_shapes.get(op.inputs[0])
        if before is None or after is None or len(after) != 5 or len(before) not in (4, 5):
            continue
        if graph.op(src).op_type == "Unsqueeze":
            if len(before) != 4 or not any(after[k] == 1 and _same_dims(after[:k] + after[k + 1:], before)
                                           for k in range(2, 5)):
                continue
        elif not any(after[k] == 1 for k in range(2, 5)):
            continue
        if _reshaped_to_rank(graph, op.outputs[0], (4, 5)):
            found.add(op.name)
    return frozenset(found)


#: Folded ops that only move, retype or (fake-)quantize a tensor.
_LAYOUT_FOLDS = frozenset({"Transpose", "Cast", "Identity", "QuantizeLinear", "DequantizeLinear", ZERO_FLOOR})


def _separate_bias(graph: ModelGraph, op: OpNode, host: dict[str, object], folded: list[str],
                   nodes: list[str]) -> bool:
    """``op`` (an Add) adds a float Conv's bias: the host unit is a Conv with no bias input, only
    layout ops (Transpose, Cast, Identity) come between, and the added parameter holds one value
    per output channel."""
    if host["attrs_op"] != "Conv" or not nodes or any(f not in _LAYOUT_FOLDS for f in folded):
        return False
    conv = graph.op(nodes[0])
    params = graph.dag.nodes[op.name]["params"]
    weights = graph.dag.nodes[conv.name]["params"]
    if len(conv.inputs) >= 3 and conv.inputs[2] or len(params) != 1 or not weights:
        return False
    return params[0].count == weights[0].shape[0]


def _same_dims(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Equal shapes, where two symbolic (or unknown) dims count as equal."""
    return len(a) == len(b) and all(x == y or not isinstance(x, int) or not isinstance(y, int) for x, y in zip(a, b, strict=True))


def _reshaped_to_rank(graph: ModelGraph, tensor: str, ranks: tuple[int, ...], hops: int = 6) -> bool:
    """``tensor`` reaches a Reshape whose output rank is one of ``ranks`` through layout-only ops."""
    for consumer in graph.dag.successors(graph.producer_of[tensor]):
        c = graph.op(consumer)
        if tensor not in c.inputs or not c.outputs:
            continue
        if c.op_type == "Reshape":
            shape = graph.value_shapes.get(c.outputs[0])
            if shape is not None and len(shape) in ranks:
                return True
        elif c.op_type in ("Transpose", "Cast", "Identity", "QuantizeLinear", "DequantizeLinear") and hops > 0:
            if _reshaped_to_rank(graph, c.outputs[0], ranks, hops - 1):
                return True
    return False


def _unit_params(graph: ModelGraph, op: OpNode) -> int:
    """Parameters a weighted unit owns: every initializer it reads (through aliases, casts and
    dequantisation); for a QOperator op only its weight and bias, not its scales and zero points."""
    positions = QUANTIZED_PARAM_INPUTS.get(op.op_type)
    if positions is None:
        return sum(p.count for p in graph.dag.nodes[op.name]["params"])
    total = 0
    for pos, t in enumerate(op.inputs):
        if pos not in positions:
            continue
        # through the quantizer of a weight held by a Constant (quantized as an activation)
        for _ in range(3):
            if t in graph.params or t not in graph.producer_of:
                break
            src = graph.op(graph.producer_of[t])
            if src.op_type not in ("QuantizeLinear", "DynamicQuantizeLinear", "Identity", "Cast") or not src.inputs:
                break
            t = src.inputs[0]
        total += graph.params[t].count if t in graph.params else 0
    return total


def _whole_slice(graph: ModelGraph, op: OpNode) -> bool:
    """A Slice that keeps its whole input (Darknet route layers exported as ``x[:, 0:C]``):
    shape inference gives the output the input's full, static shape."""
    if op.op_type != "Slice" or not op.inputs or not op.outputs:
        return False
    before, after = graph.value_shapes.get(op.inputs[0]), graph.value_shapes.get(op.outputs[0])
    return (before is not None and before == after and all(isinstance(d, int) for d in before))


def _has_static_operand(graph: ModelGraph, op: OpNode) -> bool:
    """A MatMul/Einsum with a weight: one operand is an initializer or computed from one (the
    operands only: a QLinearMatMul's scales and zero points are initializers too)."""
    from graphpath.model.ops import carries_gradient

    return any(t and (t in graph.params or graph.is_shape(t)) for pos, t in enumerate(op.inputs)
               if carries_gradient(op.op_type, pos))


def unit_depths(layers: LayerGraph) -> dict[str, int]:
    """Depth of every unit reachable from an input: weighted units on the longest input → unit
    path, the unit itself included (a dynamic program in topological order).

    >>> unit_depths(LayerGraph.from_edges([("x", "a"), ("a", "b"), ("x", "b")], weighted={"a", "b"}))
    {'x': 0, 'a': 1, 'b': 2}
    """
    best: dict[str, int] = {}
    for uid in layers.topo_order():
        preds = [best[p] for p in layers.dag.predecessors(uid) if p in best]
        if preds or uid in layers.inputs:
            best[uid] = (max(preds) if preds else 0) + (1 if layers.unit(uid).weighted else 0)
    return best


def depth(layers: LayerGraph) -> int:
    """Weighted units on the longest input-to-output path (0 for a graph with none).

    >>> depth(LayerGraph.from_edges([("x", "a"), ("a", "b"), ("x", "b"), ("b", "y")], weighted={"a", "b"}))
    2
    """
    best = unit_depths(layers)
    return max((best.get(o, 0) for o in layers.outputs), default=0)


def unit_counts(layers: LayerGraph) -> dict[str, int]:
    """Units per kind, every kind present (zeros included), in :data:`UNIT_KINDS` order."""
    counts = dict.fromkeys(UNIT_KINDS, 0)
    for uid in layers.dag.nodes:
        counts[layers.unit(uid).kind] += 1
    return counts


#: Activations of a channel-attention gate's weighted unit (SE: sigmoid; EffectiveSE: hard sigmoid).
GATE_ACTIVATIONS = frozenset({"sigmoid", "hardsigmoid", "hardswish"})


def channel_gate(layers: LayerGraph, uid: str) -> tuple[str, str] | None:
    """``(feature, gate)`` when unit ``uid`` is a channel-attention gate (SE / EffectiveSE / ESEAttn):
    a Mul merge of a feature ``A`` and a sigmoid-activated weighted unit ``G`` whose output is one
    value per channel and whose input is ``A`` itself (a folded ReduceMean) or a global pool of
    ``A``; else ``None``."""
    unit = layers.unit(uid)
    if unit.kind != "merge" or unit.op_type != "Mul":
        return None
    dag = layers.dag
    preds = list(dag.predecessors(uid))
    if len(preds) != 2:
        return None
    for g, a in (preds, preds[::-1]):
        gate = layers.unit(g)
        if not gate.weighted or gate.activation not in GATE_ACTIVATIONS:
            continue
        shape = gate.attr("shape")
        if isinstance(shape, tuple) and len(shape) == 4 and shape[2:] != (1, 1):
            continue
        sources = set(dag.predecessors(g))
        sources |= {q for p in sources if layers.unit(p).kind == "pool" for q in dag.predecessors(p)}
        if a in sources:
            return a, g
    return None
