"""Rows, the seed's claims and the comparison column."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from graphpath.fingerprint.generation import Fingerprint
from graphpath.report import Report
from graphpath.stability.table import (
    GENERATION_ORDER,
    NUMERIC_TO_TABLE,
    SEED_CLAIMS,
    SEED_ROWS,
    StabilityTable,
    build_row,
    cell,
    make_table,
    report_models,
)
from tests.report.conftest import fake_numeric


def test_seed_claims_cover_every_seed_row() -> None:
    labels = [label for label, _ in SEED_ROWS]
    assert labels == ["v1", "v2", "v3", "v4", "v5", "YOLOX", "v6", "v7", "v8", "v9", "v10", "v11–12"]
    assert set(SEED_CLAIMS) == set(GENERATION_ORDER)
    claimed = {label: SEED_CLAIMS[gens[0]].verdict for label, gens in SEED_ROWS}
    assert claimed == {
        "v1": "unstable", "v2": "moderate", "v3": "stable", "v4": "stable", "v5": "very stable",
        "YOLOX": "stable", "v6": "stable", "v7": "very stable", "v8": "stable", "v9": "very stable",
        "v10": "stable", "v11–12": "stable",
    }


def test_every_reference_generation_maps_to_a_seed_row(static_reports: dict[str, Report]) -> None:
    gens = {rep.section("fingerprint").generation for rep in static_reports.values()}
    assert gens == set(GENERATION_ORDER)


def test_seed_comparison_filled_for_every_seed_row(sample_table: StabilityTable) -> None:
    comp = sample_table.seed_comparison()
    assert [c.row for c in comp] == [label for label, _ in SEED_ROWS]
    for c in comp:
        assert c.models, c.row
        assert c.agreement in ("agree", "disagree", "mixed"), c
        assert len(c.measured) == len(c.models)
    for r in sample_table.rows:
        assert r.seed_row is not None
        assert r.seed_agreement in ("agree", "disagree")
        if r.seed_agreement == "disagree":
            assert r.reason.startswith(f"seed claims {r.seed_verdict} for {r.seed_row}"), r.reason
            assert "measured at these weights: ratio" in r.reason


def _with_sections(report: Report, **sections: Any) -> Report:
    """``report`` with these sections replaced (or added) and the others kept."""
    kept = tuple((n, v) for n, v in report.sections if n not in sections)
    return dataclasses.replace(report, sections=kept + tuple(sections.items()))


def test_numeric_verdicts_map_onto_table_verdicts(static_reports: dict[str, Report]) -> None:
    rep = _with_sections(static_reports["yolov3.onnx"], fingerprint=Fingerprint("v3", 0.9),
                         block_counts={"residual": 23})
    for nv, tv in NUMERIC_TO_TABLE.items():
        row = build_row(rep, fake_numeric(nv, 1.0))
        assert row.verdict == tv
    row = build_row(rep, fake_numeric("vanishing", 0.02))
    assert row.verdict == "unstable" and row.seed_agreement == "disagree"
    assert "seed claims stable for v3 (residual bounds the gradient)" in row.reason
    assert "measured at these weights: ratio 0.02 → vanishing" in row.reason
    assert row.verdict_label == "❌ unstable"
    assert row.min_block_gain == 0.8 and row.max_block_gain == 2.5 and row.max_block_jacobian == 3.1
    assert row.dead_fraction == 0.005


def test_static_only_rows_say_not_measured(static_reports: dict[str, Report]) -> None:
    row = build_row(static_reports["yolov8n.onnx"], None)
    assert row.verdict == "not measured" and row.seed_agreement == "not measured"
    assert row.architecture == "C2f + SPPF + PAN + DFL"
    assert row.ratio is None and row.curve == ()
    assert row.shortest_path is not None and row.longest_path is not None
    assert row.shortest_path <= row.effective_depth <= row.longest_path  # type: ignore[operator]


def test_missing_sections_and_non_finite_numbers_give_empty_cells(static_reports: dict[str, Report]) -> None:
    bare = dataclasses.replace(static_reports["yolov8n.onnx"], sections=())
    num = fake_numeric("stable", math.nan, blocks=(("b", math.nan, None),), dead=(0, 0),
                       curve=((1, math.inf), (2, 0.5)))
    row = build_row(bare, num)
    assert row.model == "yolov8n.onnx" and row.generation == "unknown" and row.verdict == "stable"
    assert row.ratio is None and row.min_block_gain is None and row.max_block_jacobian is None
    assert row.dead_fraction is None and row.curve == ((2, 0.5),) and row.seed_agreement == "no seed row"
    assert row.shortest_path is None and row.paths_log10 is None and row.path_lengths == ()
    row = build_row(bare, None, numeric_error="parity refused")
    assert row.verdict == "n/a" and "numeric pass failed: parity refused" in row.reason


def test_rows_come_in_generation_order_whatever_the_input_order(static_reports: dict[str, Report]) -> None:
    rows = [build_row(r, None) for r in static_reports.values()]
    a = make_table(rows).rows
    b = make_table(list(reversed(rows))).rows
    assert [r.generation for r in a] == [r.generation for r in b]
    assert [r.generation for r in a][0] == "v1" and [r.generation for r in a][-1] == "v12"
    assert [r.model for r in make_table(rows, order="input").rows] == [r.model for r in rows]


def test_every_numeric_verdict_has_a_table_verdict() -> None:
    from typing import get_args

    from graphpath.numeric.metrics import Verdict

    assert set(get_args(Verdict)) == set(NUMERIC_TO_TABLE)


def test_equal_file_names_are_told_apart_by_their_folders(tmp_path, write_model) -> None:
    from tests.conftest import RESIDUAL

    src = write_model(RESIDUAL)
    paths = []
    for folder in ("run1", "run2"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "best.onnx")
        paths[-1].write_bytes(src.read_bytes())
    table = report_models(paths)
    assert sorted(r.model for r in table.rows) == ["run1/best.onnx", "run2/best.onnx"]
    assert report_models(paths[:1]).rows[0].model == "best.onnx"


def test_rows_over_seeds_carry_intervals_and_the_rank_agreement(static_reports: dict[str, Report]) -> None:
    """Five seeds per model: the ratio cell is the interval's geometric mean with its ends, a
    straddling interval reads inconclusive in both columns, and the table states Spearman's ρ
    between the seed's ordinal verdicts and the measured ratios with its bootstrap interval."""
    import jsonschema

    from graphpath.formats import get_renderer
    from graphpath.formats.table_json import schema
    from graphpath.numeric.intervals import interval
    from graphpath.numeric.measures import SignalPoint
    from graphpath.numeric.options import BackwardOptions

    by_claim = {"unstable": 1e-4, "moderate": 0.05, "stable": 0.5, "very stable": 1.0}
    rows = []
    for i, rep in enumerate(static_reports.values()):
        claim = SEED_CLAIMS[rep.section("fingerprint").generation].verdict
        centre = by_claim[claim] * (1.0 + 0.02 * i)  # no ties between models
        iv = interval([centre * f for f in (0.8, 0.9, 1.0, 1.1, 1.25)], log=True, over="seeds")
        verdict = "inconclusive" if claim == "moderate" else NUMERIC_TO_REVERSE[claim]
        signal = tuple(SignalPoint(f"u{d}", "unit", f"t{d}", d, 1.0, 1.0 + 0.1 * d) for d in (1, 2, 3))
        cells = {"ratio": iv, "max_block_gain": interval([2.0, 2.5, 3.0, 2.2, 2.8], log=True, over="seeds"),
                 "dead_fraction": interval([0.01, 0.0, 0.02, 0.01, 0.0], log=False, over="seeds")}
        num = dataclasses.replace(fake_numeric(verdict, centre), intervals=cells, signal=signal,
                                  options=BackwardOptions(condition="init", seeds=5))
        rows.append(build_row(rep, num))
    table = make_table(rows, numeric=True, numeric_options={"condition": "init", "seeds": [0, 1, 2, 3, 4]})
    moderate = [r for r in table.rows if r.seed_verdict == "moderate"]
    assert moderate and all(r.verdict == "inconclusive" and r.seed_agreement == "inconclusive" for r in moderate)
    row = next(r for r in table.rows if r.ratio_interval is not None)
    assert row.ratio == pytest.approx(row.ratio_interval.mean, rel=1e-5)
    assert cell(row, "ratio").count("[") == 1
    assert cell(row, "max_block_gain").count("[") == 1 and cell(row, "dead_fraction").count("[") == 1
    assert row.max_block_gain == pytest.approx(row.interval_of("max_block_gain").mean, rel=1e-5)
    assert cell(row, "min_block_gain").count("[") == 0  # not repeated here: no interval to show
    ra = table.rank_agreement()
    assert ra is not None and ra.rho > 0.8 and ra.low <= ra.rho <= ra.high <= 1.0
    data = table.to_dict()
    jsonschema.validate(data, schema())
    assert data["rank_agreement"]["models"] == len(rows) and data["rows"][0]["ratio_interval"]["n"] == 5
    assert sorted(data["rows"][0]["intervals"]) == ["dead_fraction", "max_block_gain"]
    assert "Spearman" in get_renderer("table", "text")(table) and "Spearman" in get_renderer("table", "md")(table)
    assert data["rows"][0]["signal"] == [[1, 1.1], [2, 1.2], [3, 1.3]]
    html = get_renderer("table", "html")(table)
    assert "Signal propagation" in html and "Spearman" in html


