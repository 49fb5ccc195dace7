"""Isolation: a model that crashes, hangs, exhausts memory or trips a bug in its worker gets a
row that says why; the other models finish; the exit code says a model failed.

The faults come from the worker-side test hook ``GRAPHPATH_TEST_WORKER_FAULT``
(:func:`graphpath.registry.jobs.run_one`), read only inside the worker.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphpath.cli.main import cli
from graphpath.registry.executors import LocalExecutor
from graphpath.registry.jobs import FAULT_ENV, Job
from graphpath.registry.run import run_models


def _rows(text: str) -> dict[str, dict[str, str]]:
    return {r["model"]: r for r in csv.DictReader(io.StringIO(text))}


def test_segfault_and_hang_get_rows_while_the_others_finish(tiny: Callable[..., Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(tiny(f"{name}.onnx", seed=i)) for i, name in enumerate(["ok1", "crash", "ok2", "hang", "ok3"])]
    monkeypatch.setenv(FAULT_ENV, "segfault:crash.onnx,hang:hang.onnx")
    res = CliRunner().invoke(cli, ["report", *paths, "--format", "csv", "-q", "--no-cache", "-j", "2",
                                   "--timeout-per-model", "4"])
    assert res.exit_code == 2, res.output
    rows = _rows(res.stdout)
    assert list(rows) == ["ok1.onnx", "crash.onnx", "ok2.onnx", "hang.onnx", "ok3.onnx"]  # input order kept
    assert "SIGSEGV" in rows["crash.onnx"]["reason"] and rows["crash.onnx"]["verdict"] == "n/a"
    assert "timed out after 4 s" in rows["hang.onnx"]["reason"]
    for ok in ("ok1.onnx", "ok2.onnx", "ok3.onnx"):
        assert rows[ok]["units"] and not rows[ok]["reason"].startswith("not analysed")
    assert res.stderr.count("graphpath: error:") == 2 and "Traceback" not in res.stderr


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status")


def test_a_model_past_its_memory_limit_fails_alone(tiny: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("resource")
    paths = [str(tiny("hog.onnx")), str(tiny("fine.onnx", seed=1))]
    monkeypatch.setenv(FAULT_ENV, "oom:hog.onnx")
    # room for the analysis above what the (forked) worker already maps, far below the machine's memory
    limit = _address_space() + (1 << 30)
    results = run_models(paths, Job("report"), executor=LocalExecutor(jobs=1, timeout=120, memory_limit=limit))
    assert [f.path for f in results.failures] == [paths[0]]
    assert "memory" in results.failures[0].why
    assert results.records[1] is not None and results.exit_code == 2


def test_a_bug_in_graphpath_is_a_row_and_exit_3(tiny: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(tiny("bug.onnx")), str(tiny("fine.onnx", seed=1))]
    monkeypatch.setenv(FAULT_ENV, "bug:bug.onnx")
    res = CliRunner().invoke(cli, ["report", *paths, "--format", "csv", "-q", "--no-cache"])
    assert res.exit_code == 3
    rows = _rows(res.stdout)
    assert "internal error: RuntimeError: test hook" in rows["bug.onnx"]["reason"]
    assert rows["fine.onnx"]["units"]


def test_audit_reports_a_crashed_model_and_audits_the_rest(tiny: Callable[..., Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    paths = [str(tiny("crash.onnx")), str(tiny("fine.onnx", seed=1))]
    monkeypatch.setenv(FAULT_ENV, "segfault:crash.onnx")
    res = CliRunner().invoke(cli, ["audit", *paths, "--format", "json", "--no-cache"])
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)
    by_name = {Path(m["model"]).name: m for m in doc["models"]}
    assert "SIGSEGV" in by_name["crash.onnx"]["report"]["error"]
    assert all(r["status"] in ("not_evaluated", "pass") for r in by_name["crash.onnx"]["rules"])
    assert "layers" in by_name["fine.onnx"]["report"]
    assert "crash.onnx: not analysed" in res.stderr


@pytest.mark.torch
def test_workers_forked_after_torch_ran_do_not_hang(tiny: Callable[..., Path]) -> None:
    """Library use: this process ran torch (OpenMP's pool started) before the run forks its
    workers; their numeric pass must still finish (the time limit turns a hang into a failure)."""
    torch = pytest.importorskip("torch")
    from graphpath.numeric.options import BackwardOptions
    from graphpath.registry.run import report_table

    torch.nn.functional.conv2d(torch.ones(1, 8, 32, 32), torch.ones(8, 8, 3, 3))
    table, results = report_table([tiny()], numeric=True, backward_options=BackwardOptions(device="cpu"),
                                  executor=LocalExecutor(timeout=300))
    assert not results.failures and table.rows[0].ratio is not None
