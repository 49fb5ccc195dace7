"""The one door to ONNX: every ``import onnx`` in graphpath lives in this package (ruff bans it
elsewhere); :mod:`graphpath.onnx_io.training` holds the rewrites for onnxruntime-training.

:func:`load` reads a model without its external data, checks it, and returns the op view
(:class:`~graphpath.model.graph.ModelGraph`). Parameter counts and bytes come from initializer
metadata. External data is read only by :func:`read_arrays` and :func:`load_inlined`, only on
initializers and TENSOR attributes (Constant values), and only from inside the model's folder:
:func:`load_proto` checks every reference in the model (:func:`_all_tensors`) and refuses
external data in any other carrier, which onnx or onnxruntime would resolve on their own.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import networkx as nx
import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph, OpNode, Param, Shape, SubgraphInfo, TensorInfo
from graphpath.model.loaded import LoadedModel
from graphpath.model.ops import DTYPE_BYTES, SHAPE_OPS
from graphpath.onnx_io._proto import (
    constant_value,
    external_location,
    outer_references,
    weight_constant,
    without_bulk_data,
)

__all__ = ["LoadedModel", "as_loaded", "external_data_files", "load", "load_proto", "model_bytes_with_outputs", "onnx_version", "open_model",
           "read_arrays", "uint8_weights_bytes"]

#: Ops through which an initializer keeps its identity (aliasing, dequantisation, casts).
_PASSTHROUGH_STATIC = frozenset(
    {"Identity", "Cast", "DequantizeLinear", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}
)

#: Quantizers of a static tensor: their first output is that tensor, quantized.
_QUANTIZE_STATIC = frozenset({"QuantizeLinear", "DynamicQuantizeLinear"})

_STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})


def onnx_version() -> str:
    return str(onnx.__version__)


def _dtype_name(elem_type: int) -> str:
    try:
        return str(onnx.TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"UNKNOWN({elem_type})"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise GraphpathError(f"{path}: no such file")
    if path.is_dir():
        raise GraphpathError(f"{path}: is a directory, not an ONNX file")
    if not path.is_file():
        raise GraphpathError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise GraphpathError(f"{path}: empty file, not an ONNX model")


def load_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Parse ``path`` without external data and check the basics (IR version, graph present).

    Raises:
        GraphpathError: the file is missing, empty, not an ONNX model, truncated, or of an
            unsupported IR version.
    """
    p = Path(path)
    _check_file(p)
    try:
        with p.open("rb") as fh:
            model = onnx.load(fh, load_external_data=False)
    except DecodeError as exc:
        if "MaxDepth" in str(exc):  # upb's limit of 100 nested messages, three per subgraph level
            raise GraphpathError(
                f"{p}: subgraphs (If/Loop/Scan bodies) nested deeper than the protobuf parser's limit "
                f"of {_PROTOBUF_MAX_DEPTH} message levels (about 30 subgraph levels); "
                "the limit is fixed in the protobuf runtime and cannot be raised"
            ) from None
        raise GraphpathError(f"{p}: not a valid ONNX protobuf (truncated or corrupt): {exc}") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise GraphpathError(f"{p}: cannot read as ONNX: {exc}") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise GraphpathError(f"{p}: not an ONNX model (no IR version or no graph)")
    if model.ir_version > onnx.IR_VERSION:
        raise GraphpathError(
            f"{p}: IR version {model.ir_version} is newer than this onnx ({onnx.__version__}) "
            f"supports (IR {onnx.IR_VERSION}); upgrade onnx"
        )
    if not model.graph.node and not model.graph.output:
        raise GraphpathError(f"{p}: the graph has no nodes and no outputs")
    _check_text(model, p)
    _check_external_data(model, p)
    return model


_PROTOBUF_MAX_DEPTH = 100


def _check_text(model: onnx.ModelProto, path: Path) -> None:
    """Refuse names and strings graphpath reads that are not valid UTF-8 (the protobuf runtime
    hands those back as ``bytes``, which no renderer or name lookup expects)."""

    def bad(where: str, *values: object) -> None:
        for v in values:
            if not isinstance(v, str):
                raise GraphpathError(f"{path}: {where}: {v!r} is not valid UTF-8 text (ONNX strings must be)")

    bad("model", model.producer_name, model.producer_version, model.domain, model.doc_string)
    for m in model.metadata_props:
        bad("model metadata", m.key, m.value)
    for o in model.opset_import:
        bad("opset import", o.domain)
    for f in model.functions:
        bad("function", f.name, f.domain, *f.input, *f.output, *f.attribute)
        for o in f.opset_import:
            bad(f"function {f.name!r} opset import", o.domain)
        _check_nodes_text(f.node, f"function {f.name!r}", bad)
    _check_graph_text(model.graph, "graph", bad)


def _check_graph_text(g: onnx.GraphProto, where: str, bad: Callable[..., None]) -> None:
    bad(where, g.name, g.doc_string)
    for vi in (*g.input, *g.output, *g.value_info):
        bad(f"{where} value info", vi.name)
    for t in g.initializer:
        bad(f"{where} initializer", t.name, *(e.key for e in t.external_data), *(e.value for e in t.external_data))
    for st in g.sparse_initializer:
        bad(f"{where} sparse initializer", st.values.name, st.indices.name)
    _check_nodes_text(g.node, where, bad)


