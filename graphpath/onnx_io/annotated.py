"""An annotated copy of a model: the same graph, weights, names and order, with extra text in
node ``doc_string`` and ``metadata_props`` and in the model's ``metadata_props`` (where Netron
shows them). Used by ``graphpath annotate`` (:mod:`graphpath.annotate`).

Nothing is written here: :func:`annotated_copy` returns bytes, the caller writes them
atomically. External data is either kept as the original's references (the caller writes the
copy beside the original, where they resolve) or copied into one new data file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import onnx

from graphpath.errors import GraphpathError
from graphpath.model.loaded import LoadedModel
from graphpath.onnx_io import load_proto, unique_node_names
from graphpath.onnx_io._proto import external_location

__all__ = ["ANNOTATION_HEADER", "AnnotatedCopy", "NodeNote", "annotated_copy", "check_model_file"]

#: The first line of graphpath's part of a node's ``doc_string``; a second ``annotate`` replaces
#: the part from this line on instead of appending a second one.
ANNOTATION_HEADER = "graphpath:"

_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class NodeNote:
    """What one node gets: ``doc`` (lines after :data:`ANNOTATION_HEADER`) and ``props``
    (``metadata_props`` entries, set or replaced by key)."""

    doc: str
    props: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AnnotatedCopy:
    """The annotated model's bytes and, when copied, its data file's bytes; ``external_files``
    are the original's data files (locations relative to its folder)."""

    model: bytes
    external_data: bytes | None
    annotated_nodes: int
    external_files: tuple[str, ...] = ()


def _with_doc(existing: str, doc: str) -> str:
    """``existing`` (less a previous graphpath part) followed by graphpath's part."""
    mine = f"{ANNOTATION_HEADER}\n{doc}" if doc else ""
    if existing.startswith(ANNOTATION_HEADER + "\n"):
        existing = ""
    else:
        cut = existing.find(_SEPARATOR + ANNOTATION_HEADER + "\n")
        if cut >= 0:
            existing = existing[:cut]
    if not existing:
        return mine
    return existing + _SEPARATOR + mine if mine else existing


def _set_props(props: object, entries: tuple[tuple[str, str], ...] | Mapping[str, str]) -> None:
    items = entries.items() if isinstance(entries, Mapping) else entries
    target: dict[str, onnx.StringStringEntryProto] = {p.key: p for p in props}  # type: ignore[attr-defined]
    for key, value in items:
        if key in target:
            target[key].value = value
        else:
            target[key] = props.add(key=key, value=value)  # type: ignore[attr-defined]


def _tensors(g: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and TENSOR attributes of ``g`` and its subgraphs, in file order (the only
    carriers whose external data the loader accepts)."""
    yield from g.initializer
    for node in g.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _externalize(original: onnx.ModelProto, inlined: onnx.ModelProto, location: str) -> bytes:
    """Move the data of every tensor that is external in ``original`` out of ``inlined`` into
    one buffer (``location``, 64-byte aligned offsets); returns the buffer."""
    buf = bytearray()
    for src, dst in zip(_tensors(original.graph), _tensors(inlined.graph), strict=True):
        if external_location(src) is None:
            continue
        pad = -len(buf) % 64
        buf += b"\0" * pad
        offset, data = len(buf), bytes(dst.raw_data)
        buf += data
        dst.ClearField("raw_data")
        del dst.external_data[:]
        dst.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(data)))):
            dst.external_data.add(key=key, value=value)
    return bytes(buf)


def annotated_copy(model: LoadedModel, nodes: Mapping[str, NodeNote], model_props: Mapping[str, str], *,
                   external_data_location: str | None = None) -> AnnotatedCopy:
    """``model`` with ``nodes`` (keyed by the loader's node names, ``model.graph``) and
    ``model_props`` added; nothing else changes.

    Args:
        external_data_location: ``None`` keeps the original's external-data references as they
            are (valid only beside the original); a file name copies every external tensor's
            bytes into that one file (returned as ``external_data``) and points at it.

    Raises:
        GraphpathError: a name in ``nodes`` is not a node of the model, or the file changed
            since it was read.
    """
    external = bool(model.graph.meta.get("external_data"))
    original = load_proto(model.path) if external else None  # the references as written
    files: tuple[str, ...] = ()
    if original is not None:
        files = tuple(sorted({loc for t in _tensors(original.graph)
                              if (loc := external_location(t)) is not None}))
    proto = original if original is not None and external_data_location is None else model.inlined_proto()
    data: bytes | None = None
    if original is not None and external_data_location is not None:
        data = _externalize(original, proto, external_data_location)
    names = unique_node_names(list(proto.graph.node))
    if len(names) != model.graph.dag.number_of_nodes() or not set(names) <= set(model.graph.dag.nodes):
        raise GraphpathError(f"{model.path}: the file changed since it was read; run again")
    by_name = dict(zip(names, proto.graph.node, strict=True))
    unknown = sorted(set(nodes) - set(by_name))
    if unknown:
        raise GraphpathError(f"{model.path}: no node named {unknown[0]!r} to annotate")
    for name, note in nodes.items():
        node = by_name[name]
        node.doc_string = _with_doc(node.doc_string, note.doc)
        _set_props(node.metadata_props, note.props)
    _set_props(proto.metadata_props, model_props)
    return AnnotatedCopy(model=bytes(proto.SerializeToString()), external_data=data, annotated_nodes=len(nodes),
                         external_files=files)


def check_model_file(path: str) -> None:
    """``onnx.checker`` on the file at ``path`` (external data resolved beside it).

    Raises:
        GraphpathError: the checker's first line.
    """
    try:
        onnx.checker.check_model(path)
    except (onnx.checker.ValidationError, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        raise GraphpathError(f"{path}: onnx.checker: {text[0] if text else type(exc).__name__}") from None
