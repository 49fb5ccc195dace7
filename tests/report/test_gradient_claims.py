"""The block-kind, CSP-versus-residual and PGI tables of a measured stability table, on made-up
rows (the statistics, no torch), and the JSON schema they travel in."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import pytest

from graphpath.numeric.intervals import interval
from graphpath.registry.jobs import decode_row, encode_row
from graphpath.stability.gradient_claims import block_kind_rows, csp_vs_residual, gradient_sections, pgi_rows
from graphpath.stability.table import StabilityRow, failed_row, make_table

SCHEMA = Path(__file__).resolve().parents[2] / "graphpath" / "stability" / "stability-table.schema.json"


def row(model: str, gains: dict[str, list[float]], generation: str = "v5",
        ratios: list[float] | None = None) -> StabilityRow:
    blocks = tuple((f"{k}#{i}", k, g) for k, gs in gains.items() for i, g in enumerate(gs))
    iv = None if ratios is None else interval(ratios, log=True, over="seeds")
    return dataclasses.replace(failed_row(model, "made up"), generation=generation, block_gains=blocks,
                               ratio_interval=iv, ratio=None if iv is None else iv.mean)


def test_a_kind_pools_its_blocks_over_models() -> None:
    (res,) = block_kind_rows([row("a", {"residual": [1.0, 2.0]}), row("b", {"residual": [4.0]})])
    assert (res.kind, res.blocks, res.models, res.zero) == ("residual", 3, 2, 0)
    assert res.geomean == pytest.approx(2.0) and res.median == 2.0 and res.attenuating == 0.0
    assert res.low <= res.geomean <= res.high


def test_zero_gains_are_counted_not_averaged() -> None:
    (k,) = block_kind_rows([row("a", {"csp": [0.0, 0.5, 2.0]})])
    assert (k.blocks, k.zero) == (3, 1) and k.geomean == pytest.approx(1.0)
    assert k.attenuating == pytest.approx(2 / 3)


def test_claimed_kinds_come_first() -> None:
    kinds = [k.kind for k in block_kind_rows([row("a", {"sppf": [1.0], "c2f": [1.0], "residual": [1.0]})])]
    assert kinds == ["residual", "c2f", "sppf"]


@pytest.mark.parametrize(("csp", "residual", "verdict"), [(4.0, 1.0, "agree"), (0.25, 1.0, "disagree"),
                                                           (1.0, 1.0, "inconclusive")])
def test_csp_against_residual(csp: float, residual: float, verdict: str) -> None:
    wobble = [0.9, 1.0, 1.1, 1.05, 0.95, 1.0]
    rows = [row(m, {"csp": [csp * w for w in wobble], "residual": [residual * w for w in reversed(wobble)]})
            for m in ("a", "b", "c")]
    ratio = csp_vs_residual(rows)
    assert ratio is not None and ratio.verdict == verdict
    assert ratio.value == pytest.approx(csp / residual, rel=0.05)
    assert ratio.low <= ratio.value <= ratio.high
    assert csp_vs_residual([row("a", {"csp": [1.0, 2.0]})]) is None  # no residual blocks


def test_pgi_pairs_the_train_export_with_its_plain_twin() -> None:
    rows = [row("yolov9c-train.onnx", {}, "v9", [2.0, 2.1, 1.9, 2.05, 1.95]),
            row("yolov9c.onnx", {}, "v9", [1.0, 1.05, 0.95, 1.02, 0.98]),
            row("yolov9e.onnx", {}, "v9", [1.0, 1.1])]
    (p,) = pgi_rows(rows)
    assert (p.with_pgi, p.without) == ("yolov9c-train.onnx", "yolov9c.onnx")
    assert p.effect is not None and p.effect.verdict == "agree" and p.effect.value == pytest.approx(2.0, rel=0.02)
    same = [row("yolov9c-train.onnx", {}, "v9", [1.0, 1.2, 0.8]), row("yolov9c.onnx", {}, "v9", [1.1, 0.9, 1.0])]
    assert pgi_rows(same)[0].effect.verdict == "inconclusive"
    (one_seed,) = pgi_rows([row("x-train.onnx", {}, "v9", [1.0]), row("x.onnx", {}, "v9", [1.0])])
    assert one_seed.effect is None


def test_tables_travel_in_the_json_and_the_registry() -> None:
    rows = [row("a", {"residual": [1.0, 1.2], "csp": [1.5, 1.4]}), row("b", {"residual": [0.8], "csp": [2.0]})]
    back = decode_row(json.loads(json.dumps(encode_row(rows[0]))))
    assert back.block_gains == rows[0].block_gains
    doc = json.loads(json.dumps(make_table(rows, numeric=True).to_dict()))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft202012Validator)
    titles = [t["title"] for t in doc["gradient_tables"]]
    assert titles[0] == "Block gains by block kind" and titles[1].startswith("PGI")
    body = doc["gradient_tables"][0]["body"]
    assert [r[0] for r in body] == ["residual", "csp"] and "→" in doc["gradient_tables"][0]["intro"]
    assert "curvature_tables" not in doc
    assert gradient_sections([failed_row("x", "static")]) == ()
    assert all(math.isfinite(float(r[4])) for r in body)