def _check_nodes_text(nodes: Iterable[onnx.NodeProto], where: str, bad: Callable[..., None]) -> None:
    for i, node in enumerate(nodes):
        here = f"{where} node #{i}"
        bad(here, node.name, node.op_type, node.domain, *node.input, *node.output)
        for m in node.metadata_props:
            bad(f"{here} metadata", m.key, m.value)
        for attr in node.attribute:
            bad(f"{here} attribute", attr.name, attr.ref_attr_name)
            if attr.HasField("t"):
                bad(f"{here} attribute {attr.name!r} tensor", attr.t.name,
                    *(e.key for e in attr.t.external_data), *(e.value for e in attr.t.external_data))
            for t in attr.tensors:
                bad(f"{here} attribute {attr.name!r} tensor", t.name,
                    *(e.key for e in t.external_data), *(e.value for e in t.external_data))
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _check_graph_text(sub, f"{here} attribute {attr.name!r}", bad)




# --------------------------------------------------------------------------- external data

#: Where a tensor sits (``"node 'if' attribute 'then_branch'/initializer"``) and, for carriers
#: whose external data graphpath never reads, what the carrier is (``None``: read on demand).
_Located = tuple[onnx.TensorProto, str, str | None]

_MAX_LOCATION = 4096  # bytes, the whole location (PATH_MAX)
_MAX_COMPONENT = 255  # bytes, one path component (NAME_MAX)
_MAX_EXTERNAL_BYTES = 1 << 48  # offsets and lengths past 256 TiB are not weights
_EXTERNAL_KEYS = frozenset({"location", "offset", "length"})
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: int() would take "١٢", " 12", "+1" and "1_2"


_FUNCTION = "model-local function"


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return f"node {node.name!r}" if node.name else f"node #{index} ({node.op_type})"


def _all_tensors(model: onnx.ModelProto) -> Iterator[_Located]:
    """Every ``TensorProto`` in ``model``: initializers and sparse initializers (values and
    indices), node attributes of every tensor kind, subgraphs at any depth, model-local
    functions (their nodes and attribute defaults) and training_info graphs.

    External data is read (by :func:`read_arrays` and :func:`load_inlined`) only on
    initializers and TENSOR attributes of the main graph and its subgraphs; every other
    carrier is named, so that :func:`load_proto` refuses external data in it.
    """
    yield from _graph_tensors(model.graph, "", None)
    for f in model.functions:
        where = f"function {f.domain + '::' + f.name!r}"
        for attr in f.attribute_proto:
            yield from _attr_tensors(attr, f"{where} attribute {attr.name!r}", _FUNCTION)
        for i, node in enumerate(f.node):
            yield from _node_tensors(node, f"{where}/{_node_label(node, i)}", _FUNCTION)
    for i, info in enumerate(model.training_info):
        for field in ("initialization", "algorithm"):
            if info.HasField(field):
                yield from _graph_tensors(getattr(info, field), f"training_info[{i}].{field}/",
                                          "training_info graph")


def _graph_tensors(g: onnx.GraphProto, prefix: str, carrier: str | None) -> Iterator[_Located]:
    for t in g.initializer:
        yield t, f"{prefix}initializer", carrier
    for s in g.sparse_initializer:
        yield from _sparse_tensors(s, f"{prefix}sparse_initializer", carrier or "sparse initializer")
    for i, node in enumerate(g.node):
        yield from _node_tensors(node, prefix + _node_label(node, i), carrier)


def _node_tensors(node: onnx.NodeProto, where: str, carrier: str | None) -> Iterator[_Located]:
    for attr in node.attribute:
        yield from _attr_tensors(attr, f"{where} attribute {attr.name!r}", carrier)


def _attr_tensors(attr: onnx.AttributeProto, where: str, carrier: str | None) -> Iterator[_Located]:
    # Every field, whatever ``type`` claims: a reader that trusts the field would still find it.
    if attr.HasField("t"):
        typed = attr.type == onnx.AttributeProto.TENSOR
        yield attr.t, where, carrier or (None if typed else f"{_attr_type_name(attr)} attribute")
    for k, t in enumerate(attr.tensors):
        yield t, f"{where}[{k}]", carrier or "TENSORS attribute"
    if attr.HasField("sparse_tensor"):
        yield from _sparse_tensors(attr.sparse_tensor, where, carrier or "sparse tensor attribute")
    for k, s in enumerate(attr.sparse_tensors):
        yield from _sparse_tensors(s, f"{where}[{k}]", carrier or "sparse tensor attribute")
    if attr.HasField("g"):
        yield from _graph_tensors(attr.g, f"{where}/", carrier)
    for k, g in enumerate(attr.graphs):
        yield from _graph_tensors(g, f"{where}[{k}]/", carrier)


def _attr_type_name(attr: onnx.AttributeProto) -> str:
    try:
        return str(onnx.AttributeProto.AttributeType.Name(attr.type))
    except ValueError:
        return f"type-{attr.type}"


def _sparse_tensors(s: onnx.SparseTensorProto, where: str, carrier: str) -> Iterator[_Located]:
    yield s.values, f"{where} values", carrier
    yield s.indices, f"{where} indices", carrier


def _shown(location: str) -> str:
    """``location`` quoted for a one-line message (``!r`` shows NUL and newlines), cut short."""
    return repr(location) if len(location) <= 80 else f"{location[:60]!r}... ({len(location)} characters)"


def _tensor_label(path: Path, tensor: onnx.TensorProto, where: str) -> str:
    return f"{path}: tensor {tensor.name!r} ({where})"


