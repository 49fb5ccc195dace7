"""The Ray executor on a local Ray cluster (2 CPUs) gives the same bytes as the local executor
on the reference models. Needs the ray extra (installed in CI through the dev extra)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graphpath.formats import get_renderer
from graphpath.registry.executors import LocalExecutor
from graphpath.registry.jobs import FAULT_ENV
from graphpath.registry.ray_executor import RayExecutor
from graphpath.registry.run import report_table
from tests.registry.conftest import MODELS

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # the fault hook must be in the environment the cluster's workers start with
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAULT_ENV, "segfault:crash.onnx")
        mp.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield ray
        finally:
            ray.shutdown()


def test_ray_and_local_render_the_same_bytes(cluster: Any) -> None:
    models = sorted(MODELS.glob("*.onnx"))
    on_ray, ray_results = report_table(models, executor=RayExecutor(None, timeout=300))
    local, _ = report_table(models, executor=LocalExecutor(jobs=2))
    assert not ray_results.failures
    for fmt in ("json", "md", "csv"):
        render = get_renderer("table", fmt)
        assert render(on_ray) == render(local), fmt


def test_a_model_that_kills_its_ray_worker_is_a_row(cluster: Any, tmp_path: Path) -> None:
    crash = tmp_path / "crash.onnx"
    crash.write_bytes((MODELS / "yolov2.onnx").read_bytes())
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    paths = [crash, MODELS / "yolov2.onnx", broken]
    table, results = report_table(paths, executor=RayExecutor(None, timeout=300))
    assert [Path(f.path).name for f in results.failures] == ["crash.onnx", "broken.onnx"]
    assert "worker died" in results.failures[0].why
    rows = {r.model: r for r in table.rows}
    assert rows["crash.onnx"].verdict == "n/a" and rows["yolov2.onnx"].generation == "v2"
    # a bad model's row reads as in a local run (not naming the task's temporary copy)
    local, _ = report_table([broken], executor=LocalExecutor())
    assert rows["broken.onnx"].reason == local.rows[0].reason
    assert rows["broken.onnx"].reason.startswith("not analysed: not a valid ONNX protobuf")
