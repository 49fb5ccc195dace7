"""JSON rendering of a :class:`~graphpath.numeric.curvature.CurvatureReport` (pure, sorted keys,
no timings: byte-identical for identical input). The shape is
``graphpath/numeric/curvature/curvature.schema.json`` (shipped as package data)."""

from __future__ import annotations

import json

from graphpath.numeric.curvature.results import CurvatureReport


def render(report: CurvatureReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
