"""The stability table: one row per model, the seed's claims beside graphpath's measurements.

A row holds the static columns (generation, main blocks, units, depth, gradient paths and their
lengths, from :func:`graphpath.analysis.analyze`) and, when the numeric backward pass ran, the
measured columns (ratio ``‖∂L/∂F₀‖/‖∂L/∂F_L‖``, block gains and Jacobian bounds, dead
activations, verdict) from :func:`graphpath.numeric.backward.run_backward`. Where the model's
generation has a row in the seed's table (seed 000, section 18.2), the claimed verdict stands
beside the measured one, marked ``agree``/``disagree``.

Every renderer in ``graphpath.formats.table_*`` takes a :class:`StabilityTable` and nothing
else; :meth:`StabilityTable.to_dict` is the JSON form (schema
``graphpath/stability/stability-table.schema.json``).

>>> row = build_row({"model": {"file_name": "m.onnx"}, "layers": {"unit_total": 3, "depth": 2}}, None)
>>> row.verdict, row.seed_agreement
('not measured', 'no seed row')
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphpath.stability.seed_claims import (
    GENERATION_ORDER,
    NOT_AVAILABLE,
    NOT_MEASURED,
    NUMERIC_TO_TABLE,
    SEED_CLAIMS,
    SEED_ROWS,
    VERDICT_GLYPHS,
    architecture,
    seed_structure_check,
    topology_reason,
    verdict_label,
)

TABLE_SCHEMA_VERSION = "1.0"

Progress = Callable[[int, int, str], None]

# --------------------------------------------------------------------------- rows


def _num(x: Any) -> float | None:
    """A finite float or ``None`` (``"nan"``, ``None``, strings and non-finite values)."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, str):
        try:
            f = float(x)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _r6(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


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
        seed_agreement: ``agree`` / ``disagree`` / ``not measured`` / ``no seed row``.
        curve: ``(depth, relative gradient norm)`` points (plots).
        path_lengths: ``(length, log2 count)`` of the path-length histogram (plots).
        block_gains: ``(block name, gain)`` (plots).
        numeric_error: why the numeric pass gave nothing for this model.
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
    seed_agreement: str
    curve: tuple[tuple[int, float], ...] = ()
    path_lengths: tuple[tuple[int, float], ...] = ()
    block_gains: tuple[tuple[str, float], ...] = ()
    numeric_error: str | None = None

    @property
    def verdict_label(self) -> str:
        return verdict_label(self.verdict)

    @property
    def seed_verdict_label(self) -> str:
        return verdict_label(self.seed_verdict) if self.seed_verdict else "-"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the schema's ``row``)."""
        return {
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
            "block_gains": [[n, g] for n, g in self.block_gains],
            "numeric_error": self.numeric_error,
        }


def _numeric_fields(numeric: Mapping[str, Any]) -> dict[str, Any]:
    """The measured columns from ``NumericReport.to_dict()``, tolerant of missing pieces."""
    v = numeric.get("verdict")
    verdict_value = v.get("value") if isinstance(v, Mapping) else v
    verdict_reason = v.get("reason") if isinstance(v, Mapping) else numeric.get("reason")
    r = numeric.get("ratio")
    ratio = _num(r.get("value") if isinstance(r, Mapping) else r)
    b = numeric.get("blocks")
    items = b.get("items") if isinstance(b, Mapping) else b
    gains: list[tuple[str, float]] = []
    sigmas: list[float] = []
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, Mapping):
            continue
        g = _num(it.get("gain"))
        if g is not None:
            gains.append((str(it.get("name", "")), g))
        s = _num(it.get("jacobian_sigma_lower_bound", it.get("jacobian_sigma")))
        if s is not None:
            sigmas.append(s)
    dead = numeric.get("dead")
    dead_n = dead_t = 0.0
    if isinstance(dead, Mapping):
        for entry in dead.values():
            if isinstance(entry, Mapping):
                dead_n += _num(entry.get("dead")) or 0.0
                dead_t += _num(entry.get("total")) or 0.0
    curve: list[tuple[int, float]] = []
    for c in numeric.get("curve") or ():
        if isinstance(c, Mapping):
            d, g = _int(c.get("depth")), _num(c.get("rel_grad_norm"))
            if d is not None and g is not None:
                curve.append((d, _r6(g) or 0.0))
    return {
        "numeric_verdict": str(verdict_value) if verdict_value is not None else None,
        "numeric_reason": str(verdict_reason) if verdict_reason else "",
        "ratio": _r6(ratio),
        "min_block_gain": _r6(min((g for _, g in gains), default=None)),
        "max_block_gain": _r6(max((g for _, g in gains), default=None)),
        "max_block_jacobian": _r6(max(sigmas, default=None)),
        "dead_fraction": _r6(dead_n / dead_t) if dead_t else None,
        "curve": tuple(curve),
        "block_gains": tuple((n, _r6(g) or 0.0) for n, g in gains),
    }


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def build_row(report: Mapping[str, Any], numeric: Mapping[str, Any] | None,
              *, numeric_error: str | None = None, label: str | None = None) -> StabilityRow:
    """One row from ``Report.to_dict()`` and, if it ran, ``NumericReport.to_dict()``.

    Missing sections give ``None`` cells, never an exception. ``numeric_error`` says why a
    numeric pass that was asked for gave nothing (the verdict is then ``n/a``). ``label``
    names the model instead of its file name (see :func:`model_labels`).
    """
    model = label or str(_get(report, "model", "file_name") or "?")
    fp_raw = report.get("fingerprint")
    fp: Mapping[str, Any] = fp_raw if isinstance(fp_raw, Mapping) else {}
    generation = str(fp.get("generation") or "unknown")
    counts_raw = report.get("block_counts")
    counts: dict[str, int] = ({str(k): int(v) for k, v in counts_raw.items() if isinstance(v, int)}
                              if isinstance(counts_raw, Mapping) else {})
    paths_raw = report.get("paths")
    paths: Mapping[str, Any] = paths_raw if isinstance(paths_raw, Mapping) else {}
    log2 = _num(_get(paths, "total", "log2"))
    hist: list[tuple[int, float]] = []
    for b in _get(paths, "length_histogram", "bins") or ():
        if isinstance(b, Mapping) and _int(b.get("length")) is not None and _num(b.get("log2")) is not None:
            hist.append((int(b["length"]), float(b["log2"])))

    nf = _numeric_fields(numeric) if numeric is not None else None
    if nf is not None:
        nv = nf["numeric_verdict"]
        verdict = NUMERIC_TO_TABLE.get(nv or "", NOT_AVAILABLE)
    elif numeric_error is not None:
        verdict = NOT_AVAILABLE
    else:
        verdict = NOT_MEASURED

    claim = SEED_CLAIMS.get(generation)
    if claim is None:
        agreement = "no seed row"
    elif verdict in VERDICT_GLYPHS:
        agreement = "agree" if verdict == claim.verdict else "disagree"
    else:
        agreement = NOT_MEASURED
    structure = seed_structure_check(claim, counts) if claim else None

    # the key reason: measurement first (when there is one), then topology, then the seed
    topo = topology_reason(counts, log2) if counts else "no blocks detected"
    parts: list[str] = []
    if nf is not None:
        measured = f"ratio {_g(nf['ratio'])} → {nf['numeric_verdict'] or 'n/a'}"
        if nf["dead_fraction"] is not None and nf["dead_fraction"] >= 0.1:
            measured += f"; {nf['dead_fraction']:.0%} dead activations"
        if claim is not None and agreement == "disagree":
            parts.append(f"seed claims {claim.verdict} for {claim.row} ({claim.reason}); "
                         f"measured at these weights: {measured}")
        else:
            parts.append(measured)
        parts.append(topo)
    else:
        if numeric_error is not None:
            parts.append("numeric pass failed: " + " ".join(numeric_error.split()))
        parts.append(topo)
    if agreement == "disagree" and structure is not None \
            and structure.startswith(("not in", "contradicts", "training-time")):
        parts.append(f"seed's reason: {structure}")
    return StabilityRow(
        model=model,
        generation=generation,
        confidence=_r6(_num(fp.get("confidence"))),
        architecture=(f"{fp['variant']}: " if fp.get("variant") else "") + (architecture(counts) if counts else "-"),
        units=_int(_get(report, "layers", "unit_total")),
        depth=_int(_get(report, "layers", "depth")),
        paths_log10=None if log2 is None else round(log2 * math.log10(2), 2),
        shortest_path=_int(_get(paths, "shortest", "length")),
        longest_path=_int(_get(paths, "longest", "length")),
        effective_depth=None if _num(_get(paths, "effective_depth", "mean")) is None
        else round(float(_get(paths, "effective_depth", "mean")), 1),
        ratio=nf["ratio"] if nf else None,
        min_block_gain=nf["min_block_gain"] if nf else None,
        max_block_gain=nf["max_block_gain"] if nf else None,
        max_block_jacobian=nf["max_block_jacobian"] if nf else None,
        dead_fraction=nf["dead_fraction"] if nf else None,
        verdict=verdict,
        numeric_verdict=nf["numeric_verdict"] if nf else None,
        reason="; ".join(p for p in parts if p),
        seed_row=claim.row if claim else None,
        seed_verdict=claim.verdict if claim else None,
        seed_reason=claim.reason if claim else None,
        seed_structure=structure,
        seed_agreement=agreement,
        curve=nf["curve"] if nf else (),
        path_lengths=tuple(hist),
        block_gains=nf["block_gains"] if nf else (),
        numeric_error=numeric_error,
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
            return COLUMNS
        return tuple(c for c in COLUMNS if c[0] not in MEASURED_COLUMNS)

    def seed_comparison(self) -> tuple[SeedComparison, ...]:
        """Every seed row, with the models of its generations and their measured verdicts.

        ``agreement``: ``agree`` / ``disagree`` when every measured model agrees / none does,
        ``mixed`` otherwise, ``not measured`` without numeric verdicts, ``no model`` when no
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
                agreement = NOT_MEASURED
            elif len(marks) == 1:
                agreement = marks.pop()
            else:
                agreement = "mixed"
            out.append(SeedComparison(label, claim.verdict, claim.reason, tuple(r.model for r in rows),
                                      tuple(r.verdict for r in rows), agreement))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``graphpath/stability/stability-table.schema.json``)."""
        return {
            "schema_version": TABLE_SCHEMA_VERSION,
            "kind": "graphpath.stability-table",
            "numeric": self.numeric,
            "numeric_options": dict(self.numeric_options),
            "seed": {"source": "seed 000, section 18.2 (Stability Table v1-v12)",
                     "comparison": [c.to_dict() for c in self.seed_comparison()]},
            "rows": [r.to_dict() for r in self.rows],
        }


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


def _static_report(path: str) -> dict[str, Any]:
    """Worker: the static report dict of one model (module level, so it pickles)."""
    from graphpath.analysis import analyze
    from graphpath.errors import GraphpathError

    try:
        return analyze(path).to_dict()
    except GraphpathError as exc:
        # re-raise as the plain class: subclasses with other constructors do not unpickle
        raise GraphpathError(str(exc)) from None


def _numeric_report(path: str, options: Any, progress: Progress | None) -> dict[str, Any]:
    try:
        import torch  # noqa: F401  (run_backward imports it first; turn absence into the install hint)
    except ImportError as exc:
        from graphpath.errors import MissingExtraError

        raise MissingExtraError("torch", "torch", "the numeric backward pass (report --numeric)") from exc
    from graphpath.numeric.backward import BackwardOptions, run_backward

    opts = options if options is not None else BackwardOptions()
    result: dict[str, Any] = run_backward(path, opts, progress=progress).to_dict()
    return result


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


def report_models(paths: Sequence[str | os.PathLike[str]], *, numeric: bool = False, jobs: int = 1,
                  progress: Progress | None = None, backward_options: Any = None,
                  order: str = "generation") -> StabilityTable:
    """Analyse every model and build the table.

    The static part runs in ``jobs`` processes (:class:`concurrent.futures.ProcessPoolExecutor`;
    results are collected in input order, so the output does not depend on ``jobs``); the numeric
    part runs one model at a time (it is memory- and core-hungry). ``progress(done, total,
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

    statics: list[dict[str, Any]] = []
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

    rows: list[StabilityRow] = []
    opts_dict: dict[str, Any] = {}
    labels = model_labels(names)
    for n, rep, label in zip(names, statics, labels, strict=True):
        if not numeric:
            rows.append(build_row(rep, None, label=label))
            continue
        def sub(_d: int, _t: int, label: str, name: str = Path(n).name) -> None:
            # steps inside one model's numeric pass: same ``done``, a finer label
            if progress is not None:
                progress(done, total, f"{name}: numeric {label}")

        try:
            num = _numeric_report(n, backward_options, sub)
        except MissingExtraError:
            raise
        except GraphpathError as exc:
            rows.append(build_row(rep, None, numeric_error=str(exc), label=label))
        else:
            opts_dict = dict(num.get("options") or {})
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

#: The columns that only the numeric pass fills (left out of static renderings).
MEASURED_COLUMNS: tuple[str, ...] = ("ratio", "min_block_gain", "max_block_gain", "max_block_jacobian",
                                     "dead_fraction", "seed_agreement")

#: The columns that need no numeric pass (the doc's currency test compares these).
STATIC_COLUMNS: tuple[str, ...] = ("model", "generation", "architecture", "units", "depth", "paths_log10",
                                   "shortest_path", "longest_path", "effective_depth", "seed_verdict",
                                   "seed_structure")


def cell(row: StabilityRow, key: str) -> str:
    """The display text of one cell (shared by the text, Markdown and HTML renderers).

    >>> r = build_row({"model": {"file_name": "m.onnx"}, "layers": {"unit_total": 3, "depth": 2}}, None)
    >>> cell(r, "units"), cell(r, "ratio"), cell(r, "verdict")
    ('3', 'n/a', 'not measured')
    """
    v = getattr(row, key)
    if key == "verdict":
        return row.verdict_label
    if key == "seed_verdict":
        return row.seed_verdict_label if row.seed_row is None else f"{row.seed_verdict_label} ({row.seed_row})"
    if v is None:
        return "n/a" if key in ("ratio", "min_block_gain", "max_block_gain", "max_block_jacobian",
                                "dead_fraction") else "-"
    if key == "paths_log10":
        return f"{v:.2f}"
    if key == "effective_depth":
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
