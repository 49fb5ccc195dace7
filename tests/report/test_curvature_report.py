"""``report --curvature``: the curvature columns, the §18.3 / G.6 / Prop 5.1 tables, the JSON
schema and the registry's round trip — on a tiny residual stack (measured) and on made-up cells
(the seed tables' logic, no torch)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from graphpath.cli.main import cli
from graphpath.numeric.intervals import interval
from graphpath.registry.jobs import decode_row, encode_row
from graphpath.stability.curvature import CurvatureCells, g6_rows, landscape_agreement, risk_of, sections
from graphpath.stability.table import failed_row, make_table

SCHEMA = Path(__file__).resolve().parents[2] / "graphpath" / "stability" / "stability-table.schema.json"


def cells(lams: list[float], backbone: list[float] | None = None, path_type: str = "single chain") -> CurvatureCells:
    iv = interval(lams, log=True, over="seeds")
    bb = None if backbone is None else interval(backbone, log=True, over="seeds")
    return CurvatureCells("distill", iv, interval([2 / x for x in lams], log=True, over="seeds"), None,
                          ((0.5, "decreased monotonically", len(lams)), (1.5, "grew", len(lams))),
                          ((0.0, 1.0), (1.0, 0.5)), (), f"{path_type} (3 residual)", path_type, bb)


def row(model: str, generation: str, c: CurvatureCells):
    return dataclasses.replace(failed_row(model, "made up"), generation=generation, curvature=c)


def test_landscape_order_as_the_seed_predicts_gives_positive_rho() -> None:
    rows = [row("a", "v1", cells([10.0, 11.0, 9.0])), row("b", "v3", cells([5.0, 5.5, 4.5])),
            row("c", "v7", cells([1.0, 1.2, 0.9])), row("d", "v9", cells([100.0, 90.0, 110.0]))]
    ra = landscape_agreement(rows)
    assert ra is not None and ra.models == 3  # PGI's "controlled" has no place in the order
    assert ra.rho == pytest.approx(1.0)
    flipped = [row("a", "v1", cells([1.0, 1.1, 0.9])), row("c", "v7", cells([10.0, 11.0, 9.0])),
               row("b", "v3", cells([5.0, 5.5, 4.5]))]
    assert landscape_agreement(flipped).rho == pytest.approx(-1.0)


def test_g6_risk_levels_and_inconclusive_interval() -> None:
    assert [risk_of(r) for r in (0.01, 0.2, 0.6, 2.0)] == ["high", "medium", "low", "very low"]
    (g,) = g6_rows([row("p", "v1", cells([3.0, 3.0], backbone=[0.01, 0.02, 0.015]))])
    assert (g.path_agreement, g.risk, g.risk_agreement) == ("agree", "high", "agree")
    (g,) = g6_rows([row("r", "v3", cells([3.0, 3.0], backbone=[0.05, 0.3, 0.1], path_type="skip + main"))])
    assert g.risk is not None and g.risk.startswith("inconclusive") and g.risk_agreement == "inconclusive"
    (g,) = g6_rows([row("c", "v4", cells([3.0, 3.0], backbone=[0.05, 0.051, 0.052, 0.05, 0.049], path_type="skip + main"))])
    assert (g.path_agreement, g.risk_agreement) == ("disagree", "disagree")


def test_cells_survive_the_registry_and_the_schema() -> None:
    r = row("a", "v1", cells([10.0, 12.0, 9.0], backbone=[0.5, 0.6, 0.7]))
    back = decode_row(json.loads(json.dumps(encode_row(r))))
    assert back.curvature == r.curvature
    table = make_table([r, row("b", "v3", cells([5.0]))], numeric=True)
    doc = json.loads(json.dumps(table.to_dict()))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft202012Validator)
    assert [t["title"].split(":")[0] for t in doc["curvature_tables"]] == [
        "Seed 000 §18.3 against graphpath", "Seed 001 table G.6 against graphpath", "Proposition 5.1 per residual chain"]
    assert "λ_max" in [h for _, h in table.columns()]
    assert sections([failed_row("x", "static")]) == ()


@pytest.mark.torch
def test_report_curvature_on_a_residual_stack(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("curvlinops")
    from tests.numeric.test_curvature import residual_stack

    model = residual_stack(tmp_path / "res.onnx", 2, 4, 0.3, 0)
    res = CliRunner().invoke(cli, ["report", str(model), "--curvature", "--device", "cpu", "--no-cache", "-q",
                                   "--format", "json", "-o", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "t.json").read_text())
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft202012Validator)
    c = doc["rows"][0]["curvature"]
    assert c["lambda_max"]["mean"] > 0 and math.isclose(c["predicted_lr"]["mean"], 2 / c["lambda_max"]["mean"])
    assert {f for f, _, _ in c["gd"]} == {0.5, 0.9, 1.5}
    assert c["density"] and c["backbone_ratio"]["mean"] > 0
    assert len(c["prop51"]) == 1 and c["prop51"][0]["blocks"] == 2
    assert "curvature" in doc["numeric_options"]
    html = CliRunner().invoke(cli, ["report", str(model), "--curvature", "--device", "cpu", "--no-cache", "-q",
                                    "--format", "html"])
    assert html.exit_code == 0 and "Spectral density of the distill GGN" in html.output
    assert "Proposition 5.1 per residual chain" in html.output
