"""Every rule on the smallest report dict that triggers it, and on one that does not."""

from __future__ import annotations

import math
from typing import Any

import pytest

from graphpath.audit.rules.catalog import (
    DEFAULT_THRESHOLDS,
    RULES,
    SEVERITIES,
    Finding,
    Location,
    NotEvaluated,
    RuleConfig,
    find_rule,
)
from graphpath.audit.run import evaluate


def report(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": "1.0",
        "model": {"file_name": "m.onnx", "custom_domains": [], "custom_ops": {}, "subgraphs": [],
                  "op_histogram": {"Conv": 2}},
    }
    for key, value in sections.items():
        if key == "model":
            base["model"] = {**base["model"], **value}
        else:
            base[key] = value
    return base


def paths(total_log2: float = 3.0, shortest: int = 2, mean: float = 4.0, per_output: Any = None) -> dict[str, Any]:
    return {
        "total": {"count": int(2 ** total_log2), "log2": total_log2},
        "shortest": {"length": shortest, "path": ["x", "c1", "output:y"]},
        "longest": {"length": 6, "path": []},
        "effective_depth": {"mean": mean, "median": int(mean), "std": 1.0},
        "per_output": per_output if per_output is not None else {
            "output:y": {"role": "main", "shortest": {"length": shortest, "path": ["x", "output:y"]}}},
    }


def block(kind: str, label: str = "", nodes: tuple[str, ...] = ("n1",), children: tuple[Any, ...] = ()) -> dict[str, Any]:
    return {"kind": kind, "label": label, "units": [], "nodes": list(nodes), "entry": [], "exit": [],
            "params": 10, "structure": {}, "evidence": "", "children": list(children)}


DEPLOY = RuleConfig(form="deploy")
T = DEFAULT_THRESHOLDS

# rule id → (config, report that triggers, report that does not)
CASES: dict[str, tuple[RuleConfig, dict[str, Any], dict[str, Any]]] = {
    "GP101": (RuleConfig(expect_blocks=("c2f", "sppf")),
              report(block_counts={"c2f": 3}), report(block_counts={"c2f": 3, "sppf": 1})),
    "GP102": (RuleConfig(generation="v8"),
              report(fingerprint={"generation": "v5", "confidence": 0.8, "evidence": ["C3 blocks"]}),
              report(fingerprint={"generation": "v8", "confidence": 0.9, "evidence": []})),
    "GP103": (DEPLOY,
              report(blocks=[block("gelan", children=(block("aux_head", "model.30"),))],
                     block_counts={"aux_head": 1}),
              report(blocks=[block("gelan")], block_counts={"gelan": 1}, paths=paths())),
    "GP104": (DEPLOY, report(blocks=[block("repvgg", "model.3.m.0")]), report(blocks=[block("plain_stage")])),
    "GP105": (RuleConfig(), report(model={"custom_domains": ["com.microsoft"],
                                          "custom_ops": {"com.microsoft::FusedConv": 2}}), report()),
    "GP106": (RuleConfig(), report(model={"subgraphs": [{"node": "loop0", "op_type": "Loop", "attr": "body",
                                                         "node_count": 4, "op_histogram": {}}]}), report()),
    "GP107": (RuleConfig(), report(model={"op_histogram": {"NonMaxSuppression": 1}}),
              report(blocks=[block("decoupled_head")])),
    "GP108": (RuleConfig(), report(export_notes=[{"code": "repvgg_fused", "message": "RepVGG branches fused"}]),
              report(export_notes=[])),
    "GP201": (RuleConfig(), report(paths=paths(shortest=40)), report(paths=paths(shortest=12))),
    "GP202": (RuleConfig(baseline=report(paths=paths(total_log2=20.0))),
              report(paths=paths(total_log2=3.0)), report(paths=paths(total_log2=19.5))),
    "GP203": (RuleConfig(thresholds={**T, "min_path_log2": 4}), report(paths=paths(total_log2=3.0)),
              report(paths=paths(total_log2=5.0))),
    "GP204": (RuleConfig(), report(paths=paths(mean=130.0)), report(paths=paths(mean=60.0))),
    "GP205": (RuleConfig(baseline=report(paths=paths(shortest=4))),
              report(paths=paths(shortest=9)), report(paths=paths(shortest=4))),
    "GP301": (RuleConfig(), report(numeric={"verdict": "vanishing", "reason": "ratio 1e-9", "ratio": 1e-9}),
              report(numeric={"verdict": "stable", "ratio": 0.5})),
    "GP302": (RuleConfig(), report(numeric={"verdict": "exploding", "ratio": 1e6}),
              report(numeric={"verdict": "stable", "ratio": 2.0})),
    "GP303": (RuleConfig(), report(numeric={"dead_fractions": {"model.2/conv": 0.9, "model.3/conv": 0.1}}),
              report(numeric={"dead_fractions": {"model.2/conv": 0.2}})),
    "GP304": (RuleConfig(), report(numeric={"nan_inf": {"count": 2, "tensors": ["t1", "t2"]}}),
              report(numeric={"nan_inf": False})),
    "GP305": (RuleConfig(), report(numeric={"agreement": {"max_rel_diff": 0.05}}),
              report(numeric={"agreement": {"max_rel_diff": 1e-5}})),
}


