"""Models rewritten for onnxruntime-training (graphpath.numeric.backends.ort_training).

The onnxruntime-training backend (graphpath.numeric.backends.ort_training) builds its gradient graph
from a rewritten copy of the model: graph outputs replaced by one scalar probe loss, the
cotangents fed as extra graph inputs (one set of artifacts serves any cotangent), Constant
nodes holding float values turned into initializers (graphpath counts them as parameters), and
the ops onnxruntime-training cannot differentiate on CPU written as the same function in ops
it can: nearest Resize by integer factors (Unsqueeze/Expand/Reshape), non-overlapping
ConvTranspose (MatMul/Reshape/Transpose), inference BatchNormalization and
Softplus/Mish/HardSigmoid/HardSwish (elementwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from graphpath.errors import GraphpathError
from graphpath.model.loaded import LoadedModel
from graphpath.model.ops import NON_DIFFERENTIABLE_OPS, carries_gradient
from graphpath.onnx_io._proto import external_location, outer_references, weight_constant, without_bulk_data

__all__ = ["TRAINING_LOSS", "TrainingModel", "parse_model_bytes", "training_model"]
#: Name of the scalar loss output of :func:`training_model` (made unique per model).
TRAINING_LOSS = "graphpath_probe_loss"

_FLOAT_ELEM_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                               onnx.TensorProto.BFLOAT16})


@dataclass(frozen=True)
class TrainingModel:
    """A model rewritten for gradient-graph generation (see :func:`training_model`).

    Attributes:
        model_bytes: the serialized rewritten model; its only output is :attr:`loss`.
        loss: name of the scalar output ``Σ_h ReduceSum(head_h * cotangent_h)``.
        cotangent_inputs: head tensor → the graph input that takes its cotangent.
        data_inputs: the original graph inputs the loss still needs, in graph order.
        requires_grad: float initializers that carry gradient to the loss, in graph order.
        differentiated: ``(node name, op_type)`` of every node the backward pass goes through
            (downstream of a parameter at a gradient-carrying input and upstream of the loss).
        rewritten: names of the nodes replaced by the same function in other ops: nearest
            Resizes (Unsqueeze/Expand/Reshape), ConvTransposes (MatMul/Reshape/Transpose),
            inference BatchNormalizations and Softplus/Mish/HardSigmoid/HardSwish (elementwise).
        kept_resizes: Resize node name → why it could not be rewritten exactly.
        param_uses: each name of :attr:`requires_grad` → ``(op_type, input position)`` of the
            differentiated nodes that read it at a gradient-carrying input.
        resize_unknowns: tensors whose values (Resize scales/sizes computed at run time) or
            shapes (Resize data inputs) would let a kept Resize be rewritten: pass them back as
            ``known_values`` / ``known_shapes``.
    """

    model_bytes: bytes
    loss: str
    cotangent_inputs: dict[str, str]
    data_inputs: tuple[str, ...]
    requires_grad: tuple[str, ...]
    differentiated: tuple[tuple[str, str], ...]
    rewritten: tuple[str, ...]
    kept_resizes: dict[str, str]
    param_uses: dict[str, tuple[tuple[str, int], ...]]
    resize_unknowns: tuple[str, ...] = ()


def training_model(loaded: LoadedModel, head_tensors: Iterable[str], *,
                   rewrite_nearest_resize: bool = True,
                   rewrite_conv_transpose: bool = True,
                   rewrite_batch_norm: bool = True,
                   rewrite_activations: bool = True,
                   known_values: Mapping[str, np.ndarray] | None = None,
                   known_shapes: Mapping[str, Sequence[int]] | None = None) -> TrainingModel:
    """Rewrite ``loaded`` (its external data read in) into a model whose only output is the probe loss at ``head_tensors``.

    The loss is ``L = Σ_h ReduceSum(head_h * cotangent_h)``, with one new float graph input per
    head for its cotangent (same type and shape as the head). Nodes the loss does not need are
    dropped (decode/NMS tails cut off at the heads), and so are unused initializers and inputs.

    ``known_values`` and ``known_shapes`` supply what a static read cannot: Resize sizes computed
    from shapes at run time (``F.interpolate(size=x.shape[2:])``) and input shapes that shape
    inference lost, e.g. taken from one onnxruntime run at the export's input size. The caller
    vouches that they hold for the inputs the model will be run on.

    ``rewrite_conv_transpose`` writes each 2-D ConvTranspose whose stride equals its kernel
    (no overlap, no padding, group 1: the YOLOv6 upsampler) as Transpose → MatMul → Reshape →
    Transpose → Reshape (+ bias), the same function through ops onnxruntime-training can
    differentiate on CPU; the weight and bias stay the same initializers.
    ``rewrite_batch_norm`` writes inference-mode BatchNormalization as
    ``(x − mean)·(scale/√(var + ε)) + B`` in elementwise ops (onnxruntime-training cannot build
    its gradient graph), keeping the gradients of scale and B (mean and var are running
    statistics, no more trainable than in the original graph).
    ``rewrite_activations`` writes Softplus as ``relu(x) + log(1 + exp(−|x|))`` (the overflow-free
    form), Mish as ``x·tanh(softplus(x))``, HardSigmoid as ``clip(αx + β, 0, 1)`` and HardSwish
    as ``x·clip(x/6 + 1/2, 0, 1)`` (onnxruntime-training has no gradient builder for them).

    Each rewrite is a function of its own; this one orders them and builds the loss, which is
    why it is long.

    Raises:
        GraphpathError: no heads, or a head that is not a tensor of the graph.
    """
    p = loaded.path
    model = loaded.inlined_proto()
    heads = list(dict.fromkeys(head_tensors))
    if not heads:
        raise GraphpathError("the probe loss needs at least one head tensor")
    g = model.graph
    known = {t.name for t in g.initializer} | {i.name for i in g.input} | {o for n in g.node for o in n.output if o}
    for h in heads:
        if h not in known:
            raise GraphpathError(f"{p}: no tensor named {h!r} in the graph (head tensors must be tensors of it)")
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    types = _tensor_types(model)

    _prune_to(g, heads)
    _constants_to_initializers(g)
    # Parameters are decided on the graph as exported: the rewrites' own constants are not
    # parameters, and neither are initializers the heads read only where no gradient is taken
    # (BatchNormalization running statistics, which the rewrite would otherwise differentiate).
    own_params = {t.name for t in g.initializer} & _gradient_needs(g, heads)
    rewritten: list[str] = []
    kept: dict[str, str] = {}
    unknowns: list[str] = []
    if rewrite_nearest_resize:
        rewritten, kept, unknowns = _rewrite_nearest_resizes(g, opset, types, known_values or {},
                                                             known_shapes or {})
    else:
        kept = {n.name: "rewrite turned off" for n in g.node if n.op_type == "Resize"}
    if rewrite_conv_transpose:
        rewritten += _rewrite_conv_transposes(g, types)
    if rewrite_batch_norm:
        rewritten += _rewrite_batch_norms(g, types)
    if rewrite_activations:
        rewritten += _rewrite_activations(g, types)

    taken = known | {o for n in g.node for o in n.output}
    loss = _unique_name(TRAINING_LOSS, taken)
    cotangents: dict[str, str] = {}
    partial: list[str] = []
    new_nodes: list[onnx.NodeProto] = []
    for i, h in enumerate(heads):
        cot = _unique_name(f"graphpath_cotangent_{i}", taken)
        taken.add(cot)
        cotangents[h] = cot
        head_type = types.get(h)
        vi = onnx.ValueInfoProto()
        vi.name = cot
        if head_type is not None and head_type.HasField("tensor_type"):
            vi.type.CopyFrom(head_type)
        else:
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        g.input.append(vi)
        prod = _unique_name(f"graphpath_probe_{i}_mul", taken)
        red = _unique_name(f"graphpath_probe_{i}_sum", taken)
        taken.update((prod, red))
        new_nodes.append(helper.make_node("Mul", [h, cot], [prod], name=prod))
        new_nodes.append(helper.make_node("ReduceSum", [prod], [red], name=red, keepdims=0))
        partial.append(red)
    total = partial[0]
    for j, term in enumerate(partial[1:], start=1):
        out = loss if j == len(partial) - 1 else _unique_name(f"graphpath_probe_total_{j}", taken)
        taken.add(out)
        new_nodes.append(helper.make_node("Add", [total, term], [out], name=out))
        total = out
    if total != loss:
        new_nodes.append(helper.make_node("Identity", [total], [loss], name=loss))
    g.node.extend(new_nodes)
    elem = types[heads[0]].tensor_type.elem_type if heads[0] in types and types[heads[0]].HasField(
        "tensor_type") else onnx.TensorProto.FLOAT
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(loss, elem, []))

    _prune_to(g, [loss])  # drops what the rewrite left unused (Resize scales)
    requires_grad, differentiated, uses = _gradient_cone(g, loss, own_params)
    data_inputs = tuple(i.name for i in g.input if i.name not in set(cotangents.values())
                        and i.name not in {t.name for t in g.initializer})
    return TrainingModel(
        model_bytes=bytes(model.SerializeToString()), loss=loss, cotangent_inputs=cotangents,
        data_inputs=data_inputs, requires_grad=requires_grad, differentiated=differentiated,
        rewritten=tuple(rewritten), kept_resizes=kept, param_uses=uses,
        resize_unknowns=tuple(unknowns),
    )


def _unique_name(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _tensor_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Types (with inferred shapes where inference succeeds) by tensor name."""
    try:
        inferred = onnx.shape_inference.infer_shapes(without_bulk_data(model), strict_mode=False, data_prop=True)
    except Exception:  # onnx raises several unrelated types; fall back to the declared types
        inferred = model
    g = inferred.graph
    out: dict[str, onnx.TypeProto] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        out[vi.name] = vi.type
    for t in model.graph.initializer:
        tp = onnx.TypeProto()
        tp.tensor_type.elem_type = t.data_type
        for d in t.dims:
            tp.tensor_type.shape.dim.add().dim_value = int(d)
        out.setdefault(t.name, tp)
    return out


