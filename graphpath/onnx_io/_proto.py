"""Protobuf-level helpers shared by the loader (:mod:`graphpath.onnx_io`) and the training
rewrites (:mod:`graphpath.onnx_io.training`): where a tensor's external data lives, which names
a subgraph reads from outside, a weight-free copy for shape inference, Constant values."""

from __future__ import annotations

import math

import onnx

__all__ = ["constant_value", "external_location", "outer_references", "weight_constant", "without_bulk_data"]


def external_location(tensor: onnx.TensorProto) -> str | None:
    """The location of a tensor's external data (``""`` when it names none), ``None`` when inline."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    for entry in tensor.external_data:
        if entry.key == "location":
            return str(entry.value)
    return ""


def outer_references(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from the enclosing scope (implicit inputs of its node)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                used |= outer_references(sub)
        defined.update(node.output)
    return used - defined


_BULK_BYTES = 4096  # initializers above this size are weights, never values shape inference reads


def without_bulk_data(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` for shape inference whose large initializers keep their name, type
    and dims but no bytes. ``infer_shapes`` serialises the model it is given; on a 777 MB
    single-file export that alone took 8 s of a 10 s ``analyze``. Shape-carrying tensors
    (Reshape targets, Slice bounds) are a few bytes and keep their values."""
    light = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import,
                            functions=model.functions)
    g = light.graph
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(g, field).extend(getattr(model.graph, field))
    for t in model.graph.initializer:
        if len(t.raw_data) <= _BULK_BYTES:
            g.initializer.append(t)
            continue
        stub = g.initializer.add(name=t.name, dims=t.dims, data_type=t.data_type,
                                 data_location=onnx.TensorProto.EXTERNAL)
        stub.external_data.add(key="location", value="(not read)")
    return light


def constant_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a standard ``Constant`` node holds in its ``value`` attribute, if any."""
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1 or not node.output[0]:
        return None
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return attr.t
    return None


def weight_constant(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor of a ``Constant`` node that counts as a parameter (more than one element)."""
    t = constant_value(node)
    return t if t is not None and math.prod(t.dims) > 1 else None
