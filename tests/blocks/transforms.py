"""Rewrites that must not change what the detectors find: names gone, Constants folded."""

from __future__ import annotations

import onnx
from onnx import numpy_helper


def rename_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every node named ``n<i>``, every internal tensor and initializer ``t<i>``: no scopes
    left anywhere (graph inputs and outputs keep their names)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    names: dict[str, str] = {}

    def new(t: str) -> str:
        if not t or t in keep:
            return t
        return names.setdefault(t, f"t{len(names)}")

    for init in g.initializer:
        init.name = new(init.name)
    for i, node in enumerate(g.node):
        node.name = f"n{i}"
        node.input[:] = [new(t) for t in node.input]
        node.output[:] = [new(t) for t in node.output]
    for vi in g.value_info:
        vi.name = new(vi.name)
    del m.metadata_props[:]
    return m


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every Constant node becomes an initializer of the same name (as onnxsim/onnxslim do)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    kept = []
    for node in g.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0])
            g.initializer.append(tensor)
        else:
            kept.append(node)
    del g.node[:]
    g.node.extend(kept)
    return m
