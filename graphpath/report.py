"""The contract between analysis and output: frozen dataclasses and their JSON form.

Every ``"report"`` renderer in :mod:`graphpath.formats` takes a :class:`Report` and nothing
else. ``to_dict()`` gives plain, JSON-ready values with sorted keys; the top-level dict
carries ``schema_version``. Later capabilities add sections (``paths``, ``blocks``,
``fingerprint``, ``numeric``); a section that was not computed is absent.

Two helpers for that JSON form live here too, one of each for the whole package:
:func:`round_float` (how floats are rounded for output) and :func:`get_nested` (how a report
dict is read back without raising).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class TensorSummary:
    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype,
                "shape": None if self.shape is None else list(self.shape)}


@dataclass(frozen=True)
class SubgraphSummary:
    node: str
    op_type: str
    attr: str
    node_count: int
    op_histogram: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "attr": self.attr,
                "node_count": self.node_count, "op_histogram": dict(self.op_histogram)}


@dataclass(frozen=True)
class ModelSummary:
    """What the file is: producer, versions, interface, ops and parameters."""

    file_name: str
    sha256: str
    file_bytes: int
    producer_name: str
    producer_version: str
    ir_version: int
    opsets: tuple[tuple[str, int], ...]
    inputs: tuple[TensorSummary, ...]
    outputs: tuple[TensorSummary, ...]
    node_count: int
    op_histogram: tuple[tuple[str, int], ...]
    initializer_count: int
    parameter_count: int
    parameter_bytes: int
    parameter_dtypes: tuple[tuple[str, int], ...]
    custom_domains: tuple[str, ...]
    custom_ops: tuple[tuple[str, int], ...]
    subgraphs: tuple[SubgraphSummary, ...]
    shared_parameters: tuple[tuple[str, int], ...]
    external_data: bool
    dynamic_inputs: bool
    shape_inference: str
    shape_tensor_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "sha256": self.sha256,
            "file_bytes": self.file_bytes,
            "producer": {"name": self.producer_name, "version": self.producer_version},
            "ir_version": self.ir_version,
            "opsets": dict(self.opsets),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "node_count": self.node_count,
            "op_histogram": dict(self.op_histogram),
            "initializer_count": self.initializer_count,
            "parameters": {"count": self.parameter_count, "bytes": self.parameter_bytes,
                           "by_dtype": dict(self.parameter_dtypes)},
            "custom_domains": list(self.custom_domains),
            "custom_ops": dict(self.custom_ops),
            "subgraphs": [s.to_dict() for s in self.subgraphs],
            "shared_parameters": dict(self.shared_parameters),
            "external_data": self.external_data,
            "dynamic_inputs": self.dynamic_inputs,
            "shape_inference": self.shape_inference,
            "shape_tensor_count": self.shape_tensor_count,
        }


@dataclass(frozen=True)
class LayerSummary:
    """The layer view in numbers."""

    unit_counts: tuple[tuple[str, int], ...]
    depth: int
    activations: tuple[tuple[str, int], ...]
    weighted_ops: tuple[tuple[str, int], ...]
    folded_nodes: int

    @property
    def unit_total(self) -> int:
        return sum(n for _, n in self.unit_counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": dict(self.unit_counts),
            "unit_total": self.unit_total,
            "depth": self.depth,
            "activations": dict(self.activations),
            "weighted_ops": dict(self.weighted_ops),
            "folded_nodes": self.folded_nodes,
        }


@dataclass(frozen=True)
class Report:
    """One model's analysis. Optional sections are ``None`` when not computed."""

    model: ModelSummary
    layers: LayerSummary
    sections: tuple[tuple[str, Any], ...] = field(default=())

    def section(self, name: str) -> Any:
        return dict(self.sections).get(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model": self.model.to_dict(),
            "layers": self.layers.to_dict(),
        }
        for name, value in self.sections:
            out[name] = _json_section(value)
        return out


def _json_section(value: Any) -> Any:
    """A section's JSON form: its ``to_dict()``, a list of its items' ``to_dict()``, or itself."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
    return value


# --------------------------------------------------------------------------- reading and rounding


def round_float(x: float, *, places: int | None = None, significant: int | None = None) -> float:
    """``x`` rounded for JSON output to ``places`` decimal places or ``significant`` digits.

    Exactly one of ``places`` and ``significant`` is given. The result is a float, ``-0.0``
    becomes ``0.0`` (so that a value that rounds to zero prints the same whatever its sign),
    and non-finite values come back unchanged: what JSON cannot hold (NaN, ±Inf) is the
    caller's to map, to ``None`` or to a string.

    Raises:
        ValueError: neither or both of ``places`` and ``significant`` are given.

    >>> round_float(2.0 / 3.0, places=6), round_float(-1e-9, places=6)
    (0.666667, 0.0)
    >>> round_float(123456789.0, significant=6), round_float(2.0 / 3.0, significant=6)
    (123457000.0, 0.666667)
    >>> round_float(float("inf"), places=6)
    inf
    """
    if (places is None) == (significant is None):
        raise ValueError("round_float needs exactly one of places= and significant=")
    x = float(x)
    if not math.isfinite(x):
        return x
    if places is not None:
        return round(x, places) + 0.0  # + 0.0 turns -0.0 into 0.0
    return float(f"{x:.{significant}g}") + 0.0


def get_nested(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…``, or ``None`` when a step is missing or not a mapping; never raises.

    How rules and tables read a report's JSON (``Report.to_dict()``, or one loaded from a file),
    where any section or key may be absent.

    >>> report = {"paths": {"shortest": {"length": 7}}}
    >>> get_nested(report, "paths", "shortest", "length"), get_nested(report, "paths", "total", "log2")
    (7, None)
    >>> get_nested({"model": "m.onnx"}, "model", "file_name") is None
    True
    """
    for k in keys:
        if not isinstance(obj, Mapping) or k not in obj:
            return None
        obj = obj[k]
    return obj


def json_safe(value: Any) -> Any:
    """``value`` (nested dicts, lists, tuples) with every non-finite float replaced by ``None``:
    JSON has no NaN or infinity.

    >>> json_safe({"a": [1.0, float("nan")], "b": (float("inf"),)})
    {'a': [1.0, None], 'b': [None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
