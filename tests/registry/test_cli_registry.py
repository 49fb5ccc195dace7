"""The registry options on the command line: usage errors, the Ray install hint, numeric rows
through the cache."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphpath.cli.main import cli


@pytest.mark.parametrize("args, message", [
    (["--executor", "dask"], "unknown --executor 'dask'"),
    (["--memory-per-model", "lots"], "--memory-per-model: 'lots' is not a size"),
])
def test_bad_registry_options_exit_2_with_one_line(tiny: Callable[..., Path], args: list[str], message: str) -> None:
    for command in ("report", "audit"):
        res = CliRunner().invoke(cli, [command, str(tiny()), *args, "-q", "--no-cache"])
        assert res.exit_code == 2, res.output
        assert res.stderr.count("\n") == 1 and message in res.stderr


def test_ray_without_the_extra_gives_the_install_hint(tiny: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "t.csv"
    res = CliRunner().invoke(cli, ["report", str(tiny()), "--executor", "ray", "--no-cache", "-o", str(out)])
    assert res.exit_code == 2
    assert "pip install 'graphpath[ray]'" in res.stderr and res.stderr.count("\n") == 1
    assert not out.exists()


def test_a_warm_run_over_a_cached_registry_needs_no_executor(tiny: Callable[..., Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached models are read before anything starts: no Ray import even with --executor ray."""
    model = str(tiny())
    args = ["report", model, "--format", "csv", "-q", "--cache-dir", str(tmp_path / "c")]
    cold = CliRunner().invoke(cli, args)
    monkeypatch.setitem(sys.modules, "ray", None)
    warm = CliRunner().invoke(cli, [*args, "--executor", "ray"])
    assert cold.exit_code == warm.exit_code == 0, warm.output
    assert cold.stdout_bytes == warm.stdout_bytes


@pytest.mark.torch
def test_numeric_rows_are_the_same_bytes_from_the_cache(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """Rows measured over seeds (with their intervals) render the same bytes computed, read back
    from the cache, and computed without it."""
    pytest.importorskip("torch")
    from graphpath.formats import get_renderer
    from graphpath.numeric.options import BackwardOptions
    from graphpath.registry.cache import ResultCache
    from graphpath.registry.run import report_table

    models = [tiny("a.onnx", seed=1), tiny("b.onnx", seed=2)]
    options = BackwardOptions(condition="init", seeds=2, device="cpu")
    cache = ResultCache(tmp_path / "c")
    cold, cold_run = report_table(models, numeric=True, backward_options=options, cache=cache)
    warm, warm_run = report_table(models, numeric=True, backward_options=options, cache=cache)
    assert (cold_run.cached, warm_run.cached) == (0, 2) and not cold_run.failures
    assert all(r.ratio_interval is not None for r in cold.rows)
    for fmt in ("json", "md", "csv"):
        render = get_renderer("table", fmt)
        assert render(cold) == render(warm), fmt
    assert warm == cold
