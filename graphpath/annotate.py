"""``graphpath annotate``: graphpath's findings written into a copy of the model, where Netron
shows them (node ``doc_string`` and ``metadata_props``; the model's ``metadata_props``).

Every ONNX node folded into a layer-view unit gets its block (kind and label, outermost
first: ``c2f model.2 › residual model.2.m.0``), the unit's depth (weighted units from the
input), the gradient paths through the unit and the shortest and longest path length from it
to the outputs; with a numeric report, the measured relative gradient norm at the unit and the
gain of its innermost measured block, each with the condition it was measured under. The model
gets the generation and its confidence, the path totals, graphpath's version and the numeric
condition. Nothing else changes: the graph, weights, names and order are the original's
(:func:`graphpath.onnx_io.annotated.annotated_copy`).

>>> block_trail([])
''
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphpath import __version__
from graphpath.blocks.base import BlockMatch
from graphpath.errors import GraphpathError
from graphpath.model.layers import unit_depths
from graphpath.model.loaded import LoadedModel
from graphpath.onnx_io.annotated import AnnotatedCopy, NodeNote, annotated_copy

if TYPE_CHECKING:
    from graphpath.numeric.results import NumericReport
    from graphpath.paths.results import PathReport
    from graphpath.report import Report

__all__ = ["PREFIX", "Annotations", "annotate_model", "block_trail", "build_annotations", "external_data_target",
           "numeric_condition",
           "write_annotated"]

#: The key prefix of every ``metadata_props`` entry graphpath writes.
PREFIX = "graphpath."

#: How a nesting of blocks is written (outermost first).
TRAIL_SEPARATOR = " › "


@dataclass(frozen=True)
class Annotations:
    """What goes into the copy: notes by node name (the loader's names) and model entries."""

    nodes: Mapping[str, NodeNote]
    model: Mapping[str, str]


def block_trail(chain: Iterable[BlockMatch]) -> str:
    """``kind label › kind label`` for a chain of nested blocks, outermost first."""
    return TRAIL_SEPARATOR.join(f"{b.kind} {b.label}".strip() for b in chain)


def _chains(blocks: Iterable[BlockMatch]) -> dict[str, tuple[BlockMatch, ...]]:
    """Each unit's innermost chain of blocks (outermost first)."""
    out: dict[str, tuple[BlockMatch, ...]] = {}

    def walk(b: BlockMatch, above: tuple[BlockMatch, ...]) -> None:
        chain = (*above, b)
        for u in b.units:
            if len(chain) > len(out.get(u, ())):
                out[u] = chain
        for c in b.children:
            walk(c, chain)

    for b in blocks:
        walk(b, ())
    return out


def numeric_condition(numeric: NumericReport) -> str:
    """The condition of a numeric run in one line: weights or init (scheme), norm, seeds,
    probes, input size and the probe loss."""
    o = numeric.options
    cond = o.condition if o.condition != "init" else f"init ({o.init})"
    seeds = ", ".join(str(s) for s in o.seed_list)
    size = "the model's input size" if o.imgsz is None else f"imgsz {o.imgsz}"
    return (f"condition {cond}; norm {numeric.norm.mode} (--norm {numeric.norm.requested}); seeds {seeds}; "
            f"{o.probes} probes per seed, mean over them (no per-unit interval: the run's ratio has one); "
            f"{size}; loss Σ⟨c, head⟩ with random cotangents c; backend {numeric.backend}")


def _g(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def build_annotations(model: LoadedModel, report: Report, numeric: NumericReport | None = None) -> Annotations:
    """Notes for every node folded into a unit, and the model's entries.

    ``report`` is :func:`graphpath.analysis.analyze` of ``model`` with paths and blocks;
    ``numeric`` (optional) is :func:`graphpath.numeric.backward.run_backward` of it.
    """
    paths: PathReport | None = report.section("paths")
    blocks: tuple[BlockMatch, ...] = report.section("blocks") or ()
    fp = report.section("fingerprint")
    chains = _chains(blocks)
    depths = unit_depths(model.layers)
    curve = {c.unit: c for c in numeric.curve} if numeric is not None else {}
    # a measured block is the detected block of its kind with its (one) exit tensor: labels repeat
    gains = {(b.kind, b.exit): b for b in numeric.blocks} if numeric is not None else {}
    condition = numeric_condition(numeric) if numeric is not None else ""
    notes: dict[str, NodeNote] = {}
    for unit in model.layers.units():
        if not unit.nodes:
            continue
        lines: list[str] = []
        props: list[tuple[str, str]] = [(PREFIX + "unit", unit.id), (PREFIX + "unit_kind", unit.kind)]
        chain = chains.get(unit.id, ())
        if chain:
            trail = block_trail(chain)
            lines.append(f"block: {trail}")
            props += [(PREFIX + "block", trail), (PREFIX + "block_kind", chain[-1].kind),
                      (PREFIX + "block_label", chain[-1].label)]
        lines.append(f"unit: {unit.id} ({unit.kind} {unit.op_type})")
        if unit.id in depths:
            lines.append(f"depth: {depths[unit.id]} (weighted units from the input)")
            props.append((PREFIX + "depth", str(depths[unit.id])))
        if paths is not None and unit.id in paths.table.pos:
            up = paths.unit(unit.id)
            through = up.through.text()
            lines.append(f"gradient paths through it: {through}")
            props.append((PREFIX + "paths_through", through))
            if up.shortest is not None and up.longest is not None:
                lines.append(f"path length to outputs: {up.shortest} to {up.longest} (weighted units, "
                             "itself included)")
                props += [(PREFIX + "shortest_to_output", str(up.shortest)),
                          (PREFIX + "longest_to_output", str(up.longest))]
        point = curve.get(unit.id)
        if point is not None:
            value = _g(point.rel_grad_norm)
            lines.append(f"measured gradient ‖∂L/∂F‖/‖∂L/∂heads‖: {value}")
            props.append((PREFIX + "rel_grad_norm", value))
        held = next(((b, gains[(b.kind, b.exit[0])]) for b in reversed(chain)
                     if len(b.exit) == 1 and (b.kind, b.exit[0]) in gains), None)
        if held is not None:
            name = block_trail([held[0]])
            lines.append(f"gain of {name} ‖∂L/∂entry‖/‖∂L/∂exit‖: {_g(held[1].gain)}")
            props += [(PREFIX + "block_gain", _g(held[1].gain)), (PREFIX + "block_gain_block", name)]
        if condition and (point is not None or held is not None):
            lines.append("measured under:")
            lines += [f"  {part}" for part in condition.split("; ")]
            props.append((PREFIX + "numeric_condition", condition))
        note = NodeNote(doc="\n".join(lines), props=tuple(props))
        for node in unit.nodes:
            notes[node] = note
    return Annotations(nodes=notes, model=_model_entries(report, paths, fp, numeric, condition))


def _model_entries(report: Report, paths: PathReport | None, fp: Any, numeric: NumericReport | None,
                   condition: str) -> dict[str, str]:
    out = {PREFIX + "version": __version__}
    if fp is not None:
        out[PREFIX + "generation"] = fp.generation + (f" ({fp.variant})" if fp.variant else "")
        out[PREFIX + "confidence"] = f"{fp.confidence:.3f}"
    if paths is not None:
        out[PREFIX + "paths_total"] = paths.total.text()
        for role, count in paths.by_role:
            if not count.is_zero:
                out[PREFIX + f"paths_{role}"] = count.text()
        if paths.shortest.length is not None and paths.longest.length is not None:
            out[PREFIX + "shortest_path"] = str(paths.shortest.length)
            out[PREFIX + "longest_path"] = str(paths.longest.length)
        if paths.effective_depth.mean is not None:
            out[PREFIX + "effective_depth"] = f"{paths.effective_depth.mean:.2f}"
    out[PREFIX + "numeric_condition"] = condition or "not measured (run graphpath annotate --numeric)"
    if numeric is not None:
        out[PREFIX + "verdict"] = f"{numeric.verdict}: {numeric.reason}"
        ratio = numeric.intervals.get("ratio")
        out[PREFIX + "ratio"] = ratio.describe() if ratio is not None else _g(numeric.ratio)
    return out


def annotate_model(model: LoadedModel, *, numeric: Any = None, copy_external_data: str | None = None,
                   progress: Callable[[int, int, str], None] | None = None) -> tuple[Annotations, AnnotatedCopy]:
    """Analyse ``model`` (the numeric pass too when ``numeric`` holds
    :class:`~graphpath.numeric.backward.BackwardOptions`) and build the annotated copy's bytes.

    ``copy_external_data``: a file name to copy the external data into (``None``: the copy keeps
    the original's references).
    """
    from graphpath.analysis import AnalyzeOptions, analyze

    report = analyze(model, AnalyzeOptions(numeric=numeric), progress=progress)
    found = build_annotations(model, report, report.section("numeric"))
    return found, annotated_copy(model, found.nodes, found.model, external_data_location=copy_external_data)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def external_data_target(model: LoadedModel, output: Path, copy_external_data: bool) -> str | None:
    """Where the copy's external data goes: ``None`` keeps the original's references (only
    when the copy sits in the original's folder), else the data file's name beside ``output``.

    Raises:
        GraphpathError: the output is the input; or external data would not resolve from the
            output's folder without ``--copy-external-data``; or the data file would be the
            output itself.
    """
    if _same_file(model.path, output) or model.path.resolve() == output.resolve():
        raise GraphpathError(f"{output}: is the input model; refusing to overwrite it (choose another -o)")
    if not output.resolve().parent.is_dir():
        raise GraphpathError(f"{output}: no such folder {str(output.parent)!r}")
    if output.is_dir():
        raise GraphpathError(f"{output}: is a directory")
    if not model.graph.meta.get("external_data"):
        return None
    if not copy_external_data:
        if output.resolve().parent != model.path.resolve().parent:
            raise GraphpathError(
                f"{model.path}: has external data, which would not resolve from {output.parent}; write "
                "the copy into the model's folder or pass --copy-external-data")
        return None
    return output.name + ".data"


def write_annotated(model: LoadedModel, output: Path, *, numeric: Any = None, copy_external_data: bool = False,
                    write: Callable[[Path, bytes], None],
                    progress: Callable[[int, int, str], None] | None = None) -> Annotations:
    """Annotate ``model`` and write the copy to ``output`` with ``write`` (atomic, from the CLI):
    the data file first (with ``copy_external_data``), then the model. Nothing is written when
    anything fails.

    Raises:
        GraphpathError: see :func:`external_data_target`; or the output or the data file would
            replace one of the input's external-data files.
    """
    location = external_data_target(model, output, copy_external_data)
    found, copy = annotate_model(model, numeric=numeric, copy_external_data=location, progress=progress)
    targets = [output] + ([output.parent / location] if location is not None else [])
    for target in targets:
        for name in copy.external_files:
            if _same_file(model.path.parent / name, target):
                raise GraphpathError(f"{target}: is the input's external-data file; refusing to overwrite it")
    if location is not None and copy.external_data is not None:
        write(output.parent / location, copy.external_data)
    write(output, copy.model)
    return found
