"""The fuzzing campaign: hostile models through every command, and the table of what happened.

    python bench/fuzz.py [--cases 10000] [--seed 0] [--jobs N] [--commands analyze,backward,...]
                         [--classes bytes,external,...] [--subprocess] [--failures FILE] [--only backward]

Cases come from :mod:`tests.fuzz.cases` (seeded: case ``i`` of seed ``s`` is always the same
model), round-robin over the mutation classes; commands are drawn with weights analyze 5,
blocks/paths/audit/report 1 each, backward 0.5 (it imports torch and runs onnxruntime). The
resource bombs that take seconds by design (200 000-node chain, a node with 10⁶ inputs, one
tensor read 500 000 times) run once per command; every other bomb repeats.

Each case runs in its own process (:func:`tests.fuzz.harness.run_case`): by default a fork of a
worker that imported graphpath already (the same code path as ``python -m graphpath`` after the
imports, ~1 s cheaper per case); ``--subprocess`` starts ``python -m graphpath`` for each. Workers:
one per core (``--jobs``). A case is a hang past 60 s (3× for heavy bombs, 2× for backward).

Prints the table command × mutation class → cases, exit 0/1/2/3, signal, hang, partial output,
escape (a canary outside the model's folder opened or printed), accepted (a hostile reference
that exited 0/1), bad stderr (a traceback, or an error that is not one ``graphpath: error:``
line), then every bad case. Exit status 1 when any case is bad.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.cases import BOMBS, MUTATIONS, RandomChooser, make_case
from tests.fuzz.harness import COMMANDS, Outcome, preload, render_table, run_case

WEIGHTS = {"analyze": 5.0, "blocks": 1.0, "paths": 1.0, "audit": 1.0, "report": 1.0, "backward": 0.5}


def plan(n: int, seed: int, commands: list[str], classes: list[str]) -> list[tuple[int, str, str, str | None]]:
    """``(index, class, command, bomb)`` for each case; heavy bombs once per command."""
    rng = random.Random(seed)
    weights = [WEIGHTS.get(c, 1.0) for c in commands]
    light = [b for b, (_, heavy) in BOMBS.items() if not heavy]
    heavy = [b for b, (_, h) in BOMBS.items() if h]
    pending = {c: list(heavy) for c in commands}
    next_light: dict[str, int] = {c: 0 for c in commands}
    jobs = []
    for i in range(n):
        klass = classes[i % len(classes)]
        command = rng.choices(commands, weights)[0]
        bomb = None
        if klass == "bombs":
            if pending[command]:
                bomb = pending[command].pop(0)
            else:
                bomb = light[next_light[command] % len(light)]
                next_light[command] += 1
        jobs.append((i, klass, command, bomb))
    return jobs


def _job(args: tuple[int, str, str, str | None, int, bool]) -> Outcome:
    i, klass, command, bomb, seed, subprocess = args
    case = BOMBS[bomb][0]() if bomb else make_case(RandomChooser(seed * 1_000_003 + i), klass)
    return run_case(case, command, fork=not subprocess)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--classes", default=",".join(MUTATIONS))
    ap.add_argument("--subprocess", action="store_true", help="python -m graphpath per case instead of a fork")
    ap.add_argument("--failures", type=Path, default=None, help="write the bad cases as JSON lines here")
    ap.add_argument("--only", default="", metavar="COMMANDS",
                    help="run only the cases of these commands from the same plan (a rerun after a fix that "
                         "touched one command: case i is still case i)")
    args = ap.parse_args(argv)
    commands = [c for c in args.commands.split(",") if c]
    classes = [c for c in args.classes.split(",") if c]
    if "backward" in commands:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("bench/fuzz.py: torch is not installed; leaving backward out", file=sys.stderr)
            commands.remove("backward")
    only = {c for c in args.only.split(",") if c}
    jobs = [(*job, args.seed, args.subprocess) for job in plan(args.cases, args.seed, commands, classes)
            if not only or job[2] in only]
    outcomes: list[Outcome] = []
    t0 = time.monotonic()
    with ProcessPoolExecutor(args.jobs, initializer=preload, initargs=(commands,)) as pool:
        for k, outcome in enumerate(pool.map(_job, jobs, chunksize=4), 1):
            outcomes.append(outcome)
            if outcome.bad:
                print(f"BAD {outcome.describe()}", file=sys.stderr, flush=True)
            if k % 100 == 0:
                print(f"[{k}/{len(jobs)}] {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - t0
    bad = [o for o in outcomes if o.bad]
    print(f"graphpath fuzz campaign: {len(outcomes)} cases, seed {args.seed}, {args.jobs} workers "
          f"({'subprocess' if args.subprocess else 'fork'}), {elapsed:.0f} s wall\n")
    print(render_table(outcomes))
    slowest = max(outcomes, key=lambda o: o.seconds, default=None)
    if slowest is not None:
        print(f"\nslowest case: {slowest.command} [{slowest.klass}] {slowest.label}: {slowest.seconds:.1f} s")
    print(f"\nbad cases: {len(bad)}")
    for o in bad:
        print(f"  {o.describe()}")
    if args.failures is not None:
        with args.failures.open("w") as fh:
            for o in bad:
                fh.write(json.dumps({"command": o.command, "class": o.klass, "label": o.label, "rc": o.rc,
                                     "stderr": o.stderr_tail}) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
