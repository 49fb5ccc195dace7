"""The result cache: hits, misses, invalidation, damaged entries, concurrent writers, and the
same bytes whether a result was computed or read back."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from graphpath.cli.main import cli
from graphpath.numeric.options import BackwardOptions
from graphpath.registry.cache import ResultCache, cache_key, model_digest
from graphpath.registry.executors import LocalExecutor
from graphpath.registry.jobs import Job, decode_row, encode_row
from graphpath.registry.run import report_table, run_models
from tests.registry.conftest import MODELS

STATIC = Job("report")


def test_second_run_reads_everything_from_the_cache(tiny: Callable[..., Path], tmp_path: Path) -> None:
    paths = [tiny("a.onnx", seed=1), tiny("b.onnx", seed=2)]
    cache = ResultCache(tmp_path / "cache")
    cold = run_models(paths, STATIC, cache=cache)
    warm = run_models(paths, STATIC, cache=cache)
    assert (cold.cached, warm.cached) == (0, 2)
    assert cold.records == warm.records and not warm.failures
    assert cache.info().entries == 2


def test_a_changed_model_misses(tiny: Callable[..., Path], tmp_path: Path) -> None:
    path = tiny("a.onnx", seed=1)
    cache = ResultCache(tmp_path / "cache")
    before = cache_key(path, STATIC)
    run_models([path], STATIC, cache=cache)
    tiny("a.onnx", seed=2)  # same name, other weights
    assert cache_key(path, STATIC) != before
    assert run_models([path], STATIC, cache=cache).cached == 0


def test_the_digest_memo_never_hides_a_change(tiny: Callable[..., Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A settled file's digest is memoised by its identity; rewriting it, even to the same size
    with its mtime put back, changes its ctime, so the memo is not used."""
    import os
    import time

    import graphpath.registry.cache as cache_module

    monkeypatch.setattr(cache_module, "_SETTLED_NS", 100_000_000)  # 0.1 s instead of 2 s
    path = tiny("a.onnx", seed=1)
    old = path.stat().st_mtime_ns - 10**10
    os.utime(path, ns=(old, old))
    time.sleep(0.3)  # let the file's ctime settle (not a timing assertion)
    cache = ResultCache(tmp_path / "cache")
    first = cache.digest(path)
    assert first == model_digest(path) and len(list(cache.digests.glob("*/*.json"))) == 1
    assert cache.digest(path) == first
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same size, other bytes
    path.write_bytes(bytes(data))
    os.utime(path, ns=(old, old))
    assert cache.digest(path) == model_digest(path) != first


