"""Benchmark ``graphpath report`` over a registry: cold (nothing cached) and warm (everything
cached) wall times for the local and the Ray executor, and peak memory. Targets (issue 19):
warm at least 20× faster than cold; memory flat in N.

The registry is N variants of the reference models in ``models/``: variant ``i`` is reference
model ``i mod 17`` with every float initializer multiplied by ``1 + 1e-3·z``, ``z`` standard
normal from ``numpy.random.default_rng(i)``, so every file's hash differs while the graph (and
the static analysis's work) stays that of a real export. Each timed run is a fresh
``python -m graphpath report FOLDER --format json`` process (start-up included), static
analysis only (the numeric pass is where caching saves most: minutes per model); its peak
resident memory is the process's own (driver) and its largest worker's (local executor; Ray's
workers are not its children and are not counted).

Usage::

    python bench/bench_registry.py [--n 1000] [--jobs 2] [--executors local,ray] [--work DIR] [--sizes] [--repeat 3]

``--sizes`` also runs the local executor at N/4 and N/2 cold, for the memory-versus-N line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_variants(n: int, folder: Path) -> list[Path]:
    """Write ``n`` perturbed copies of the reference models into ``folder``."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    refs = sorted((ROOT / "models").glob("*.onnx"))
    protos = [onnx.load(str(p)) for p in refs]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        k = i % len(refs)
        model = onnx.ModelProto()
        model.CopyFrom(protos[k])
        rng = np.random.default_rng(i)
        for t in model.graph.initializer:
            if t.data_type != onnx.TensorProto.FLOAT:
                continue
            a = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array((a * (1 + 1e-3 * rng.standard_normal(a.shape))).astype(a.dtype),
                                               t.name))
        path = folder / f"{i:05d}-{refs[k].name}"
        path.write_bytes(model.SerializeToString())
        out.append(path)
    return out


_MEASURE = """
import resource, sys, time
from graphpath.cli.main import main
t0 = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
took = time.perf_counter() - t0
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"BENCH {took} {own} {kids} {code}", file=sys.stderr)
"""


def measure(args: list[str]) -> dict[str, float]:
    """One ``graphpath`` run in a fresh process: seconds, peak RSS (MB) of it and of its largest child."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("BENCH ")), None)
    if line is None or proc.returncode not in (0,) or line.split()[4] != "0":
        raise SystemExit(f"graphpath {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    _, took, own, kids, _code = line.split()
    return {"wall": wall, "seconds": float(took), "driver_mb": int(own) / 1024, "worker_mb": int(kids) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="variants (default 1000)")
    parser.add_argument("--jobs", type=int, default=2, help="local workers / CPUs of the local Ray cluster")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--work", type=Path, default=None, help="folder for the variants and caches (default: temp)")
    parser.add_argument("--sizes", action="store_true", help="also N/4 and N/2 cold (local), memory versus N")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs (median, min and max reported)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="graphpath-bench-"))
    t0 = time.perf_counter()
    variants = build_variants(args.n, work / "registry")
    print(f"built {len(variants)} variants in {time.perf_counter() - t0:.1f} s under {work}", flush=True)
    print(f"{'executor':<10}{'N':>6}{'cold s':>10}{'warm s (median [min, max])':>28}{'speed-up':>10}"
          f"{'driver MB':>11}{'worker MB':>11}", flush=True)
    results = []
    outputs = {}
    for executor in [e for e in args.executors.split(",") if e]:
        cache = work / f"cache-{executor}"
        shutil.rmtree(cache, ignore_errors=True)
        out = work / f"table-{executor}.json"
        cmd = ["report", str(work / "registry"), "--format", "json", "-o", str(out), "-q", "--jobs", str(args.jobs),
               "--executor", executor, "--cache-dir", str(cache)]
        cold = measure(cmd)
        outputs[executor] = out.read_bytes()
        warms = []
        for _ in range(max(1, args.repeat)):
            warms.append(measure(cmd))
            assert out.read_bytes() == outputs[executor], "warm run changed the output"
        secs = sorted(w["seconds"] for w in warms)
        median = statistics.median(secs)
        row = {"executor": executor, "n": args.n, "cold": cold, "warm": warms, "speedup": cold["seconds"] / median}
        results.append(row)
        warm_text = f"{median:.2f} [{secs[0]:.2f}, {secs[-1]:.2f}]"
        print(f"{executor:<10}{args.n:>6}{cold['seconds']:>10.1f}{warm_text:>28}{row['speedup']:>9.1f}×"
              f"{max(cold['driver_mb'], *(w['driver_mb'] for w in warms)):>11.0f}{cold['worker_mb']:>11.0f}",
              flush=True)
    if len(outputs) > 1:
        same = len(set(outputs.values())) == 1
        print(f"outputs byte-identical across executors: {same}")
    if args.sizes:
        for n in sorted({max(1, args.n // 4), max(1, args.n // 2)}):
            sub = work / f"registry-{n}"
            sub.mkdir(exist_ok=True)
            for p in variants[:n]:
                target = sub / p.name
                if not target.exists():
                    os.link(p, target)
            cache = work / f"cache-sizes-{n}"
            shutil.rmtree(cache, ignore_errors=True)
            cold = measure(["report", str(sub), "--format", "json", "-o", str(work / f"t{n}.json"), "-q",
                            "--jobs", str(args.jobs), "--cache-dir", str(cache)])
            print(f"{'local':<10}{n:>6}{cold['seconds']:>10.1f}{'':>28}{'':>10}{cold['driver_mb']:>11.0f}"
                  f"{cold['worker_mb']:>11.0f}", flush=True)
    (work / "bench-registry.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
