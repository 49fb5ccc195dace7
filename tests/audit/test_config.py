"""Configuration: discovery, per-model expectations, and bad configs (exit 2, one line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphpath.audit.config import AuditConfig, discover_config, load_config, parse_config, resolve_config
from graphpath.errors import GraphpathError
from tests.audit.conftest import NO_BLOCKS, residual_chain

GOOD = """
fail_on = "warning"
disable = ["embedded-nms"]
[severity]
GP201 = "error"
[thresholds]
max_shortest_path = 20
min_path_log2 = 1.5

[[models]]
match = "yolov8*.onnx"
expect_blocks = ["c2f", "sppf"]
generation = "v8"
form = "deploy"

[[models]]
match = ["models/yolov8n.onnx"]
generation = "v11"
thresholds = {max_shortest_path = 10}
disable = ["GP204"]
"""


def test_graphpath_toml(tmp_path: Path):
    (tmp_path / "graphpath.toml").write_text(GOOD)
    cfg = load_config(tmp_path / "graphpath.toml")
    assert cfg.fail_on == "warning" and cfg.disable == ("GP107",) and cfg.severity == {"GP201": "error"}
    rc, enabled = cfg.for_model("models/yolov8n.onnx")
    assert rc.generation == "v11" and rc.form == "deploy" and rc.expect_blocks == ("c2f", "sppf")
    assert rc.thresholds["max_shortest_path"] == 10 and rc.thresholds["min_path_log2"] == 1.5
    assert "GP107" not in enabled and "GP204" not in enabled and "GP201" in enabled
    rc, enabled = cfg.for_model("other/yolov8s.onnx")
    assert rc.generation == "v8" and rc.thresholds["max_shortest_path"] == 20 and "GP204" in enabled
    rc, _ = cfg.for_model("yolov5s.onnx")
    assert rc.generation is None and rc.expect_blocks == () and rc.form is None


def test_pyproject_section_and_discovery_upwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    body = GOOD.replace("[severity]", "[tool.graphpath.severity]").replace("[thresholds]", "[tool.graphpath.thresholds]")
    body = body.replace("[[models]]", "[[tool.graphpath.models]]")
    head, _, rest = body.partition("[tool.graphpath.severity]")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.graphpath]\n" + head
                                             + "[tool.graphpath.severity]" + rest)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "pyproject.toml").write_text("[project]\nname = 'inner'\n")  # no [tool.graphpath]: skipped
    monkeypatch.chdir(deep)
    found = discover_config()
    assert found == tmp_path / "pyproject.toml"
    cfg = resolve_config(None)
    assert cfg.fail_on == "warning" and cfg.source is not None and cfg.source.endswith("pyproject.toml")
    (deep / "graphpath.toml").write_text("fail_on = 'note'\n")
    assert resolve_config(None).fail_on == "note"
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("fail_on = 'error'\n")
    assert resolve_config(explicit).fail_on == "error"  # --config wins over discovery


def test_no_config_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    if discover_config() is None:
        assert resolve_config(None) == AuditConfig()


@pytest.mark.parametrize(("text", "needle"), [
    ("tresholds = {}", "unknown key 'tresholds'"),
    ("[thresholds]\nmax_shortest = 3", "unknown key 'thresholds.max_shortest'"),
    ("[[models]]\nmatch = 'x'\nexpect_block = ['c2f']", "unknown key 'models[0].expect_block'"),
    ("[thresholds]\nmax_shortest_path = 'long'", "thresholds.max_shortest_path: expected a number"),
    ("[thresholds]\nmax_shortest_path = true", "thresholds.max_shortest_path: expected a number"),
    ("fail_on = 'fatal'", "fail_on: 'fatal' is not one of note, warning, error"),
    ("disable = 'GP101'", "disable: expected a list of strings"),
    ("disable = ['GP999']", "disable: unknown rule 'GP999'"),
    ("[severity]\nGP101 = 'loud'", "severity.GP101: 'loud' is not one of"),
    ("[[models]]\nexpect_blocks = ['c2f']", "models[0].match: missing"),
    ("[[models]]\nmatch = 'x'\nexpect_blocks = ['c3f']", "models[0].expect_blocks: 'c3f' is not one of"),
    ("[[models]]\nmatch = 'x'\ngeneration = 'v99'", "models[0].generation: 'v99' is not one of"),
    ("[[models]]\nmatch = 'x'\nform = 'fused'", "models[0].form: 'fused' is not one of deploy, training"),
    ("models = 3", "models: expected an array of tables"),
    ("numeric = 'yes'", "numeric: expected true or false"),
    ("fail_on = ", "invalid TOML"),
])
def test_bad_config_is_one_line_error(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "graphpath.toml"
    path.write_text(text + "\n")
    with pytest.raises(GraphpathError) as err:
        load_config(path)
    message = str(err.value)
    assert needle in message and "graphpath.toml" in message and "\n" not in message


def test_pyproject_unknown_key_names_the_full_key(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.graphpath]\nfail_on = 'error'\nbogus = 1\n")
    with pytest.raises(GraphpathError, match=r"pyproject.toml: unknown key 'tool.graphpath.bogus'"):
        load_config(path)


def test_parse_config_direct():
    cfg = parse_config({"enable": ["GP201", "path-count-collapse"]}, "x.toml")
    _, enabled = cfg.for_model("m.onnx")
    assert enabled == frozenset({"GP201", "GP202"})


@pytest.mark.parametrize(("setup", "args", "needle"), [
    ("[thresholds]\nmax_shortest = 3\n", ["--config", "graphpath.toml"], "unknown key 'thresholds.max_shortest'"),
    ("[thresholds]\nmax_shortest_path = 'x'\n", ["--config", "graphpath.toml"], "expected a number"),
    ("", ["--config", "missing.toml"], "missing.toml: config file not found"),
    ("", ["--baseline", "missing.json"], "missing.json: baseline file not found"),
    ("[thresholds]\nmax_shortest = 3\n", [], "unknown key"),  # discovered, not given
])
def test_cli_bad_config_exits_2_with_one_line(run_cli, save_model, tmp_path: Path, setup: str,
                                             args: list[str], needle: str):
    save_model(residual_chain(1), "m.onnx")
    if setup:
        (tmp_path / "graphpath.toml").write_text(setup)
    result = run_cli("audit", *NO_BLOCKS, *args, "m.onnx")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("graphpath: error: ")
    assert result.stdout == ""


def test_cli_bad_model_and_usage(run_cli, tmp_path: Path):
    result = run_cli("audit", *NO_BLOCKS, "nope.onnx")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert run_cli("audit").exit_code == 2
    assert run_cli("audit", "--fail-on", "fatal", "x.onnx").exit_code == 2
    assert run_cli("audit", "--write", "pdf=x.pdf", "x.onnx").exit_code == 2
