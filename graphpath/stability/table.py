"""The stability table: one row per model, the seed's claims beside graphpath's measurements.

A row holds the static columns (generation, main blocks, units, depth, gradient paths and their
lengths, from :func:`graphpath.analysis.analyze`) and, when the numeric backward pass ran, the
measured columns (ratio ``‖∂L/∂F₀‖/‖∂L/∂F_L‖``, block gains and Jacobian bounds, dead
activations, verdict) from :func:`graphpath.numeric.backward.run_backward`. Where the model's
generation has a row in the seed's table (seed 000, section 18.2), the claimed verdict stands
beside the measured one, marked ``agree``/``disagree``.

Every ``"table"`` renderer of :mod:`graphpath.formats` (``graphpath.formats.table_*``) takes a
:class:`StabilityTable` and nothing else; :meth:`StabilityTable.to_dict` is the JSON form (schema
``graphpath/stability/stability-table.schema.json``).

Rows are built from the typed reports (:func:`build_row`), never from their JSON::

    row = build_row(analyze(model), run_backward(model))
    row.verdict, row.seed_agreement          # ('stable', 'agree')
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from graphpath.numeric.intervals import STRADDLES
from graphpath.paths.counts import ROUND as PATH_ROUND
from graphpath.report import Report, json_safe, round_float
from graphpath.stability.curvature import CurvatureCells, Section, sections
from graphpath.stability.gradient_claims import gradient_sections
from graphpath.stability.seed_claims import (
    GENERATION_ORDER,
    INCONCLUSIVE,
    NOT_AVAILABLE,
    NOT_MEASURED,
    NUMERIC_TO_TABLE,
    SEED_CLAIMS,
    SEED_ROWS,
    VERDICT_GLYPHS,
    VERDICT_RANK,
    SeedClaim,
    StructureCheck,
    architecture,
    seed_structure_check,
    topology_reason,
    verdict_label,
)

if TYPE_CHECKING:
    from graphpath.blocks.base import BlockMatch
    from graphpath.fingerprint.generation import Fingerprint
    from graphpath.model.loaded import LoadedModel
    from graphpath.numeric.intervals import Interval, RankAgreement
    from graphpath.numeric.results import NumericReport
    from graphpath.paths.counts import PathCount
    from graphpath.paths.results import PathReport

TABLE_SCHEMA_VERSION = "2.0"

Progress = Callable[[int, int, str], None]

# --------------------------------------------------------------------------- rows


#: How a row's measured verdict stands against the seed's claim.
Agreement = Literal["agree", "disagree", "inconclusive", "not measured", "no seed row"]


def _finite(x: float | None) -> float | None:
    """``x`` when it is a finite number, else ``None`` (a cell that could not be measured)."""
    return x if x is not None and math.isfinite(x) else None


def _r6(x: float | None) -> float | None:
    return None if x is None else round_float(x, significant=6)


def _path_log2(count: PathCount) -> float | None:
    """A path count's log2 as the paths report states it (6 decimal places)."""
    return None if count.log2 is None else _finite(round_float(count.log2, places=PATH_ROUND))