def test_every_rule_has_cases():
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_triggers(rule_id: str):
    config, bad, _ = CASES[rule_id]
    rule = RULES[rule_id]
    findings = rule.check(bad, config)
    assert findings, rule_id
    for f in findings:
        assert f.rule_id == rule_id and f.severity == rule.severity and f.model == "m.onnx"
        assert f.message and "\n" not in f.message
        assert f.locations


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_passes(rule_id: str):
    config, _, good = CASES[rule_id]
    assert RULES[rule_id].check(good, config) == []


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_is_pure_and_deterministic(rule_id: str):
    config, bad, _ = CASES[rule_id]
    snapshot = repr(bad)
    assert RULES[rule_id].check(bad, config) == RULES[rule_id].check(bad, config)
    assert repr(bad) == snapshot


# Rules that need something the bare report lacks are "not evaluated", never a crash.
@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_missing_sections_are_not_evaluated(rule_id: str):
    bare = {"schema_version": "1.0", "model": {"file_name": "m.onnx"}}
    full = RuleConfig(expect_blocks=("c2f",), generation="v8", form="deploy",
                      thresholds={**T, "min_path_log2": 1.0}, baseline=bare)
    try:
        assert RULES[rule_id].check(bare, full) == []
    except NotEvaluated as why:
        assert str(why)


@pytest.mark.parametrize("junk", [None, 3, "x", [], {"verdict": None}])
def test_numeric_junk_never_crashes(junk: Any):
    r = report(numeric=junk)
    _, findings = evaluate(r, RuleConfig())
    assert all(not f.rule_id.startswith("GP3") for f in findings)


def test_not_evaluated_reasons():
    outcomes, _ = evaluate(report(paths=paths()), RuleConfig())
    status = {o.rule_id: o for o in outcomes}
    assert status["GP101"].status == "not_evaluated" and "expect_blocks" in status["GP101"].reason
    assert status["GP202"].status == "not_evaluated" and "baseline" in status["GP202"].reason
    assert status["GP203"].status == "not_evaluated" and "min_path_log2" in status["GP203"].reason
    assert status["GP301"].status == "not_evaluated" and "--numeric" in status["GP301"].reason
    assert status["GP201"].status == "pass"


def test_disabled_and_severity_override():
    config, bad, _ = CASES["GP201"]
    outcomes, findings = evaluate(bad, config, enabled=frozenset(RULES) - {"GP201"})
    assert {o.rule_id: o.status for o in outcomes}["GP201"] == "disabled" and not findings
    up = RuleConfig(severity={"GP201": "error"})
    assert RULES["GP201"].check(bad, up)[0].severity == "error"


def test_gp201_per_output_skips_auxiliary():
    per_output = {"output:aux": {"role": "auxiliary", "shortest": {"length": 99, "path": []}},
                  "output:main": {"role": "main", "shortest": {"length": 40, "path": []}}}
    findings = RULES["GP201"].check(report(paths=paths(per_output=per_output)), RuleConfig())
    assert [loc.name for f in findings for loc in f.locations] == ["main"]


def test_gp202_zero_paths_is_a_collapse():
    r = report(paths={"total": {"count": 0, "log2": None}})
    base = report(paths={"total": {"count": 8, "log2": 3.0}})
    [f] = RULES["GP202"].check(r, RuleConfig(baseline=base))
    assert "0 paths" in f.message and dict(f.properties)["log2"] is None