def _safe_external_path(base: Path, location: str, label: str) -> Path:
    """Resolve an external-data location, refusing anything that leaves ``base`` or is not a
    plain relative file name: control characters (NUL included), overlong names, absolute
    paths, ``..``, symlinks anywhere on the way, the folder itself, non-regular files.

    ``label`` names the tensor in the one-line message.
    """
    if not location:
        raise GraphpathError(f"{label}: external data without a location")
    what = f"{label}: external data location {_shown(location)}"
    if any(unicodedata.category(c) == "Cc" for c in location):
        raise GraphpathError(f"{what} contains a control character; refusing")
    try:
        encoded = os.fsencode(location)
    except UnicodeEncodeError:
        raise GraphpathError(f"{what} is not a valid file name; refusing") from None
    if len(encoded) > _MAX_LOCATION or any(len(c) > _MAX_COMPONENT for c in re.split(rb"[\\/]", encoded)):
        raise GraphpathError(
            f"{what} is too long ({len(encoded)} bytes; at most {_MAX_COMPONENT} per name and "
            f"{_MAX_LOCATION} in all); refusing"
        )
    if os.path.isabs(location) or location.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", location):
        raise GraphpathError(f"{what} is an absolute path; refusing to read outside the model's folder")
    if ".." in re.split(r"[\\/]", location):
        raise GraphpathError(f"{what} leaves the model's folder; refusing")
    candidate = base / location
    try:
        # Walk every component: a symlink anywhere on the way could point outside.
        walk = base
        for part in Path(location).parts:
            walk = walk / part
            if walk.is_symlink():
                raise GraphpathError(f"{what} is a symlink; refusing to follow it")
        real_base = base.resolve()
        real = candidate.resolve()
        if real == real_base:
            raise GraphpathError(f"{what} is the model's folder, not a file; refusing")
        if real_base not in real.parents:
            raise GraphpathError(f"{what} resolves outside the model's folder; refusing")
        if candidate.exists() and not candidate.is_file():
            raise GraphpathError(f"{what} is not a regular file; refusing")
    except OSError as exc:
        raise GraphpathError(f"{what}: {exc.strerror or exc}") from None
    return candidate


class _ExternalRef(NamedTuple):
    location: str
    file: Path
    offset: int
    length: int | None
    file_size: int | None  # None: the file is missing (read_arrays refuses; metadata still counts)


def _external_ref(base: Path, tensor: onnx.TensorProto, label: str) -> _ExternalRef:
    """Check one external reference: a safe location and numeric offset and length that fit
    in the file (when it is there) and under a sane bound."""
    info: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in _EXTERNAL_KEYS and entry.key in info:
            raise GraphpathError(f"{label}: external data gives {entry.key!r} twice; refusing")
        info[entry.key] = entry.value
    location = info.get("location", "")
    file = _safe_external_path(base, location, label)
    numbers: dict[str, int] = {}
    for key in ("offset", "length"):
        if key not in info:
            continue
        text, what = info[key], f"{label}: external data {key} {_shown(info[key])} in {_shown(location)}"
        if not _DIGITS.fullmatch(text):
            raise GraphpathError(f"{what} is not a non-negative integer; refusing")
        if len(text) > 20 or int(text) > _MAX_EXTERNAL_BYTES:
            raise GraphpathError(f"{what} is past {_MAX_EXTERNAL_BYTES} bytes; refusing")
        numbers[key] = int(text)
    offset, length = numbers.get("offset", 0), numbers.get("length")
    try:
        size = file.stat().st_size if file.is_file() else None
    except OSError as exc:
        raise GraphpathError(
            f"{label}: external data file {_shown(location)}: {exc.strerror or exc}"
        ) from None
    if size is not None and (offset > size or offset + (length or 0) > size):
        raise GraphpathError(
            f"{label}: external data offset {offset} + length {length or 0} runs past the end of "
            f"{_shown(location)} ({size} bytes); refusing"
        )
    return _ExternalRef(location, file, offset, length, size)


