"""``graphpath audit models/*.onnx --config graphpath.example.toml`` passes (exit 0), and the
rule listing works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit.conftest import NO_BLOCKS

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "models").glob("*.onnx"))


@pytest.mark.skipif(not MODELS, reason="models/ not built")
def test_example_config_passes_on_the_reference_models(run_cli):
    result = run_cli("audit", *NO_BLOCKS, "--config", str(ROOT / "graphpath.example.toml"),
                     "--format", "json", *map(str, MODELS))
    assert result.exit_code == 0, result.stdout[-2000:] + result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["failing"] == 0 and len(data["models"]) == len(MODELS)
    severities = {f["severity"] for m in data["models"] for f in m["findings"]}
    assert severities <= {"note"}
    if not NO_BLOCKS:  # every expectation was checked, not skipped
        for m in data["models"]:
            status = {r["rule_id"]: r["status"] for r in m["rules"]}
            assert status["GP101"] == status["GP102"] == "pass", m["model"]


def test_rules_command(run_cli):
    result = run_cli("rules")
    assert result.exit_code == 0 and result.stdout.splitlines()[0].startswith("GP101")
    one = run_cli("rules", "shortest-path-too-long")
    assert one.exit_code == 0 and "max_shortest_path (default 32)" in one.stdout
    data = json.loads(run_cli("rules", "--format", "json").stdout)
    assert [r["id"] for r in data][:2] == ["GP101", "GP102"]
    table = run_cli("rules", "--format", "md").stdout
    assert table.startswith("| id |") and run_cli("rules", "--format", "markdown").stdout == table
    bad = run_cli("rules", "GP999")
    assert bad.exit_code == 2 and bad.stderr.strip().count("\n") == 0


def test_docs_list_every_rule():
    from graphpath.audit.rules.catalog import RULES

    doc = (ROOT / "docs" / "ci.md").read_text()
    for rule in RULES.values():
        assert f"| {rule.id} | `{rule.name}` | {rule.severity} |" in doc, rule.id


def test_pre_commit_hook_runs_audit_on_onnx_files():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "- id: graphpath-audit\n" in text and "entry: graphpath audit\n" in text
    assert "files: \\.onnx$" in text


@pytest.mark.skipif(not (ROOT / "models" / "yolov9c-train.onnx").exists(), reason="models/ not built")
def test_training_export_audited_as_deploy_fails_with_valid_sarif(run_cli, tmp_path: Path):
    import jsonschema

    (tmp_path / "graphpath.toml").write_text('[[models]]\nmatch = "*.onnx"\nform = "deploy"\n')
    model = ROOT / "models" / "yolov9c-train.onnx"
    result = run_cli("audit", *NO_BLOCKS, "--format", "sarif", str(model))
    assert result.exit_code == 1  # the auxiliary output alone is a GP103 error
    log = json.loads(result.stdout)
    schema = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    assert "GP103" in {r["ruleId"] for r in log["runs"][0]["results"]}
