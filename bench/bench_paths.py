"""Benchmark graphpath.paths.analysis.analyze_paths on synthetic layer views (not a test).

Builds residual chains, ELAN stacks and random DAGs of about N units directly as
``LayerGraph`` (networkx bulk adds; ``from_edges`` checks every edge and is slow at 10**6),
runs ``analyze_paths`` in a fresh process per case and prints one row per case: build time,
the layer view's own topological sort, the analysis's wall time, RSS before the analysis, the
case's peak RSS (ru_maxrss) and, with ``--tracemalloc``, the analysis's traced peak.

    python bench/bench_paths.py --sizes 10000,100000,1000000
    python bench/bench_paths.py --sizes 100000 --cases residual --tracemalloc
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable

import networkx as nx

from graphpath.model.layers import LayerGraph, Unit
from graphpath.paths.analysis import analyze_paths

Edges = list[tuple[str, str]]


def _graph(nodes: list[tuple[str, str]], edges: Edges, inputs: tuple[str, ...],
           outputs: tuple[str, ...]) -> LayerGraph:
    """``nodes`` are (id, kind) in a topological order; repeated edges raise ``count``."""
    dag = nx.DiGraph()
    dag.add_nodes_from(
        (uid, {"unit": Unit(id=uid, kind=kind, op_type=kind.capitalize(), nodes=(uid,))}) for uid, kind in nodes
    )
    counts: dict[tuple[str, str], int] = {}
    for e in edges:
        counts[e] = counts.get(e, 0) + 1
    dag.add_edges_from((u, v, {"count": c}) for (u, v), c in counts.items())
    return LayerGraph(dag=dag, inputs=inputs, outputs=outputs)


def residual_chain(n_units: int, seed: int = 0) -> LayerGraph:
    """x → n blocks of (conv → conv → add with the identity) → y: 2**n paths."""
    nodes = [("x", "input")]
    edges: Edges = []
    prev = "x"
    for b in range(max(1, (n_units - 2) // 3)):
        a, c, s = f"b{b}.cv1", f"b{b}.cv2", f"b{b}.add"
        nodes += [(a, "weighted"), (c, "weighted"), (s, "merge")]
        edges += [(prev, a), (a, c), (c, s), (prev, s)]
        prev = s
    nodes.append(("y", "output"))
    edges.append((prev, "y"))
    return _graph(nodes, edges, ("x",), ("y",))


def elan_stack(n_units: int, seed: int = 0) -> LayerGraph:
    """x → ELAN blocks (cv1 ‖ cv2 → m1 → m2 → m3 → m4, concat of cv1, cv2, m2, m4 → cv3) → y.

    Each block multiplies the path count by 4 (one path per tap)."""
    nodes = [("x", "input")]
    edges: Edges = []
    prev = "x"
    for b in range(max(1, (n_units - 2) // 8)):
        ids = [f"e{b}.{k}" for k in ("cv1", "cv2", "m1", "m2", "m3", "m4", "cat", "cv3")]
        cv1, cv2, m1, m2, m3, m4, cat, cv3 = ids
        nodes += [(u, "merge" if u == cat else "weighted") for u in ids]
        edges += [(prev, cv1), (prev, cv2), (cv2, m1), (m1, m2), (m2, m3), (m3, m4),
                  (cv1, cat), (cv2, cat), (m2, cat), (m4, cat), (cat, cv3)]
        prev = cv3
    nodes.append(("y", "output"))
    edges.append((prev, "y"))
    return _graph(nodes, edges, ("x",), ("y",))


def random_dag(n_units: int, seed: int = 0) -> LayerGraph:
    """A chain backbone with 0–2 extra skip edges per unit from the last 32 units, half the
    units weighted, three outputs (at 1/3, 2/3 and the end)."""
    rng = random.Random(seed)
    n = max(4, n_units - 3)
    nodes = [("u0", "input")]
    edges: Edges = []
    for i in range(1, n):
        nodes.append((f"u{i}", "weighted" if rng.random() < 0.5 else "merge"))
        edges.append((f"u{i - 1}", f"u{i}"))
        for _ in range(rng.choice((0, 1, 1, 2))):
            j = rng.randrange(max(0, i - 32), i)
            edges.append((f"u{j}", f"u{i}"))
    outs = []
    for k, at in enumerate((n // 3, 2 * n // 3, n - 1)):
        nodes.append((f"out{k}", "output"))
        edges.append((f"u{at}", f"out{k}"))
        outs.append(f"out{k}")
    return _graph(nodes, edges, ("u0",), tuple(outs))


CASES: dict[str, Callable[[int, int], LayerGraph]] = {
    "residual": residual_chain, "elan": elan_stack, "random": random_dag,
}


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def run_case(case: str, size: int, seed: int, trace: bool) -> tuple[str, ...]:
    """One case, meant to run in a fresh child process so that peak RSS is its own."""
    gc.disable()  # building millions of containers: the cyclic GC would rescan them all
    t0 = time.perf_counter()
    g = CASES[case](size, seed)
    t1 = time.perf_counter()
    gc.enable()
    g.topo_order()
    t2 = time.perf_counter()
    before = _rss_mib()
    if trace:
        tracemalloc.start()
    t3 = time.perf_counter()
    report = analyze_paths(g)
    t4 = time.perf_counter()
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    tracemalloc.stop()
    bins = "skipped" if report.histogram is None else str(len(report.histogram.bins))
    lg, mean = report.total.log2, report.effective_depth.mean
    return (case, str(g.dag.number_of_nodes()), str(g.dag.number_of_edges()),
            f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", f"{t4 - t3:.2f}", f"{before:.0f}",
            f"{_peak_rss_mib():.0f}", f"{traced:.0f}",
            "-" if lg is None else f"{lg:.3f}", "-" if mean is None else f"{mean:.2f}", bins)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated unit counts (default: %(default)s)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python allocations of the analysis (about 2x slower)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    head = ("case", "units", "edges", "build s", "topo s", "paths s", "rss0 MiB", "peak MiB",
            "traced MiB", "log2 paths", "mean len", "hist bins")
    print("paths s: analyze_paths alone; rss0: RSS with the graph built, before the analysis;"
          " peak: the case's peak RSS (graph + analysis)", flush=True)
    print(" ".join(f"{h:>11}" for h in head), flush=True)
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    for size in sizes:
        for case in cases:
            with ctx.Pool(1) as pool:  # a fresh process per case: peak RSS is the case's own
                row = pool.apply(run_case, (case, size, args.seed, args.tracemalloc))
            print(" ".join(f"{c:>11}" for c in row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
