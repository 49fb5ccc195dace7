"""Benchmark: ``graphpath analyze`` start-up and run time against ``polygraphy inspect model`` and a
bare ``onnx.load`` of the same file, side by side in one run.

    python bench/bench_analyze.py [--model FILE] [--repeat 5] [--polygraphy PATH] [--importtime]

Model: by default graphpath's YOLOv8n reference rebuilt at width 0.25 (a 12.7 MB export, the size
of the real YOLOv8n; needs the torch extra) into ``bench/out/``, reused when already there. Without
torch it falls back to ``models/yolov8n.onnx`` (width 0.1, 4 MB). ``--model FILE`` times any other.

Processes (each a fresh interpreter, one warm-up run, then ``--repeat`` runs; wall time median /
min / max, and the median CPU time user+sys, which other jobs on the machine disturb less):

- ``python -c pass`` (the interpreter alone), ``import onnx``, ``import onnx; onnx.load(MODEL)``,
  ``import graphpath.cli.main`` and ``graphpath analyze MODEL`` with this interpreter; the children get
  this checkout first on ``PYTHONPATH``, so they measure the graphpath next to this script;
- ``polygraphy inspect model MODEL``: the ``polygraphy`` of ``--polygraphy PATH``, else of
  ``$GRAPHPATH_BENCH_POLYGRAPHY``, else ``bench/.venv-polygraphy/bin/polygraphy``, else the one on
  ``PATH``; skipped with a note when there is none. It needs onnx in its own environment (not
  onnxruntime or TensorRT for an ONNX summary). Give it the same onnx and ml_dtypes as graphpath's
  environment, or the comparison measures the two ml_dtypes: the versions of both are printed.
  ``constraints.txt`` pins ``ml_dtypes<0.7`` (0.7.0's import adds ~0.7 s to ``import onnx``), so
  build it with the same pin: ``python -m venv bench/.venv-polygraphy && bench/.venv-polygraphy/bin/pip
  install polygraphy onnx numpy 'ml_dtypes<0.7'`` (the folder is git-ignored).

Before timing, graphpath's modules are byte-compiled (``compileall``, as ``pip install`` does):
with ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__``, every run would compile all ~40 of them
again (about +120 ms to ``graphpath analyze``), which polygraphy's installed package never pays.
``--no-compile`` leaves the checkout as it is.

Then the ratios graphpath/polygraphy and graphpath/onnx.load, the in-process rows this bench
always printed (``onnx.load``, ``graphpath.analysis.analyze``, the JSON rendering), and a closing
note with the baseline ratios. ``--importtime`` adds the largest cumulative imports of one
``python -X importtime -m graphpath analyze MODEL`` run and the graphpath modules it loads.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from timing import median_seconds

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
#: Width factor of graphpath's yolov8n builder that gives the real YOLOv8n's ~12 MB fp32 export.
WIDTH_12MB = 0.25
POLYGRAPHY_ENV = "GRAPHPATH_BENCH_POLYGRAPHY"
POLYGRAPHY_VENV = BENCH / ".venv-polygraphy"
#: Packages whose versions decide the start-up time; printed for both environments.
VERSIONS = ("onnx", "ml_dtypes", "numpy", "protobuf", "networkx")

#: Median wall-time ratios before the start-up work (commit 3bf1a91; onnx 1.23.2, ml_dtypes 0.7.0,
#: numpy 2.4.6 in graphpath's venv and in polygraphy 0.53.6's; the 12.7 MB export; 2 cores):
#: graphpath analyze 1240 ms, polygraphy inspect model 1053 ms, import onnx + onnx.load 948 ms.
#: With ml_dtypes 0.6.0 in graphpath's venv only: 544 / 1068 / 261 ms (0.51, 2.08); with 0.6.0 in
#: both: 565 / 367 / 256 ms (1.54, 2.21). The closing note compares a run with these.
#: After the lazy CLI (cli.main imports a command's module only when it runs; 54 instead of 95 ms for
#: ``import graphpath.cli.main``) and ``ml_dtypes<0.7`` in constraints.txt, on an idle 2-core machine,
#: 0.6.0 in both venvs: graphpath analyze 477 ms, polygraphy 312 ms, onnx.load 190 ms (1.53, 2.52);
#: the commit before, same venvs: 505 / 314 / 193 ms (1.61, 2.62); both commits with 0.7.0 in both
#: venvs: 1190-1194 / 989-1012 / 886-891 ms (1.18-1.20, 1.34-1.35). The pin is the start-up win
#: (-0.7 s); polygraphy gains as much from it, and graphpath's remaining gap to it is mostly the
#: networkx import (~85 ms) and the analysis itself (~48 ms in process).
BASELINE = {"graphpath/polygraphy": 1.18, "graphpath/onnx.load": 1.31}


@dataclass(frozen=True)
class Timing:
    label: str
    wall: list[float]
    cpu: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def row(self) -> str:
        return (f"  {self.label:<36} {self.median * 1000:8.0f} {min(self.wall) * 1000:8.0f} "
                f"{max(self.wall) * 1000:8.0f} {self.cpu_median * 1000:8.0f}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class BenchError(Exception):
    """A timed command failed or did not do what it is timed for."""


def time_process(label: str, argv: list[str], repeat: int, env: dict[str, str],
                 expect: str | None = None) -> Timing:
    """Wall and CPU time of ``argv`` in a fresh process, after one warm-up run whose output must
    contain ``expect`` (when given)."""
    warm = subprocess.run(argv, capture_output=True, text=True, env=env)
    if warm.returncode != 0:
        lines = warm.stderr.strip().splitlines() or ["no message"]
        raise BenchError(f"exit {warm.returncode}: "
                         + next((ln for ln in lines if ln.startswith("[!]")), lines[-1]).strip())
    if expect is not None and expect not in warm.stdout + warm.stderr:
        raise BenchError(f"its output has no {expect!r}")
    wall, cpu = [], []
    for _ in range(repeat):
        c0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - c0)
    return Timing(label, wall, cpu)


def _graphpath_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _reference_model(rebuild: bool) -> Path:
    target = OUT / "yolov8n.onnx"
    if target.exists() and not rebuild:
        return target
    try:
        import torch  # noqa: F401
    except ImportError:
        print("note: torch is not installed, so the 12.7 MB export cannot be built; timing "
              "models/yolov8n.onnx (4 MB) instead (pip install -e '.[torch]' for the 12.7 MB one)")
        return ROOT / "models" / "yolov8n.onnx"
    from graphpath.zoo.catalog import select
    from graphpath.zoo.common import build

    entry = build(select(["yolov8n"])[0], OUT, width=WIDTH_12MB)
    return OUT / entry["file"]


def find_polygraphy(option: str | None) -> tuple[Path | None, str]:
    """The ``polygraphy`` executable to time and where it came from."""
    if option:
        return Path(option), "--polygraphy"
    if os.environ.get(POLYGRAPHY_ENV):
        return Path(os.environ[POLYGRAPHY_ENV]), f"${POLYGRAPHY_ENV}"
    venv = POLYGRAPHY_VENV / "bin" / "polygraphy"
    if venv.exists():
        return venv, "the bench's own venv"
    found = shutil.which("polygraphy")
    return (Path(found), "PATH") if found else (None, "")


def _script_python(script: Path) -> str | None:
    """The interpreter of a console script (its ``#!`` line), to read its environment's versions."""
    try:
        first = script.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    return first[2:].strip().split()[0] if first.startswith("#!") else None


def _versions(python: str | None, env: dict[str, str]) -> str:
    if python is None:
        return "?"
    code = ("import importlib.metadata as m\n"
            f"for n in {VERSIONS!r}:\n"
            "    try: print(n, m.version(n))\n"
            "    except m.PackageNotFoundError: print(n, '-')\n")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    return " ".join(f"{n} {v}" for n, v in (line.split() for line in done.stdout.splitlines()))


def _install_hint() -> str:
    pins = []
    for name in ("onnx", "ml_dtypes"):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return (f"python -m venv {POLYGRAPHY_VENV.relative_to(ROOT)} && "
            f"{(POLYGRAPHY_VENV / 'bin' / 'pip').relative_to(ROOT)} install polygraphy {' '.join(pins)}")


def importtime_report(model: Path, top: int = 12) -> None:
    """Largest cumulative imports of one ``graphpath analyze`` run, and the graphpath modules loaded."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "graphpath", "analyze", str(model)],
                          capture_output=True, text=True, env=_graphpath_env(), check=True)
    rows = []  # (cumulative µs, self µs, depth, module), children before their parent
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m[2]), int(m[1]), len(m[3]) // 2, m[4]))
    # A package's cost: the cumulative time of its imports that no import of the same package
    # encloses (e.g. ``rich.console`` imported first, ``rich`` inside it).
    parents: list[str] = []
    outermost: list[tuple[str, int]] = []
    for cum, _, depth, name in reversed(rows):  # parents before their children
        del parents[depth:]
        package = name.split(".")[0]
        if package not in parents:
            outermost.append((package, cum))
        parents.append(package)
    cost: dict[str, int] = {}
    for package, cum in outermost:
        cost[package] = cost.get(package, 0) + cum
    total = sum(cum for cum, _, depth, _ in rows if depth == 0)
    print(f"\npython -X importtime -m graphpath analyze: {total / 1000:.0f} ms of imports "
          "(-X importtime inflates it); largest packages, cumulative ms:")
    cost.pop("graphpath", None)  # encloses everything; its own share is printed below
    print("  " + "   ".join(f"{name} {us / 1000:.0f}"
                            for name, us in sorted(cost.items(), key=lambda kv: -kv[1])[:top]))
    ours = sorted({name.removeprefix("graphpath.") for _, _, _, name in rows if name.startswith("graphpath.")})
    own = sum(us for _, us, _, name in rows if name.split(".")[0] == "graphpath")
    print(f"  graphpath's own {len(ours)} modules ({own / 1000:.0f} ms self): {' '.join(ours)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--polygraphy", default=None, metavar="PATH",
                        help=f"polygraphy executable (default: ${POLYGRAPHY_ENV}, "
                             f"{POLYGRAPHY_VENV.relative_to(ROOT)}, PATH)")
    parser.add_argument("--rebuild", action="store_true", help="Rebuild bench/out/yolov8n.onnx.")
    parser.add_argument("--no-compile", action="store_true",
                        help="Do not byte-compile graphpath's modules before timing.")
    parser.add_argument("--importtime", action="store_true",
                        help="Also print the largest imports of one graphpath analyze run.")
    args = parser.parse_args()

    import onnx

    from graphpath.analysis import analyze
    from graphpath.formats import get_renderer

    if not args.no_compile:
        compileall.compile_dir(ROOT / "graphpath", quiet=1)
    path = (args.model or _reference_model(args.rebuild)).resolve()
    report = analyze(path)
    print(f"model: {path.name}  {path.stat().st_size / 1e6:.1f} MB  {report.model.node_count} nodes  "
          f"{report.model.parameter_count:,} parameters  ({args.repeat} runs after one warm-up)")
    print(f"graphpath's python: {_versions(sys.executable, _graphpath_env())}")

    py, env = sys.executable, _graphpath_env()
    runs = {
        "interpreter": time_process("python -c pass", [py, "-c", "pass"], args.repeat, env),
        "import onnx": time_process("python -c 'import onnx'", [py, "-c", "import onnx"], args.repeat, env),
        "onnx.load": time_process("import onnx; onnx.load(MODEL)",
                                  [py, "-c", f"import onnx; onnx.load({str(path)!r})"], args.repeat, env),
        "import cli": time_process("import graphpath.cli", [py, "-c", "import graphpath.cli.main"],
                                   args.repeat, env),
        "graphpath": time_process("graphpath analyze MODEL", [py, "-m", "graphpath", "analyze", str(path)],
                                  args.repeat, env),
    }
    poly, source = find_polygraphy(args.polygraphy)
    skipped = None
    if poly is None:
        skipped = "no polygraphy found"
    else:
        poly_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        try:
            runs["polygraphy"] = time_process("polygraphy inspect model MODEL",
                                              [str(poly), "inspect", "model", str(path)], args.repeat, poly_env,
                                              expect="ONNX Model")
            print(f"polygraphy's python ({poly}, from {source}): {_versions(_script_python(poly), poly_env)}")
        except (OSError, BenchError, subprocess.CalledProcessError) as exc:
            skipped = f"{poly} failed ({exc})"

    print(f"\n  {'process':<36} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8}   (ms)")
    for timing in runs.values():
        print(timing.row())
    if skipped:
        print(f"  polygraphy inspect model: skipped, {skipped}; install it in its own venv: {_install_hint()}")

    ratios, cpu_ratios = {}, {}
    for other, key in (("polygraphy", "graphpath/polygraphy"), ("onnx.load", "graphpath/onnx.load")):
        if other in runs:
            ratios[key] = runs["graphpath"].median / runs[other].median
            cpu_ratios[key] = runs["graphpath"].cpu_median / runs[other].cpu_median
    print("\nratios, median wall: " + "   ".join(f"{k} {v:.2f}" for k, v in ratios.items())
          + ";  median cpu: " + "   ".join(f"{k} {v:.2f}" for k, v in cpu_ratios.items()))

    render = get_renderer("report", "json")
    in_process = [
        ("onnx.load (bare)", median_seconds(lambda: onnx.load(str(path)), args.repeat)),
        ("graphpath analyze (library)", median_seconds(lambda: analyze(path), args.repeat)),
        ("JSON rendering", median_seconds(lambda: render(report), args.repeat)),
    ]
    print("\nin process, imports done (median):")
    for label, seconds in in_process:
        print(f"  {label:<36} {seconds * 1000:8.1f} ms")

    if args.importtime:
        importtime_report(path)

    print("\nnote: baseline before the start-up work (3bf1a91, ml_dtypes 0.7.0 in both venvs): "
          + "   ".join(f"{k} {v:.2f}" for k, v in BASELINE.items())
          + ";  this run: " + "   ".join(f"{k} {v:.2f}" for k, v in ratios.items())
          + ".  Target: graphpath/polygraphy <= 1.00.")


if __name__ == "__main__":
    main()