def _check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Check every external reference in ``model``; refuse those in carriers never read."""
    for tensor, where, carrier in _all_tensors(model):
        loc = external_location(tensor)
        if loc is None:
            continue
        label = _tensor_label(path, tensor, where)
        if carrier is not None:
            raise GraphpathError(
                f"{label}: external data in a {carrier} is not supported (location {_shown(loc)}); refusing"
            )
        _external_ref(path.parent, tensor, label)


def external_data_files(path: str | os.PathLike[str]) -> tuple[Path, ...]:
    """The files holding ``path``'s external data (each once, sorted by location), checked
    like :func:`load_proto` does: inside the model's folder, no symlink out of it. A file
    that is referenced but missing is left out (reading its tensors fails later, with the
    loader's message). The result cache hashes these beside the model's own bytes.

    Raises:
        GraphpathError: the model cannot be read, or a reference is unsafe.
    """
    p = Path(path)
    model = load_proto(p)
    files: dict[str, Path] = {}
    for tensor, where, _carrier in _all_tensors(model):
        if external_location(tensor) is None:
            continue
        ref = _external_ref(p.parent, tensor, _tensor_label(p, tensor, where))
        if ref.file_size is not None:
            files.setdefault(ref.location, ref.file)
    return tuple(files[k] for k in sorted(files))


# --------------------------------------------------------------------------- attributes


def _attr_value(attr: onnx.AttributeProto) -> Any:
    if attr.type == onnx.AttributeProto.GRAPH:
        return _subgraph_info(attr.name, [attr.g])
    if attr.type == onnx.AttributeProto.GRAPHS:
        return _subgraph_info(attr.name, list(attr.graphs))
    if attr.type == onnx.AttributeProto.TENSOR:
        return _inline_array(attr.t)
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        if value and isinstance(value[0], onnx.TensorProto):
            return tuple(_inline_array(t) for t in value)
        return tuple(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value)
    if isinstance(value, (onnx.TypeProto, onnx.SparseTensorProto)):
        return str(value)
    return value


def _inline_array(t: onnx.TensorProto) -> np.ndarray | None:
    """The value of a tensor held in the file; ``None`` for external data, which only
    :func:`read_arrays` and :func:`load_inlined` read (``numpy_helper.to_array`` would resolve
    it against the working directory)."""
    if external_location(t) is not None:
        return None
    _check_tensor_size(t)
    return numpy_helper.to_array(t)


def _check_tensor_size(t: onnx.TensorProto) -> None:
    """Dims that agree with the bytes a tensor holds, checked before anything decodes it: dims
    claiming 100 GB over 16 values would otherwise be allocated (or fail deep inside numpy)."""
    if any(d < 0 for d in t.dims):
        raise ValueError(f"tensor {t.name!r} has a negative dimension {list(t.dims)}")
    count = math.prod(t.dims)
    itemsize = DTYPE_BYTES.get(_dtype_name(t.data_type))
    if t.HasField("raw_data") and itemsize:
        if len(t.raw_data) != math.ceil(count * itemsize):
            raise ValueError(f"tensor {t.name!r} has dims {list(t.dims)} ({count} elements of "
                             f"{_dtype_name(t.data_type)}) but holds {len(t.raw_data)} bytes")
        return
    fields = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
    held = max(len(getattr(t, f)) for f in fields)
    needed = count * (2 if t.data_type in _COMPLEX else 1)
    if t.data_type not in _PACKED_INT32 and held != needed:
        raise ValueError(f"tensor {t.name!r} has dims {list(t.dims)} ({count} elements) but holds {held} values")


_COMPLEX = frozenset({onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128})
#: Types whose typed payload is int32_data with several elements per entry (sub-byte types).
_PACKED_INT32 = frozenset(
    getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2") if hasattr(onnx.TensorProto, n)
)


def _check_attributes(node: onnx.NodeProto, label: str, opsets: dict[str, int]) -> None:
    """Attributes given once each, of a known kind, and of the type the op's schema declares
    (a ``group`` given as a string or a ``kernel_shape`` as a tensor is refused here, not met
    later by an analysis that trusts the schema)."""
    seen: set[str] = set()
    schema = _schema(node.op_type, node.domain or "ai.onnx", opsets)
    for attr in node.attribute:
        if attr.name in seen:
            raise GraphpathError(f"{label}: attribute {attr.name!r} is given twice")
        seen.add(attr.name)
        if attr.type == onnx.AttributeProto.UNDEFINED:
            raise GraphpathError(f"{label}: attribute {attr.name!r} has no type")
        expected = schema.get(attr.name) if schema else None
        if expected is not None and attr.type != expected and not attr.ref_attr_name:
            raise GraphpathError(
                f"{label}: attribute {attr.name!r} is {_attr_type_name(attr)}, but {node.op_type} takes "
                f"{onnx.AttributeProto.AttributeType.Name(expected)}"
            )


def _schema(op_type: str, domain: str, opsets: dict[str, int]) -> dict[str, int] | None:
    """Attribute name → declared type for a standard op at the model's opset; ``None`` when
    onnx has no schema for it (custom ops, unknown opsets)."""
    if domain not in _STANDARD_DOMAINS or domain not in opsets and not (domain == "ai.onnx" and "" in opsets):
        return None
    return _schema_at(op_type, "" if domain == "ai.onnx" else domain, max(1, opsets.get(domain, 1)))


@functools.lru_cache(maxsize=512)
def _schema_at(op_type: str, domain: str, version: int) -> dict[str, int] | None:
    try:
        schema = onnx.defs.get_schema(op_type, version, domain)
    except onnx.defs.SchemaError:
        return None
    types: dict[str, int] = {}
    for name, a in schema.attributes.items():
        types[name] = int(a.type)  # type: ignore[call-overload]  # a pybind11 enum of AttributeProto's values
    return types


#: What onnx raises on a malformed tensor or attribute (bad sizes, unknown or undefined types).
_DECODE_ERRORS = (ValueError, TypeError, KeyError)


def _count_ops(graphs: Iterable[onnx.GraphProto], hist: Counter[str]) -> int:
    total = 0
    for g in graphs:
        for node in g.node:
            hist[node.op_type] += 1
            total += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    total += _count_ops([attr.g], hist)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    total += _count_ops(attr.graphs, hist)
    return total


def _subgraph_info(name: str, graphs: list[onnx.GraphProto]) -> SubgraphInfo:
    hist: Counter[str] = Counter()
    total = _count_ops(graphs, hist)
    return SubgraphInfo(attr=name, node_count=total, op_histogram=tuple(sorted(hist.items())))




# --------------------------------------------------------------------------- scopes


_TS_NAME = re.compile(r"^/(.+)/[^/]+$")


def _scope(node: onnx.NodeProto) -> str:
    """Name scope from dynamo ``metadata_props`` or a TorchScript-style ``/a/b/Op`` name."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = _string_list(prop.value)
            if scopes:
                return scopes[-1]
    m = _TS_NAME.match(node.name)
    if m:
        return m.group(1).replace("/", ".")
    return ""


_MAX_SCOPES_TEXT = 1 << 16
_PY_STRING = re.compile(r"'((?:[^'\\\n]|\\.)*)'" r'|"((?:[^"\\\n]|\\.)*)"', re.DOTALL)
_PY_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if code[0] in "xuU" and len(code) > 1:
        value = int(code[1:], 16)
        return chr(value) if value <= 0x10FFFF else m.group(0)
    return _SIMPLE_ESCAPES.get(code, m.group(0))


def _string_list(text: str) -> list[str] | None:
    """The strings of a Python list (or tuple) literal of plain string literals, as torch writes
    ``pkg.torch.onnx.name_scopes`` (``"['', 'model.0', 'model.0.conv']"``); ``None`` for
    anything else. A small parser: a string from a model is never handed to ``ast``."""
    s = text.strip()
    if len(s) > _MAX_SCOPES_TEXT or len(s) < 2 or (s[0], s[-1]) not in (("[", "]"), ("(", ")")):
        return None
    items: list[str] = []
    pos, end = 1, len(s) - 1
    while True:
        while pos < end and s[pos].isspace():
            pos += 1
        if pos == end:
            return items
        m = _PY_STRING.match(s, pos, end)
        if not m:
            return None
        body = m.group(1) if m.group(1) is not None else m.group(2)
        items.append(_PY_ESCAPE.sub(_unescape, body))
        pos = m.end()
        while pos < end and s[pos].isspace():
            pos += 1
        if pos < end and s[pos] == ",":
            pos += 1
        elif pos != end:
            return None


# --------------------------------------------------------------------------- shapes


def _shape_of(type_proto: onnx.TypeProto) -> Shape | None:
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return tuple(dims)


def _value_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    dtype = _dtype_name(vi.type.tensor_type.elem_type) if vi.type.HasField("tensor_type") else "?"
    return TensorInfo(name=vi.name, dtype=dtype, shape=_shape_of(vi.type))


def _infer_shapes(model: onnx.ModelProto) -> tuple[dict[str, Shape], str | None]:
    """Shapes by tensor name; carries on (with the reason) where inference fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(without_bulk_data(model), strict_mode=False,
                                                     data_prop=True)
        note = None
    except Exception as exc:  # onnx raises several unrelated types; any failure means "no shapes"
        inferred = model
        note = f"shape inference failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    shapes: dict[str, Shape] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _shape_of(vi.type)
        if s is not None:
            shapes[vi.name] = s
    return shapes, note


# --------------------------------------------------------------------------- params


def _param(t: onnx.TensorProto, name: str | None = None) -> Param:
    dtype = _dtype_name(t.data_type)
    count = math.prod(int(d) for d in t.dims)
    external = external_location(t) is not None
    nbytes = int(math.ceil(count * DTYPE_BYTES.get(dtype, 0)))
    if external:
        for entry in t.external_data:
            if entry.key == "length":
                nbytes = int(entry.value)
    return Param(name=name or t.name, shape=tuple(int(d) for d in t.dims), dtype=dtype,
                 count=count, nbytes=nbytes, external=external)


def _constant_tensors(g: onnx.GraphProto) -> dict[str, Param]:
    """Tensors held by ``Constant`` nodes, by output name. Some exporters (Paddle, older
    TensorFlow converters) keep every weight in a Constant node instead of an initializer;
    treating those values as initializers keeps parameter counts and weight detection the
    same either way (onnxsim-style folding changes nothing). One-element Constants are the
    literals exporters write for every ``x / 6`` or ``x + 3``, not weights, and stay out."""
    out: dict[str, Param] = {}
    for node in g.node:
        t = weight_constant(node)
        if t is not None:
            out[node.output[0]] = _param(t, node.output[0])
    return out




# --------------------------------------------------------------------------- load


def open_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Parse ``path`` once and return what every analysis takes (see
    :class:`~graphpath.model.loaded.LoadedModel`).

    Raises:
        GraphpathError: unreadable, unsafe or structurally invalid models (one-line message).
    """
    p = Path(path)
    model = load_proto(p)
    return LoadedModel(path=p, graph=_build(model, p), source=_ProtoSource(model, p))


def as_loaded(model: LoadedModel | str | os.PathLike[str]) -> LoadedModel:
    """``model`` itself when already loaded, else :func:`open_model` of the path (so public
    functions take either, and a loaded model is never parsed again)."""
    return model if isinstance(model, LoadedModel) else open_model(model)


def load(path: str | os.PathLike[str]) -> ModelGraph:
    """The op view of ``path`` alone (``open_model(path).graph``).

    Raises:
        GraphpathError: unreadable, unsafe or structurally invalid models (one-line message).
    """
    return open_model(path).graph


def unique_node_names(nodes: list[onnx.NodeProto]) -> list[str]:
    """The names graphpath gives a graph's nodes: the node's name, or ``op_type_index`` when it
    has none; repeated names get ``#1``, ``#2`` … in file order."""
    seen: Counter[str] = Counter()
    names = []
    for i, node in enumerate(nodes):
        base = node.name or f"{node.op_type}_{i}"
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base] - 1}")
    return names