def _seeded_table(static_reports: dict[str, Report], by_claim: dict[str, float]) -> StabilityTable:
    """Every reference report with five seeded ratios around ``by_claim[its seed verdict]``."""
    from graphpath.numeric.intervals import interval
    from graphpath.numeric.options import BackwardOptions

    rows = []
    for i, rep in enumerate(static_reports.values()):
        claim = SEED_CLAIMS[rep.section("fingerprint").generation].verdict
        centre = by_claim[claim] * (1.0 + 0.02 * i)
        iv = interval([centre * f for f in (0.8, 0.9, 1.0, 1.1, 1.25)], log=True, over="seeds")
        num = dataclasses.replace(fake_numeric("stable", centre), intervals={"ratio": iv},
                                  options=BackwardOptions(condition="init", seeds=5))
        rows.append(build_row(rep, num))
    return make_table(rows, numeric=True, numeric_options={"condition": "init"})


def test_rank_agreement_reads_distance_from_one_not_the_raw_ratio(static_reports: dict[str, Report]) -> None:
    """An exploding ratio (1e4) is as unstable as a vanishing one (1e-4): ranking by closeness
    to 1 agrees with the seed's ordering either way, where the raw ratio would reverse it."""
    exploding = {"unstable": 1e4, "moderate": 20.0, "stable": 2.0, "very stable": 1.0}
    vanishing = {"unstable": 1e-4, "moderate": 0.05, "stable": 0.5, "very stable": 1.0}
    for by_claim in (exploding, vanishing):
        ra = _seeded_table(static_reports, by_claim).rank_agreement()
        assert ra is not None and ra.rho > 0.8


def test_seed_rows_whose_models_all_straddle_a_boundary_read_inconclusive(static_reports: dict[str, Report]) -> None:
    """A seed row measured only by inconclusive models is inconclusive, not 'not measured', and
    the key reason names the two verdicts the interval lies between."""
    from graphpath.numeric.intervals import STRADDLES

    rep = static_reports["yolov8n.onnx"]
    num = dataclasses.replace(fake_numeric("inconclusive", 9.0),
                              reason=f"the interval 9 [8, 11] {STRADDLES}stable at its low end, moderate at its high end")
    table = make_table([build_row(rep, num)], numeric=True)
    (v8,) = [c for c in table.seed_comparison() if c.models]
    assert v8.agreement == "inconclusive"
    assert "(stable at its low end, moderate at its high end)" in table.rows[0].reason


#: a point verdict per table verdict (for made-up reports)
NUMERIC_TO_REVERSE = {"unstable": "vanishing", "moderate": "moderate", "stable": "stable", "very stable": "very stable"}