def test_a_copy_under_another_name_is_its_own_entry(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """Audit reports state the file name: a copy must not be served the original's report."""
    a = tiny("a.onnx")
    b = tmp_path / "b.onnx"
    b.write_bytes(a.read_bytes())
    cache = ResultCache(tmp_path / "cache")
    job = Job("audit")
    results = run_models([a, b], job, cache=cache)
    again = run_models([b], job, cache=cache)
    assert results.cached == 0 and again.cached == 1
    assert [r["report"]["model"]["file_name"] for r in results.records] == ["a.onnx", "b.onnx"]
    assert again.records[0]["report"]["model"]["file_name"] == "b.onnx"


def test_options_that_change_results_change_the_key(tiny: Callable[..., Path]) -> None:
    path = tiny()
    keys = {cache_key(path, job) for job in (
        Job("report"), Job("audit"), Job("audit", blocks=False),
        Job("report", numeric=True), Job("report", numeric=True, backward_options=BackwardOptions(seed=1)),
        Job("report", numeric=True, backward_options=BackwardOptions(condition="init")),
        Job("report", numeric=True, backward_options=BackwardOptions(seeds=3)),
        Job("report", numeric=True, backward_options=BackwardOptions(seed_offset=5)),
        Job("report", numeric=True, backward_options=BackwardOptions(condition="init", norm="none")),
    )}
    assert len(keys) == 9
    # the defaults spelled out are the defaults
    assert cache_key(path, Job("report", numeric=True)) == \
        cache_key(path, Job("report", numeric=True, backward_options=BackwardOptions()))
    # a custom head finder cannot be keyed: no caching
    assert cache_key(path, Job("report", numeric=True,
                               backward_options=BackwardOptions(head_finder=lambda m: []))) is None


def test_external_data_enters_the_key(tmp_path: Path) -> None:
    from tests.conftest import RESIDUAL, parse

    path = tmp_path / "ext.onnx"
    onnx.save_model(parse(RESIDUAL), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.bin", size_threshold=0)
    before = model_digest(path)
    data = bytearray((tmp_path / "ext.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "ext.bin").write_bytes(bytes(data))
    assert model_digest(path) != before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "other-key", "empty"])
def test_a_damaged_entry_is_recomputed_not_trusted(tiny: Callable[..., Path], tmp_path: Path, damage: str) -> None:
    path = tiny()
    cache = ResultCache(tmp_path / "cache")
    good = run_models([path], STATIC, cache=cache).records
    key = cache_key(path, STATIC)
    assert key is not None
    entry = cache.entries / key[:2] / f"{key}.json"
    raw = entry.read_text(encoding="utf-8")
    damaged = {"truncate": raw[: len(raw) // 2], "garbage": "\x00\x01 not json",
               "flip": raw.replace('\\"generation\\": \\"unknown\\"', '\\"generation\\": \\"v8\\"'),
               "other-key": raw.replace(key, "0" * 64), "empty": ""}[damage]
    assert damaged != raw
    entry.write_text(damaged, encoding="utf-8")
    again = run_models([path], STATIC, cache=cache)
    assert again.cached == 0 and again.records == good and not again.failures
    assert entry.read_text(encoding="utf-8") == raw  # rewritten whole


def test_a_record_of_another_layout_is_recomputed(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """A whole, checksummed entry under this key whose row this code cannot read (written by
    another checkout: a row without a field added since) is a miss, not an internal error."""
    path = tiny()
    cache = ResultCache(tmp_path / "cache")
    good = run_models([path], STATIC, cache=cache).records
    key = cache_key(path, STATIC)
    assert key is not None and good[0] is not None
    old = json.loads(json.dumps(good[0]))
    del old["row"]["curvature"]
    cache.put(key, json.dumps(old))
    assert cache.get(key) == old  # the entry itself is whole
    again = run_models([path], STATIC, cache=cache)
    assert again.cached == 0 and again.records == good and not again.failures


def test_other_code_is_another_key(tiny: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from graphpath.registry import cache as cache_module

    path = tiny()
    before = cache_key(path, STATIC)
    monkeypatch.setattr(cache_module, "code_digest", lambda: "0" * 64)
    assert cache_key(path, STATIC) != before


def _hammer(root: str, key: str, record: str, rounds: int) -> None:
    cache = ResultCache(root)
    for _ in range(rounds):
        cache.put(key, record)
        got = cache.get(key)
        assert got is None or got == json.loads(record)


def test_two_processes_writing_one_key(tmp_path: Path) -> None:
    record = json.dumps({"row": {"model": "m.onnx", "curve": [[1, 0.5]] * 2000}})
    key = "ab" * 32
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_hammer, args=(str(tmp_path), key, record, 100)) for _ in range(2)]
    for w in workers:
        w.start()
    reader = ResultCache(tmp_path)
    seen = 0
    while any(w.is_alive() for w in workers):
        got = reader.get(key)
        assert got is None or got == json.loads(record)  # never a torn entry
        seen += got is not None
    for w in workers:
        w.join()
        assert w.exitcode == 0
    assert reader.get(key) == json.loads(record)
    assert [p.name for p in (tmp_path / "v1" / "ab").iterdir()] == [f"{key}.json"]  # no temporary files left


def test_rows_round_trip_exactly(tiny: Callable[..., Path]) -> None:
    from graphpath.numeric.intervals import Interval
    from graphpath.stability.table import model_row

    row, _ = model_row(tiny())
    assert decode_row(json.loads(json.dumps(encode_row(row)))) == row
    import dataclasses

    measured = dataclasses.replace(row, ratio=0.1 + 0.2, curve=((1, 1.0), (2, 1e-300)),
                                   ratio_interval=Interval(0.3, 0.2, 0.4, 3, "seeds", True, values=(0.2, 0.3, 0.4)))
    assert decode_row(json.loads(json.dumps(encode_row(measured)))) == measured
    gains = dataclasses.replace(measured, intervals=(("max_block_gain", Interval(2.0, 1.5, 2.5, 3, "seeds", True,
                                                                                 values=(1.5, 2.0, 2.5))),))
    assert decode_row(json.loads(json.dumps(encode_row(gains)))).intervals == gains.intervals
    with pytest.raises(ValueError):
        decode_row({"model": "m.onnx"})


@pytest.mark.parametrize("fmt", ["json", "md", "csv"])
def test_report_bytes_are_the_same_cold_warm_and_uncached(tmp_path: Path, fmt: str) -> None:
    models = [str(MODELS / "yolov8n.onnx"), str(MODELS / "yolov2.onnx")]
    args = ["report", *models, "--format", fmt, "-q", "--cache-dir", str(tmp_path)]
    cold = CliRunner().invoke(cli, args)
    warm = CliRunner().invoke(cli, args)
    uncached = CliRunner().invoke(cli, [*args, "--no-cache", "-j", "2"])
    assert cold.exit_code == warm.exit_code == uncached.exit_code == 0, cold.output
    assert cold.stdout_bytes == warm.stdout_bytes == uncached.stdout_bytes


@pytest.mark.parametrize("fmt", ["json", "text", "sarif"])
def test_audit_bytes_are_the_same_cold_warm_and_uncached(tmp_path: Path, fmt: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(MODELS)
    args = ["audit", "yolov8n.onnx", "yolov2.onnx", "--format", fmt, "-q", "--cache-dir", str(tmp_path)]
    cold = CliRunner().invoke(cli, args)
    warm = CliRunner().invoke(cli, args)
    uncached = CliRunner().invoke(cli, [*args, "--no-cache"])
    assert cold.exit_code == warm.exit_code == uncached.exit_code, cold.output
    assert cold.stdout_bytes == warm.stdout_bytes == uncached.stdout_bytes


def test_cache_info_and_clear(tiny: Callable[..., Path], tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    run_models([tiny("a.onnx"), tiny("b.onnx", seed=3)], STATIC, cache=ResultCache(cache_dir))
    info = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(cache_dir), "--format", "json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["entries"] == 2
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--cache-dir", str(cache_dir)])
    assert cleared.exit_code == 0 and "removed 2 entries" in cleared.stderr
    assert ResultCache(cache_dir).info().entries == 0


def test_the_table_is_the_same_through_workers(tiny: Callable[..., Path]) -> None:
    paths = [tiny("a.onnx", seed=1), tiny("x/a.onnx", seed=2), tiny("b.onnx", seed=3)]
    one, _ = report_table(paths, executor=LocalExecutor(jobs=1))
    two, _ = report_table(paths, executor=LocalExecutor(jobs=2))
    assert one == two
    labels = [r.model for r in one.rows]  # equal file names told apart by their folders
    assert labels[0] == f"{paths[0].parent.name}/a.onnx" and labels[1:] == ["x/a.onnx", "b.onnx"]


def test_rows_keep_their_blocks_through_the_cache() -> None:
    """The HTML report draws a row's detected blocks (nested, with frozenset units): they survive
    the JSON record a worker sends and the cache stores."""
    from graphpath.stability.table import model_row

    row, _ = model_row(Path(__file__).resolve().parents[2] / "models" / "yolov8n.onnx")
    assert row.blocks and any(b.children for b in row.blocks)
    assert decode_row(json.loads(json.dumps(encode_row(row)))).blocks == row.blocks