@dataclass(frozen=True)
class StabilityRow:
    """One model's row. ``None`` is a value that was not computed or could not be measured.

    Attributes:
        model: the file name.
        generation: the fingerprint's generation (``"unknown"`` when absent).
        confidence: the fingerprint's confidence.
        architecture: the main blocks (:func:`architecture`).
        units: layer-view units; ``depth``: weighted units on the longest path.
        paths_log10: log10 of the number of input→output gradient paths.
        shortest_path, longest_path: gradient path lengths (weighted units, endpoints included).
        effective_depth: the mean gradient path length.
        ratio: measured ``‖∂L/∂F₀‖/‖∂L/∂F_L‖`` (numeric pass).
        min_block_gain, max_block_gain: extreme block gains ``‖∂L/∂entry‖/‖∂L/∂exit‖``.
        max_block_jacobian: largest block Jacobian spectral-norm lower bound.
        dead_fraction: dead activation elements over all activations.
        verdict: ``unstable`` / ``moderate`` / ``stable`` / ``very stable`` from the numeric
            verdict; ``not measured`` for static runs; ``n/a`` when the numeric pass failed.
        numeric_verdict: the numeric pass's own verdict word (``vanishing`` …).
        reason: the key reason: topology, measurements, and the seed disagreement if any.
        seed_row, seed_verdict, seed_reason: the seed's claim for this generation.
        seed_structure: whether the graph shows what the seed's reason rests on.
        seed_agreement: ``agree`` / ``disagree`` / ``inconclusive`` (the measured interval
            straddles a verdict boundary) / ``not measured`` / ``no seed row``.
        signal: ``(depth, average channel variance)`` of every weighted unit's feature map, the
            forward view (signal-propagation plot).
        ratio_interval: the ratio's 95 % interval over seeds (``--seeds`` > 1), with the per-seed
            values; ``ratio`` is then its geometric mean.
        curve: ``(depth, relative gradient norm)`` points (plots).
        path_lengths: ``(length, log2 count)`` of the path-length histogram (plots).
        block_gains: ``(block name, block kind, gain)`` of every measured block (plots, the
            block-kind table).
        numeric_error: why the numeric pass gave nothing for this model.
        blocks: the detected blocks (a forest, in the report's order) for the HTML report's
            block map; not in :meth:`to_dict` (``graphpath blocks --format json`` has them).
        curvature: the curvature cells (``report --curvature``), else ``None``.
    """

    model: str
    generation: str
    confidence: float | None
    architecture: str
    units: int | None
    depth: int | None
    paths_log10: float | None
    shortest_path: int | None
    longest_path: int | None
    effective_depth: float | None
    ratio: float | None
    min_block_gain: float | None
    max_block_gain: float | None
    max_block_jacobian: float | None
    dead_fraction: float | None
    verdict: str
    numeric_verdict: str | None
    reason: str
    seed_row: str | None
    seed_verdict: str | None
    seed_reason: str | None
    seed_structure: str | None
    seed_agreement: Agreement
    curve: tuple[tuple[int, float], ...] = ()
    path_lengths: tuple[tuple[int, float], ...] = ()
    block_gains: tuple[tuple[str, str, float], ...] = ()
    numeric_error: str | None = None
    ratio_interval: Interval | None = None
    signal: tuple[tuple[int, float], ...] = ()
    intervals: tuple[tuple[str, Interval], ...] = ()
    blocks: tuple[BlockMatch, ...] = field(default=(), compare=False, repr=False)
    curvature: CurvatureCells | None = None

    def interval_of(self, key: str) -> Interval | None:
        """The interval over seeds behind a measured cell (``ratio``, ``min_block_gain``,
        ``max_block_gain``, ``max_block_jacobian``, ``dead_fraction``), if it was repeated."""
        if key == "ratio":
            return self.ratio_interval
        return dict(self.intervals).get(key)

    @property
    def verdict_label(self) -> str:
        return verdict_label(self.verdict)

    @property
    def seed_verdict_label(self) -> str:
        return verdict_label(self.seed_verdict) if self.seed_verdict else "-"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the schema's ``row``)."""
        out: dict[str, Any] = {
            "model": self.model,
            "generation": self.generation,
            "confidence": self.confidence,
            "architecture": self.architecture,
            "units": self.units,
            "depth": self.depth,
            "paths_log10": self.paths_log10,
            "shortest_path": self.shortest_path,
            "longest_path": self.longest_path,
            "effective_depth": self.effective_depth,
            "ratio": self.ratio,
            "min_block_gain": self.min_block_gain,
            "max_block_gain": self.max_block_gain,
            "max_block_jacobian": self.max_block_jacobian,
            "dead_fraction": self.dead_fraction,
            "verdict": self.verdict,
            "numeric_verdict": self.numeric_verdict,
            "reason": self.reason,
            "seed": {"row": self.seed_row, "verdict": self.seed_verdict, "reason": self.seed_reason,
                     "structure": self.seed_structure, "agreement": self.seed_agreement},
            "curve": [[d, g] for d, g in self.curve],
            "path_lengths": [[n, c] for n, c in self.path_lengths],
            "block_gains": [[n, k, g] for n, k, g in self.block_gains],
            "numeric_error": self.numeric_error,
        }
        if self.signal:  # absent from static tables
            out["signal"] = [[d, v] for d, v in self.signal]
        if self.ratio_interval is not None:  # absent from static and single-seed tables
            out["ratio_interval"] = _interval_dict(self.ratio_interval)
        if self.intervals:  # the other measured cells, over seeds
            out["intervals"] = {k: _interval_dict(iv) for k, iv in self.intervals}
        if self.curvature is not None:  # report --curvature
            out["curvature"] = json_safe(self.curvature.to_dict())
        return out

    def curvature_cell(self, key: str) -> str:
        """A curvature column's text (``-`` without a measurement)."""
        c = self.curvature
        if c is None:
            return "-"
        if key == "gd_check":
            return c.gd_text()
        iv = {"lambda_max": c.lambda_max, "predicted_lr": c.predicted_lr, "trace": c.trace}[key]
        if iv is None or not math.isfinite(iv.mean):
            return "n/a"
        if iv.n == 1 or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
            return f"{iv.mean:.3g}"
        return f"{iv.mean:.3g} [{iv.low:.3g}, {iv.high:.3g}]"



