"""The baseline flow: only new findings fail; the summary says what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphpath.analysis import AnalyzeOptions, analyze
from graphpath.audit.config import parse_config
from graphpath.audit.run import audit, compare_reports, load_baseline
from graphpath.errors import GraphpathError
from graphpath.formats.audit_json import render as render_json
from graphpath.formats.json_format import render as render_report
from tests.audit.conftest import BLOCKS_READY, NO_BLOCKS, residual_chain


def _analyze_json(path: Path) -> str:
    return render_report(analyze(path, AnalyzeOptions(blocks=BLOCKS_READY)))


def test_residual_chain_paths(save_model):
    for shortcuts, log2, shortest in ((True, 3.0, 1), (False, 0.0, 7)):
        path = save_model(residual_chain(3, shortcuts=shortcuts), f"m{shortcuts}.onnx")
        rep = analyze(path, AnalyzeOptions(blocks=False)).to_dict()["paths"]
        assert rep["total"]["log2"] == log2 and rep["shortest"]["length"] == shortest


def test_same_model_has_no_new_findings(run_cli, save_model, tmp_path: Path):
    model = save_model(residual_chain(3), "models/net.onnx")
    (tmp_path / "graphpath.toml").write_text("[thresholds]\nmax_shortest_path = 0\n")  # a finding on purpose
    (tmp_path / "base.json").write_text(_analyze_json(model))
    first = run_cli("audit", *NO_BLOCKS, "models/net.onnx")
    assert first.exit_code == 0  # GP201 is a warning; --fail-on error
    strict = run_cli("audit", *NO_BLOCKS, "--fail-on", "warning", "models/net.onnx")
    assert strict.exit_code == 1 and "GP201" in strict.stdout
    again = run_cli("audit", *NO_BLOCKS, "--fail-on", "warning", "--baseline", "base.json", "models/net.onnx")
    assert again.exit_code == 0, again.stdout
    assert "[unchanged]" in again.stdout and "FAIL" not in again.stdout
    assert "no structural or path changes (same file)" in again.stdout


def test_degraded_model_fails_with_new_findings(run_cli, save_model, tmp_path: Path):
    good = save_model(residual_chain(3), "before/net.onnx")
    (tmp_path / "base.json").write_text(_analyze_json(good))
    save_model(residual_chain(3, shortcuts=False), "models/net.onnx")
    result = run_cli("audit", *NO_BLOCKS, "--baseline", "base.json", "--format", "json", "models/net.onnx")
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    [m] = data["models"]
    new = {f["rule_id"] for f in m["findings"] if f["baseline_state"] == "new"}
    assert {"GP202", "GP205"} <= new
    failing = [f for f in m["findings"] if f["failing"]]
    assert [f["rule_id"] for f in failing] == ["GP202"]
    assert m["changes"]["paths"]["paths_log2"] == {"before": 3.0, "after": 0.0}
    assert m["changes"]["paths"]["shortest"] == {"before": 1, "after": 7}
    assert data["summary"]["new"] >= 2 and data["summary"]["failing"] == 1
    assert "1 at or above error" in result.stderr
    assert run_cli("audit", *NO_BLOCKS, "--baseline", "base.json", "--exit-zero", "models/net.onnx").exit_code == 0
    # The audit JSON is itself a baseline: auditing the same model against it adds nothing new.
    (tmp_path / "audit.json").write_text(result.stdout)
    again = run_cli("audit", *NO_BLOCKS, "--baseline", "audit.json", "--format", "json", "models/net.onnx")
    assert again.exit_code == 0
    assert all(f["baseline_state"] == "unchanged" for f in json.loads(again.stdout)["models"][0]["findings"])


def test_fixed_findings_are_reported(save_model, tmp_path: Path):
    bad = save_model(residual_chain(2, shortcuts=False), "old/net.onnx")
    good = save_model(residual_chain(2), "new/net.onnx")
    (tmp_path / "base.json").write_text(_analyze_json(bad))
    cfg = parse_config({"thresholds": {"max_shortest_path": 3}}, "t.toml")
    result = audit([good], cfg, tmp_path / "base.json", blocks=BLOCKS_READY)
    [m] = result.models
    assert [f.rule_id for f in m.fixed] == ["GP201"] and result.exit_code() == 0
    assert result.counts()["fixed"] == 1


def test_baseline_pairs_by_name_among_many(save_model, tmp_path: Path):
    a = save_model(residual_chain(1), "a.onnx")
    b = save_model(residual_chain(2), "b.onnx")
    first = audit([a, b], blocks=False)
    (tmp_path / "base.json").write_text(render_json(first))
    base = load_baseline(tmp_path / "base.json")
    assert base.count == 2
    second = audit([b, a], baseline=base, blocks=False)
    assert all(m.changes is not None and not m.changes["changed"] for m in second.models)


def test_bad_baselines(tmp_path: Path):
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "y.json").write_text('{"hello": 1}')
    for name, needle in (("x.json", "not JSON"), ("y.json", "not a graphpath"), ("z.json", "not found")):
        with pytest.raises(GraphpathError, match=needle):
            load_baseline(tmp_path / name)


def test_compare_reports_generation_and_verdict():
    d = compare_reports({"fingerprint": {"generation": "v8"}, "numeric": {"verdict": "stable"}},
                        {"fingerprint": {"generation": "v5"}, "numeric": {"verdict": "vanishing"}})
    assert d["generation"] == {"before": "v8", "after": "v5"} and d["verdict"]["after"] == "vanishing"
    assert d["changed"]


def test_numeric_flag_without_torch(run_cli, save_model):
    from graphpath.audit.run import numeric_available

    if numeric_available():
        pytest.skip("torch is installed")
    save_model(residual_chain(1), "m.onnx")
    result = run_cli("audit", *NO_BLOCKS, "--numeric", "m.onnx")
    assert result.exit_code == 2 and "pip install 'graphpath[torch]'" in result.stderr


@pytest.mark.torch
def test_numeric_rules_end_to_end(run_cli, save_model):
    pytest.importorskip("torch")
    save_model(residual_chain(2), "m.onnx")
    result = run_cli("audit", *NO_BLOCKS, "--numeric", "--format", "json", "m.onnx")
    assert result.exit_code in (0, 1), result.stderr
    [m] = json.loads(result.stdout)["models"]
    status = {r["rule_id"]: r["status"] for r in m["rules"]}
    assert "numeric" in m["report"]
    assert status["GP301"] in ("pass", "fail") and status["GP304"] == "pass"
    assert status["GP303"] in ("pass", "fail")
