"""Stability-table fixtures: the CLI group, the reference models' static reports, fake numeric
reports (real :class:`NumericReport` objects holding made-up numbers), and a model whose names
try to break out."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphpath.cli.main import GraphpathGroup
from graphpath.cli.report import report
from graphpath.numeric.metrics import Verdict
from graphpath.numeric.options import BackwardOptions
from graphpath.numeric.results import BlockResult, DeadFraction, NumericReport, Parity, UnitGradient
from graphpath.report import Report
from graphpath.stability.table import StabilityTable, build_row, make_table

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
MODEL_FILES = sorted(MODELS.glob("*.onnx"))

#: Names that must come out escaped in HTML and Markdown.
EVIL = 'x<script>alert("1")</script>|a`b`\nc&d\'e'


@pytest.fixture
def report_cli() -> click.Group:
    @click.group(cls=GraphpathGroup)
    def cli() -> None:
        pass

    cli.add_command(report)
    return cli


@pytest.fixture(scope="session")
def static_reports() -> dict[str, Report]:
    from graphpath.analysis import analyze

    return {p.name: analyze(p) for p in MODEL_FILES}


def fake_numeric(verdict: Verdict, ratio: float, *, blocks: tuple[tuple[str, float, float | None], ...] = (
                 ("stage 1", 0.8, 1.7), ("stage 2", 2.5, 3.1)), dead: tuple[int, int] = (5, 1000),
                 curve: tuple[tuple[int, float], ...] = ((1, 0.01), (2, 0.05), (3, 0.3))) -> NumericReport:
    """A numeric report holding made-up numbers (what the table reads, and the rest empty)."""
    return NumericReport(
        model="fake.onnx", backend="torch", backend_reason="fake", device="cpu", dtype="float32",
        options=BackwardOptions(probes=2, seed=0), input_shapes={"images": (1, 3, 64, 64)},
        parity=Parity(max_abs=0.0, max_rel=0.0, rtol=1e-3, atol=1e-4, compared_at=("h",)), cuts=(),
        curve=tuple(UnitGradient(f"u{d}", f"t{d}", d, g, 10) for d, g in curve), parameters={}, param_flags={},
        ratio=ratio, ratio_rms=ratio, first_units=("c0",),
        blocks=tuple(BlockResult(n, "stage", "fake", "a", "b", g, s, 20, 0.001) for n, g, s in blocks),
        block_source="fake", operator_norms=(), dead={"silu": DeadFraction(dead=dead[0], total=dead[1], units=3)},
        nonfinite=(), backend_agreement=None, verdict=verdict, reason=f"ratio = {ratio}",
    )


#: A fake numeric outcome per generation: some agree with the seed, some do not.
FAKE_BY_GENERATION: dict[str, tuple[Verdict, float]] = {
    "v1": ("vanishing", 2e-4), "v2": ("moderate", 0.05), "v3": ("vanishing", 0.0004), "v4": ("stable", 0.3),
    "v5": ("stable", 0.2), "yolox": ("stable", 0.4), "v6": ("moderate", 0.07), "v7": ("very stable", 0.9),
    "v8": ("vanishing", 3e-4), "v9": ("exploding", 2e3), "v10": ("stable", 0.2), "v11": ("stable", 0.3),
    "v12": ("nan", float("nan")),
}


@pytest.fixture(scope="session")
def sample_table(static_reports: dict[str, Report]) -> StabilityTable:
    rows = []
    for rep in static_reports.values():
        gen = rep.section("fingerprint").generation
        v, r = FAKE_BY_GENERATION[gen]
        rows.append(build_row(rep, fake_numeric(v, r)))
    return make_table(rows, numeric=True, numeric_options={"probes": 2, "seed": 0})


@pytest.fixture(scope="session")
def sample_html(sample_table: StabilityTable) -> str:
    """The HTML report of :func:`sample_table` (rendered once: ~70 matplotlib figures)."""
    from graphpath.formats import get_renderer

    return get_renderer("table", "html")(sample_table)


def evil_model() -> onnx.ModelProto:
    """Two convs and a residual add whose node, tensor and graph names hold ``EVIL``."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32), "w1" + EVIL)
    w2 = numpy_helper.from_array((rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32), "w2" + EVIL)
    nodes = [
        helper.make_node("Conv", ["images", w1.name], ["c1" + EVIL], name="conv1" + EVIL, kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1" + EVIL], ["r1" + EVIL], name="relu" + EVIL),
        helper.make_node("Conv", ["r1" + EVIL, w2.name], ["c2" + EVIL], name="conv2" + EVIL, kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["images", "c2" + EVIL], ["out" + EVIL], name="add" + EVIL),
    ]
    graph = helper.make_graph(
        nodes, "graph" + EVIL,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out" + EVIL, TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=[w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="p" + EVIL)
    model.ir_version = 8
    return model