def test_gp103_auxiliary_output_role():
    per_output = {"output:aux": {"role": "auxiliary", "shortest": {"length": 3}}}
    findings = RULES["GP103"].check(report(paths=paths(per_output=per_output)), DEPLOY)
    assert [str(f.locations[0]) for f in findings] == ["output:aux"]
    with pytest.raises(NotEvaluated):
        RULES["GP103"].check(report(), RuleConfig(form="training"))


def test_gp303_list_shape_and_scalar():
    listed = report(numeric={"dead_activations": [{"unit": "u1", "fraction": 0.8}]})
    assert [f.locations[0].name for f in RULES["GP303"].check(listed, RuleConfig())] == ["u1"]
    scalar = report(numeric={"dead_fraction": 0.7})
    assert len(RULES["GP303"].check(scalar, RuleConfig())) == 1


def test_fingerprint_ignores_message_and_values():
    a = Finding("GP201", "warning", "m.onnx", "length 40", (Location("output", "y"),), (("length", 40),))
    b = Finding("GP201", "error", "m.onnx", "length 41", (Location("output", "y"),), (("length", 41),))
    c = Finding("GP201", "warning", "m.onnx", "length 40", (Location("output", "z"),))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.key() == b.key() and a.key("other.onnx") != a.key()


def test_rule_table_is_well_formed():
    names = set()
    for rid, rule in RULES.items():
        assert rid == rule.id and rid[:2] == "GP" and rid[2] in "123" and len(rid) == 5
        assert rule.severity in SEVERITIES and rule.summary and rule.help
        assert rule.name not in names and rule.name == rule.name.lower()
        names.add(rule.name)
        for t in rule.thresholds:
            assert t in DEFAULT_THRESHOLDS
        assert find_rule(rule.name) is rule and find_rule(rid.lower()) is rule
    assert find_rule("GP999") is None


def test_thresholds_are_finite_or_none():
    assert all(v is None or math.isfinite(v) for v in DEFAULT_THRESHOLDS.values())


# The numeric section as graphpath.numeric.backward writes it.
def backward_section(verdict: str = "stable", ratio: Any = 0.4, dead: float = 0.01,
                     nonfinite: tuple[str, ...] = (), agreement: Any = None) -> dict[str, Any]:
    return {
        "verdict": {"value": verdict, "reason": f"ratio = {ratio}", "thresholds": {}},
        "ratio": {"value": ratio, "rms": ratio, "first_units": ["/model.0/conv/Conv"], "last": "raw heads"},
        "dead": {"silu": {"dead": 1, "total": 100, "fraction": dead, "units": 5}},
        "nonfinite": list(nonfinite),
        "backend": {"name": "torch", "reason": "", "agreement": agreement},
    }


@pytest.mark.parametrize(("rule_id", "bad", "good"), [
    ("GP301", backward_section("vanishing", 3e-4), backward_section("stable")),
    ("GP302", backward_section("exploding", 5e3), backward_section("very stable", 1.0)),
    ("GP303", backward_section(dead=0.8), backward_section(dead=0.1)),
    ("GP304", backward_section("nan", "nan", nonfinite=("forward:out",)), backward_section()),
    ("GP305", backward_section(agreement={"max_rel_diff": 0.02, "worst_parameter": "w1", "compared": 4,
                                          "missing": []}),
     backward_section(agreement={"max_rel_diff": 1e-5, "worst_parameter": "w1", "compared": 4, "missing": []})),
])
def test_numeric_rules_on_backward_sections(rule_id: str, bad: dict[str, Any], good: dict[str, Any]):
    rule = RULES[rule_id]
    assert rule.check(report(numeric=bad), RuleConfig())
    assert rule.check(report(numeric=good), RuleConfig()) == []


def test_numeric_error_and_single_backend_are_not_evaluated():
    outcomes, _ = evaluate(report(numeric={"error": "unsupported op GridSample"}), RuleConfig())
    status = {o.rule_id: o for o in outcomes}
    assert all(status[r].status == "not_evaluated" for r in RULES if r.startswith("GP3"))
    assert "GridSample" in status["GP301"].reason
    with pytest.raises(NotEvaluated, match="one numeric backend"):
        RULES["GP305"].check(report(numeric=backward_section()), RuleConfig())


def test_ratio_thresholds_on_string_ratios():
    cfg = RuleConfig(thresholds={**T, "min_gradient_ratio": 1e-2})
    assert RULES["GP301"].check(report(numeric=backward_section("moderate", 1e-3)), cfg)
    assert RULES["GP301"].check(report(numeric=backward_section("nan", "nan")), cfg) == []
