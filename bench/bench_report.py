"""Benchmark the stability protocol: ``graphpath report MODELS --numeric --condition init
--seeds 5`` per model and in total (issue 15's target: under 15 minutes for every reference
model on 2 CPU cores). Never a timed assertion in tests.

Each model is one :func:`~graphpath.stability.table.model_row` (what a ``report`` worker runs
per model), so the per-model times add up to the total of one ``report models/*.onnx`` call up
to its small static part; the rows are written as a Markdown table beside the timings.

Usage::

    python bench/bench_report.py [MODEL ...] [--seeds 5] [--seed-offset 0] [--probes 4] [--curvature]
                                 [--out bench/out/report-init.md]

The table is also written as JSON beside the Markdown (``--out`` with ``.json``), both after
every model; ``--curvature`` adds the curvature cells and tables (``report --curvature``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from graphpath.formats import get_renderer
    from graphpath.numeric.curvature import CurvatureOptions
    from graphpath.numeric.options import BackwardOptions
    from graphpath.stability.table import make_table, model_row

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--seed-offset", type=int, default=0, help="run seeds OFFSET … OFFSET+SEEDS-1")
    parser.add_argument("--curvature", action="store_true", help="also the curvature cells (report --curvature)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "report-init.md")
    args = parser.parse_args()
    models = args.models or sorted((ROOT / "models").glob("*.onnx"))
    options = BackwardOptions(condition="init", seeds=args.seeds, seed_offset=args.seed_offset, probes=args.probes,
                              device="cpu")
    curvature = CurvatureOptions.for_table() if args.curvature else None
    echo = dict(options.echo())
    if curvature is not None:
        echo["curvature"] = curvature.summary()
    rows = []
    total = 0.0
    print(f"{'model':<24}{'seconds':>10}  verdict   (condition init, torch-default, norm auto, "
          f"seeds {list(options.seed_list)} × {args.probes} probes{'; curvature' if curvature else ''})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in models:
        start = time.perf_counter()
        row, _ = model_row(path, numeric=True, backward_options=options, curvature=curvature)
        took = time.perf_counter() - start
        total += took
        rows.append(row)
        lam = row.curvature.lambda_max if row.curvature is not None else None
        print(f"{path.name:<24}{took:>10.1f}  {row.verdict} (ratio {row.ratio}, vs seed {row.seed_agreement}"
              f"{f'; λ_max {lam.describe()}' if lam is not None else ''})", flush=True)
        # written after every model: a long run leaves the rows it finished
        table = make_table(rows, numeric=True, numeric_options=echo)
        args.out.write_text(get_renderer("table", "md")(table))
        args.out.with_suffix(".json").write_text(get_renderer("table", "json")(table))
    print(f"{'total':<24}{total:>10.1f}")
    print(f"table: {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
