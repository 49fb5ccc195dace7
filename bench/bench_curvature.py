"""Benchmark ``graphpath curvature MODEL`` (default: top-3 eigenvalues of the distill GGN at the
file's own weights, one seed) — never a timed assertion in tests.

Reports the wall time of :func:`run_curvature` by step, the operator products ``eigsh`` used,
seconds per product, a plain forward + backward of the same evaluated graph for scale, and the
machine's load average before and after (on a shared machine the figures scale with it).
The issue's target: under 2 minutes on 2 CPU cores for ``models/yolov8n.onnx``.

Usage::

    python bench/bench_curvature.py [--model models/yolov8n.onnx] [--top-k 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/yolov8n.onnx"))
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from graphpath.numeric.curvature import CurvatureOptions, run_curvature
    from graphpath.numeric.options import BackwardOptions

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    report = run_curvature(args.model, CurvatureOptions(protocol=BackwardOptions(device=args.device),
                                                        top_k=args.top_k))
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    top = report.seeds[0].top
    print(f"model {args.model} on {report.device} ({torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs), input {report.input_shapes}, {report.parameters} parameters, "
          f"{report.outputs} raw-head outputs")
    print(f"top-{args.top_k} λ (distill GGN, condition weights, seed 0): {', '.join(f'{v:.4g}' for v in top.values)}; "
          f"converged {top.converged}; {top.matvecs} products")
    print(f"run_curvature wall {wall:.1f} s; by step: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()))
    eig = report.timings.get("eigenvalues", float("nan"))
    print(f"≈ {eig / max(1, top.matvecs):.2f} s per operator product (incl. the residual check)")
    print(f"load average before {load0[0]:.1f}, after {load1[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()
