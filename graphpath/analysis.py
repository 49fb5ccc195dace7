"""The library's front door: one call per CLI command.

Every function takes a :class:`~graphpath.model.loaded.LoadedModel` (from
:func:`graphpath.onnx_io.open_model`); :func:`analyze` also takes a path and opens it. The layer
view and the detected blocks are built once, on the loaded model, and shared by the structure,
the path analysis and the numeric pass.

>>> AnalyzeOptions().paths, AnalyzeOptions().blocks
(True, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphpath import onnx_io
from graphpath.blocks.base import BlockMatch
from graphpath.model.layers import LayerGraph
from graphpath.model.loaded import LoadedModel
from graphpath.model.summary import summarize_layers, summarize_model
from graphpath.report import Report

if TYPE_CHECKING:
    from graphpath.blocks.notes import ExportNote
    from graphpath.fingerprint.generation import Fingerprint


@dataclass(frozen=True)
class AnalyzeOptions:
    """What ``analyze`` computes beyond the always-present ``model`` and ``layers`` sections."""

    paths: bool = True
    blocks: bool = True
    #: ``--from`` / ``--to`` of ``graphpath paths``: a source unit and one output.
    path_source: str | None = None
    path_target: str | None = None
    #: :class:`~graphpath.numeric.backward.BackwardOptions` to run the numeric pass (``None``: off).
    numeric: Any = None


@dataclass(frozen=True)
class Structure:
    """What the network is: blocks (a forest), flat counts, generation, export-form notes."""

    blocks: tuple[BlockMatch, ...]
    block_counts: dict[str, int]
    fingerprint: Fingerprint
    notes: tuple[ExportNote, ...]

    def sections(self) -> tuple[tuple[str, Any], ...]:
        return (
            ("blocks", self.blocks),
            ("block_counts", dict(self.block_counts)),
            ("fingerprint", self.fingerprint),
            ("export_notes", self.notes),
        )


def structure(model: LoadedModel) -> Structure:
    """Detect blocks, fingerprint the generation and say what the export form hides."""
    from graphpath.blocks import block_counts
    from graphpath.blocks.notes import export_notes
    from graphpath.fingerprint.generation import fingerprint

    graph, layers, blocks = model.graph, model.layers, model.blocks
    counts = block_counts(blocks)
    fp = fingerprint(counts, layers, graph, blocks)
    notes = export_notes(counts, layers, graph, fp.generation)
    return Structure(blocks=blocks, block_counts=counts, fingerprint=fp, notes=notes)


def auxiliary_outputs(layers: LayerGraph, blocks: tuple[BlockMatch, ...]) -> tuple[str, ...]:
    """Output units fed by an auxiliary head (reported apart from the main outputs)."""
    aux_units: set[str] = set()
    todo = list(blocks)
    while todo:
        m = todo.pop()
        if m.kind == "aux_head":
            aux_units |= m.units
        todo.extend(m.children)
    return tuple(
        o for o in layers.outputs
        if o in aux_units or any(p in aux_units for p in layers.dag.predecessors(o))
    )


def analyze(model: LoadedModel | str | os.PathLike[str], options: AnalyzeOptions | None = None, *,
            progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Build the report of ``model`` (a path is opened first) (``progress(done, total, label)`` follows the numeric
    pass when there is one).

    Raises:
        GraphpathError: the model cannot be read or is invalid.
    """
    opts = options or AnalyzeOptions()
    loaded = onnx_io.as_loaded(model)
    graph, layers = loaded.graph, loaded.layers
    sections: list[tuple[str, Any]] = []
    found: Structure | None = structure(loaded) if opts.blocks else None
    if opts.paths:
        from graphpath.paths.analysis import analyze_paths

        aux = auxiliary_outputs(layers, found.blocks) if found else ()
        sections.append(("paths", analyze_paths(
            layers, source=opts.path_source, target=opts.path_target, auxiliary=aux)))
    if found is not None:
        sections.extend(found.sections())
    if opts.numeric is not None:
        from graphpath.numeric.backward import run_backward

        sections.append(("numeric", run_backward(loaded, opts.numeric, progress=progress)))
    return Report(model=summarize_model(graph), layers=summarize_layers(layers), sections=tuple(sections))
