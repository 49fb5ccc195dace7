"""The one door to ONNX: every ``import onnx`` in graphpath lives here (ruff bans it elsewhere).

:func:`load` reads a model without its external data, checks it, and returns the op view
(:class:`~graphpath.graph.ModelGraph`). Parameter counts and bytes come from initializer
metadata. External data is read only by :func:`read_arrays`, and only from inside the model's
folder.
"""

from __future__ import annotations

import ast
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from graphpath.errors import GraphpathError
from graphpath.graph import ModelGraph, OpNode, Param, Shape, SubgraphInfo, TensorInfo
from graphpath.ops import DTYPE_BYTES, NON_DIFFERENTIABLE_OPS, SHAPE_OPS, carries_gradient

__all__ = ["load", "load_proto", "read_arrays", "model_bytes", "model_bytes_with_outputs", "onnx_version"]

#: Ops through which an initializer keeps its identity (aliasing, dequantisation, casts).
_PASSTHROUGH_STATIC = frozenset(
    {"Identity", "Cast", "DequantizeLinear", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}
)

_STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})


def onnx_version() -> str:
    return str(onnx.__version__)


def _dtype_name(elem_type: int) -> str:
    try:
        return str(onnx.TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"UNKNOWN({elem_type})"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise GraphpathError(f"{path}: no such file")
    if path.is_dir():
        raise GraphpathError(f"{path}: is a directory, not an ONNX file")
    if not path.is_file():
        raise GraphpathError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise GraphpathError(f"{path}: empty file, not an ONNX model")


def load_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Parse ``path`` without external data and check the basics (IR version, graph present).

    Raises:
        GraphpathError: the file is missing, empty, not an ONNX model, truncated, or of an
            unsupported IR version.
    """
    p = Path(path)
    _check_file(p)
    try:
        with p.open("rb") as fh:
            model = onnx.load(fh, load_external_data=False)
    except DecodeError as exc:
        raise GraphpathError(f"{p}: not a valid ONNX protobuf (truncated or corrupt): {exc}") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise GraphpathError(f"{p}: cannot read as ONNX: {exc}") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise GraphpathError(f"{p}: not an ONNX model (no IR version or no graph)")
    if model.ir_version > onnx.IR_VERSION:
        raise GraphpathError(
            f"{p}: IR version {model.ir_version} is newer than this onnx ({onnx.__version__}) "
            f"supports (IR {onnx.IR_VERSION}); upgrade onnx"
        )
    if not model.graph.node and not model.graph.output:
        raise GraphpathError(f"{p}: the graph has no nodes and no outputs")
    _check_external_locations(model, p.parent)
    return model


def _external_location(tensor: onnx.TensorProto) -> str | None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    for entry in tensor.external_data:
        if entry.key == "location":
            return str(entry.value)
    return ""


def _all_tensors(graph: onnx.GraphProto) -> Iterable[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_tensors(g)


def _safe_external_path(base: Path, location: str, tensor_name: str) -> Path:
    """Resolve an external-data location, refusing anything that leaves ``base``."""
    if not location:
        raise GraphpathError(f"tensor {tensor_name!r}: external data without a location")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", location):
        raise GraphpathError(
            f"tensor {tensor_name!r}: external data location {location!r} is an absolute path; "
            "refusing to read outside the model's folder"
        )
    parts = re.split(r"[\\/]", location)
    if ".." in parts:
        raise GraphpathError(
            f"tensor {tensor_name!r}: external data location {location!r} leaves the model's "
            "folder; refusing"
        )
    candidate = base / location
    # Walk every component: a symlink anywhere on the way could point outside.
    walk = base
    for part in parts:
        if part in ("", "."):
            continue
        walk = walk / part
        if walk.is_symlink():
            raise GraphpathError(
                f"tensor {tensor_name!r}: external data location {location!r} is a symlink; "
                "refusing to follow it"
            )
    real_base = base.resolve()
    real = candidate.resolve()
    if real != real_base and real_base not in real.parents:
        raise GraphpathError(
            f"tensor {tensor_name!r}: external data location {location!r} resolves outside "
            "the model's folder; refusing"
        )
    return candidate


def _check_external_locations(model: onnx.ModelProto, base: Path) -> None:
    for tensor in _all_tensors(model.graph):
        loc = _external_location(tensor)
        if loc is not None:
            _safe_external_path(base, loc, tensor.name)


# --------------------------------------------------------------------------- attributes


def _attr_value(attr: onnx.AttributeProto) -> Any:
    if attr.type == onnx.AttributeProto.GRAPH:
        return _subgraph_info(attr.name, [attr.g])
    if attr.type == onnx.AttributeProto.GRAPHS:
        return _subgraph_info(attr.name, list(attr.graphs))
    if attr.type == onnx.AttributeProto.TENSOR:
        if _external_location(attr.t) is not None:
            return None  # read on demand by read_arrays
        return numpy_helper.to_array(attr.t)
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        if value and isinstance(value[0], onnx.TensorProto):
            return tuple(numpy_helper.to_array(t) for t in value)
        return tuple(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value)
    if isinstance(value, (onnx.TypeProto, onnx.SparseTensorProto)):
        return str(value)
    return value


def _count_ops(graphs: Iterable[onnx.GraphProto], hist: Counter[str]) -> int:
    total = 0
    for g in graphs:
        for node in g.node:
            hist[node.op_type] += 1
            total += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    total += _count_ops([attr.g], hist)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    total += _count_ops(attr.graphs, hist)
    return total


def _subgraph_info(name: str, graphs: list[onnx.GraphProto]) -> SubgraphInfo:
    hist: Counter[str] = Counter()
    total = _count_ops(graphs, hist)
    return SubgraphInfo(attr=name, node_count=total, op_histogram=tuple(sorted(hist.items())))


def _outer_references(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from the enclosing scope (implicit inputs of its node)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                used |= _outer_references(sub)
        defined.update(node.output)
    return used - defined


# --------------------------------------------------------------------------- scopes


_TS_NAME = re.compile(r"^/(.+)/[^/]+$")


def _scope(node: onnx.NodeProto) -> str:
    """Name scope from dynamo ``metadata_props`` or a TorchScript-style ``/a/b/Op`` name."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                continue
            if isinstance(scopes, (list, tuple)) and scopes:
                return str(scopes[-1])
    m = _TS_NAME.match(node.name)
    if m:
        return m.group(1).replace("/", ".")
    return ""


# --------------------------------------------------------------------------- shapes


def _shape_of(type_proto: onnx.TypeProto) -> Shape | None:
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return tuple(dims)


def _value_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    dtype = _dtype_name(vi.type.tensor_type.elem_type) if vi.type.HasField("tensor_type") else "?"
    return TensorInfo(name=vi.name, dtype=dtype, shape=_shape_of(vi.type))


def _infer_shapes(model: onnx.ModelProto) -> tuple[dict[str, Shape], str | None]:
    """Shapes by tensor name; carries on (with the reason) where inference fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        note = None
    except Exception as exc:  # onnx raises several unrelated types; any failure means "no shapes"
        inferred = model
        note = f"shape inference failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    shapes: dict[str, Shape] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _shape_of(vi.type)
        if s is not None:
            shapes[vi.name] = s
    return shapes, note


# --------------------------------------------------------------------------- params


def _param(t: onnx.TensorProto, name: str | None = None) -> Param:
    dtype = _dtype_name(t.data_type)
    count = math.prod(int(d) for d in t.dims)
    external = _external_location(t) is not None
    nbytes = int(math.ceil(count * DTYPE_BYTES.get(dtype, 0)))
    if external:
        for entry in t.external_data:
            if entry.key == "length":
                nbytes = int(entry.value)
    return Param(name=name or t.name, shape=tuple(int(d) for d in t.dims), dtype=dtype,
                 count=count, nbytes=nbytes, external=external)


def _constant_tensors(g: onnx.GraphProto) -> dict[str, Param]:
    """Tensors held by ``Constant`` nodes, by output name. Some exporters (Paddle, older
    TensorFlow converters) keep every weight in a Constant node instead of an initializer;
    treating those values as initializers keeps parameter counts and weight detection the
    same either way (onnxsim-style folding changes nothing)."""
    out: dict[str, Param] = {}
    for node in g.node:
        if node.op_type == "Constant" and node.output and node.output[0]:
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    out[node.output[0]] = _param(attr.t, node.output[0])
    return out


# --------------------------------------------------------------------------- load


def load(path: str | os.PathLike[str]) -> ModelGraph:
    """Load ``path`` into the op view.

    Raises:
        GraphpathError: unreadable, unsafe or structurally invalid models (one-line message).
    """
    p = Path(path)
    model = load_proto(p)
    return _build(model, p)


def _unique_names(nodes: list[onnx.NodeProto]) -> list[str]:
    seen: Counter[str] = Counter()
    names = []
    for i, node in enumerate(nodes):
        base = node.name or f"{node.op_type}_{i}"
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base] - 1}")
    return names


def _build(model: onnx.ModelProto, path: Path) -> ModelGraph:
    g = model.graph
    init_names = {t.name for t in g.initializer}
    params = {t.name: _param(t) for t in g.initializer}
    inputs = tuple(_value_info(vi) for vi in g.input if vi.name not in init_names)
    outputs = tuple(_value_info(vi) for vi in g.output)
    if not outputs:
        raise GraphpathError(f"{path}: the graph declares no outputs")

    names = _unique_names(list(g.node))
    producer: dict[str, int] = {}
    for i, node in enumerate(g.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in init_names or out in {x.name for x in inputs}:
                raise GraphpathError(f"{path}: tensor {out!r} is produced more than once")
            producer[out] = i

    known = init_names | {x.name for x in inputs} | set(producer)
    node_inputs: list[list[tuple[int, str]]] = []
    for i, node in enumerate(g.node):
        reads = [(pos, t) for pos, t in enumerate(node.input) if t]
        implicit: set[str] = set()
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                implicit |= _outer_references(sub)
        reads += [(-1, t) for t in sorted(implicit)]
        for _, t in reads:
            if t not in known:
                raise GraphpathError(
                    f"{path}: node {names[i]!r} ({node.op_type}) reads tensor {t!r} that no node, "
                    "input or initializer provides"
                )
        node_inputs.append(reads)
    for o in outputs:
        if o.name not in known:
            raise GraphpathError(f"{path}: graph output {o.name!r} is never produced")

    # Order: the file's order if it is topological, else a stable topological sort.
    order_graph = nx.DiGraph()
    order_graph.add_nodes_from(range(len(g.node)))
    for i, reads in enumerate(node_inputs):
        for _, t in reads:
            if t in producer:
                order_graph.add_edge(producer[t], i)
    try:
        order = list(nx.lexicographical_topological_sort(order_graph))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(order_graph)
        members = ", ".join(repr(names[a]) for a, _ in cycle[:4])
        raise GraphpathError(f"{path}: the graph has a cycle (through {members})") from None

    shapes, shape_note = _infer_shapes(model)
    static = _static_tensors(g, order, node_inputs, init_names)
    constants = _constant_tensors(g)
    params.update(constants)
    origins = _initializer_origins(g, order, init_names | set(constants))

    dag = nx.DiGraph()
    for i in order:
        node = g.node[i]
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        op = OpNode(name=names[i], op_type=node.op_type, domain=node.domain,
                    inputs=tuple(node.input), outputs=tuple(node.output), attrs=attrs)
        owned: dict[str, Param] = {}
        for _, t in node_inputs[i]:
            for src in origins.get(t, ()):
                owned[src] = params[src]
        dag.add_node(
            names[i], op=op, scope=_scope(node), params=tuple(owned.values()),
            shapes={o: shapes.get(o) for o in node.output if o},
            implicit=tuple(t for pos, t in node_inputs[i] if pos == -1),
        )
    for i in order:
        for pos, t in node_inputs[i]:
            if t not in producer:
                continue
            u, v = names[producer[t]], names[i]
            kind = "shape" if t in static else "data"
            if dag.has_edge(u, v):
                e = dag.edges[u, v]
                if t not in e["tensors"]:
                    e["tensors"] = (*e["tensors"], t)
                e["positions"] = (*e["positions"], pos)
                if kind == "data":
                    e["kind"] = "data"
            else:
                dag.add_edge(u, v, tensor=t, tensors=(t,), kind=kind, positions=(pos,),
                             shape=shapes.get(t))

    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    custom = sorted({n.domain for n in g.node if n.domain not in _STANDARD_DOMAINS})
    meta: dict[str, Any] = {
        "path": str(path),
        "file_name": path.name,
        "file_bytes": path.stat().st_size,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "ir_version": int(model.ir_version),
        "opsets": dict(sorted(opsets.items())),
        "custom_domains": custom,
        "graph_name": g.name,
        "shape_inference": shape_note or "ok",
        "external_data": any(p.external for p in params.values()),
        "metadata_props": {m.key: m.value for m in model.metadata_props},
    }
    return ModelGraph(
        dag=dag, inputs=inputs, outputs=outputs, params=params,
        shape_tensors=frozenset(static), value_shapes=shapes, meta=meta,
        producer_of={t: names[i] for t, i in producer.items()},
    )


def _static_tensors(
    g: onnx.GraphProto, order: list[int], node_inputs: list[list[tuple[int, str]]],
    init_names: set[str],
) -> set[str]:
    """Tensors computed only from shapes, constants and initializers (edge kind ``shape``).

    A node's outputs are static when every input it reads *at a position that carries
    values* is static; ``Shape``/``Size`` outputs are static whatever they read.
    """
    static = set(init_names)
    for i in order:
        node = g.node[i]
        if node.op_type in SHAPE_OPS or all(t in static for _, t in node_inputs[i]):
            static.update(o for o in node.output if o)
    return static - init_names


def _initializer_origins(g: onnx.GraphProto, order: list[int], init_names: set[str]) -> dict[str, tuple[str, ...]]:
    """For each tensor, the initializers it is (an alias, cast or dequantisation of)."""
    origins: dict[str, tuple[str, ...]] = {n: (n,) for n in init_names}
    for i in order:
        node = g.node[i]
        if node.op_type == "Constant":
            continue
        if node.op_type in _PASSTHROUGH_STATIC and node.input and node.input[0] in origins:
            for o in node.output:
                origins[o] = origins[node.input[0]]
    return origins


# --------------------------------------------------------------------------- data


def read_arrays(path: str | os.PathLike[str], names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Initializer values by name, external data read only from inside the model's folder.

    Args:
        path: the model file.
        names: only these initializers (all when ``None``).
    """
    p = Path(path)
    model = load_proto(p)
    wanted = None if names is None else set(names)
    out: dict[str, np.ndarray] = {}
    for t in model.graph.initializer:
        if wanted is not None and t.name not in wanted:
            continue
        loc = _external_location(t)
        if loc is not None:
            _read_external(p.parent, t, loc)
        try:
            out[t.name] = numpy_helper.to_array(t)
        except Exception as exc:  # malformed tensor payloads surface here
            raise GraphpathError(f"{p}: cannot decode initializer {t.name!r}: {exc}") from None
    return out


def _read_external(base: Path, tensor: onnx.TensorProto, location: str) -> None:
    """Fill ``tensor.raw_data`` from its external file after the location check."""
    file = _safe_external_path(base, location, tensor.name)
    info: Mapping[str, str] = {e.key: e.value for e in tensor.external_data}
    offset = int(info.get("offset", 0) or 0)
    length = info.get("length")
    if not file.is_file():
        raise GraphpathError(f"tensor {tensor.name!r}: external data file {location!r} is missing")
    with file.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(int(length)) if length else fh.read()
    expected = math.ceil(math.prod(int(d) for d in tensor.dims) * DTYPE_BYTES.get(_dtype_name(tensor.data_type), 0))
    if len(data) < expected:
        raise GraphpathError(f"tensor {tensor.name!r}: external data file {location!r} is truncated")
    tensor.raw_data = data
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


def model_bytes(path: str | os.PathLike[str]) -> bytes:
    """The model with external data inlined (for onnxruntime parity runs on < 2 GB models)."""
    p = Path(path)
    model = load_proto(p)
    for t in _all_tensors(model.graph):
        loc = _external_location(t)
        if loc is not None:
            _read_external(p.parent, t, loc)
    return bytes(model.SerializeToString())


def model_bytes_with_outputs(path: str | os.PathLike[str], outputs: Iterable[str]) -> bytes:
    """The model with external data inlined and its graph outputs replaced by ``outputs``.

    Any tensor name may be an output (intermediate activations, raw head tensors), so that
    onnxruntime can be compared with another evaluator on them. Declared types are kept where
    the graph has them; other outputs are left untyped (onnxruntime infers them).
    """
    p = Path(path)
    model = load_proto(p)
    for t in _all_tensors(model.graph):
        loc = _external_location(t)
        if loc is not None:
            _read_external(p.parent, t, loc)
    g = model.graph
    declared = {vi.name: vi for vi in [*g.input, *g.value_info, *g.output]}
    chosen = [declared.get(name) or helper.make_empty_tensor_value_info(name) for name in outputs]
    copies = []
    for vi in chosen:
        c = onnx.ValueInfoProto()
        c.CopyFrom(vi)
        copies.append(c)
    del g.output[:]
    g.output.extend(copies)
    return bytes(model.SerializeToString())


# --------------------------------------------------------------------------- training models
#
# The onnxruntime-training backend (graphpath.numeric.ort_training) builds its gradient graph
# from a rewritten copy of the model: graph outputs replaced by one scalar probe loss, the
# cotangents fed as extra graph inputs (one set of artifacts serves any cotangent), Constant
# nodes holding float values turned into initializers (graphpath counts them as parameters), and
# the ops onnxruntime-training cannot differentiate on CPU written as the same function in ops
# it can: nearest Resize by integer factors (Unsqueeze/Expand/Reshape), non-overlapping
# ConvTranspose (MatMul/Reshape/Transpose), inference BatchNormalization and
# Softplus/Mish/HardSigmoid/HardSwish (elementwise).

__all__ += ["TRAINING_LOSS", "TrainingModel", "training_model", "training_model_bytes"]

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


def training_model_bytes(path: str | os.PathLike[str], head_tensors: Iterable[str],
                         rewrite_nearest_resize: bool = True) -> bytes:
    """The serialized model of :func:`training_model` (loss output, cotangent inputs)."""
    return training_model(path, head_tensors, rewrite_nearest_resize=rewrite_nearest_resize).model_bytes


def training_model(path: str | os.PathLike[str], head_tensors: Iterable[str], *,
                   rewrite_nearest_resize: bool = True,
                   rewrite_conv_transpose: bool = True,
                   rewrite_batch_norm: bool = True,
                   rewrite_activations: bool = True,
                   known_values: Mapping[str, np.ndarray] | None = None,
                   known_shapes: Mapping[str, Sequence[int]] | None = None) -> TrainingModel:
    """Rewrite ``path`` into a model whose only output is the probe loss at ``head_tensors``.

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
    its gradient graph), keeping the gradients of scale, B, mean and var.
    ``rewrite_activations`` writes Softplus as ``relu(x) + log(1 + exp(−|x|))`` (the overflow-free
    form), Mish as ``x·tanh(softplus(x))``, HardSigmoid as ``clip(αx + β, 0, 1)`` and HardSwish
    as ``x·clip(x/6 + 1/2, 0, 1)`` (onnxruntime-training has no gradient builder for them).

    Raises:
        GraphpathError: no heads, or a head that is not a tensor of the graph.
    """
    p = Path(path)
    model = load_proto(p)
    for t in _all_tensors(model.graph):
        loc = _external_location(t)
        if loc is not None:
            _read_external(p.parent, t, loc)
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
    own_params = {t.name for t in g.initializer}  # the rewrites' own constants are not parameters
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
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
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
                stack.extend(_outer_references(sub))
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
    """Float ``Constant`` nodes become initializers: graphpath counts them as parameters."""
    nodes = []
    for node in g.node:
        value = None
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1:
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    value = attr.t
        if value is not None and value.data_type in _FLOAT_ELEM_TYPES and _external_location(value) is None:
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
        if _external_location(t) is None:
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


def _gradient_cone(g: onnx.GraphProto, loss: str, params: set[str]) -> tuple[
        tuple[str, ...], tuple[tuple[str, str], ...], dict[str, tuple[tuple[str, int], ...]]]:
    """Trainable float initializers of ``loss`` and the nodes its backward pass runs through."""
    float_inits = {t.name for t in g.initializer if t.data_type in _FLOAT_ELEM_TYPES and t.name in params}
    producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
    # Backward: tensors whose gradient the loss needs (through gradient-carrying inputs).
    needed: set[str] = set()
    reached_params: set[str] = set()
    stack = [loss]
    while stack:
        t = stack.pop()
        if t in needed:
            continue
        needed.add(t)
        if t in float_inits:
            reached_params.add(t)
        i = producer.get(t)
        if i is None:
            continue
        node = g.node[i]
        if node.op_type in NON_DIFFERENTIABLE_OPS:
            continue
        stack.extend(x for pos, x in enumerate(node.input) if x and carries_gradient(node.op_type, pos))
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


__all__ += ["parse_model_bytes"]


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
