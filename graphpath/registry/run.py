"""A registry run: expand the inputs, read what the cache has, compute the rest on an
executor, store it, and hand the records back in input order.

:func:`report_table` and :func:`audit_models` are what ``graphpath report`` and ``graphpath
audit`` call. A model that gives no record (unreadable, crashed or hung its worker, out of time
or memory) is a :class:`Failure`: its table row or audit entry says why, the other models finish,
and the command exits 2 (3 when the failure is a bug in graphpath).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphpath.errors import GraphpathError
from graphpath.registry.cache import ResultCache, cache_key
from graphpath.registry.executors import Executor, LocalExecutor, Task
from graphpath.registry.jobs import Job, readable

if TYPE_CHECKING:
    from graphpath.audit.config import AuditConfig
    from graphpath.audit.run import AuditResult
    from graphpath.stability.table import StabilityTable

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Failure:
    """A model without a record: its path, why, and whether it is a bug in graphpath."""

    path: str
    why: str
    internal: bool = False

    @property
    def exit_code(self) -> int:
        return 3 if self.internal else 2


@dataclass(frozen=True)
class Results:
    """Records (or failures) in input order, and how many came from the cache."""

    paths: tuple[str, ...]
    records: tuple[Mapping[str, Any] | None, ...]
    failures: tuple[Failure, ...]
    cached: int

    @property
    def exit_code(self) -> int:
        """0 when every model has a record, else 2 (3 if a failure is a bug in graphpath)."""
        return max((f.exit_code for f in self.failures), default=0)

    def failure_of(self, path: str) -> Failure | None:
        return next((f for f in self.failures if f.path == path), None)


def run_models(paths: Sequence[str | os.PathLike[str]], job: Job, *, executor: Executor | None = None,
               cache: ResultCache | None = None, progress: Progress | None = None) -> Results:
    """Every model's record under ``job``: from ``cache`` when it holds the key, else computed
    on ``executor`` (default: one local worker) and stored. ``progress(done, total, label)`` is
    called once per model, cached ones first, the others in completion order.
    """
    names = [os.fspath(p) for p in paths]
    if not names:
        raise GraphpathError("no models given")
    run = executor or LocalExecutor()
    total = len(names)
    records: list[Mapping[str, Any] | None] = [None] * total
    why: dict[int, tuple[str, bool]] = {}
    keys: list[str | None] = [None] * total
    done = 0
    cached = 0

    def tick(index: int, state: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, f"{Path(names[index]).name}: {state}")

    step = "static + numeric" if job.numeric else "static"
    tasks = []
    for i, name in enumerate(names):
        if cache is not None:
            keys[i] = cache_key(name, job, cache)
            hit = cache.get(keys[i]) if keys[i] is not None else None  # type: ignore[arg-type]
            if hit is not None and readable(job, hit):
                records[i] = hit
                cached += 1
                tick(i, f"{step} (cached)")
                continue
        tasks.append(Task(i, name, job))
    for outcome in run.run(tasks):
        i = outcome.index
        if outcome.status == "ok":
            records[i] = json.loads(outcome.payload)
            key = keys[i]
            if cache is not None and key is not None:
                cache.put(key, outcome.payload)
            tick(i, step)
        else:
            why[i] = (outcome.payload, outcome.status == "internal")
            tick(i, "failed")
    failures = []
    for i, name in enumerate(names):
        if records[i] is None:
            text, internal = why.get(i, ("gave no result", True))
            failures.append(Failure(name, text, internal))
    return Results(tuple(names), tuple(records), tuple(failures), cached)


def make_executor(spec: str, *, jobs: int = 1, timeout: float | None = None,
                  memory_limit: int | None = None) -> Executor:
    """The executor ``spec`` names: ``local``, ``ray`` (a local Ray cluster), ``ray:auto`` (the
    cluster at ``$RAY_ADDRESS``) or ``ray:ADDRESS``.

    Raises:
        GraphpathError: an unknown executor.
    """
    name, _, address = spec.partition(":")
    if name == "local" and not address:
        return LocalExecutor(jobs=jobs, timeout=timeout, memory_limit=memory_limit)
    if name == "ray":
        from graphpath.registry.ray_executor import RayExecutor

        return RayExecutor(address or None, jobs=jobs, timeout=timeout, memory_limit=memory_limit)
    raise GraphpathError(f"unknown --executor {spec!r}; choose local, ray, ray:auto or ray:ADDRESS")


def _failure_text(failure: Failure) -> str:
    """The reason as a row shows it: the loader's messages start with the path; drop it."""
    prefix = f"{failure.path}: "
    text = failure.why[len(prefix):] if failure.why.startswith(prefix) else failure.why
    return ("internal error: " if failure.internal else "") + text


