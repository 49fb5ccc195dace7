"""The library's front door: one call per CLI command.

>>> from graphpath.analysis import AnalyzeOptions
>>> AnalyzeOptions().sections
('model', 'layers')
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from graphpath import onnx_io
from graphpath.layers import build_layers
from graphpath.report import Report
from graphpath.summary import summarize_layers, summarize_model


@dataclass(frozen=True)
class AnalyzeOptions:
    """What ``analyze`` computes beyond the always-present sections."""

    sections: tuple[str, ...] = ("model", "layers")


def analyze(path: str | os.PathLike[str], options: AnalyzeOptions | None = None) -> Report:
    """Load ``path`` and build its report.

    Raises:
        GraphpathError: the model cannot be read or is invalid.
    """
    _ = options or AnalyzeOptions()
    graph = onnx_io.load(path)
    layers = build_layers(graph)
    return Report(model=summarize_model(graph), layers=summarize_layers(layers))
