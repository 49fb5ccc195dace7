"""The unit of work: one model under one :class:`Job`, as JSON-ready data.

A worker (local process or Ray task) runs :func:`run_one` and sends back JSON text; the parent
decodes it, and the cache stores that same text. Every run therefore renders from the same data,
whichever way it came: a cached, a local and a Ray run produce the same bytes.

The JSON of a stability row keeps every float as Python wrote it (``repr`` round-trips), so a
row read back is equal to the row computed (:func:`encode_row`, :func:`decode_row`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from graphpath.blocks.base import BlockMatch
    from graphpath.stability.table import StabilityRow

#: What a worker says about one model: ``ok`` (payload: the record's JSON), ``error`` (the
#: model's fault: unreadable, unsupported, out of memory; payload: why) or ``internal`` (a bug in
#: graphpath; payload: the exception).
Status = Literal["ok", "error", "internal"]

#: Test hook, read only in the worker entry (:func:`run_one`): ``"segfault:a.onnx,hang:b.onnx,
#: oom:c.onnx"`` makes the worker crash, hang or allocate without bound on those file names.
FAULT_ENV = "GRAPHPATH_TEST_WORKER_FAULT"


@dataclass(frozen=True)
class Job:
    """What to compute for each model.

    Attributes:
        kind: ``report`` (a stability-table row) or ``audit`` (the report the rules read).
        numeric: also run the numeric backward pass.
        blocks: block detection (audit only; the report always detects blocks).
        backward_options: :class:`~graphpath.numeric.options.BackwardOptions` of the numeric
            pass (``None``: its defaults).
        curvature: :class:`~graphpath.numeric.curvature.CurvatureOptions` of ``report
            --curvature`` (report with ``numeric`` only; ``None``: no curvature).
    """

    kind: Literal["report", "audit"]
    numeric: bool = False
    blocks: bool = True
    backward_options: Any = None
    curvature: Any = None

    @property
    def device(self) -> str:
        return str(getattr(self.backward_options, "device", "auto")) if self.numeric else "cpu"

    def key_material(self) -> dict[str, Any] | None:
        """Everything about the job that changes a model's result, as JSON-ready data;
        ``None`` when the job cannot be keyed (a custom head finder, an unreadable ``--input``
        file), which turns the cache off for it.

        Every field of the numeric options enters, so an option added later invalidates the
        entries it could change without anyone listing it here.
        """
        out: dict[str, Any] = {"kind": self.kind, "numeric": self.numeric,
                               "blocks": self.blocks if self.kind == "audit" else True}
        if not self.numeric:
            return out
        opts = self.backward_options
        if opts is None:
            from graphpath.numeric.options import BackwardOptions

            opts = BackwardOptions()
        if getattr(opts, "head_finder", None) is not None:
            return None
        fields = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name != "head_finder"}
        if fields.get("input_file") is not None:
            try:
                fields["input_file"] = "sha256:" + file_digest(Path(fields["input_file"]))
            except OSError:
                return None
        out["options"] = json.loads(json.dumps(fields, default=_plain, sort_keys=True))
        if self.curvature is not None:
            cfields = {f.name: getattr(self.curvature, f.name) for f in dataclasses.fields(self.curvature)
                       if f.name != "protocol"}
            out["curvature"] = json.loads(json.dumps(cfields, default=_plain, sort_keys=True))
            out["engines_curvature"] = {name: _version(name) for name in ("curvlinops-for-pytorch", "scipy")}
        out["engines"] = {name: _version(name) for name in ("torch", "onnxruntime", "onnxruntime-training")}
        return out


def readable(job: Job, record: Mapping[str, Any]) -> bool:
    """Whether a cached ``record`` is one this code reads back under ``job``: a report's row
    decodes (:func:`decode_row`), an audit's report is a mapping. A record that is not (written
    by another version under the same key, or damaged) is recomputed, never a crash."""
    if job.kind == "audit":
        return isinstance(record.get("report"), Mapping)
    try:
        decode_row(record["row"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def file_digest(path: Path) -> str:
    """SHA-256 of a file (the one the model summary states), memory flat in its size."""
    from graphpath.model.summary import file_sha256

    return file_sha256(path)


# --------------------------------------------------------------------------- rows as JSON


def encode_row(row: StabilityRow) -> dict[str, Any]:
    """A stability row as JSON-ready data that :func:`decode_row` turns back into an equal row
    (its detected blocks included, which the HTML report draws)."""
    out = dataclasses.asdict(dataclasses.replace(row, blocks=(), intervals=(), curvature=None))
    out["blocks"] = [b.to_dict() for b in row.blocks]
    out["curvature"] = None if row.curvature is None else row.curvature.to_dict()
    out["intervals"] = [[key, dataclasses.asdict(iv)] for key, iv in row.intervals]
    return out


def _decode_block(data: Mapping[str, Any]) -> BlockMatch:
    from graphpath.blocks.base import BlockMatch

    return BlockMatch(kind=data["kind"], units=frozenset(data["units"]), nodes=tuple(data["nodes"]),
                      label=data["label"], entry=tuple(data["entry"]), exit=tuple(data["exit"]),
                      params=data["params"], structure=tuple(data["structure"].items()),
                      evidence=data["evidence"], children=tuple(_decode_block(c) for c in data["children"]))


def decode_row(data: Mapping[str, Any]) -> StabilityRow:
    """The row :func:`encode_row` wrote.

    Raises:
        ValueError: ``data`` is not such a row (another version's, or damaged).
    """
    from graphpath.stability.table import StabilityRow

    names = {f.name for f in dataclasses.fields(StabilityRow)}
    if not isinstance(data, Mapping) or set(data) != names:
        raise ValueError("not a stability row of this version")
    d = dict(data)
    for name in ("curve", "path_lengths", "signal", "block_gains"):
        d[name] = tuple(tuple(pair) for pair in d[name])
    from graphpath.numeric.intervals import Interval

    def interval(iv: Mapping[str, Any]) -> Interval:
        return Interval(**{**iv, "values": tuple(iv["values"])})

    if d["ratio_interval"] is not None:  # only rows measured over seeds have intervals
        d["ratio_interval"] = interval(d["ratio_interval"])
    d["intervals"] = tuple((key, interval(iv)) for key, iv in d["intervals"])
    d["blocks"] = tuple(_decode_block(b) for b in d["blocks"])
    if d["curvature"] is not None:
        from graphpath.stability.curvature import CurvatureCells

        d["curvature"] = CurvatureCells.from_dict(d["curvature"])
    return StabilityRow(**d)


# --------------------------------------------------------------------------- the worker side


def _fault(path: str) -> None:
    """The test hook of :data:`FAULT_ENV` (never set outside tests)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name = Path(path).name
    for item in spec.split(","):
        kind, _, target = item.partition(":")
        if target != name:
            continue
        if kind == "segfault":
            import ctypes

            ctypes.string_at(0)  # reads address 0: SIGSEGV
        elif kind == "hang":
            import time

            while True:
                time.sleep(1)
        elif kind == "oom":
            hog = []
            while True:
                hog.append(bytearray(1 << 26))
        elif kind == "bug":
            raise RuntimeError("test hook: a bug in graphpath")


def compute(path: str, job: Job) -> dict[str, Any]:
    """One model's record: ``{"row": …, "options": …}`` for a report, ``{"report": …}`` for an
    audit.

    Raises:
        GraphpathError: the model cannot be analysed.
    """
    if job.kind == "report":
        from graphpath.stability.table import model_row

        row, echo = model_row(path, numeric=job.numeric, backward_options=job.backward_options,
                              curvature=job.curvature)
        return {"row": encode_row(row), "options": echo}
    from graphpath.audit.run import model_report

    return {"report": model_report(path, blocks=job.blocks, numeric=job.numeric,
                                   backward_options=job.backward_options)}


def run_one(path: str, job: Job) -> tuple[Status, str]:
    """The worker entry: ``("ok", record JSON)``, or why not."""
    from graphpath.errors import GraphpathError

    try:
        _fault(path)
        record = compute(path, job)
        return "ok", json.dumps(record, allow_nan=True)
    except GraphpathError as exc:
        return "error", str(exc)
    except MemoryError:
        return "error", "ran out of memory in its worker (--memory-per-model)"
    except RecursionError:
        return "error", "graph too deep for the analysis (recursion limit)"
    except Exception as exc:  # a bug in graphpath: the row says so, the run goes on
        import traceback

        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        print("".join(tb), file=sys.stderr, end="")
        return "internal", f"{type(exc).__name__}: {exc}"