def _prune_to(g: onnx.GraphProto, targets: list[str]) -> None:
    """Keep only the nodes, initializers and inputs ``targets`` depend on."""
    producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
    keep: set[int] = set()
    stack = list(targets)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        i = producer.get(t)
        if i is None or i in keep:
            continue
        keep.add(i)
        node = g.node[i]
        stack.extend(x for x in node.input if x)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                stack.extend(outer_references(sub))
    nodes = [n for i, n in enumerate(g.node) if i in keep]
    inits = [t for t in g.initializer if t.name in seen]
    inputs = [vi for vi in g.input if vi.name in seen]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.input[:]
    g.input.extend(inputs)


def _constants_to_initializers(g: onnx.GraphProto) -> None:
    """Float ``Constant`` nodes that graphpath counts as parameters become initializers."""
    nodes = []
    for node in g.node:
        value = weight_constant(node)
        if value is not None and value.data_type in _FLOAT_ELEM_TYPES and external_location(value) is None:
            t = onnx.TensorProto()
            t.CopyFrom(value)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)


def _constant_values(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for t in g.initializer:
        if external_location(t) is None:
            values[t.name] = numpy_helper.to_array(t)
    for node in g.node:
        if node.op_type != "Constant" or len(node.output) != 1:
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                values[node.output[0]] = numpy_helper.to_array(attr.t)
            elif attr.name in ("value_floats", "value_ints", "value_float", "value_int"):
                values[node.output[0]] = np.asarray(helper.get_attribute_value(attr))
    return values


def _nearest_exact(factor: int, ctm: str, nearest_mode: str) -> bool:
    """Whether nearest Resize by integer ``factor`` is a plain repeat: out[i] = in[i // factor].

    With source coordinate x(i): asymmetric x = i/f; half_pixel x = (i + 0.5)/f - 0.5, which for
    i = k·f + r lies strictly within k ± 0.5, so rounding gives k; tf_half_pixel_for_nn
    x = (i + 0.5)/f has floor k.
    """
    if factor == 1:
        return True
    if ctm == "asymmetric":
        return nearest_mode == "floor" or (factor == 2 and nearest_mode == "round_prefer_floor")
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        return nearest_mode in ("round_prefer_floor", "round_prefer_ceil")
    if ctm == "tf_half_pixel_for_nn":
        return nearest_mode == "floor"
    return False


def _resize_factors(node: onnx.NodeProto, opset: int, values: Mapping[str, np.ndarray],
                    in_shape: list[int | None]) -> tuple[list[int] | None, str]:
    """Integer per-axis factors of an exact nearest Resize, or ``None`` and the reason."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def text(key: str, default: str) -> str:
        v = attrs.get(key, default)
        return v.decode() if isinstance(v, bytes) else str(v)

    mode = text("mode", "nearest")
    if mode != "nearest":
        return None, f"mode {mode!r} (only nearest can be rewritten)"
    ctm = text("coordinate_transformation_mode", "half_pixel" if opset >= 11 else "asymmetric")
    nmode = text("nearest_mode", "round_prefer_floor")
    rank = len(in_shape)
    axes = [int(a) % rank for a in attrs.get("axes", range(rank))] if rank else []
    scales_name = node.input[1] if opset < 11 and len(node.input) > 1 else (node.input[2] if len(node.input) > 2 else "")
    sizes_name = node.input[3] if opset >= 11 and len(node.input) > 3 else ""
    ratios: list[float] = [1.0] * rank
    if scales_name:
        if scales_name not in values:
            return None, "scales are computed at run time"
        sc = [float(s) for s in np.asarray(values[scales_name]).reshape(-1)]
        if sc:
            if len(sc) != len(axes):
                return None, f"{len(sc)} scales for {len(axes)} axes"
            for a, s in zip(axes, sc, strict=True):
                ratios[a] = s
    if sizes_name and not (scales_name and np.asarray(values.get(scales_name, [])).size):
        if sizes_name not in values:
            return None, "sizes are computed at run time"
        if text("keep_aspect_ratio_policy", "stretch") != "stretch":
            return None, "sizes with keep_aspect_ratio_policy other than stretch"
        sz = [int(s) for s in np.asarray(values[sizes_name]).reshape(-1)]
        if len(sz) != len(axes):
            return None, f"{len(sz)} sizes for {len(axes)} axes"
        for a, s in zip(axes, sz, strict=True):
            d = in_shape[a]
            if d is None:
                return None, f"sizes given but input dimension {a} is unknown"
            ratios[a] = s / d
    factors: list[int] = []
    for a, r in enumerate(ratios):
        f = int(round(r))
        if f < 1 or abs(r - f) > 1e-6:
            return None, f"scale {r:g} on axis {a} is not an integer upsampling factor"
        if not _nearest_exact(f, ctm, nmode):
            return None, f"factor {f} with {ctm}/{nmode} is not a plain repeat"
        factors.append(f)
    return factors, ""


def _rewrite_nearest_resizes(
    g: onnx.GraphProto, opset: int, types: Mapping[str, onnx.TypeProto],
    known_values: Mapping[str, np.ndarray], known_shapes: Mapping[str, Sequence[int]],
) -> tuple[list[str], dict[str, str], list[str]]:
    """Replace each exact nearest Resize by Unsqueeze → Expand → Reshape (same output name).

    ``x`` of shape (d0, d1, …) with integer factors (f0, f1, …) gets a new axis after each
    upsampled axis, is broadcast along it (Expand to f), and reshaped to (d0·f0, d1·f1, …); the
    target shape is ``Shape(x) * factors`` at run time, so unknown dimensions do not matter.
    """
    values = {**_constant_values(g), **{k: np.asarray(v) for k, v in known_values.items()}}
    taken = {t.name for t in g.initializer} | {i.name for i in g.input} | {o for n in g.node for o in n.output}
    rewritten: list[str] = []
    kept: dict[str, str] = {}
    unknowns: list[str] = []
    nodes: list[onnx.NodeProto] = []
    for idx, node in enumerate(g.node):
        if node.op_type != "Resize" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        label = node.name or f"Resize_{idx}"
        x = node.input[0]
        dims: list[int | None]
        if x in known_shapes:
            dims = [int(d) for d in known_shapes[x]]
        else:
            tp = types.get(x)
            if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
                kept[label] = "input rank unknown"
                unknowns.append(x)
                nodes.append(node)
                continue
            dims = [int(d.dim_value) if d.HasField("dim_value") else None for d in tp.tensor_type.shape.dim]
        factors, why = _resize_factors(node, opset, values, dims)
        if factors is None:
            kept[label] = why
            if "run time" in why or "unknown" in why:
                unknowns.extend(t for t in [x, *node.input[1:]] if t and t not in values)
            nodes.append(node)
            continue
        if all(f == 1 for f in factors):
            # A same-size Resize is the identity (and an Unsqueeze with no axes would get a
            # Squeeze-all gradient, dropping unit dimensions).
            nodes.append(helper.make_node("Identity", [x], [node.output[0]], name=label))
            rewritten.append(label)
            continue
        new_axes, expand = [], []
        pos = 0
        for f in factors:
            expand.append(1)
            if f > 1:
                new_axes.append(pos + 1)
                expand.append(f)
                pos += 1
            pos += 1
        prefix = _unique_name(f"{label}/graphpath_repeat", taken)
        names = {k: _unique_name(f"{prefix}/{k}", taken)
                 for k in ("axes", "unsq", "expand_shape", "exp", "factors", "shape", "target")}
        taken.update(names.values())
        g.initializer.extend([
            numpy_helper.from_array(np.asarray(expand, dtype=np.int64), names["expand_shape"]),
            numpy_helper.from_array(np.asarray(factors, dtype=np.int64), names["factors"]),
        ])
        if opset >= 13:
            g.initializer.append(numpy_helper.from_array(np.asarray(new_axes, dtype=np.int64), names["axes"]))
            unsq = helper.make_node("Unsqueeze", [x, names["axes"]], [names["unsq"]], name=names["unsq"])
        else:
            unsq = helper.make_node("Unsqueeze", [x], [names["unsq"]], name=names["unsq"], axes=new_axes)
        nodes.extend([
            unsq,
            helper.make_node("Expand", [names["unsq"], names["expand_shape"]], [names["exp"]], name=names["exp"]),
            helper.make_node("Shape", [x], [names["shape"]], name=names["shape"]),
            helper.make_node("Mul", [names["shape"], names["factors"]], [names["target"]], name=names["target"]),
            helper.make_node("Reshape", [names["exp"], names["target"]], [node.output[0]], name=label),
        ])
        rewritten.append(label)
    del g.node[:]
    g.node.extend(nodes)
    return rewritten, kept, list(dict.fromkeys(unknowns))


def _gradient_needs(g: onnx.GraphProto, targets: Iterable[str]) -> set[str]:
    """Tensors whose gradient ``targets`` need: reached backwards through gradient-carrying inputs."""
    producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
    needed: set[str] = set()
    stack = list(targets)
    while stack:
        t = stack.pop()
        if t in needed:
            continue
        needed.add(t)
        i = producer.get(t)
        if i is None or g.node[i].op_type in NON_DIFFERENTIABLE_OPS:
            continue
        node = g.node[i]
        stack.extend(x for pos, x in enumerate(node.input) if x and carries_gradient(node.op_type, pos))
    return needed


def _gradient_cone(g: onnx.GraphProto, loss: str, params: set[str]) -> tuple[
        tuple[str, ...], tuple[tuple[str, str], ...], dict[str, tuple[tuple[str, int], ...]]]:
    """Trainable float initializers of ``loss`` and the nodes its backward pass runs through."""
    float_inits = {t.name for t in g.initializer if t.data_type in _FLOAT_ELEM_TYPES and t.name in params}
    needed = _gradient_needs(g, [loss])
    reached_params = needed & float_inits
    # Forward: tensors that depend on a trainable parameter through gradient-carrying inputs.
    live = set(reached_params)
    diff: list[tuple[str, str]] = []
    uses: dict[str, list[tuple[str, int]]] = {}
    for i, node in enumerate(g.node):
        if node.op_type in NON_DIFFERENTIABLE_OPS:
            continue
        grad_in = [(pos, x) for pos, x in enumerate(node.input) if x and carries_gradient(node.op_type, pos)]
        if any(x in live for _, x in grad_in):
            outs = [o for o in node.output if o]
            live.update(outs)
            if any(o in needed for o in outs):
                diff.append((node.name or f"{node.op_type}_{i}", node.op_type))
                for pos, x in grad_in:
                    if x in reached_params:
                        uses.setdefault(x, []).append((node.op_type, pos))
    order = [t.name for t in g.initializer if t.name in reached_params]
    return tuple(order), tuple(diff), {k: tuple(uses.get(k, ())) for k in order}


def parse_model_bytes(blob: bytes) -> onnx.ModelProto:
    """A serialized model (e.g. :attr:`TrainingModel.model_bytes`) as a ``ModelProto``, for
    libraries that take a proto rather than bytes (onnxruntime-training's artifacts)."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(blob)
    except DecodeError as exc:
        raise GraphpathError(f"not a valid ONNX protobuf: {exc}") from None
    return model




def _conv_transpose_as_matmul(node: onnx.NodeProto, types: Mapping[str, onnx.TypeProto]) -> tuple[int, int, int] | None:
    """``(out_channels, kH, kW)`` when ``node`` is a 2-D ConvTranspose with stride == kernel,
    no padding, dilation 1 and group 1 (each input pixel writes its own k×k output block)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    w_type = types.get(node.input[1]) if len(node.input) > 1 else None
    if w_type is None or not w_type.HasField("tensor_type"):
        return None
    w_dims = [int(d.dim_value) if d.HasField("dim_value") else 0 for d in w_type.tensor_type.shape.dim]
    if len(w_dims) != 4 or 0 in w_dims:
        return None
    k = list(attrs.get("kernel_shape", w_dims[2:]))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if (int(attrs.get("group", 1)) != 1 or list(attrs.get("strides", [1, 1])) != k or k != w_dims[2:]
            or any(int(v) for v in attrs.get("pads", [0, 0, 0, 0]))
            or any(int(v) for v in attrs.get("output_padding", [0, 0]))
            or any(int(v) != 1 for v in attrs.get("dilations", [1, 1]))
            or auto_pad not in ("NOTSET", "VALID") or "output_shape" in attrs):
        return None
    return w_dims[1], k[0], k[1]


def _rewrite_conv_transposes(g: onnx.GraphProto, types: Mapping[str, onnx.TypeProto]) -> list[str]:
    taken = {t.name for t in g.initializer} | {i.name for i in g.input} | {o for n in g.node for o in n.output}
    rewritten: list[str] = []
    nodes: list[onnx.NodeProto] = []
    for idx, node in enumerate(g.node):
        spec = _conv_transpose_as_matmul(node, types) if (
            node.op_type == "ConvTranspose" and node.domain in ("", "ai.onnx")) else None
        if spec is None:
            nodes.append(node)
            continue
        o, kh, kw = spec
        label = node.name or f"ConvTranspose_{idx}"
        prefix = _unique_name(f"{label}/graphpath_blocks", taken)
        n = {k: _unique_name(f"{prefix}/{k}", taken) for k in (
            "xt", "wshape", "wr", "mm", "bshape", "blocks", "perm", "shape", "scale", "offset", "mul", "target",
            "y0", "bias_shape", "bias")}
        taken.update(n.values())
        x, w = node.input[0], node.input[1]
        g.initializer.extend([
            numpy_helper.from_array(np.asarray([0, -1], dtype=np.int64), n["wshape"]),
            numpy_helper.from_array(np.asarray([0, 0, 0, o, kh, kw], dtype=np.int64), n["bshape"]),
            numpy_helper.from_array(np.asarray([1, 0, kh, kw], dtype=np.int64), n["scale"]),
            numpy_helper.from_array(np.asarray([0, o, 0, 0], dtype=np.int64), n["offset"]),
        ])
        out = node.output[0]
        has_bias = len(node.input) > 2 and bool(node.input[2])
        nodes.extend([
            helper.make_node("Transpose", [x], [n["xt"]], name=n["xt"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [w, n["wshape"]], [n["wr"]], name=n["wr"]),
            helper.make_node("MatMul", [n["xt"], n["wr"]], [n["mm"]], name=n["mm"]),
            helper.make_node("Reshape", [n["mm"], n["bshape"]], [n["blocks"]], name=n["blocks"]),
            helper.make_node("Transpose", [n["blocks"]], [n["perm"]], name=n["perm"], perm=[0, 3, 1, 4, 2, 5]),
            helper.make_node("Shape", [x], [n["shape"]], name=n["shape"]),
            helper.make_node("Mul", [n["shape"], n["scale"]], [n["mul"]], name=n["mul"]),
            helper.make_node("Add", [n["mul"], n["offset"]], [n["target"]], name=n["target"]),
            helper.make_node("Reshape", [n["perm"], n["target"]], [n["y0"] if has_bias else out],
                             name=n["y0"] if has_bias else label),
        ])
        if has_bias:
            g.initializer.append(numpy_helper.from_array(np.asarray([1, o, 1, 1], dtype=np.int64), n["bias_shape"]))
            nodes.extend([
                helper.make_node("Reshape", [node.input[2], n["bias_shape"]], [n["bias"]], name=n["bias"]),
                helper.make_node("Add", [n["y0"], n["bias"]], [out], name=label),
            ])
        rewritten.append(label)
    del g.node[:]
    g.node.extend(nodes)
    return rewritten


def _rewrite_batch_norms(g: onnx.GraphProto, types: Mapping[str, onnx.TypeProto]) -> list[str]:
    """Inference-mode BatchNormalization → ``(x − mean)·(scale·rsqrt(var + ε)) + B``."""
    taken = {t.name for t in g.initializer} | {i.name for i in g.input} | {o for n in g.node for o in n.output}
    rewritten: list[str] = []
    nodes: list[onnx.NodeProto] = []
    for idx, node in enumerate(g.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        tp = types.get(node.input[0]) if node.input else None
        rank = len(tp.tensor_type.shape.dim) if (
            tp is not None and tp.HasField("tensor_type") and tp.tensor_type.HasField("shape")) else 0
        if (node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx") or len(node.input) < 5
                or int(attrs.get("training_mode", 0)) != 0 or len([o for o in node.output if o]) != 1
                or rank < 2 or tp is None):
            nodes.append(node)
            continue
        label = node.name or f"BatchNormalization_{idx}"
        prefix = _unique_name(f"{label}/graphpath_affine", taken)
        n = {k: _unique_name(f"{prefix}/{k}", taken) for k in (
            "eps", "shape", "veps", "std", "a", "ar", "mr", "br", "xm", "xa")}
        taken.update(n.values())
        x, scale, bias, mean, var = node.input[:5]
        elem = tp.tensor_type.elem_type
        eps_dtype = helper.tensor_dtype_to_np_dtype(elem) if elem in _FLOAT_ELEM_TYPES and elem != onnx.TensorProto.BFLOAT16 else np.float32
        g.initializer.extend([
            numpy_helper.from_array(np.asarray(float(attrs.get("epsilon", 1e-5)), dtype=eps_dtype), n["eps"]),
            numpy_helper.from_array(np.asarray([1, -1] + [1] * (rank - 2), dtype=np.int64), n["shape"]),
        ])
        nodes.extend([
            helper.make_node("Add", [var, n["eps"]], [n["veps"]], name=n["veps"]),
            helper.make_node("Sqrt", [n["veps"]], [n["std"]], name=n["std"]),
            helper.make_node("Div", [scale, n["std"]], [n["a"]], name=n["a"]),
            helper.make_node("Reshape", [n["a"], n["shape"]], [n["ar"]], name=n["ar"]),
            helper.make_node("Reshape", [mean, n["shape"]], [n["mr"]], name=n["mr"]),
            helper.make_node("Reshape", [bias, n["shape"]], [n["br"]], name=n["br"]),
            helper.make_node("Sub", [x, n["mr"]], [n["xm"]], name=n["xm"]),
            helper.make_node("Mul", [n["xm"], n["ar"]], [n["xa"]], name=n["xa"]),
            helper.make_node("Add", [n["xa"], n["br"]], [node.output[0]], name=label),
        ])
        rewritten.append(label)
    del g.node[:]
    g.node.extend(nodes)
    return rewritten


def _rewrite_activations(g: onnx.GraphProto, types: Mapping[str, onnx.TypeProto]) -> list[str]:
    """Softplus, Mish, HardSigmoid and HardSwish as the same function in elementwise ops."""
    taken = {t.name for t in g.initializer} | {i.name for i in g.input} | {o for n in g.node for o in n.output}
    rewritten: list[str] = []
    nodes: list[onnx.NodeProto] = []
    for idx, node in enumerate(g.node):
        op = node.op_type
        if op not in ("Softplus", "Mish", "HardSigmoid", "HardSwish") or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        x, out = node.input[0], node.output[0]
        tp = types.get(x)
        elem = tp.tensor_type.elem_type if tp is not None and tp.HasField("tensor_type") else onnx.TensorProto.FLOAT
        if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            nodes.append(node)
            continue
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        label = node.name or f"{op}_{idx}"
        prefix = _unique_name(f"{label}/graphpath_{op.lower()}", taken)
        n = {k: _unique_name(f"{prefix}/{k}", taken) for k in (
            "relu", "abs", "neg", "exp", "one", "l1p", "log", "sp", "tanh",
            "alpha", "beta", "zero", "ax", "axb", "clip")}
        taken.update(n.values())
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}

        def const(key: str, value: float, names: dict[str, str] = n, dt: Any = dtype) -> str:
            g.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dt), names[key]))
            return names[key]

        if op in ("Softplus", "Mish"):
            sp = out if op == "Softplus" else n["sp"]
            nodes.extend([
                helper.make_node("Relu", [x], [n["relu"]], name=n["relu"]),
                helper.make_node("Abs", [x], [n["abs"]], name=n["abs"]),
                helper.make_node("Neg", [n["abs"]], [n["neg"]], name=n["neg"]),
                helper.make_node("Exp", [n["neg"]], [n["exp"]], name=n["exp"]),
                helper.make_node("Add", [n["exp"], const("one", 1.0)], [n["l1p"]], name=n["l1p"]),
                helper.make_node("Log", [n["l1p"]], [n["log"]], name=n["log"]),
                helper.make_node("Add", [n["relu"], n["log"]], [sp], name=label if op == "Softplus" else sp),
            ])
            if op == "Mish":
                nodes.extend([
                    helper.make_node("Tanh", [sp], [n["tanh"]], name=n["tanh"]),
                    helper.make_node("Mul", [x, n["tanh"]], [out], name=label),
                ])
        else:
            alpha = float(attrs.get("alpha", 0.2)) if op == "HardSigmoid" else 1.0 / 6.0
            beta = float(attrs.get("beta", 0.5))
            clip = out if op == "HardSigmoid" else n["clip"]
            nodes.extend([
                helper.make_node("Mul", [x, const("alpha", alpha)], [n["ax"]], name=n["ax"]),
                helper.make_node("Add", [n["ax"], const("beta", beta)], [n["axb"]], name=n["axb"]),
                helper.make_node("Clip", [n["axb"], const("zero", 0.0), const("one", 1.0)], [clip],
                                 name=label if op == "HardSigmoid" else clip),
            ])
            if op == "HardSwish":
                nodes.append(helper.make_node("Mul", [x, clip], [out], name=label))
        rewritten.append(label)
    del g.node[:]
    g.node.extend(nodes)
    return rewritten
