"""Benchmark: ``graphpath analyze`` against a bare ``onnx.load`` of the same file.

By default it builds graphpath's YOLOv8 reference at a width that gives a ~12 MB export (a
real YOLOv8n-sized file; needs the torch extra) into ``bench/out/``. Pass ``--model FILE`` to
time any other export instead.

    python bench/bench_analyze.py [--model FILE] [--repeat 5]

Prints the median wall time of: ``onnx.load`` (full, with data), ``graphpath.analysis.analyze``
in-process, the JSON rendering, and the whole ``graphpath analyze --format json`` command in a
fresh process (interpreter start-up and imports included).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from timing import median_seconds

OUT = Path(__file__).resolve().parent / "out"
#: Width factor of graphpath's yolov8n builder that gives a ~12 MB fp32 export.
WIDTH_12MB = 0.25


def _reference_model() -> Path:
    from graphpath.zoo.catalog import select
    from graphpath.zoo.common import build

    spec = select(["yolov8n"])[0]
    entry = build(spec, OUT, width=WIDTH_12MB)
    return OUT / entry["file"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import onnx

    from graphpath.analysis import analyze
    from graphpath.formats import get_renderer

    path = args.model or _reference_model()
    render = get_renderer("json")
    report = analyze(path)
    rows = [
        ("onnx.load (bare)", median_seconds(lambda: onnx.load(str(path)), args.repeat)),
        ("graphpath analyze (library)", median_seconds(lambda: analyze(path), args.repeat)),
        ("JSON rendering", median_seconds(lambda: render(report), args.repeat)),
        ("graphpath analyze (CLI process)", median_seconds(
            lambda: subprocess.run(
                [sys.executable, "-m", "graphpath", "analyze", str(path), "--format", "json"],
                check=True, stdout=subprocess.DEVNULL,
            ), args.repeat)),
    ]
    size_mb = path.stat().st_size / 1e6
    print(f"model: {path.name}  {size_mb:.1f} MB  {report.model.node_count} nodes  "
          f"{report.model.parameter_count:,} parameters  (median of {args.repeat})")
    for label, seconds in rows:
        print(f"  {label:<34} {seconds * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