def _interval_dict(iv: Interval) -> dict[str, Any]:
    return {"low": _r6(_finite(iv.low)), "high": _r6(_finite(iv.high)), "n": iv.n, "over": iv.over,
            "values": [_r6(v) for v in iv.values]}


@dataclass(frozen=True)
class _Measured:
    """The measured columns of one row, from its :class:`NumericReport`."""

    verdict: str
    reason: str
    ratio: float | None
    min_block_gain: float | None
    max_block_gain: float | None
    max_block_jacobian: float | None
    dead_fraction: float | None
    curve: tuple[tuple[int, float], ...]
    block_gains: tuple[tuple[str, str, float], ...]
    ratio_interval: Interval | None
    signal: tuple[tuple[int, float], ...]
    intervals: tuple[tuple[str, Interval], ...]


#: Measured cells besides the ratio that carry an interval when the pass was repeated over seeds.
INTERVAL_CELLS = ("min_block_gain", "max_block_gain", "max_block_jacobian", "dead_fraction")


def _measured(numeric: NumericReport) -> _Measured:
    gains = [(b.name, b.kind, g) for b in numeric.blocks if (g := _finite(b.gain)) is not None]
    sigmas = [s for b in numeric.blocks if (s := _finite(b.jacobian_sigma)) is not None]
    dead_n = sum(d.dead for d in numeric.dead.values())
    dead_t = sum(d.total for d in numeric.dead.values())
    iv = numeric.intervals.get("ratio")
    over_seeds = iv is not None and iv.n > 1 and iv.over == "seeds" and _finite(iv.mean) is not None
    # over seeds a cell shows its interval's mean (geometric for ratios, gains and norms)
    cells = {k: c for k in INTERVAL_CELLS
             if (c := numeric.intervals.get(k)) is not None and c.n > 1 and c.over == "seeds"
             and _finite(c.mean) is not None}

    def point(key: str, value: float | None) -> float | None:
        return _r6(cells[key].mean) if key in cells else _r6(value)

    return _Measured(
        verdict=numeric.verdict,
        reason=numeric.reason,
        # over seeds the verdict is decided on the interval: the cell shows its (geometric) mean
        ratio=_r6(_finite(iv.mean if over_seeds and iv is not None else numeric.ratio)),
        min_block_gain=point("min_block_gain", min((g for _, _, g in gains), default=None)),
        max_block_gain=point("max_block_gain", max((g for _, _, g in gains), default=None)),
        max_block_jacobian=point("max_block_jacobian", max(sigmas, default=None)),
        dead_fraction=point("dead_fraction", dead_n / dead_t if dead_t else None),
        curve=tuple((c.depth, _r6(c.rel_grad_norm) or 0.0) for c in numeric.curve
                    if _finite(c.rel_grad_norm) is not None),
        block_gains=tuple((n, k, _r6(g) or 0.0) for n, k, g in gains),
        ratio_interval=iv if iv is not None and iv.n > 1 else None,
        signal=tuple((p.depth, _r6(p.channel_var) or 0.0) for p in numeric.signal
                     if p.kind == "unit" and _finite(p.channel_var) is not None),
        intervals=tuple(cells.items()),
    )


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _key_reason(nf: _Measured | None, numeric_error: str | None, topology: str,
                disagreeing: SeedClaim | None, structure: StructureCheck | None) -> str:
    """The key reason: the measurement first (when there is one), then the topology, then the
    seed's reason when the measurement disagrees with it and the graph cannot show it."""
    parts: list[str] = []
    if nf is not None:
        measured = f"ratio {_g(nf.ratio)} → {nf.verdict}"
        if nf.verdict == INCONCLUSIVE:  # say which two verdicts the interval lies between
            measured += f" ({nf.reason.rsplit(STRADDLES, 1)[-1]})"
        if nf.dead_fraction is not None and nf.dead_fraction >= 0.1:
            measured += f"; {nf.dead_fraction:.0%} dead activations"
        if disagreeing is not None:
            measured = (f"seed claims {disagreeing.verdict} for {disagreeing.row} ({disagreeing.reason}); "
                        f"measured at these weights: {measured}")
        parts.append(measured)
    elif numeric_error is not None:
        parts.append("numeric pass failed: " + " ".join(numeric_error.split()))
    parts.append(topology)
    if disagreeing is not None and structure is not None \
            and structure.outcome in ("not in this graph", "contradicts it", "training-time only"):
        parts.append(f"seed's reason: {structure.text}")
    return "; ".join(p for p in parts if p)


