"""The CLI contract: exit codes, streams, no partial output, determinism, lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from graphpath.cli.main import cli
from tests.conftest import RESIDUAL, parse


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_analyze_text_and_json(write_model):
    path = write_model(RESIDUAL)
    res = run("analyze", str(path))
    assert res.exit_code == 0, res.output
    assert "Layer view" in res.stdout and "depth" in res.stdout
    assert "gradient paths: 2" in res.stdout and "residual 1" in res.stdout
    res = run("analyze", str(path), "--format", "json")
    assert res.exit_code == 0
    import json

    data = json.loads(res.stdout)
    assert set(data) == {"schema_version", "model", "layers", "paths", "blocks", "block_counts",
                         "fingerprint", "export_notes"}
    assert data["layers"]["depth"] == 2
    assert data["paths"]["total"] == {"count": 2, "log2": 1.0}
    assert data["block_counts"] == {"residual": 1}
    assert data["model"]["parameters"]["count"] == 16 + 144


def _bad_inputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    good = tmp_path / "good.onnx"
    onnx.save(parse(RESIDUAL), str(good))
    data = good.read_bytes()
    (tmp_path / "random.onnx").write_bytes(bytes(range(256)) * 7)
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "folder.onnx").mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
    onnx.save(helper.make_model(helper.make_graph(nodes, "c", [x], [x])), str(tmp_path / "cycle.onnx"))
    return ["random.onnx", "truncated.onnx", "empty.onnx", "folder.onnx", "cycle.onnx", "missing.onnx"]


def test_bad_inputs_exit_2_with_one_line_and_no_traceback(tmp_path):
    for name in _bad_inputs(tmp_path):
        out = tmp_path / f"{name}.json"
        res = run("analyze", str(tmp_path / name), "--format", "json", "-o", str(out))
        assert res.exit_code == 2, (name, res.output)
        assert "Traceback" not in res.output
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("graphpath: error:"), (name, res.stderr)
        assert not out.exists(), name  # never a partial output file


def test_unknown_format_is_a_usage_error(write_model):
    res = run("analyze", str(write_model(RESIDUAL)), "--format", "xml")
    assert res.exit_code == 2


def test_output_file_is_written_only_on_success(write_model, tmp_path):
    out = tmp_path / "report.json"
    res = run("analyze", str(write_model(RESIDUAL)), "--format", "json", "-o", str(out))
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text().startswith("{")


def test_internal_errors_exit_3_with_please_report(write_model, monkeypatch):
    import graphpath.analysis

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(graphpath.analysis, "analyze", boom)
    res = run("analyze", str(write_model(RESIDUAL)))
    assert res.exit_code == 3
    assert "please report" in res.stderr and "Traceback" in res.stderr


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_two_runs_are_byte_identical(write_model, fmt):
    path = write_model(RESIDUAL)
    assert run("analyze", str(path), "--format", fmt).stdout == run("analyze", str(path), "--format", fmt).stdout


def test_json_has_no_absolute_paths(write_model):
    path = write_model(RESIDUAL)
    assert str(path.parent) not in run("analyze", str(path), "--format", "json").stdout


def test_import_and_help_do_not_import_torch_or_matplotlib():
    code = (
        "import sys, graphpath, graphpath.cli.main\n"
        "from click.testing import CliRunner\n"
        "r = CliRunner().invoke(graphpath.cli.main.cli, ['--help'])\n"
        "assert r.exit_code == 0\n"
        "bad = [m for m in ('torch', 'matplotlib', 'onnxruntime') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_every_command_with_its_short_help():
    from graphpath.cli.main import COMMANDS

    res = run("--help")
    assert res.exit_code == 0
    listed = [line.split()[0] for line in res.stdout.split("Commands:\n")[1].splitlines() if line.strip()]
    assert listed == sorted(COMMANDS)
    ctx = cli.make_context("graphpath", ["--help"], resilient_parsing=True)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name and command.get_short_help_str()


def test_analyze_imports_only_what_it_needs(write_model):
    # Lazy commands: analyze loads neither the other command modules nor what only they need.
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from graphpath.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, ['analyze', {str(write_model(RESIDUAL))!r}, '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('graphpath', 'rich', 'torch')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert "graphpath.cli.static" in loaded
    for absent in ("graphpath.cli.audit", "graphpath.cli.numeric", "graphpath.cli.report",
                   "graphpath.cli.zoo", "graphpath.audit", "graphpath.stability",
                   "graphpath.formats.table_registry", "graphpath.numeric", "rich", "torch"):
        assert absent not in loaded, absent


def test_an_unknown_command_suggests_a_lazy_one():
    res = run("analyse", "model.onnx")
    assert res.exit_code == 2 and "No such command 'analyse'" in res.stderr
    if hasattr(click.exceptions, "NoSuchCommand"):  # click >= 8.4 suggests close names
        assert "Did you mean 'analyze'?" in res.stderr


def test_module_entry_point_runs(write_model):
    out = subprocess.run([sys.executable, "-m", "graphpath", "analyze", str(write_model(RESIDUAL))],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "Layer view" in out.stdout


def test_numeric_option_mirrors_match_the_numeric_package():
    pytest.importorskip("torch")
    from graphpath.cli.options import BACKENDS, CONDITIONS, INITS, NORMS, REINIT
    from graphpath.numeric.backends import BACKEND_CHOICES
    from graphpath.numeric.backward import REINIT_SCHEMES
    from graphpath.numeric.options import CONDITIONS as NUMERIC_CONDITIONS
    from graphpath.numeric.options import NORM_MODES
    from graphpath.numeric.reinit import INIT_SCHEMES

    assert BACKENDS == BACKEND_CHOICES and REINIT == REINIT_SCHEMES
    assert CONDITIONS == NUMERIC_CONDITIONS and INITS == INIT_SCHEMES and NORMS == NORM_MODES


def test_backward_and_analyze_numeric_on_a_residual_model(write_model):
    pytest.importorskip("torch")
    import json

    path = write_model(RESIDUAL)
    res = run("backward", str(path), "--probes", "1", "--format", "json", "-q")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["verdict"]["value"] in ("vanishing", "exploding", "moderate", "stable", "very stable")
    assert data["parity"]["ok"] is True
    res = run("analyze", str(path), "--numeric", "--probes", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["numeric"]["verdict"] == data["verdict"]
    res = run("analyze", str(path), "--numeric", "--probes", "1")
    assert res.exit_code == 0 and "stability:" in res.stdout


def test_backward_threshold_moves_the_verdict_boundary(write_model):
    pytest.importorskip("torch")
    import json

    path = write_model(RESIDUAL)
    base = json.loads(run("backward", str(path), "--probes", "1", "--format", "json", "-q").stdout)
    ratio = base["ratio"]["value"]
    assert ratio > 2 and base["verdict"]["value"] != "exploding"
    # put the exploding boundary just below the measured ratio: the verdict must follow
    bound = ratio * 0.9
    moved = [f"{name}={bound}" for name in ("exploding_above", "stable_high", "very_stable_high")]
    res = run("backward", str(path), "--probes", "1", "--format", "json", "-q",
              *(arg for pair in moved for arg in ("--threshold", pair)))
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["verdict"]["value"] == "exploding"
    assert data["verdict"]["thresholds"]["exploding_above"] == pytest.approx(bound)


@pytest.mark.parametrize(("pair", "message"), [
    ("stable_lo=0.2", "unknown verdict threshold 'stable_lo'"),
    ("stable_low", "expected NAME=VALUE"),
    ("stable_low=abc", "expected NAME=VALUE"),
    ("stable_low=5", "must satisfy"),
])
def test_backward_bad_threshold_is_one_line_exit_2(write_model, pair, message):
    pytest.importorskip("torch")
    res = run("backward", str(write_model(RESIDUAL)), "-q", "--threshold", pair)
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_output_file_is_an_ordinary_file(write_model, tmp_path):
    out = tmp_path / "report.json"
    res = run("analyze", str(write_model(RESIDUAL)), "--format", "json", "-o", str(out))
    assert res.exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
