"""``graphpath report``: progress on stderr, --jobs independence, exit codes, atomic output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from graphpath.model.loaded import LoadedModel
from graphpath.numeric.results import NumericReport
from graphpath.report import Report
from tests.report.conftest import MODELS

TWO = [str(MODELS / "yolov8n.onnx"), str(MODELS / "yolov3.onnx")]
THREE = [*TWO, str(MODELS / "yolov1.onnx")]


def test_progress_on_stderr_for_multi_model_runs(report_cli: click.Group) -> None:
    res = CliRunner().invoke(report_cli, ["report", *TWO, "--format", "md"])
    assert res.exit_code == 0, res.output
    assert "yolov8n.onnx" in res.stderr and "yolov3.onnx" in res.stderr
    assert "[2/2]" in res.stderr
    assert "graphpath report:" not in res.stdout
    quiet = CliRunner().invoke(report_cli, ["report", *TWO, "--format", "md", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout == res.stdout


def test_rich_progress_bar_on_a_terminal(report_cli: click.Group, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphpath.cli.progress as cr

    monkeypatch.setattr(cr, "_stderr_is_tty", lambda: True)
    res = CliRunner().invoke(report_cli, ["report", *TWO, "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert "2/2" in res.stderr and "static" in res.stderr


def test_single_model_run_shows_no_progress(report_cli: click.Group) -> None:
    res = CliRunner().invoke(report_cli, ["report", TWO[0], "--format", "csv"])
    assert res.exit_code == 0 and res.stderr == ""


@pytest.mark.parametrize("fmt", ["json", "md"])
def test_jobs_2_is_byte_identical_to_jobs_1(report_cli: click.Group, fmt: str) -> None:
    one = CliRunner().invoke(report_cli, ["report", *THREE, "--format", fmt, "--jobs", "1", "-q"])
    two = CliRunner().invoke(report_cli, ["report", *THREE, "--format", fmt, "--jobs", "2", "-q"])
    assert one.exit_code == two.exit_code == 0, (one.output, two.output)
    assert one.stdout_bytes == two.stdout_bytes


def test_missing_input_exits_2_with_one_line_and_no_file(report_cli: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    for args in (["report", TWO[0], str(tmp_path / "missing.onnx")], ["report", str(tmp_path / "*.onnx")],
                 ["report", TWO[0], "--exclude", "*.onnx"]):
        res = CliRunner().invoke(report_cli, [*args, "--format", "md", "-o", str(out), "-q"])
        assert res.exit_code == 2, res.output
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("graphpath: error:")
        assert "Traceback" not in res.output
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []


def test_a_bad_model_is_a_row_saying_why_and_exit_2(report_cli: click.Group, tmp_path: Path) -> None:
    """docs/registry.md "Isolation": the other models finish, the table is written whole."""
    out = tmp_path / "table.csv"
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    for jobs in ("1", "2"):
        res = CliRunner().invoke(report_cli, ["report", TWO[0], str(bad), "--jobs", jobs, "-o", str(out), "-q"])
        assert res.exit_code == 2, res.output
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("graphpath: error: ")
        assert "broken.onnx: not analysed: not a valid ONNX protobuf" in res.stderr
        assert "Traceback" not in res.output
        rows = out.read_text(encoding="utf-8").splitlines()
        assert rows[1].startswith("yolov8n.onnx,v8,")
        assert rows[2].startswith("broken.onnx,unknown,") and "not analysed: not a valid ONNX protobuf" in rows[2]


def test_usage_errors_exit_2(report_cli: click.Group) -> None:
    assert CliRunner().invoke(report_cli, ["report", TWO[0], "--format", "pdf"]).exit_code == 2
    assert CliRunner().invoke(report_cli, ["report"]).exit_code == 2
    assert CliRunner().invoke(report_cli, ["report", TWO[0], "--jobs", "0"]).exit_code == 2


def test_output_file_is_written(report_cli: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "t.html"
    res = CliRunner().invoke(report_cli, ["report", TWO[0], "--format", "html", "-o", str(out)])
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # Without --format, the suffix decides (`graphpath report models/*.onnx -o table.html`).
    for name, start in (("table.html", "<!DOCTYPE html>"), ("table.json", "{"), ("table.md", "")):
        res = CliRunner().invoke(report_cli, ["report", TWO[0], "-o", str(tmp_path / name)])
        assert res.exit_code == 0
        assert (tmp_path / name).read_text(encoding="utf-8").startswith(start)


def test_numeric_failure_on_one_model_is_a_row_not_a_crash(report_cli: click.Group,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import graphpath.stability.table as table
    from graphpath.errors import GraphpathError

    def refuse(model: LoadedModel, options: object, progress: object) -> NumericReport:
        if "yolov3" in model.name:
            raise GraphpathError("yolov3.onnx: the torch evaluator disagrees with onnxruntime")
        from tests.report.conftest import fake_numeric

        return fake_numeric("stable", 0.5)

    monkeypatch.setattr(table, "_numeric_report", refuse)
    res = CliRunner().invoke(report_cli, ["report", *TWO, "--numeric", "--format", "json", "-q"])
    assert res.exit_code == 0, res.output
    rows = {r["model"]: r for r in json.loads(res.stdout)["rows"]}
    assert rows["yolov3.onnx"]["verdict"] == "n/a"
    assert "disagrees with onnxruntime" in rows["yolov3.onnx"]["numeric_error"]
    assert rows["yolov8n.onnx"]["verdict"] == "stable" and rows["yolov8n.onnx"]["seed"]["agreement"] == "agree"


def test_numeric_without_torch_exits_2_with_install_hint(report_cli: click.Group, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    out = tmp_path / "t.json"
    res = CliRunner().invoke(report_cli, ["report", TWO[0], "--numeric", "-o", str(out)])
    assert res.exit_code == 2
    assert "pip install 'graphpath[torch]'" in res.stderr and res.stderr.count("\n") == 1
    assert not out.exists()


@pytest.mark.torch
def test_numeric_run_on_a_tiny_model(report_cli: click.Group, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import json

    import jsonschema
    import onnx

    from graphpath.formats.table_json import schema
    from tests.report.conftest import evil_model

    path = tmp_path / "tiny.onnx"
    onnx.save(evil_model(), str(path))
    res = CliRunner().invoke(report_cli, ["report", str(path), "--numeric", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)
    row = doc["rows"][0]
    assert doc["numeric"] is True and row["ratio"] is not None and row["curve"]
    assert row["verdict"] in ("unstable", "moderate", "stable", "very stable")


def test_importing_the_command_loads_no_heavy_module() -> None:
    import subprocess
    import sys

    code = ("import sys, graphpath.cli.report, graphpath.stability.table, graphpath.formats; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_row_summary_for_analyze(static_reports: dict[str, Report]) -> None:
    from graphpath.formats.table_text import render_row_text
    from graphpath.stability.table import build_row

    line = render_row_text(build_row(static_reports["yolov8n.onnx"], None))
    assert "\n" not in line
    assert line.startswith("stability: yolov8n.onnx · v8 · C2f + SPPF + PAN + DFL · 106 units, depth 49")
    assert "not measured" in line and "seed v8 claims ✅ stable" in line


def test_a_tiny_variant_is_named_in_the_architecture(static_reports: dict[str, Report]) -> None:
    from graphpath.stability.table import build_row

    report = static_reports["yolov8n.onnx"]
    tiny = dataclasses.replace(report.section("fingerprint"), variant="tiny")
    report = dataclasses.replace(report, sections=tuple((n, tiny if n == "fingerprint" else v)
                                                        for n, v in report.sections))
    assert build_row(report, None).architecture == "tiny: C2f + SPPF + PAN + DFL"