def build_row(report: Report, numeric: NumericReport | None = None,
              *, numeric_error: str | None = None, label: str | None = None) -> StabilityRow:
    """One row from a model's :class:`~graphpath.report.Report` and, if it ran, its
    :class:`~graphpath.numeric.results.NumericReport` (default: the report's own ``numeric``
    section).

    Sections that were not computed give ``None`` cells. ``numeric_error`` says why a numeric
    pass that was asked for gave nothing (the verdict is then ``n/a``). ``label`` names the
    model instead of its file name (see :func:`model_labels`).
    """
    model = label or report.model.file_name
    fp: Fingerprint | None = report.section("fingerprint")
    generation = fp.generation if fp is not None else "unknown"
    counts: dict[str, int] = dict(report.section("block_counts") or {})
    paths: PathReport | None = report.section("paths")
    log2 = _path_log2(paths.total) if paths is not None else None
    hist: tuple[tuple[int, float], ...] = ()
    if paths is not None and paths.histogram is not None:
        hist = tuple((k, lg) for k, c in paths.histogram.bins if (lg := _path_log2(c)) is not None)
    mean_depth = None if paths is None or paths.effective_depth.mean is None \
        else _finite(round_float(paths.effective_depth.mean, places=PATH_ROUND))

    if numeric is None and numeric_error is None:
        numeric = report.section("numeric")
    nf = _measured(numeric) if numeric is not None else None
    if nf is not None:
        verdict = NUMERIC_TO_TABLE.get(nf.verdict, NOT_AVAILABLE)
    elif numeric_error is not None:
        verdict = NOT_AVAILABLE
    else:
        verdict = NOT_MEASURED

    claim = SEED_CLAIMS.get(generation)
    agreement: Agreement
    if claim is None:
        agreement = "no seed row"
    elif verdict in VERDICT_GLYPHS:
        agreement = "agree" if verdict == claim.verdict else "disagree"
    elif verdict == INCONCLUSIVE:
        agreement = "inconclusive"
    else:
        agreement = "not measured"
    structure = seed_structure_check(claim, counts) if claim else None
    topo = topology_reason(counts, log2) if counts else "no blocks detected"
    reason = _key_reason(nf, numeric_error, topo, claim if agreement == "disagree" else None, structure)
    confidence = None if fp is None else _r6(round_float(fp.confidence, places=3))
    return StabilityRow(
        model=model,
        generation=generation,
        confidence=confidence,
        architecture=(f"{fp.variant}: " if fp is not None and fp.variant else "")
        + (architecture(counts) if counts else "-"),
        units=report.layers.unit_total,
        depth=report.layers.depth,
        paths_log10=None if log2 is None else round(log2 * math.log10(2), 2),
        shortest_path=paths.shortest.length if paths is not None else None,
        longest_path=paths.longest.length if paths is not None else None,
        effective_depth=None if mean_depth is None else round(mean_depth, 1),
        ratio=nf.ratio if nf else None,
        min_block_gain=nf.min_block_gain if nf else None,
        max_block_gain=nf.max_block_gain if nf else None,
        max_block_jacobian=nf.max_block_jacobian if nf else None,
        dead_fraction=nf.dead_fraction if nf else None,
        verdict=verdict,
        numeric_verdict=nf.verdict if nf else None,
        reason=reason,
        seed_row=claim.row if claim else None,
        seed_verdict=claim.verdict if claim else None,
        seed_reason=claim.reason if claim else None,
        seed_structure=structure.text if structure else None,
        seed_agreement=agreement,
        curve=nf.curve if nf else (),
        path_lengths=hist,
        block_gains=nf.block_gains if nf else (),
        numeric_error=numeric_error,
        ratio_interval=nf.ratio_interval if nf else None,
        intervals=nf.intervals if nf else (),
        signal=nf.signal if nf else (),
        blocks=tuple(report.section("blocks") or ()),
    )


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class SeedComparison:
    """One seed row against the models that map to it."""

    row: str
    claimed_verdict: str
    claimed_reason: str
    models: tuple[str, ...]
    measured: tuple[str, ...]
    agreement: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "claimed_verdict": self.claimed_verdict, "claimed_reason": self.claimed_reason,
                "models": list(self.models), "measured": list(self.measured), "agreement": self.agreement}


