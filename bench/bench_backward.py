"""Benchmark the numeric backward pass (never a timed assertion in tests).

1. Cost of one probe (what :func:`run_backward` does per probe: capture, parameter and
   activation gradients in one backward, dead fractions) against a plain torch forward +
   backward of the same evaluated graph (target ≤ 1.3×); medians of interleaved repeats.
2. Wall time of a full ``run_backward`` (K probes, blocks, operator norms) on a YOLOv8-size
   graph at 640 on CPU, built with the zoo (``yolov8n`` at width 0.25 = the official n widths).

Usage::

    python bench/bench_backward.py [--model models/yolov8n.onnx] [--build640] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def compare(path: Path, repeat: int) -> tuple[float, float, float]:
    """Median seconds of: evaluator forward to the raw heads; plain forward + backward (params'
    ``.grad``); one probe as :func:`run_backward` runs it (capture of every weighted unit's feature
    map and pre-activation, ``∂L/∂θ`` and ``∂L/∂F`` in one backward, dead fractions). Interleaved
    so that load from other processes hits both alike."""
    import torch

    from graphpath import onnx_io
    from graphpath.model.layers import build_layers
    from graphpath.numeric.evaluator.core import Evaluator
    from graphpath.numeric.measures import probe_pass
    from graphpath.numeric.metrics import activation_input, dead_fraction
    from graphpath.numeric.probes import all_heads, probe_cotangents, probe_inputs, raw_head_tensors
    from graphpath.numeric.scope import feature_tensor

    graph = onnx_io.load(path)
    layers = build_layers(graph)
    heads = list(all_heads(raw_head_tensors(graph, layers)))
    ev = Evaluator.from_model(path, device="cpu", outputs=heads)

    def in_scope(t: str) -> bool:
        return t in ev.shapes and t not in ev.folded and t not in graph.params

    weighted = [u for u in layers.topo_order() if layers.unit(u).weighted]
    feats = {t for u in weighted if (t := feature_tensor(graph, layers, u, in_scope))}
    acts = [a for u in weighted if (a := activation_input(graph, layers, u)) and in_scope(a[1])
            and in_scope(layers.unit(u).tensor)]
    capture = sorted(feats | {a[1] for a in acts})
    x_np = probe_inputs(ev.input_shapes, {t.name: t.dtype for t in graph.inputs}, 0, 0)
    cot_np = probe_cotangents(ev.shapes, heads, 0, 0)
    x = {k: torch.from_numpy(v) for k, v in x_np.items()}
    cot = {h: torch.from_numpy(c) for h, c in cot_np.items()}
    params = {k: v.detach() for k, v in ev.named_onnx_parameters().items()}
    fwd, plain, probe = [], [], []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        with torch.no_grad():
            ev(x, outputs=heads)
        fwd.append(time.perf_counter() - t0)
        ev.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = ev(x, outputs=heads)
        sum((out[h] * cot[h]).sum() for h in heads).backward()
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got, _, _ = probe_pass(ev, params, heads, capture, x_np, cot_np, sorted(feats))
        with torch.no_grad():
            for kind, xt, attrs in acts:
                dead_fraction(kind, got[xt], attrs)
        probe.append(time.perf_counter() - t0)
    return statistics.median(fwd[1:]), statistics.median(plain[1:]), statistics.median(probe[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/yolov8n.onnx"))
    ap.add_argument("--build640", action="store_true", help="also build yolov8n at width 0.25, 640 and time it")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--probes", type=int, default=2, help="K for the full run at 640")
    args = ap.parse_args()

    import torch

    from graphpath.numeric.backward import BackwardOptions, run_backward

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    targets = [args.model]
    if args.build640:
        from graphpath.zoo.catalog import select
        from graphpath.zoo.common import build

        out = Path("bench/out")
        out.mkdir(parents=True, exist_ok=True)
        (spec,) = select(["yolov8n"])
        entry = build(spec, out, width=0.25, imgsz=640)
        targets.append(out / str(entry["file"]))
    for path in targets:
        fwd, both, probe = compare(path, args.repeat)
        print(f"{path.name}: plain forward {fwd * 1e3:.0f} ms, plain forward+backward {both * 1e3:.0f} ms, "
              f"one probe {probe * 1e3:.0f} ms → {probe / both:.2f}× (target ≤ 1.3×)")
    if args.build640:
        path = targets[-1]
        t0 = time.perf_counter()
        report = run_backward(path, BackwardOptions(probes=args.probes, device="cpu"))
        wall = time.perf_counter() - t0
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in report.timings.items())
        print(f"full backward at 640 ({path.name}, K={args.probes}): {wall:.1f} s ({parts}); "
              f"verdict {report.verdict}, ratio {report.ratio:.3g}, parity max abs {report.parity['max_abs']:.2g}")


if __name__ == "__main__":
    main()