class _Wiring(NamedTuple):
    """Who produces each tensor and what each node reads (``(input position, tensor)``; position
    ``-1`` for names a subgraph reads from the enclosing scope), checked and ordered."""

    names: list[str]
    producer: dict[str, int]
    node_inputs: list[list[tuple[int, str]]]
    order: list[int]


def _wiring(g: onnx.GraphProto, inputs: tuple[TensorInfo, ...], init_names: set[str], path: Path) -> _Wiring:
    """Every tensor produced once, every read provided, and a topological order (the file's when
    it is one, else a stable sort); a graph that breaks one of these is refused."""
    names = unique_node_names(list(g.node))
    input_names = {x.name for x in inputs}
    producer: dict[str, int] = {}
    for i, node in enumerate(g.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in init_names or out in input_names:
                raise GraphpathError(f"{path}: tensor {out!r} is produced more than once")
            producer[out] = i

    known = init_names | input_names | set(producer)
    node_inputs: list[list[tuple[int, str]]] = []
    for i, node in enumerate(g.node):
        reads = [(pos, t) for pos, t in enumerate(node.input) if t]
        implicit: set[str] = set()
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                implicit |= outer_references(sub)
        reads += [(-1, t) for t in sorted(implicit)]
        for _, t in reads:
            if t not in known:
                raise GraphpathError(
                    f"{path}: node {names[i]!r} ({node.op_type}) reads tensor {t!r} that no node, "
                    "input or initializer provides"
                )
        node_inputs.append(reads)

    order_graph = nx.DiGraph()
    order_graph.add_nodes_from(range(len(g.node)))
    for i, reads in enumerate(node_inputs):
        for _, t in reads:
            if t in producer:
                order_graph.add_edge(producer[t], i)
    try:
        order = list(nx.lexicographical_topological_sort(order_graph))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(order_graph)
        members = ", ".join(repr(names[a]) for a, _ in cycle[:4])
        raise GraphpathError(f"{path}: the graph has a cycle (through {members})") from None
    return _Wiring(names, producer, node_inputs, order)


def _build(model: onnx.ModelProto, path: Path) -> ModelGraph:
    g = model.graph
    init_names = {t.name for t in g.initializer}
    for t in g.initializer:
        if external_location(t) is None:
            try:
                _check_tensor_size(t)
            except ValueError as exc:
                raise GraphpathError(f"{path}: initializer {exc}") from None
    params = {t.name: _param(t) for t in g.initializer}
    inputs = tuple(_value_info(vi) for vi in g.input if vi.name not in init_names)
    outputs = tuple(_value_info(vi) for vi in g.output)
    if not outputs:
        raise GraphpathError(f"{path}: the graph declares no outputs")
    names, producer, node_inputs, order = _wiring(g, inputs, init_names, path)
    known = init_names | {x.name for x in inputs} | set(producer)
    for o in outputs:
        if o.name not in known:
            raise GraphpathError(f"{path}: graph output {o.name!r} is never produced")

    shapes, shape_note = _infer_shapes(model)
    static = _static_tensors(g, order, node_inputs, init_names)
    constants = _constant_tensors(g)
    params.update(constants)
    origins = _initializer_origins(g, order, init_names | set(constants))

    dag = nx.DiGraph()
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    for i in order:
        node = g.node[i]
        _check_attributes(node, f"{path}: node {names[i]!r} ({node.op_type})", opsets)
        try:
            attrs = {a.name: _attr_value(a) for a in node.attribute}
        except _DECODE_ERRORS as exc:
            raise GraphpathError(
                f"{path}: node {names[i]!r} ({node.op_type}): cannot decode an attribute: {_first_line(exc)}"
            ) from None
        op = OpNode(name=names[i], op_type=node.op_type, domain=node.domain,
                    inputs=tuple(node.input), outputs=tuple(node.output), attrs=attrs)
        owned: dict[str, Param] = {}
        for _, t in node_inputs[i]:
            for src in origins.get(t, ()):
                owned[src] = params[src]
        dag.add_node(
            names[i], op=op, scope=_scope(node), params=tuple(owned.values()),
            shapes={o: shapes.get(o) for o in node.output if o},
            implicit=tuple(t for pos, t in node_inputs[i] if pos == -1),
        )
    for i in order:
        # Collected per producer first: a node may read one tensor 10⁶ times, and growing the
        # edge's tuples read by read would take time quadratic in that.
        edges: dict[int, tuple[dict[str, None], list[int]]] = {}
        for pos, t in node_inputs[i]:
            if t in producer:
                tensors, positions = edges.setdefault(producer[t], ({}, []))
                tensors[t] = None
                positions.append(pos)
        for u, (tensors, positions) in edges.items():
            first = next(iter(tensors))
            kind = "data" if any(t not in static for t in tensors) else "shape"
            dag.add_edge(names[u], names[i], tensor=first, tensors=tuple(tensors), kind=kind,
                         positions=tuple(positions), shape=shapes.get(first))

    custom = sorted({n.domain for n in g.node if n.domain not in _STANDARD_DOMAINS})
    meta: dict[str, Any] = {
        "path": str(path),
        "file_name": path.name,
        "file_bytes": path.stat().st_size,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "ir_version": int(model.ir_version),
        "opsets": dict(sorted(opsets.items())),
        "custom_domains": custom,
        "graph_name": g.name,
        "shape_inference": shape_note or "ok",
        "external_data": any(p.external for p in params.values()),
        "metadata_props": {m.key: m.value for m in model.metadata_props},
    }
    return ModelGraph(
        dag=dag, inputs=inputs, outputs=outputs, params=params,
        shape_tensors=frozenset(static), value_shapes=shapes, meta=meta,
        producer_of={t: names[i] for t, i in producer.items()},
        zero_floor_ops=_zero_floor_ops(g, names),
    )


#: Quantizing ops → the input holding their output zero point.
_OUTPUT_ZERO_POINT = {"QuantizeLinear": 2, "QLinearConv": 7, "QLinearMatMul": 7, "QGemm": 8, "QLinearAdd": 7}
#: A zero point is one value per channel: larger tensors are not decoded to look for one.
_MAX_ZERO_POINTS = 4096
#: Lowest value of each integer type a quantizer writes.
_TYPE_MIN: dict[int, int] = {onnx.TensorProto.UINT8: 0, onnx.TensorProto.INT8: -128, onnx.TensorProto.UINT16: 0,
             onnx.TensorProto.INT16: -32768}


def _zero_floor_ops(g: onnx.GraphProto, names: list[str]) -> frozenset[str]:
    """Names of the quantizing ops whose output zero point is their type's minimum (their integer
    output's lowest value is real zero): see :attr:`ModelGraph.zero_floor_ops`. Only zero points
    held in the file (initializers, Constant nodes) are read; a QuantizeLinear without one has the
    standard's default, uint8 zero point 0."""
    held: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
    for node in g.node:
        const = constant_value(node)
        if const is not None and node.output:
            held[node.output[0]] = const
    found: set[str] = set()
    for i, node in enumerate(g.node):
        pos = _OUTPUT_ZERO_POINT.get(node.op_type)
        if pos is None:
            continue
        zp = node.input[pos] if len(node.input) > pos else ""
        if not zp:
            if node.op_type == "QuantizeLinear" and not any(a.name == "output_dtype" for a in node.attribute):
                found.add(names[i])
            continue
        t = held.get(zp)
        if t is None or t.data_type not in _TYPE_MIN or math.prod(t.dims) > _MAX_ZERO_POINTS:
            continue
        try:
            value = _inline_array(t)
        except ValueError:
            continue
        if value is not None and value.size >= 1 and bool(np.all(value == _TYPE_MIN[int(t.data_type)])):
            found.add(names[i])
    return frozenset(found)


def _static_tensors(
    g: onnx.GraphProto, order: list[int], node_inputs: list[list[tuple[int, str]]],
    init_names: set[str],
) -> set[str]:
    """Tensors computed only from shapes, constants and initializers (edge kind ``shape``).

    A node's outputs are static when every input it reads *at a position that carries
    values* is static; ``Shape``/``Size`` outputs are static whatever they read.
    """
    static = set(init_names)
    for i in order:
        node = g.node[i]
        if node.op_type in SHAPE_OPS or all(t in static for _, t in node_inputs[i]):
            static.update(o for o in node.output if o)
    return static - init_names


def _initializer_origins(g: onnx.GraphProto, order: list[int], init_names: set[str]) -> dict[str, tuple[str, ...]]:
    """For each tensor, the initializers it is (an alias, cast or dequantisation of)."""
    origins: dict[str, tuple[str, ...]] = {n: (n,) for n in init_names}
    for i in order:
        node = g.node[i]
        if node.op_type == "Constant":
            continue
        if node.op_type in _PASSTHROUGH_STATIC and node.input and node.input[0] in origins:
            for o in node.output:
                origins[o] = origins[node.input[0]]
        elif node.op_type in _QUANTIZE_STATIC and node.input and node.input[0] in origins and node.output:
            # a weight the quantizer took for an activation (held by a Constant node, say):
            # its quantized values are the weight's, not its scale and zero point
            origins[node.output[0]] = origins[node.input[0]]
    return origins


# --------------------------------------------------------------------------- data


class _ProtoSource:
    """The parsed protobuf of one file, behind :class:`~graphpath.model.loaded.ModelSource`."""

    def __init__(self, proto: onnx.ModelProto, path: Path) -> None:
        self._proto = proto
        self._path = path

    def arrays(self, names: Iterable[str] | None) -> dict[str, np.ndarray]:
        wanted = None if names is None else set(names)
        out: dict[str, np.ndarray] = {}
        for t in self._proto.graph.initializer:
            if wanted is not None and t.name not in wanted:
                continue
            out[t.name] = _read_array(self._path, t, "initializer")
        for i, node in enumerate(self._proto.graph.node):
            value = constant_value(node)
            if value is None or node.output[0] in out or (wanted is not None and node.output[0] not in wanted):
                continue
            out[node.output[0]] = _read_array(self._path, value, f"{_node_label(node, i)} attribute 'value'")
        return out

    def inlined_proto(self) -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(self._proto)
        for t, where, carrier in _all_tensors(model):
            if carrier is None and external_location(t) is not None:
                _read_external(self._path.parent, t, _tensor_label(self._path, t, where))
        return model

    def serialized(self, outputs: Sequence[str] | None) -> bytes:
        has_external = any(external_location(t) is not None for t, _, _ in _all_tensors(self._proto))
        if outputs is None:
            model = self.inlined_proto() if has_external else self._proto
            return bytes(model.SerializeToString())
        return _with_outputs(self.inlined_proto(), outputs)


def read_arrays(path: str | os.PathLike[str], names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Parameter values of the model at ``path`` by name (``open_model(path).arrays(names)``),
    external data read only from inside the model's folder.

    Parameters are what :func:`load` puts in ``ModelGraph.params``: initializers and the
    tensors of ``Constant`` nodes.
    """
    return open_model(path).arrays(names)


def _read_array(path: Path, tensor: onnx.TensorProto, where: str) -> np.ndarray:
    """One tensor's value, its external data read (checked) from inside the model's folder."""
    label = _tensor_label(path, tensor, where)
    if external_location(tensor) is not None:
        _read_external(path.parent, tensor, label)
    try:
        _check_tensor_size(tensor)
        return numpy_helper.to_array(tensor)
    except _DECODE_ERRORS as exc:  # malformed tensor payloads surface here
        raise GraphpathError(f"{label}: cannot decode: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_external(base: Path, tensor: onnx.TensorProto, label: str) -> None:
    """Fill ``tensor.raw_data`` from its external file after the location, offset and length
    checks; never reads more than the file holds."""
    ref = _external_ref(base, tensor, label)
    if ref.file_size is None:
        raise GraphpathError(f"{label}: external data file {_shown(ref.location)} is missing")
    itemsize = DTYPE_BYTES.get(_dtype_name(tensor.data_type), 0)
    expected = math.ceil(math.prod(int(d) for d in tensor.dims) * itemsize)
    length = ref.length or 0
    try:
        # A symlink or FIFO swapped in after the checks is neither followed nor waited on.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(ref.file, flags | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise GraphpathError(f"{label}: external data {_shown(ref.location)} is not a regular file")
            available = st.st_size - ref.offset
            length = available if ref.length is None else ref.length
            if available < 0 or length > available:
                raise GraphpathError(f"{label}: external data file {_shown(ref.location)} is truncated")
            fh.seek(ref.offset)
            data = fh.read(length)
    except OSError as exc:
        raise GraphpathError(
            f"{label}: cannot read external data file {_shown(ref.location)}: {exc.strerror or exc}"
        ) from None
    except MemoryError:
        raise GraphpathError(
            f"{label}: external data in {_shown(ref.location)} ({length} bytes) does not fit in memory"
        ) from None
    if len(data) < max(length, expected):
        raise GraphpathError(f"{label}: external data file {_shown(ref.location)} is truncated")
    if itemsize and len(data) != expected:
        raise GraphpathError(
            f"{label}: external data in {_shown(ref.location)} holds {len(data)} bytes, but dims "
            f"{list(tensor.dims)} of {_dtype_name(tensor.data_type)} need {expected}"
        )
    tensor.raw_data = data
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


def model_bytes_with_outputs(path: str | os.PathLike[str], outputs: Iterable[str]) -> bytes:
    """The model at ``path`` with external data inlined and its graph outputs replaced by
    ``outputs`` (``open_model(path).serialized(outputs)``)."""
    return open_model(path).serialized(list(outputs))


def _with_outputs(model: onnx.ModelProto, outputs: Iterable[str]) -> bytes:
    """``model`` serialized with its graph outputs replaced by ``outputs``.

    Any tensor name may be an output (intermediate activations, raw head tensors), so that
    onnxruntime can be compared with another evaluator on them. Declared types are kept where
    the graph has them; other outputs are left untyped (onnxruntime infers them).
    """
    g = model.graph
    declared = {vi.name: vi for vi in [*g.input, *g.value_info, *g.output]}
    chosen = [declared.get(name) or helper.make_empty_tensor_value_info(name) for name in outputs]
    copies = []
    for vi in chosen:
        c = onnx.ValueInfoProto()
        c.CopyFrom(vi)
        copies.append(c)
    del g.output[:]
    g.output.extend(copies)
    return bytes(model.SerializeToString())


#: Integer ops → (activation zero-point input, weight input, weight zero-point input).
_U8S8_OPS = {"QLinearConv": (2, 3, 5), "QLinearMatMul": (2, 3, 5), "ConvInteger": (2, 1, 3),
             "MatMulInteger": (2, 1, 3), "QGemm": (2, 3, 5)}


def uint8_weights_bytes(model: LoadedModel, outputs: Sequence[str] | None = None) -> tuple[bytes, int]:
    """``model`` serialized with the int8 constant weights of its uint8-activation integer ops
    (``QLinearConv``, ``QLinearMatMul``, ``ConvInteger``, ``MatMulInteger``, contrib ``QGemm``)
    re-encoded as uint8:
    weight + 128 and weight zero point + 128, as new initializers. By the ONNX definition of these
    ops only ``w − w_zero_point`` enters the sum, so the model computes the same values; what
    changes is the kernel onnxruntime picks (U8U8 instead of U8S8, whose int16 pair sums saturate
    on x86 CPUs without VNNI). Returns the bytes and how many weights were re-encoded (0: the
    bytes are the model's own). With ``outputs``, the graph outputs are replaced by those tensors.
    """
    proto = model.inlined_proto()
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    added: dict[str, str] = {}
    count = 0
    for node in g.node:
        where = _U8S8_OPS.get(node.op_type)
        domains = ("com.microsoft",) if node.op_type == "QGemm" else ("", "ai.onnx")
        if where is None or node.domain not in domains or len(node.input) <= max(where):
            continue
        x_zp, w, w_zp = (node.input[i] for i in where)
        if not (x_zp in inits and w in inits and w_zp in inits):
            continue
        if inits[x_zp].data_type != onnx.TensorProto.UINT8 or inits[w].data_type != onnx.TensorProto.INT8 \
                or inits[w_zp].data_type != onnx.TensorProto.INT8:
            continue
        for i in where[1:]:
            name = node.input[i]
            if name not in added:
                shifted = numpy_helper.to_array(inits[name]).astype(np.int16) + 128
                added[name] = f"{name}__uint8"
                g.initializer.append(numpy_helper.from_array(shifted.astype(np.uint8), added[name]))
            node.input[i] = added[name]
        count += 1
    if outputs is not None:
        return _with_outputs(proto, outputs), count
    return bytes(proto.SerializeToString()), count


# The training rewrites live in their own module of this package (imported on first use: only
# the onnxruntime-training backend needs them); re-exported here so callers keep one door.
_TRAINING_NAMES = frozenset({"TRAINING_LOSS", "TrainingModel", "parse_model_bytes", "training_model"})
__all__ += sorted(_TRAINING_NAMES)

if TYPE_CHECKING:
    from graphpath.onnx_io.training import TRAINING_LOSS as TRAINING_LOSS
    from graphpath.onnx_io.training import TrainingModel as TrainingModel
    from graphpath.onnx_io.training import parse_model_bytes as parse_model_bytes
    from graphpath.onnx_io.training import training_model as training_model


def __getattr__(name: str) -> Any:
    if name in _TRAINING_NAMES:
        from graphpath.onnx_io import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
