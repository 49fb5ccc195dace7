"""The ``ray[:ADDRESS]`` executor: each model a Ray task (the optional ``ray`` extra).

- ``ray`` starts a Ray cluster on this machine for the run (or uses the one this process
  already started); ``ray:auto`` joins the cluster at ``$RAY_ADDRESS`` (or the one found on this
  node); ``ray:ADDRESS`` joins ``ADDRESS`` (``host:6379``, or ``ray://host:10001`` through Ray
  Client).
- A task receives the model's bytes and its external-data files, not a path: a worker on another
  node needs no shared file system. It writes them to a temporary folder under the model's file
  name and runs the same worker entry as the local executor
  (:func:`graphpath.registry.jobs.run_one`), so the record is the same.
- ``num_gpus=1`` per task under ``--device cuda``; ``max_retries`` re-runs a task whose worker
  process or node was lost; a task past ``--timeout-per-model`` is cancelled (force) and its row
  says so. At most as many tasks are in flight as the cluster has CPUs (GPUs under cuda), so a
  task's time limit counts its run, not its wait in the queue, and the driver holds only the
  bytes of the models in flight.
- A worker running another graphpath version is refused: its results would enter the cache under
  this version's key.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from graphpath.errors import GraphpathError, MissingExtraError
from graphpath.registry.executors import Outcome, Task
from graphpath.registry.jobs import Job

#: Re-runs of a task whose worker process (or node) died.
MAX_RETRIES = 2


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "ray", "--executor ray") from exc
    return ray


def _files_of(path: str) -> list[tuple[str, bytes]]:
    """The model's bytes and its external-data files, by path relative to the model's folder."""
    from graphpath.onnx_io import external_data_files

    p = Path(path)
    files = [(p.name, p.read_bytes())]
    try:
        externals = external_data_files(p)
    except GraphpathError:
        externals = ()  # the worker reports the loader's error
    base = p.resolve().parent
    files += [(os.path.relpath(f, base), f.read_bytes()) for f in externals]
    return files


def ray_task(files: list[tuple[str, bytes]], job: Job, shown: str) -> tuple[str, str, str]:
    """A Ray task: write the files to a temporary folder, run the worker entry there;
    ``(status, payload, graphpath version)``. A failure's message names the model as ``shown``
    (the driver's path), as a local run's does, not by its temporary copy."""
    import tempfile

    from graphpath import __version__
    from graphpath.registry.jobs import run_one

    with tempfile.TemporaryDirectory(prefix="graphpath-") as tmp:
        for rel, data in files:
            target = Path(tmp, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        copy = str(Path(tmp, files[0][0]))
        status, payload = run_one(copy, job)
    if status != "ok":
        payload = payload.replace(copy, shown)
    return status, payload, __version__


class RayExecutor:
    """Models as Ray tasks (see the module docstring).

    Args:
        address: ``None`` for a cluster of this machine, ``auto`` or a cluster address.
        jobs: the CPUs of the cluster started for a bare ``ray`` (1: Ray's default, every core).
        timeout: seconds one task may run (``None``: no limit).
        memory_limit: bytes of memory each task requests from Ray's scheduler (``None``: none).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, jobs: int = 1, timeout: float | None = None,
                 memory_limit: int | None = None) -> None:
        self.address = address
        self.jobs = jobs
        self.timeout = timeout
        self.memory_limit = memory_limit

    def _connect(self, ray: Any) -> bool:
        """Start or join the cluster; whether this call started the connection."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if self.address is None:
            if self.jobs > 1:
                kwargs["num_cpus"] = self.jobs
            ray.init(**kwargs)
        else:
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise GraphpathError(f"--executor ray:{self.address}: cannot join the cluster: "
                                     f"{' '.join(str(exc).split())[:300]}") from None
        return True

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        if not tasks:
            return
        from graphpath import __version__

        ray = _import_ray()
        started = self._connect(ray)
        try:
            cuda = any(t.job.device == "cuda" for t in tasks)
            options: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1 if cuda else 0, "max_retries": MAX_RETRIES}
            if self.memory_limit is not None:
                options["memory"] = self.memory_limit
            remote = ray.remote(ray_task).options(**options)
            resources = ray.cluster_resources()
            window = max(1, int(resources.get("GPU" if cuda else "CPU", 1)))
            pending = deque(tasks)
            flight: dict[Any, tuple[Task, float]] = {}
            while pending or flight:
                while pending and len(flight) < window:
                    task = pending.popleft()
                    try:
                        files = _files_of(task.path)
                    except OSError as exc:
                        yield Outcome(task.index, "error", f"{task.path}: cannot read: {exc.strerror or exc}")
                        continue
                    flight[remote.remote(files, task.job, task.path)] = (task, time.monotonic())
                if not flight:
                    continue
                wait_for = None
                if self.timeout is not None:
                    first = min(t0 for _, t0 in flight.values())
                    wait_for = max(0.0, first + self.timeout - time.monotonic())
                ready, _ = ray.wait(list(flight), num_returns=1, timeout=wait_for)
                for ref in ready:
                    task, _ = flight.pop(ref)
                    yield self._outcome(ray, ref, task, __version__)
                if self.timeout is not None:
                    now = time.monotonic()
                    for ref, (task, t0) in list(flight.items()):
                        if now - t0 >= self.timeout:
                            ray.cancel(ref, force=True)
                            del flight[ref]
                            yield Outcome(task.index, "error",
                                          f"timed out after {self.timeout:g} s (--timeout-per-model)")
        finally:
            if started:
                ray.shutdown()

    def _outcome(self, ray: Any, ref: Any, task: Task, version: str) -> Outcome:
        try:
            status, payload, remote_version = ray.get(ref)
        except ray.exceptions.WorkerCrashedError:
            return Outcome(task.index, "error", f"its Ray worker died ({MAX_RETRIES + 1} tries)")
        except ray.exceptions.OutOfMemoryError:
            return Outcome(task.index, "error", "killed by Ray's memory monitor (out of memory)")
        except ray.exceptions.RayError as exc:
            return Outcome(task.index, "error", f"Ray task failed: {' '.join(str(exc).split())[:300]}")
        if remote_version != version:
            return Outcome(task.index, "error",
                           f"the Ray worker runs graphpath {remote_version}, this is {version}; "
                           "install the same version on the cluster")
        return Outcome(task.index, status, payload)
