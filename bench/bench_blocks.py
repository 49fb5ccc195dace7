"""Benchmark: the static analysis of a ~1000-node export (target: under a second).

    python bench/bench_blocks.py [--model FILE ...] [--repeat 5]

Default models: the largest reference graphs in ``models/`` (yolov9c-train has 1250 nodes).
For each, the median wall time of every stage of ``graphpath analyze`` without the numeric
pass: loading (protobuf parse, checks, shape inference), the layer view, block detection,
fingerprint + export notes, gradient paths, and the whole library call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timing import median_seconds

MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT = ("yolov9c-train.onnx", "yolo12n.onnx", "yolov7-e-elan.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    paths = args.model or [MODELS / name for name in DEFAULT]
    print(f"{'model':<22}{'nodes':>7}{'load':>9}{'layers':>9}{'blocks':>9}{'fp+notes':>10}"
          f"{'paths':>9}{'analyze':>10}   (ms, median of {args.repeat})")
    for path in paths:
        print(_row(path, args.repeat))


def _row(path: Path, repeat: int) -> str:
    from graphpath import onnx_io
    from graphpath.analysis import analyze, structure
    from graphpath.blocks import detect_blocks
    from graphpath.model.layers import build_layers
    from graphpath.paths.analysis import analyze_paths

    model = onnx_io.open_model(path)
    graph, layers = model.graph, model.layers
    blocks = median_seconds(lambda: detect_blocks(layers, graph), repeat)
    assert model.blocks is not None  # detected once on the model: ``structure`` then times fingerprint + notes
    cols = (
        (median_seconds(lambda: onnx_io.load(path), repeat), 9),
        (median_seconds(lambda: build_layers(graph), repeat), 9),
        (blocks, 9),
        (median_seconds(lambda: structure(model), repeat), 10),
        (median_seconds(lambda: analyze_paths(layers), repeat), 9),
        (median_seconds(lambda: analyze(path), repeat), 10),
    )
    return f"{path.name:<22}{graph.node_count:>7}" + "".join(f"{c * 1000:>{w}.1f}" for c, w in cols)


if __name__ == "__main__":
    main()