@dataclass(frozen=True)
class StabilityTable:
    """Rows (in generation order, then input order) and the seed comparison."""

    rows: tuple[StabilityRow, ...]
    numeric: bool = False
    numeric_options: Mapping[str, Any] = field(default_factory=dict)

    def columns(self) -> tuple[tuple[str, str], ...]:
        """The ``(key, header)`` columns the text, Markdown and HTML renderers show: all of
        :data:`COLUMNS` when measured, else without the measured ones (all ``n/a``)."""
        if self.numeric:
            if any(r.curvature is not None for r in self.rows):
                cut = [k for k, _ in COLUMNS].index("verdict")
                return COLUMNS[:cut] + CURVATURE_COLUMNS + COLUMNS[cut:]
            return COLUMNS
        return tuple(c for c in COLUMNS if c[0] not in MEASURED_COLUMNS)

    def seed_comparison(self) -> tuple[SeedComparison, ...]:
        """Every seed row, with the models of its generations and their measured verdicts.

        ``agreement``: ``agree`` / ``disagree`` when every model with a definite verdict agrees
        / none does, ``mixed`` otherwise, ``inconclusive`` when every measured model's interval
        straddles a boundary, ``not measured`` without numeric verdicts, ``no model`` when no
        row maps to it.
        """
        out: list[SeedComparison] = []
        for label, gens in SEED_ROWS:
            claim = SEED_CLAIMS[gens[0]]
            rows = [r for r in self.rows if r.generation in gens]
            marks = {r.seed_agreement for r in rows if r.seed_agreement in ("agree", "disagree")}
            if not rows:
                agreement = "no model"
            elif not marks:
                agreement = INCONCLUSIVE if any(r.seed_agreement == INCONCLUSIVE for r in rows) else NOT_MEASURED
            elif len(marks) == 1:
                agreement = marks.pop()
            else:
                agreement = "mixed"
            out.append(SeedComparison(label, claim.verdict, claim.reason, tuple(r.model for r in rows),
                                      tuple(r.verdict for r in rows), agreement))
        return tuple(out)

    def rank_agreement(self) -> RankAgreement | None:
        """Spearman's ρ between the seed's ordinal verdicts (unstable < moderate < stable < very
        stable) and how close each measured ratio is to 1, ``min(r, 1/r)`` (that is
        ``−|log r|``: a ratio of 100 and one of 0.01 are equally far from stable), with a
        bootstrap interval over each model's seeds; ``None`` below three models measured over
        several seeds.

        The raw ratio would rank an exploding network (ratio 100) above a stable one (ratio 1),
        so it cannot be compared with an ordinal stability claim.
        """
        from graphpath.numeric.intervals import rank_agreement

        measured = [(VERDICT_RANK[r.seed_verdict], tuple(min(v, 1.0 / v) for v in r.ratio_interval.values))
                    for r in self.rows
                    if r.ratio_interval is not None and r.seed_verdict in VERDICT_RANK
                    and all(math.isfinite(v) and v > 0 for v in r.ratio_interval.values)]
        if len(measured) < 3:
            return None
        return rank_agreement([c for c, _ in measured], [v for _, v in measured])

    def rank_agreement_line(self) -> str | None:
        """The table's summary sentence on :meth:`rank_agreement` (``None`` without one)."""
        ra = self.rank_agreement() if self.numeric else None
        if ra is None:
            return None
        return f"Seed's verdicts against the measured ratio's closeness to 1, min(r, 1/r): {ra.describe()}"

    def claim_sections(self) -> tuple[Section, ...]:
        """The tables that check the seeds' claims beyond §18.2, as every renderer shows them:
        block gains by kind and PGI (measured rows), then §18.3, G.6 and Proposition 5.1
        (``--curvature``); each group empty when not measured."""
        return (*gradient_sections(self.rows), *sections(self.rows))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``graphpath/stability/stability-table.schema.json``)."""
        out: dict[str, Any] = {
            "schema_version": TABLE_SCHEMA_VERSION,
            "kind": "graphpath.stability-table",
            "numeric": self.numeric,
            "numeric_options": dict(self.numeric_options),
            "seed": {"source": "seed 000, section 18.2 (Stability Table v1-v12)",
                     "comparison": [c.to_dict() for c in self.seed_comparison()]},
            "rows": [r.to_dict() for r in self.rows],
        }
        gradient = gradient_sections(self.rows)
        if gradient:  # measured block gains
            out["gradient_tables"] = [_section_dict(t) for t in gradient]
        tables = sections(self.rows)
        if tables:  # report --curvature
            out["curvature_tables"] = [_section_dict(t) for t in tables]
        ra = self.rank_agreement() if self.numeric else None
        if ra is not None:  # absent without repeated measurements
            out["rank_agreement"] = {"rho": _r6(_finite(ra.rho)), "low": _r6(_finite(ra.low)),
                                     "high": _r6(_finite(ra.high)), "models": ra.models, "resamples": ra.resamples}
        return out


def _section_dict(t: Section) -> dict[str, Any]:
    return {"title": t.title, "intro": t.intro, "head": list(t.head), "body": [list(r) for r in t.body]}


def _order_key(row: StabilityRow, index: int) -> tuple[int, int]:
    rank = GENERATION_ORDER.index(row.generation) if row.generation in GENERATION_ORDER else len(GENERATION_ORDER)
    return rank, index


def make_table(rows: Iterable[StabilityRow], *, numeric: bool = False,
               numeric_options: Mapping[str, Any] | None = None, order: str = "generation") -> StabilityTable:
    """A table from rows: ``order="generation"`` sorts by the seed's generation order (stable,
    so equal generations keep their given order); ``"input"`` keeps the given order."""
    rs = list(rows)
    if order == "generation":
        rs = [r for _, r in sorted(((_order_key(r, i), r) for i, r in enumerate(rs)), key=lambda kv: kv[0])]
    elif order != "input":
        raise ValueError(f"unknown order {order!r}")
    return StabilityTable(rows=tuple(rs), numeric=numeric, numeric_options=dict(numeric_options or {}))


# --------------------------------------------------------------------------- running


def _static_report(path: str) -> Report:
    """Worker: the static report of one model (module level, so it pickles)."""
    from graphpath.analysis import analyze
    from graphpath.errors import GraphpathError

    try:
        return analyze(path)
    except GraphpathError as exc:
        # re-raise as the plain class: subclasses with other constructors do not unpickle
        raise GraphpathError(str(exc)) from None


def _numeric_report(model: LoadedModel, options: Any, progress: Progress | None) -> NumericReport:
    try:
        import torch  # noqa: F401  (run_backward imports it first; turn absence into the install hint)
    except ImportError as exc:
        from graphpath.errors import MissingExtraError

        raise MissingExtraError("torch", "torch", "the numeric backward pass (report --numeric)") from exc
    from graphpath.numeric.backward import run_backward
    from graphpath.numeric.options import BackwardOptions

    return run_backward(model, options if options is not None else BackwardOptions(), progress=progress)


def model_labels(paths: Sequence[str]) -> list[str]:
    """File names, with as many parent folders as it takes to tell equal names apart.

    >>> model_labels(["a/best.onnx", "b/best.onnx", "c/yolov8n.onnx"])
    ['a/best.onnx', 'b/best.onnx', 'yolov8n.onnx']
    """
    parts = [Path(p).parts or (p,) for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(pp[-d:]) for pp, d in zip(parts, depth, strict=True)]
        seen = Counter(labels)
        grow = [i for i, lab in enumerate(labels) if seen[lab] > 1 and depth[i] < len(parts[i])]
        if not grow:
            return labels
        for i in grow:
            depth[i] += 1


def with_curvature(row: StabilityRow, model: LoadedModel, backward_options: Any, curvature: Any) -> StabilityRow:
    """``row`` with its curvature cells: :func:`graphpath.numeric.curvature.run_curvature` on
    ``model`` with ``curvature`` (:class:`~graphpath.numeric.curvature.CurvatureOptions`) under
    the numeric pass's protocol (condition, init, norm, seeds). A curvature failure leaves the
    cells out and says why in the key reason; a missing extra raises."""
    import dataclasses

    from graphpath.errors import GraphpathError, MissingExtraError
    from graphpath.numeric.curvature import run_curvature
    from graphpath.numeric.options import BackwardOptions
    from graphpath.stability.curvature import curvature_cells

    protocol = backward_options if backward_options is not None else BackwardOptions()
    try:
        report = run_curvature(model, dataclasses.replace(curvature, protocol=protocol))
    except MissingExtraError:
        raise
    except GraphpathError as exc:
        return dataclasses.replace(row, reason=f"{row.reason}; curvature not measured: {' '.join(str(exc).split())}")
    return dataclasses.replace(row, curvature=curvature_cells(report))


def model_row(path: str | os.PathLike[str], *, numeric: bool = False, backward_options: Any = None,
              curvature: Any = None) -> tuple[StabilityRow, dict[str, Any] | None]:
    """One model's row, named by its file name, and the numeric options it was measured
    under (``None`` when no numeric pass ran or it failed): the unit of work that the
    registry runner (:mod:`graphpath.registry`) sends to a worker and caches.

    The file is parsed once for both passes. A numeric failure (unsupported op, parity refused)
    is recorded in the row (verdict ``n/a``); a static failure or a missing torch raises
    :class:`~graphpath.errors.GraphpathError`. With ``curvature``
    (:class:`~graphpath.numeric.curvature.CurvatureOptions`) and ``numeric``, the row also gets
    its curvature cells (:func:`with_curvature`).
    """
    from graphpath import onnx_io
    from graphpath.analysis import analyze
    from graphpath.errors import GraphpathError, MissingExtraError

    model = onnx_io.open_model(path)
    rep = analyze(model)
    if not numeric:
        return build_row(rep, None), None
    try:
        num = _numeric_report(model, backward_options, None)
    except MissingExtraError:
        raise
    except GraphpathError as exc:
        return build_row(rep, None, numeric_error=str(exc)), None
    row = build_row(rep, num)
    if curvature is not None:
        row = with_curvature(row, model, backward_options, curvature)
    return row, num.options.echo()


def failed_row(label: str, why: str, *, generation: str = "unknown") -> StabilityRow:
    """The row of a model that gave no result (unreadable, crashed or hung its worker, ran out
    of time or memory): verdict ``n/a`` and ``why`` as the key reason.

    >>> failed_row("m.onnx", "timed out after 5 s").reason
    'not analysed: timed out after 5 s'
    """
    return StabilityRow(
        model=label, generation=generation, confidence=None, architecture="-", units=None, depth=None,
        paths_log10=None, shortest_path=None, longest_path=None, effective_depth=None, ratio=None,
        min_block_gain=None, max_block_gain=None, max_block_jacobian=None, dead_fraction=None,
        verdict=NOT_AVAILABLE, numeric_verdict=None, reason="not analysed: " + " ".join(why.split()),
        seed_row=None, seed_verdict=None, seed_reason=None, seed_structure=None, seed_agreement="no seed row",
    )


def report_models(paths: Sequence[str | os.PathLike[str]], *, numeric: bool = False, jobs: int = 1,
                  progress: Progress | None = None, backward_options: Any = None,
                  order: str = "generation") -> StabilityTable:
    """Analyse every model and build the table.

    Without ``numeric``, the models run in ``jobs`` processes
    (:class:`concurrent.futures.ProcessPoolExecutor`; results are collected in input order, so the
    output does not depend on ``jobs``). With ``numeric``, one model at a time (the numeric pass is
    memory- and core-hungry and dominates): each file is parsed once for both passes. ``progress(done, total,
    label)`` is called after each step (and, with the same ``done``, after each step inside a
    model's numeric pass). A numeric failure on one model (unsupported op, parity
    refused) is recorded in its row (verdict ``n/a``); a static failure or a missing torch raises
    :class:`~graphpath.errors.GraphpathError`.
    """
    from graphpath.errors import GraphpathError, MissingExtraError

    names = [os.fspath(p) for p in paths]
    if not names:
        raise GraphpathError("no models given")
    if jobs < 1:
        raise GraphpathError("--jobs must be at least 1")
    total = len(names) * (2 if numeric else 1)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    labels = model_labels(names)
    if not numeric:
        statics: list[Report] = []
        if jobs == 1 or len(names) == 1:
            for n in names:
                statics.append(_static_report(n))
                tick(f"{Path(n).name}: static")
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=min(jobs, len(names))) as pool:
                for n, rep in zip(names, pool.map(_static_report, names), strict=True):
                    statics.append(rep)
                    tick(f"{Path(n).name}: static")
        rows = [build_row(rep, None, label=label) for rep, label in zip(statics, labels, strict=True)]
        return make_table(rows, numeric=False, order=order)

    # numeric: one model at a time, each file parsed once for both passes
    from graphpath import onnx_io
    from graphpath.analysis import analyze

    rows = []
    opts_dict: dict[str, Any] = {}
    for n, label in zip(names, labels, strict=True):
        model = onnx_io.open_model(n)
        rep = analyze(model)
        tick(f"{Path(n).name}: static")

        def sub(_d: int, _t: int, label: str, name: str = Path(n).name) -> None:
            # steps inside one model's numeric pass: same ``done``, a finer label
            if progress is not None:
                progress(done, total, f"{name}: numeric {label}")

        try:
            num = _numeric_report(model, backward_options, sub)
        except MissingExtraError:
            raise
        except GraphpathError as exc:
            rows.append(build_row(rep, None, numeric_error=str(exc), label=label))
        else:
            opts_dict = num.options.echo()
            rows.append(build_row(rep, num, label=label))
        tick(f"{Path(n).name}: numeric")
    return make_table(rows, numeric=numeric, numeric_options=opts_dict, order=order)


# --------------------------------------------------------------------------- cells


#: (key, header, unit hint) of the flat columns, in table order. Renderers use :func:`cell`.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("generation", "generation"),
    ("architecture", "architecture"),
    ("units", "units"),
    ("depth", "depth"),
    ("paths_log10", "paths (log10)"),
    ("shortest_path", "shortest"),
    ("longest_path", "longest"),
    ("effective_depth", "eff. depth"),
    ("ratio", "grad ratio"),
    ("min_block_gain", "min gain"),
    ("max_block_gain", "max gain"),
    ("max_block_jacobian", "max ‖J‖"),
    ("dead_fraction", "dead"),
    ("verdict", "verdict"),
    ("seed_verdict", "seed claims"),
    ("seed_structure", "seed's reason in graph"),
    ("seed_agreement", "vs seed"),
    ("reason", "key reason"),
)

#: The curvature columns (``report --curvature``), before the verdict.
CURVATURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("lambda_max", "λ_max"),
    ("predicted_lr", "2/λ_max"),
    ("trace", "trace"),
    ("gd_check", "GD check"),
)

CURVATURE_KEYS = frozenset(k for k, _ in CURVATURE_COLUMNS)

#: The columns that only the numeric pass fills (left out of static renderings).
MEASURED_COLUMNS: tuple[str, ...] = ("ratio", "min_block_gain", "max_block_gain", "max_block_jacobian",
                                     "dead_fraction", "seed_agreement")

#: The columns that need no numeric pass (the doc's currency test compares these).
STATIC_COLUMNS: tuple[str, ...] = ("model", "generation", "architecture", "units", "depth", "paths_log10",
                                   "shortest_path", "longest_path", "effective_depth", "seed_verdict",
                                   "seed_structure")


def cell(row: StabilityRow, key: str) -> str:
    """The display text of one cell (shared by the text, Markdown and HTML renderers): a
    measured column that was not measured reads ``n/a``, another missing value ``-``, the
    verdicts their labels, path counts as log10 with two decimals, other floats with three
    significant digits."""
    if key in CURVATURE_KEYS:
        return row.curvature_cell(key)
    v = getattr(row, key)
    if key == "verdict":
        return row.verdict_label
    if key == "seed_verdict":
        return row.seed_verdict_label if row.seed_row is None else f"{row.seed_verdict_label} ({row.seed_row})"
    if v is None:
        return "n/a" if key in ("ratio", "min_block_gain", "max_block_gain", "max_block_jacobian",
                                "dead_fraction") else "-"
    iv = row.interval_of(key) if isinstance(v, float) else None
    if iv is not None:
        return f"{v:.3g} [{iv.low:.3g}, {iv.high:.3g}]"
    if key == "paths_log10":
        return f"{v:.2f}"
    if key == "effective_depth":
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
