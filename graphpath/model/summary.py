"""Summaries of the op view and the layer view (the ``model`` and ``layers`` report sections)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from graphpath.model.graph import ModelGraph, SubgraphInfo
from graphpath.model.layers import LayerGraph, depth, unit_counts
from graphpath.model.ops import NON_PARAMETER_DTYPES, carries_gradient
from graphpath.report import LayerSummary, ModelSummary, SubgraphSummary, TensorSummary


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (memory flat in the file's size)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Ops that only alias, cast, dequantise or re-lay a parameter (a bias reshaped for the Add of
#: quantize_dynamic's tail): the op that reads their output is the parameter's consumer.
_ALIASING = frozenset({"Identity", "Cast", "DequantizeLinear", "Reshape", "Transpose", "Unsqueeze", "Squeeze"})


def parameter_names(graph: ModelGraph) -> set[str]:
    """Initializers that are parameters rather than shapes or indices.

    An initializer is a parameter when its type can hold weights (not int64/bool/string) and
    some op reads it — directly or through an alias/cast/dequantise chain — at an input
    position that carries gradient. Reshape's shape or Slice's starts are not parameters, nor
    are quantization scales and zero points (the weights they dequantize are).
    """
    # quantize_dynamic multiplies each weight's scale by the activation scale that
    # DynamicQuantizeLinear computes (its second output): those scales are no parameters.
    dynamic_scales = {op.outputs[1] for op in graph.ops()
                      if op.op_type == "DynamicQuantizeLinear" and len(op.outputs) > 1 and op.outputs[1]}
    names: set[str] = set()
    for node in graph.dag.nodes:
        op = graph.op(node)
        if op.op_type == "Mul" and dynamic_scales.intersection(op.inputs):
            continue
        for prm in graph.dag.nodes[node]["params"]:
            if prm.dtype in NON_PARAMETER_DTYPES:
                continue
            positions = [i for i, t in enumerate(op.inputs) if t == prm.name]
            # Through an alias chain the position is the alias's; count it as a weight read.
            if not positions or any(carries_gradient(op.op_type, i) for i in positions):
                names.add(prm.name)
    return names


def summarize_model(graph: ModelGraph) -> ModelSummary:
    """The ``model`` section: read from metadata only (no tensor data is loaded)."""
    path = Path(str(graph.meta["path"]))
    ops = list(graph.ops())
    hist = Counter(op.op_type for op in ops)
    custom = Counter(f"{op.domain}::{op.op_type}" for op in ops if op.domain in graph.meta["custom_domains"])
    subgraphs = tuple(
        SubgraphSummary(op.name, op.op_type, v.attr, v.node_count, v.op_histogram)
        for op in ops for v in op.attrs.values() if isinstance(v, SubgraphInfo)
    )
    pnames = parameter_names(graph)
    params = [graph.params[n] for n in sorted(pnames)]
    by_dtype = Counter[str]()
    for p in params:
        by_dtype[p.dtype] += p.count
    # Real sharing: one initializer feeding more than one weighted consumer.
    consumers: Counter[str] = Counter()
    for node in graph.dag.nodes:
        if graph.op(node).op_type in _ALIASING:
            continue
        for prm in graph.dag.nodes[node]["params"]:
            if prm.name in pnames:
                consumers[prm.name] += 1
    shared = tuple(sorted((n, c) for n, c in consumers.items() if c > 1))
    dynamic = any(t.shape is None or any(not isinstance(d, int) for d in t.shape) for t in graph.inputs)
    return ModelSummary(
        file_name=path.name,
        sha256=file_sha256(path),
        file_bytes=int(graph.meta["file_bytes"]),
        producer_name=str(graph.meta["producer_name"]),
        producer_version=str(graph.meta["producer_version"]),
        ir_version=int(graph.meta["ir_version"]),
        opsets=tuple(sorted(graph.meta["opsets"].items())),
        inputs=tuple(TensorSummary(t.name, t.dtype, t.shape) for t in graph.inputs),
        outputs=tuple(TensorSummary(t.name, t.dtype, t.shape) for t in graph.outputs),
        node_count=graph.node_count,
        op_histogram=tuple(sorted(hist.items())),
        initializer_count=len(graph.params),
        parameter_count=sum(p.count for p in params),
        parameter_bytes=sum(p.nbytes for p in params),
        parameter_dtypes=tuple(sorted(by_dtype.items())),
        custom_domains=tuple(graph.meta["custom_domains"]),
        custom_ops=tuple(sorted(custom.items())),
        subgraphs=subgraphs,
        shared_parameters=shared,
        external_data=bool(graph.meta["external_data"]),
        dynamic_inputs=dynamic,
        shape_inference=str(graph.meta["shape_inference"]),
        shape_tensor_count=len(graph.shape_tensors),
    )


def summarize_layers(layers: LayerGraph) -> LayerSummary:
    """The ``layers`` section: unit counts by kind, depth, folded activations."""
    acts: Counter[str] = Counter()
    weighted: Counter[str] = Counter()
    folded = 0
    for unit in layers.units():
        if unit.activation:
            acts[unit.activation] += 1
        if unit.weighted:
            weighted[unit.op_type] += 1
        folded += max(0, len(unit.nodes) - 1)
    return LayerSummary(
        unit_counts=tuple(unit_counts(layers).items()),
        depth=depth(layers),
        activations=tuple(sorted(acts.items())),
        weighted_ops=tuple(sorted(weighted.items())),
        folded_nodes=folded,
    )
