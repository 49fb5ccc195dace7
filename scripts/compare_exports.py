"""Structural counts of ONNX exports side by side, for checking the zoo against real exports.

    python scripts/compare_exports.py models/yolov8n.onnx other/yolov8n.onnx [...]

Counts per file: Conv, Concat, MaxPool, Resize, data Add (both operands computed from the
input, so shape arithmetic and bias adds are not counted), data×data MatMul, Softmax,
Split, and the layer view's weighted units and depth. Used for the fidelity table in
models/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import build_layers, depth, unit_counts

COLUMNS = ("Conv", "Concat", "MaxPool", "Resize", "Add(data)", "MatMul(data)", "Softmax", "Split",
           "weighted", "depth")


def _is_data(graph: ModelGraph, tensor: str) -> bool:
    return bool(tensor) and tensor not in graph.params and not graph.is_shape(tensor)


def structure_counts(path: Path) -> dict[str, int]:
    graph = onnx_io.load(path)
    counts = dict.fromkeys(COLUMNS, 0)
    for op in graph.ops():
        if op.op_type in ("Conv", "Concat", "MaxPool", "Resize", "Softmax", "Split"):
            counts[op.op_type] += 1
        data_inputs = sum(_is_data(graph, t) for t in op.inputs)
        if op.op_type == "Add" and data_inputs >= 2:
            counts["Add(data)"] += 1
        if op.op_type == "MatMul" and data_inputs >= 2:
            counts["MatMul(data)"] += 1
    layers = build_layers(graph)
    counts["weighted"] = unit_counts(layers)["weighted"]
    counts["depth"] = depth(layers)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    width = max(len(p.name) for p in args.models)
    print(f"| {'model':<{width}} | " + " | ".join(COLUMNS) + " |")
    print(f"| {'-' * width} | " + " | ".join("-" * len(c) for c in COLUMNS) + " |")
    for path in args.models:
        try:
            counts = structure_counts(path)
        except GraphpathError as exc:
            print(f"graphpath: error: {exc}", file=sys.stderr)
            return 2
        print(f"| {path.name:<{width}} | "
              + " | ".join(f"{counts[c]:>{len(c)}}" for c in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
