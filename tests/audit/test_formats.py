"""Audit renderers: SARIF validates against the SARIF 2.1.0 schema, JUnit parses with the
expected structure, GitHub annotations escape and respect the per-step limits, Markdown
escapes model strings, and every format is deterministic."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from graphpath.audit.config import parse_config
from graphpath.audit.rules.catalog import RULES
from graphpath.audit.run import AuditResult, audit
from graphpath.formats import UnknownFormatError, format_names, get_renderer, github
from graphpath.formats.sarif import FINGERPRINT_KEY, to_sarif
from tests.audit.conftest import NO_BLOCKS, residual_chain
from tests.audit.test_rules import block, paths, report

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def _reports() -> dict[str, dict[str, Any]]:
    evil = "/model.2/m.0/cv1|<b>bold</b>*x*\nline2,with:colon%"
    return {
        "models/yolov8n.onnx": report(
            model={"file_name": "yolov8n.onnx", "sha256": "ab" * 32},
            paths=paths(total_log2=3.0, shortest=40, mean=130.0),
            blocks=[block("c2f", "model.2"), block("aux_head", evil, nodes=(evil,))],
            block_counts={"c2f": 1, "aux_head": 1},
            fingerprint={"generation": "v5", "confidence": 0.7, "evidence": ["C3 blocks"]},
            export_notes=[{"code": "note_a", "message": "a <note> with | pipes"}],
        ),
        "models/clean model.onnx": report(model={"file_name": "clean model.onnx"}, paths=paths()),
    }


def _result(baseline: Any = None, fail_on: str = "error") -> AuditResult:
    reports = _reports()
    cfg = parse_config({"models": [{"match": "yolov8*.onnx", "generation": "v8", "form": "deploy",
                                    "expect_blocks": ["c2f", "sppf"]}]}, "graphpath.toml")
    return audit(list(reports), cfg, baseline, fail_on=fail_on, analyzer=lambda p: reports[str(p)])


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def test_fixture_findings():
    result = _result()
    ids = {f.rule_id for _, f in result.all_findings()}
    assert {"GP101", "GP102", "GP103", "GP108", "GP201", "GP204"} <= ids
    assert result.exit_code() == 1 and result.exit_code(exit_zero=True) == 0


@pytest.mark.parametrize("fmt", format_names("audit"))
def test_every_format_renders_deterministically(fmt: str):
    a, b = get_renderer("audit", fmt)(_result()), get_renderer("audit", fmt)(_result())
    assert a == b and a.endswith("\n")


def test_unknown_format():
    with pytest.raises(UnknownFormatError, match="choose one of text, json, sarif, junit, github, md, markdown"):
        get_renderer("audit", "pdf")


def test_sarif_validates(sarif_validator: jsonschema.Draft4Validator):
    log = to_sarif(_result())
    errors = sorted(sarif_validator.iter_errors(log), key=str)
    assert not errors, errors[0]
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        loc = res["locations"][0]
        assert loc["physicalLocation"]["region"]["startLine"] == 1
        assert not loc["physicalLocation"]["artifactLocation"]["uri"].startswith("/")
        assert len(res["partialFingerprints"][FINGERPRINT_KEY]) == 64
        assert res["level"] in ("note", "warning", "error")
    uris = [a["location"]["uri"] for a in run["artifacts"]]
    assert uris == ["models/yolov8n.onnx", "models/clean%20model.onnx"]
    aux = [r for r in run["results"] if r["ruleId"] == "GP103"][0]
    assert aux["locations"][0]["logicalLocations"][0]["kind"] == "block"


def test_sarif_fingerprints_stable_across_values():
    a = to_sarif(_result())["runs"][0]["results"]
    reports = _reports()
    reports["models/yolov8n.onnx"]["paths"] = paths(total_log2=3.0, shortest=44, mean=131.0)
    b = to_sarif(audit(list(reports), analyzer=lambda p: reports[str(p)]))["runs"][0]["results"]
    fp = {r["ruleId"]: r["partialFingerprints"] for r in a}
    assert all(fp[r["ruleId"]] == r["partialFingerprints"] for r in b if r["ruleId"] in ("GP201", "GP204"))


def test_sarif_with_baseline_validates(sarif_validator, tmp_path: Path):
    from graphpath.formats.audit_json import render as render_json

    base = tmp_path / "base.json"
    base.write_text(render_json(_result()))
    reports = _reports()
    reports["models/yolov8n.onnx"]["paths"] = paths(total_log2=3.0, shortest=4, mean=10.0)
    reports["models/yolov8n.onnx"]["model"]["custom_ops"] = {"com.x::Foo": 1}
    result = audit(list(reports), baseline=base, analyzer=lambda p: reports[str(p)])
    log = to_sarif(result)
    assert not list(sarif_validator.iter_errors(log))
    states = {(r["ruleId"], r["baselineState"]) for r in log["runs"][0]["results"]}
    assert ("GP105", "new") in states and ("GP201", "absent") in states


def test_cli_sarif_on_a_real_model(run_cli, save_model, sarif_validator, tmp_path: Path):
    save_model(residual_chain(2), "models/net.onnx")
    (tmp_path / "graphpath.toml").write_text("[thresholds]\nmax_shortest_path = 0\n")
    result = run_cli("audit", *NO_BLOCKS, "--format", "sarif", "-o", "out.sarif",
                     "--write", "junit=out.xml", "--write", "markdown=summary.md", "models/net.onnx")
    assert result.exit_code == 0 and result.stdout == ""
    log = json.loads((tmp_path / "out.sarif").read_text())
    assert not list(sarif_validator.iter_errors(log))
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/net.onnx"
    ET.fromstring((tmp_path / "out.xml").read_text())
    assert "graphpath audit passed" in (tmp_path / "summary.md").read_text()


def test_junit_structure():
    xml = get_renderer("audit", "junit")(_result())
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["models/yolov8n.onnx", "models/clean model.onnx"]
    for s in suites:
        cases = s.findall("testcase")
        assert len(cases) == len(RULES) == int(s.get("tests", "0"))
        assert int(s.get("failures", "0")) == sum(c.find("failure") is not None for c in cases)
        assert int(s.get("skipped", "0")) == sum(c.find("skipped") is not None for c in cases)
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    assert cases["GP101 missing-expected-block"].find("failure") is not None
    assert cases["GP101 missing-expected-block"].find("failure").get("type") == "GP101"  # type: ignore[union-attr]
    # warnings are below --fail-on error: the testcase passes, the finding is in system-out
    gp201 = cases["GP201 shortest-path-too-long"]
    assert gp201.find("failure") is None and "shortest gradient path" in (gp201.findtext("system-out") or "")
    assert cases["GP301 vanishing-gradient"].find("skipped") is not None
    assert int(root.get("failures", "0")) == sum(int(s.get("failures", "0")) for s in suites)
    warn = ET.fromstring(get_renderer("audit", "junit")(_result(fail_on="warning")))
    assert warn.find("testsuite/testcase[@name='GP201 shortest-path-too-long']/failure") is not None


def test_github_escaping():
    line = github.annotation("error", "50% done\r\nnext", file="models/a,b:c.onnx", title="GP101 x")
    assert line == "::error file=models/a%2Cb%3Ac.onnx,title=GP101 x::50%25 done%0D%0Anext"
    out = get_renderer("audit", "github")(_result())
    for ln in out.splitlines():
        assert ln.startswith(("::error ", "::warning ", "::notice "))
    evil = [ln for ln in out.splitlines() if "GP103" in ln][0]
    assert "\n" not in evil and "%0A" in evil


def test_github_limits_per_level():
    many = {f"m{i:02d}.onnx": report(model={"file_name": f"m{i:02d}.onnx"}, paths=paths(shortest=40, mean=130.0))
            for i in range(12)}
    result = audit(list(many), analyzer=lambda p: many[str(p)])
    lines = get_renderer("audit", "github")(result).splitlines()
    warnings = [ln for ln in lines if ln.startswith("::warning")]
    assert len(warnings) == github.MAX_PER_LEVEL
    assert "15 more warning findings not annotated" in warnings[-1]
    assert not [ln for ln in lines if ln.startswith("::error")]


def test_markdown_escapes_model_strings():
    md = get_renderer("audit", "md")(_result())
    assert get_renderer("audit", "markdown")(_result()) == md  # the long name is an alias
    assert "<b>" not in md and "<note>" not in md and "&lt;b&gt;" in md
    assert "a &lt;note&gt; with \\| pipes" in md
    for line in md.splitlines():
        if line.startswith("|"):
            assert line.count("|") - line.count("\\|") in (5, 6, 9)
    assert md.startswith("## graphpath audit failed")


def test_text_marks_failing():
    text = get_renderer("audit", "text")(_result())
    assert "FAIL GP101" in text and "FAIL GP201" not in text
    assert text.rstrip().splitlines()[-1].startswith("graphpath audit: 2 models")


def test_json_is_a_baseline(tmp_path: Path):
    from graphpath.audit.run import load_baseline

    text = get_renderer("audit", "json")(_result())
    data = json.loads(text)
    assert data["kind"] == "graphpath-audit" and data["summary"]["failing"] >= 1
    (tmp_path / "a.json").write_text(text)
    assert load_baseline(tmp_path / "a.json").count == 2
