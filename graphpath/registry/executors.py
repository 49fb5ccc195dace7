"""Executors: where the models of a run are computed, behind one small Protocol.

``local`` (:class:`LocalExecutor`, the default) keeps ``jobs`` worker processes. Each model runs
in one of them under a memory limit (``RLIMIT_AS``, set in the worker) and a time limit; a model
that raises, exhausts its memory, hangs past its time or kills its worker (a segfault in a native
library) gets an :class:`Outcome` that says why, the worker is replaced, and the other models
go on. ``ray[:ADDRESS]`` is :class:`graphpath.registry.ray_executor.RayExecutor`.

Outcomes come back in completion order; the caller puts them back in input order.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from graphpath.errors import GraphpathError
from graphpath.registry.jobs import Job, Status, run_one


@dataclass(frozen=True)
class Task:
    """One model to compute: its place in the run, its path, the job."""

    index: int
    path: str
    job: Job


@dataclass(frozen=True)
class Outcome:
    """What came back for one task: ``payload`` is the record's JSON when ``status`` is ``ok``,
    else why there is none."""

    index: int
    status: Status
    payload: str


class Executor(Protocol):
    """Runs tasks; yields one outcome per task, in completion order."""

    name: str

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]: ...


def parse_size(text: str) -> int | None:
    """Bytes from ``512M``, ``8G``, ``8GiB``, ``1.5T`` or a plain number; ``None`` for
    ``none``/``0`` (no limit).

    >>> parse_size("8G"), parse_size("512m"), parse_size("none"), parse_size("1024")
    (8589934592, 536870912, None, 1024)
    """
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t in ("none", "0", ""):
        return None
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in "kmgt" else t
    try:
        value = float(number)
    except ValueError:
        raise GraphpathError(f"--memory-per-model: {text!r} is not a size (e.g. 8G, 512M, none)") from None
    if value <= 0:
        return None
    return int(value * scale)


def default_memory_limit() -> int | None:
    """The machine's physical memory: one model may not take more than the machine has (a
    runaway allocation then fails in its worker instead of swapping the host)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def death_reason(exitcode: int | None, memory_limit: int | None) -> str:
    """Why a worker that died without answering did.

    >>> death_reason(-11, None)
    'its worker died (SIGSEGV, a crash in native code)'
    """
    if exitcode is None:
        return "its worker vanished"
    if exitcode < 0:
        name = _signal_name(-exitcode)
        why = {"SIGSEGV": "a crash in native code", "SIGBUS": "a crash in native code",
               "SIGABRT": "aborted by native code",
               "SIGKILL": "killed, likely out of memory"}.get(name)
        return f"its worker died ({name}{', ' + why if why else ''})"
    return f"its worker exited with status {exitcode}"


def _worker_main(conn: Connection, memory_limit: int | None) -> None:
    """A worker process: apply the memory limit, then compute tasks until told to stop."""
    if memory_limit is not None:
        import resource

        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        except (ValueError, OSError):
            pass  # a lower hard limit is already in place
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    import faulthandler
    import sys

    faulthandler.disable()  # a native crash is reported as the model's row, not as a stack dump
    if "torch" in sys.modules:
        # forked from a process that had torch loaded (library use: the CLI never has): OpenMP's
        # thread pool does not survive fork(), and a parallel region would wait forever on
        # threads that are not there. One thread per worker runs without the pool.
        sys.modules["torch"].set_num_threads(1)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, path, job = msg
        status, payload = run_one(path, job)
        try:
            conn.send((index, status, payload))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx: Any, memory_limit: int | None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, memory_limit), daemon=True,
                                   name="graphpath-worker")
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.deadline: float | None = None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(2)
        self.kill()


def _context() -> Any:
    # fork: a worker starts in milliseconds with graphpath already imported; elsewhere spawn
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class LocalExecutor:
    """``jobs`` worker processes on this machine.

    Args:
        jobs: worker processes.
        timeout: seconds one model may take (``None``: no limit); past it the worker is killed.
        memory_limit: bytes of address space per worker (``None``: no limit). Not applied under
            ``--device cuda``: the CUDA runtime reserves far more address space than it uses.
    """

    name = "local"

    def __init__(self, jobs: int = 1, timeout: float | None = None, memory_limit: int | None = None) -> None:
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.memory_limit = memory_limit

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        if not tasks:
            return
        # import the analysis before forking, so that every worker starts with it loaded
        import graphpath.analysis  # noqa: F401

        ctx = _context()
        pending = deque(tasks)
        idle: list[_Worker] = []
        busy: list[_Worker] = []
        limit = None if any(t.job.device == "cuda" for t in tasks) else self.memory_limit
        try:
            while pending or busy:
                while pending and len(busy) < self.jobs:
                    worker = idle.pop() if idle else _Worker(ctx, limit)
                    task = pending.popleft()
                    try:
                        worker.conn.send((task.index, task.path, task.job))
                    except (BrokenPipeError, OSError):
                        worker.kill()
                        pending.appendleft(task)
                        continue
                    worker.task = task
                    worker.deadline = None if self.timeout is None else time.monotonic() + self.timeout
                    busy.append(worker)
                deadlines = [w.deadline for w in busy if w.deadline is not None]
                wait_for = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], wait_for))
                for worker in list(busy):
                    current = worker.task
                    assert current is not None
                    outcome: Outcome | None = None
                    if worker.conn in ready or worker.process.sentinel in ready:
                        try:
                            if worker.conn.poll():
                                index, status, payload = worker.conn.recv()
                                outcome = Outcome(index, status, payload)
                        except (EOFError, OSError):
                            outcome = None
                        if outcome is None and not worker.process.is_alive():
                            worker.process.join(1)
                            outcome = Outcome(current.index, "error",
                                              death_reason(worker.process.exitcode, limit))
                            worker.kill()
                            busy.remove(worker)
                            yield outcome
                            continue
                        if outcome is not None:
                            busy.remove(worker)
                            worker.task = None
                            idle.append(worker)
                            yield outcome
                            continue
                    if worker.deadline is not None and time.monotonic() >= worker.deadline:
                        worker.kill()
                        busy.remove(worker)
                        yield Outcome(current.index, "error", f"timed out after {self.timeout:g} s (--timeout-per-model)")
        finally:
            for worker in busy:
                worker.kill()
            for worker in idle:
                worker.stop()