def report_table(paths: Sequence[str | os.PathLike[str]], *, numeric: bool = False, backward_options: Any = None,
                 curvature: Any = None, executor: Executor | None = None, cache: ResultCache | None = None,
                 progress: Progress | None = None) -> tuple[StabilityTable, Results]:
    """The stability table of ``paths`` (as :func:`graphpath.stability.table.report_models`
    builds it: generation order, ties in input order, models named by :func:`model_labels`) and
    the run's results; a failed model is a row that says why (verdict ``n/a``). ``curvature``
    (:class:`~graphpath.numeric.curvature.CurvatureOptions`, with ``numeric``) adds each row's
    curvature cells."""
    from graphpath.registry.jobs import decode_row
    from graphpath.stability.table import failed_row, make_table, model_labels

    job = Job("report", numeric=numeric, backward_options=backward_options,
              curvature=curvature if numeric else None)
    results = run_models(paths, job, executor=executor, cache=cache, progress=progress)
    labels = model_labels(list(results.paths))
    rows = []
    echo: dict[str, Any] = {}
    for path, label, record in zip(results.paths, labels, results.records, strict=True):
        if record is None:
            failure = results.failure_of(path)
            assert failure is not None
            rows.append(failed_row(label, _failure_text(failure)))
            continue
        rows.append(replace(decode_row(record["row"]), model=label))
        if record.get("options") is not None:
            echo = dict(record["options"])
    if job.curvature is not None and echo:
        echo["curvature"] = job.curvature.summary()
    return make_table(rows, numeric=numeric, numeric_options=echo), results


def audit_models(paths: Sequence[str | os.PathLike[str]], config: AuditConfig | None = None,
                 baseline: str | os.PathLike[str] | None = None, numeric: bool = False, *,
                 fail_on: str | None = None, blocks: bool = True, backward_options: Any = None,
                 executor: Executor | None = None, cache: ResultCache | None = None,
                 progress: Progress | None = None) -> tuple[AuditResult, Results]:
    """:func:`graphpath.audit.run.audit` over records from the run; a failed model is audited
    from a report that holds only its name and ``error`` (every rule not evaluated) and gets a
    note that says why."""
    from graphpath.audit.config import AuditConfig
    from graphpath.audit.run import audit

    cfg = config or AuditConfig()
    job = Job("audit", numeric=numeric or cfg.numeric, blocks=blocks, backward_options=backward_options)
    results = run_models(paths, job, executor=executor, cache=cache, progress=progress)
    by_path = dict(zip(results.paths, results.records, strict=True))

    def analyzer(path: str | os.PathLike[str]) -> Mapping[str, Any]:
        record = by_path[os.fspath(path)]
        if record is not None:
            report: Mapping[str, Any] = record["report"]
            return report
        failure = results.failure_of(os.fspath(path))
        assert failure is not None
        return {"model": {"file_name": Path(path).name}, "error": _failure_text(failure)}

    result = audit(list(results.paths), cfg, baseline, job.numeric, fail_on=fail_on, blocks=blocks,
                   analyzer=analyzer, backward_options=backward_options)
    notes = tuple(f"{f.path}: not analysed: {_failure_text(f)}" for f in results.failures)
    return replace(result, notes=result.notes + notes), results
