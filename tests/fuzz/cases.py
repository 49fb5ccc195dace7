"""Hostile models for graphpath: a seeded, structure-aware mutation generator.

A :class:`Case` is one model file (bytes) plus the files beside it in the model's folder. Cases
come from :func:`make_case`, which takes a :class:`Chooser`: every random decision goes through
it, so the same generator runs from a seed (:class:`RandomChooser`, for ``bench/fuzz.py``) or
from hypothesis (:class:`HypothesisChooser`, which shrinks a failure to the smallest base model
and the first mutations of each kind).

Mutation classes (the rows of the campaign's table):

- ``bytes``: protobuf byte flips, truncation, inserted garbage;
- ``nodes``: deleted and rewired nodes, cycles, duplicate names, unknown ops, missing outputs;
- ``initializers``: missing, duplicated, shadowing and mis-sized initializers;
- ``attributes``: attributes of the wrong type or with hostile values;
- ``versions``: bad opsets and IR versions;
- ``dtypes``: odd element types on weights and inputs;
- ``values``: NaN, Inf and 3e38 weights;
- ``names``: non-UTF-8, huge, control-character and markup names, hostile metadata;
- ``external``: external-data references in every carrier, safe and hostile;
- ``bombs``: resource bombs (a node with 10⁶ inputs, dims of 2⁴⁰, a tensor read 500 000
  times, 50-deep nested If/Loop, a 200 000-node chain, a 2 GB sparse external file).

The folder layout the harness builds (:mod:`tests.fuzz.harness`) puts canaries *outside* the
model's folder; an external reference marked ``hostile`` must be refused.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import onnx
import onnx.parser
from onnx import AttributeProto, TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"

#: Name of the canary beside the model's folder (and of the real weights inside it).
CANARY_NAME = "weights.bin"
#: Bytes every canary starts with: seeing them in any output means a canary was read.
CANARY_MARK = b"GPCANARY"

T = TypeVar("T")


class Chooser(Protocol):
    """Where the generator's random decisions come from."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``; shrinks towards ``lo``."""
        ...

    def choice(self, items: Sequence[T]) -> T:
        """One of ``items``; shrinks towards the first."""
        ...


class RandomChooser:
    """Decisions from a seeded :class:`random.Random`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, items: Sequence[T]) -> T:
        return items[self.rng.randrange(len(items))]


class HypothesisChooser:
    """Decisions drawn from hypothesis' ``st.data()`` (so failures shrink)."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self._data, self._st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return int(self._data.draw(self._st.integers(lo, hi)))

    def choice(self, items: Sequence[T]) -> T:
        return items[self._data.draw(self._st.integers(0, len(items) - 1))]


@dataclass(frozen=True)
class Extra:
    """A file beside the model: ``kind`` is ``file`` (``data`` its bytes), ``sparse`` (a sparse
    file of ``size`` bytes), ``symlink`` (to ``target``, relative to the model's folder),
    ``fifo`` or ``dir``."""

    name: str
    kind: str = "file"
    data: bytes = b""
    size: int = 0
    target: str = ""


@dataclass(frozen=True)
class Case:
    """One hostile input: the model's bytes, files beside it, and what it is."""

    klass: str
    label: str
    model: bytes
    extras: tuple[Extra, ...] = ()
    #: The model must be refused (exit 2): a hostile external-data reference.
    hostile: bool = False
    #: Commands that may take longer (resource bombs): the harness multiplies their timeout.
    heavy: bool = False


# --------------------------------------------------------------------------- base models

_RESIDUAL = """
<ir_version: 8, opset_import: ["" : 17]>
residual (float[1,4,8,8] x) => (float[1,4,8,8] y)
<float[4,4,1,1] w1, float[4,4,3,3] w2, float[4] b2>
{
    c1 = Conv <kernel_shape = [1, 1]> (x, w1)
    s1 = Sigmoid (c1)
    a1 = Mul (c1, s1)
    c2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], group = 1> (a1, w2, b2)
    s2 = Sigmoid (c2)
    a2 = Mul (c2, s2)
    y = Add (x, a2)
}
"""

_CSP = """
<ir_version: 8, opset_import: ["" : 17]>
csp (float[1,8,16,16] x) => (float[1,8,8,8] y)
<float[8,8,1,1] w0, float[4,4,3,3] w1, float[8,12,1,1] w2, int64[2] split>
{
    c0 = Conv <kernel_shape = [1, 1]> (x, w0)
    r0 = Relu (c0)
    a, b = Split <axis = 1> (r0, split)
    c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (b, w1)
    r1 = Relu (c1)
    s = Add (b, r1)
    cat = Concat <axis = 1> (a, b, s)
    c2 = Conv <kernel_shape = [1, 1]> (cat, w2)
    y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (c2)
}
"""

_MLP = """
<ir_version: 8, opset_import: ["" : 17]>
mlp (float[2,16] x) => (float[2,4] y)
<float[16,32] w1, float[32] b1, float[32,4] w2>
{
    h = MatMul (x, w1)
    hb = Add (h, b1)
    r = Relu (hb)
    shp = Shape (r)
    r2 = Reshape (r, shp)
    y = MatMul (r2, w2)
}
"""


def _split_fix(model: onnx.ModelProto) -> onnx.ModelProto:
    for t in model.graph.initializer:
        if t.name == "split":
            t.CopyFrom(numpy_helper.from_array(np.array([4, 4], np.int64), "split"))
    return model


def _parsed(text: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    g = model.graph
    rng = np.random.default_rng(0)
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    keep = []
    for vi in g.value_info:
        if vi.name in produced:
            keep.append(vi)
            continue
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        value = (rng.standard_normal(dims) * 0.3).astype(dtype)
        g.initializer.append(numpy_helper.from_array(value, vi.name))
    del g.value_info[:]
    g.value_info.extend(keep)
    return _split_fix(model)


def _vi(name: str, dims: Sequence[int | str] | None, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def _if_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"], name="then_mm")], "then",
                               [], [_vi("t", [1, 4])])
    const = helper.make_node("Constant", [], ["k"], name="else_k",
                             value=numpy_helper.from_array(np.full((1, 4), 2, np.float32), "k"))
    else_g = helper.make_graph([const, helper.make_node("Mul", ["x", "k"], ["e"], name="else_mul")],
                               "else", [], [_vi("e", [1, 4])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
        helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
        helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name="if"),
    ]
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    g = helper.make_graph(nodes, "ifg", [_vi("x", [1, 4])], [_vi("y", [1, 4])], [w, zero])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _function_model() -> onnx.ModelProto:
    body = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(4, np.float32), "c")),
            helper.make_node("Add", ["a", "c"], ["b"])]
    f = helper.make_function("local", "AddC", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("AddC", ["h"], ["y"], domain="local", name="addc")]
    g = helper.make_graph(nodes, "fg", [_vi("x", [1, 4])], [_vi("y", [1, 4])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                             functions=[f])


def _loop_model() -> onnx.ModelProto:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("MatMul", ["v_in", "w"], ["v_out"])],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("v_in", [1, 4])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("v_out", [1, 4])])
    trip = numpy_helper.from_array(np.array(2, np.int64), "trip")
    cond = numpy_helper.from_array(np.array(True), "cond")
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body, name="loop")],
                          "loopg", [_vi("x", [1, 4])], [_vi("y", [1, 4])], [trip, cond, w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


TINY: dict[str, Callable[[], onnx.ModelProto]] = {
    "residual": lambda: _parsed(_RESIDUAL),
    "csp": lambda: _parsed(_CSP),
    "mlp": lambda: _parsed(_MLP),
    "if": _if_model,
    "function": _function_model,
    "loop": _loop_model,
}


def reference_models() -> list[str]:
    """The reference models of ``models/`` (the smallest first, so hypothesis shrinks to them)."""
    return sorted((p.name for p in MODELS.glob("*.onnx")), key=lambda n: (MODELS / n).stat().st_size)


@lru_cache(maxsize=64)
def _base_bytes(name: str) -> bytes:
    if name in TINY:
        return bytes(TINY[name]().SerializeToString())
    return (MODELS / name).read_bytes()


def base_model(name: str) -> onnx.ModelProto:
    """A fresh copy of a base model (tiny graph or reference model)."""
    model = onnx.ModelProto()
    model.ParseFromString(_base_bytes(name))
    return model


def _pick_base(ch: Chooser, reference_share: int = 4) -> str:
    """A tiny graph most of the time, a reference model one time in ``reference_share``."""
    refs = reference_models()
    if refs and ch.integer(0, reference_share - 1) == reference_share - 1:
        return ch.choice(refs)
    return ch.choice(list(TINY))


# --------------------------------------------------------------------------- helpers


def _all_graphs(g: onnx.GraphProto) -> list[onnx.GraphProto]:
    out = [g]
    for node in g.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                out += _all_graphs(attr.g)
            for sub in attr.graphs:
                out += _all_graphs(sub)
    return out


def _tensor_names(g: onnx.GraphProto) -> list[str]:
    names = [i.name for i in g.input] + [t.name for t in g.initializer]
    for node in g.node:
        names += [o for o in node.output if o]
    return names or ["x"]


def _node(ch: Chooser, g: onnx.GraphProto) -> onnx.NodeProto | None:
    return g.node[ch.integer(0, len(g.node) - 1)] if g.node else None


def _serialize(model: onnx.ModelProto) -> bytes:
    return bytes(model.SerializeToString())


def _vector(name: str, n: int = 4) -> TensorProto:
    return numpy_helper.from_array(np.ones(n, np.float32), name)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# --------------------------------------------------------------------------- mutations


def _m_bytes(ch: Chooser) -> Case:
    base = _pick_base(ch)
    data = bytearray(_base_bytes(base))
    how = ch.choice(["flip", "truncate", "insert", "zero", "flip-many"])
    if how == "truncate":
        data = data[: ch.integer(0, len(data) - 1)]
    elif how == "insert":
        at = ch.integer(0, len(data))
        data[at:at] = bytes(ch.integer(0, 255) for _ in range(ch.integer(1, 16)))
    elif how == "zero":
        at = ch.integer(0, len(data) - 1)
        data[at: at + ch.integer(1, 64)] = b"\0" * len(data[at: at + 64])
    else:
        for _ in range(1 if how == "flip" else ch.integer(2, 32)):
            at = ch.integer(0, len(data) - 1)
            data[at] ^= 1 << ch.integer(0, 7)
    return Case("bytes", f"{base}: {how}", bytes(data))


def _m_nodes(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    graphs = _all_graphs(model.graph)
    g = ch.choice(graphs)
    how = ch.choice(["delete", "rewire", "cycle", "self-loop", "dup-output", "dup-name", "unknown-op",
                     "no-outputs", "drop-all", "empty-input", "extra-output", "output-is-input", "dangling"])
    node = _node(ch, g)
    if node is None:
        how = "drop-all"
    assert node is not None or how == "drop-all"
    if how == "delete" and node is not None:
        g.node.remove(node)
    elif how == "rewire" and node is not None and node.input:
        node.input[ch.integer(0, len(node.input) - 1)] = ch.choice(_tensor_names(g))
    elif how == "cycle" and node is not None and len(g.node) > 1:
        later = g.node[ch.integer(0, len(g.node) - 1)]
        if later.output:
            if node.input:
                node.input[0] = later.output[0]
            else:
                node.input.append(later.output[0])
    elif how == "self-loop" and node is not None and node.output:
        node.input.append(node.output[0])
    elif how == "dup-output" and node is not None:
        other = _node(ch, g)
        if other is not None and other.output and node.output:
            node.output[0] = other.output[0]
        elif g.initializer and node.output:
            node.output[0] = g.initializer[0].name
    elif how == "dup-name" and node is not None:
        for n in g.node:
            n.name = node.name or "same"
    elif how == "unknown-op" and node is not None:
        node.op_type = ch.choice(["", "NoSuchOp", "Conv\0", "If", "Loop", "Scan", "Constant"])
        node.domain = ch.choice(["", "com.acme", "ai.onnx", "\x7f"])
    elif how == "no-outputs":
        del g.output[:]
    elif how == "drop-all":
        del g.node[:]
    elif how == "empty-input" and node is not None:
        node.input.extend([""] * ch.integer(1, 4))
    elif how == "extra-output":
        g.output.append(_vi(ch.choice(["nowhere", *(_tensor_names(g))]), None))
    elif how == "output-is-input" and g.input:
        g.output.append(g.input[0])
    elif how == "dangling" and node is not None:
        node.input.append("never_produced")
    return Case("nodes", f"{base}: {how}", _serialize(model))


def _m_initializers(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    g = ch.choice(_all_graphs(model.graph))
    how = ch.choice(["missing", "duplicate", "shadow-input", "short-data", "long-data", "no-data",
                     "dims-negative", "dims-huge", "raw-and-typed", "segment"])
    if not g.initializer:
        g.initializer.append(_vector("w_extra"))
    t = g.initializer[ch.integer(0, len(g.initializer) - 1)]
    if how == "missing":
        g.initializer.remove(t)
    elif how == "duplicate":
        g.initializer.append(t)
    elif how == "shadow-input" and g.input:
        dup = g.initializer.add()
        dup.CopyFrom(_vector(g.input[0].name))
    elif how == "short-data":
        t.raw_data = bytes(t.raw_data[: len(t.raw_data) // 2 + 1]) if t.raw_data else b"\1"
    elif how == "long-data":
        t.raw_data = bytes(t.raw_data) + b"\0" * 13
    elif how == "no-data":
        t.ClearField("raw_data")
        del t.float_data[:]
        del t.int64_data[:]
    elif how == "dims-negative":
        t.dims[:] = [-1, *list(t.dims)[1:]] if t.dims else [-3]
    elif how == "dims-huge":
        t.dims[:] = [1 << 40, 1 << 30]
    elif how == "raw-and-typed":
        t.float_data.extend([1.0, 2.0])
    elif how == "segment":
        t.segment.begin, t.segment.end = 0, 1 << 62
    return Case("initializers", f"{base}: {how}", _serialize(model))


_ATTR_NAMES = ["group", "kernel_shape", "strides", "pads", "dilations", "axis", "perm", "keepdims",
               "split", "alpha", "mode", "auto_pad", "value", "to", "then_branch", "body", "epsilon"]


def _hostile_attribute(ch: Chooser, name: str) -> AttributeProto:
    kind = ch.choice(["string", "tensor", "float", "ints-huge", "ints-negative", "int-huge", "graph",
                      "undefined", "type-lies", "floats-nan", "strings", "empty-ints", "sparse"])
    if kind == "string":
        return helper.make_attribute(name, ch.choice([b"abc", b"\xff\xfe", b"1" * 10000]))
    if kind == "tensor":
        return helper.make_attribute(name, numpy_helper.from_array(np.array([3, 3], np.int64)))
    if kind == "float":
        return helper.make_attribute(name, ch.choice([1.5, float("nan"), float("inf"), -1e300]))
    if kind == "ints-huge":
        return helper.make_attribute(name, [2**62, 2**62])
    if kind == "ints-negative":
        return helper.make_attribute(name, [-5, -1, 0, 0])
    if kind == "int-huge":
        return helper.make_attribute(name, ch.choice([2**63 - 1, -(2**63), 0]))
    if kind == "graph":
        return helper.make_attribute(name, helper.make_graph([], "empty", [], []))
    if kind == "undefined":
        attr = AttributeProto(name=name)
        attr.i = 3
        return attr
    if kind == "type-lies":
        attr = AttributeProto(name=name, type=ch.choice([AttributeProto.INTS, AttributeProto.GRAPH,
                                                         AttributeProto.TENSOR, AttributeProto.STRING]))
        attr.f = 2.0
        return attr
    if kind == "floats-nan":
        return helper.make_attribute(name, [float("nan"), float("inf")])
    if kind == "strings":
        return helper.make_attribute(name, [b"a", b"\xc3\x28"])
    if kind == "sparse":
        return helper.make_attribute(name, helper.make_sparse_tensor(
            _vector("sv"), numpy_helper.from_array(np.arange(4, dtype=np.int64), "si"), [1 << 40]))
    return helper.make_attribute(name, [], attr_type=AttributeProto.INTS)


def _m_attributes(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    g = ch.choice(_all_graphs(model.graph))
    node = _node(ch, g)
    name = "?"
    if node is not None:
        existing = [a.name for a in node.attribute]
        name = ch.choice(existing + _ATTR_NAMES) if existing else ch.choice(_ATTR_NAMES)
        keep = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.append(_hostile_attribute(ch, name))
        if ch.integer(0, 3) == 0:  # and the same attribute twice
            node.attribute.append(node.attribute[-1])
    return Case("attributes", f"{base}: {node.op_type if node else '-'}.{name}", _serialize(model))


def _m_versions(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    how = ch.choice(["ir", "opset", "no-opset", "dup-opset", "domain-opset"])
    if how == "ir":
        model.ir_version = ch.choice([0, -1, 1, 2, 3, 12, 100, 2**62])
    elif how == "opset":
        model.opset_import[0].version = ch.choice([0, 1, 6, 10, 27, 100, 10**6, -5])
    elif how == "no-opset":
        del model.opset_import[:]
    elif how == "dup-opset":
        model.opset_import.append(helper.make_opsetid("", ch.choice([1, 9, 17])))
    else:
        model.opset_import.append(helper.make_opsetid(ch.choice(["com.microsoft", "x" * 300, "\x01"]),
                                                      ch.choice([1, -1, 2**62])))
    return Case("versions", f"{base}: {how}", _serialize(model))


_ODD_DTYPES = [0, 8, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 99, -1]


def _m_dtypes(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    g = ch.choice(_all_graphs(model.graph))
    dtype = ch.choice(_ODD_DTYPES)
    where = ch.choice(["initializer", "input", "output", "constant"])
    if where == "initializer" and g.initializer:
        g.initializer[ch.integer(0, len(g.initializer) - 1)].data_type = dtype
    elif where == "input" and model.graph.input:
        model.graph.input[0].type.tensor_type.elem_type = dtype
    elif where == "output" and model.graph.output:
        model.graph.output[0].type.tensor_type.elem_type = dtype
    else:
        t = _vector("odd_const")
        t.data_type = dtype
        g.node.insert(0, helper.make_node("Constant", [], ["odd_const"], value=t, name="odd"))
    return Case("dtypes", f"{base}: {where} dtype {dtype}", _serialize(model))


def _m_values(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    value = ch.choice([float("nan"), float("inf"), float("-inf"), 3e38, -3e38, 1e-45, 0.0])
    share = ch.choice(["one", "all-of-one", "every"])
    for k, t in enumerate(model.graph.initializer):
        if t.data_type != TensorProto.FLOAT or (share != "every" and k != 0):
            continue
        arr = numpy_helper.to_array(t).copy()
        if share == "one" and arr.size:
            arr.flat[0] = value
        else:
            arr[...] = value
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return Case("values", f"{base}: {share} = {value}", _serialize(model))


_PLACEHOLDER = "QQQQQQQQQQQQ"


def _m_names(ch: Chooser) -> Case:
    base = _pick_base(ch)
    model = base_model(base)
    g = model.graph
    how = ch.choice(["non-utf8", "huge", "control", "markup", "empty", "scope-huge", "scope-odd", "meta",
                     "doc-huge"])
    node = _node(ch, g)
    raw_patch: bytes | None = None
    if how == "non-utf8" and node is not None:
        what = ch.choice(["node", "tensor", "graph", "producer", "op_type", "scope"])
        if what == "node":
            node.name = _PLACEHOLDER
        elif what == "tensor" and node.output:
            old = node.output[0]
            for n in g.node:
                n.input[:] = [_PLACEHOLDER if i == old else i for i in n.input]
            node.output[0] = _PLACEHOLDER
            for o in g.output:
                if o.name == old:
                    o.name = _PLACEHOLDER
        elif what == "graph":
            g.name = _PLACEHOLDER
        elif what == "producer":
            model.producer_name = _PLACEHOLDER
        elif what == "op_type":
            node.op_type = _PLACEHOLDER
        else:
            node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=f"['', '{_PLACEHOLDER}']")
        raw_patch = ch.choice([b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4",
                               b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\x00"])
        how = f"non-utf8 {what}"
    elif how == "huge" and node is not None:
        node.name = ch.choice(["n" * 1_000_000, "/" * 200_000 + "Conv", "/a" * 100_000 + "/Conv"])
    elif how == "control" and node is not None:
        node.name = ch.choice(["a\nb", "\x00", "\x1b[31mred\x1b[0m", "tab\there", "\u202eevil"])
    elif how == "markup" and node is not None:
        node.name = ch.choice(["<script>alert(1)</script>", "a|b|c", "[x](javascript:alert(1))",
                               "&amp;<b>", "`code`"])
        g.name = node.name
        model.producer_name = node.name
    elif how == "empty":
        for n in g.node:
            n.name = ""
    elif how == "scope-huge" and node is not None:
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes",
                                value=ch.choice(["['" + "a" * 2_000_000 + "']", "[" * 100_000,
                                                 "[" + "'a', " * 200_000 + "]"]))
    elif how == "scope-odd" and node is not None:
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes",
                                value=ch.choice(["__import__('os').system('true')", "['\\x']", "[1, 2]",
                                                 "['\\U00110000']", "('a',)", "['a' 'b']", "{}"]))
    elif how == "meta":
        model.metadata_props.add(key=ch.choice(["", "k" * 10000, "<b>"]), value="v" * ch.integer(0, 100000))
    elif how == "doc-huge":
        g.doc_string = "d" * 5_000_000
    data = _serialize(model)
    if raw_patch is not None:
        data = data.replace(_PLACEHOLDER.encode(), raw_patch)
    return Case("names", f"{base}: {how}", data)


# --------------------------------------------------------------------------- external data

#: (label, location, extra entries, hostile): hostile references must be refused.
_LOCATIONS: list[tuple[str, str, dict[str, str], bool]] = [
    ("in-folder", CANARY_NAME, {}, False),
    ("in-folder-offset", CANARY_NAME, {"offset": "0", "length": "16"}, False),
    ("dotdot", f"../{CANARY_NAME}", {}, True),
    ("dotdot-deep", f"sub/../../{CANARY_NAME}", {}, True),
    ("absolute", "@CANARY_ABS@", {}, True),  # the harness writes the canary's absolute path
    ("nul", f"{CANARY_NAME}\0.x", {}, True),
    ("nul-dotdot", f"../{CANARY_NAME}\0", {}, True),
    ("empty", "", {}, True),
    ("long", "a" * 300, {}, True),
    ("very-long", "a/" * 3000, {}, True),
    ("offset-text", CANARY_NAME, {"offset": "abc"}, True),
    ("offset-negative", CANARY_NAME, {"offset": "-4"}, True),
    ("offset-huge", CANARY_NAME, {"offset": str(2**70)}, True),
    ("length-huge", CANARY_NAME, {"length": str(10**11)}, True),
    ("length-past-end", CANARY_NAME, {"offset": "200", "length": "64"}, True),
    ("symlink-out", "link.bin", {}, True),
    ("symlink-dir", "linkdir/" + CANARY_NAME, {}, True),
    ("fifo", "fifo.bin", {}, True),
    ("directory", "sub", {}, True),
    ("self", ".", {}, True),
    ("missing", "missing.bin", {}, False),
    ("backslash", f"..\\{CANARY_NAME}", {}, True),
    ("dup-key", CANARY_NAME, {"location": "../" + CANARY_NAME}, True),
    ("windows", f"C:{CANARY_NAME}", {}, True),
]

#: Files every external case puts beside the model (the canaries are the harness's).
_EXTERNAL_EXTRAS = (
    Extra(CANARY_NAME, data=np.ones(64, np.float32).tobytes()),
    Extra("link.bin", kind="symlink", target=f"../{CANARY_NAME}"),
    Extra("linkdir", kind="symlink", target=".."),
    Extra("fifo.bin", kind="fifo"),
    Extra("sub", kind="dir"),
)


def _externalize(t: TensorProto, location: str, entries: dict[str, str]) -> TensorProto:
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    for key, value in entries.items():
        t.external_data.add(key=key, value=value)
    return t


def _carrier_model(carrier: str, tensor: TensorProto) -> onnx.ModelProto:
    """A small valid model whose ``carrier`` holds ``tensor`` (4 floats, named ``t``)."""
    x, y = _vi("x", [1, 4]), _vi("y", [1, 4])
    opsets = [helper.make_opsetid("", 17)]
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    mm = helper.make_node("MatMul", ["x", "w"], ["h"], name="mm")
    if carrier == "initializer":
        tensor.name = "t"
        g = helper.make_graph([mm, helper.make_node("Add", ["h", "t"], ["y"], name="add")], "g", [x], [y],
                              [w, tensor])
        return helper.make_model(g, opset_imports=opsets)
    if carrier == "constant":
        const = helper.make_node("Constant", [], ["t"], value=tensor, name="const")
        g = helper.make_graph([mm, const, helper.make_node("Add", ["h", "t"], ["y"], name="add")], "g", [x], [y],
                              [w])
        return helper.make_model(g, opset_imports=opsets)
    if carrier in ("subgraph-constant", "subgraph-initializer"):
        if carrier == "subgraph-constant":
            inner_nodes = [helper.make_node("Constant", [], ["t"], value=tensor, name="inner_const"),
                           helper.make_node("Add", ["h", "t"], ["ty"], name="inner_add")]
            inner_init: list[TensorProto] = []
        else:
            tensor.name = "t"
            inner_nodes = [helper.make_node("Add", ["h", "t"], ["ty"], name="inner_add")]
            inner_init = [tensor]
        then_g = helper.make_graph(inner_nodes, "then", [], [_vi("ty", [1, 4])], inner_init)
        else_g = helper.make_graph([helper.make_node("Identity", ["h"], ["ey"])], "else", [], [_vi("ey", [1, 4])])
        cond = numpy_helper.from_array(np.array(True), "cond")
        node = helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g, name="if")
        g = helper.make_graph([mm, node], "g", [x], [y], [w, cond])
        return helper.make_model(g, opset_imports=opsets)
    if carrier in ("tensors-attribute", "sparse-attribute", "tensor-attribute-custom"):
        if carrier == "tensors-attribute":
            attrs: dict[str, Any] = {"ts": [tensor, _vector("t1")]}
        elif carrier == "sparse-attribute":
            attrs = {"s": helper.make_sparse_tensor(tensor, numpy_helper.from_array(np.arange(4), "i"), [8])}
        else:
            attrs = {"t": tensor}
        node = helper.make_node("Frobnicate", ["h"], ["y"], domain="com.acme", name="frob", **attrs)
        g = helper.make_graph([mm, node], "g", [x], [y], [w])
        return helper.make_model(g, opset_imports=[*opsets, helper.make_opsetid("com.acme", 1)])
    if carrier == "sparse-initializer":
        model = _carrier_model("initializer", _vector("t"))
        model.graph.sparse_initializer.append(
            helper.make_sparse_tensor(tensor, numpy_helper.from_array(np.arange(4), "i"), [8]))
        return model
    if carrier in ("function-constant", "function-attribute-default"):
        body = [helper.make_node("Constant", [], ["c"], value=tensor),
                helper.make_node("Add", ["a", "c"], ["b"])]
        f = helper.make_function("local", "AddC", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
        if carrier == "function-attribute-default":
            f.node[0].CopyFrom(helper.make_node("Constant", [], ["c"], value=_vector("c")))
            f.attribute_proto.append(helper.make_attribute("dflt", tensor))
        g = helper.make_graph([mm, helper.make_node("AddC", ["h"], ["y"], domain="local", name="addc")], "g",
                              [x], [y], [w])
        return helper.make_model(g, opset_imports=[*opsets, helper.make_opsetid("local", 1)], functions=[f])
    if carrier == "training-info":
        model = _carrier_model("initializer", _vector("t"))
        info = model.training_info.add()
        tensor.name = "ti"
        info.initialization.CopyFrom(helper.make_graph([], "init", [], [], [tensor]))
        return model
    raise ValueError(carrier)


CARRIERS = ("initializer", "constant", "subgraph-constant", "subgraph-initializer", "tensors-attribute",
            "sparse-attribute", "tensor-attribute-custom", "sparse-initializer", "function-constant",
            "function-attribute-default", "training-info")
#: Carriers whose external data graphpath reads (from inside the folder); the rest are refused.
READ_CARRIERS = frozenset({"initializer", "constant", "subgraph-constant", "subgraph-initializer",
                           "tensor-attribute-custom"})


def external_case(carrier: str, location_label: str) -> Case:
    """The model with a reference of ``location_label`` (see ``_LOCATIONS``) in ``carrier``."""
    label, location, entries, hostile = next(e for e in _LOCATIONS if e[0] == location_label)
    tensor = _externalize(_vector("t"), location, entries)
    model = _carrier_model(carrier, tensor)
    refused = hostile or carrier not in READ_CARRIERS
    return Case("external", f"{carrier}: {label}", _serialize(model), _EXTERNAL_EXTRAS, hostile=refused)


def _m_external(ch: Chooser) -> Case:
    if ch.integer(0, 4) == 0:  # a reference model with its weights moved out, one made hostile
        return _external_reference_model(ch)
    return external_case(ch.choice(CARRIERS), ch.choice([e[0] for e in _LOCATIONS]))


def _external_reference_model(ch: Chooser) -> Case:
    refs = reference_models() or ["residual"]
    base = ch.choice(refs[:6])
    model = base_model(base)
    blob = bytearray()
    for t in model.graph.initializer:
        if len(t.raw_data) < 1024:
            continue
        data = bytes(t.raw_data)
        _externalize(t, "w.data", {"offset": str(len(blob)), "length": str(len(data))})
        blob += data
    label, location, entries, hostile = ch.choice(_LOCATIONS)
    big = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if big and ch.integer(0, 1):
        t = ch.choice(big)
        del t.external_data[:]
        _externalize(t, location, entries)
        how = label
    else:
        hostile, how = False, "all in folder"
    extras = (*_EXTERNAL_EXTRAS, Extra("w.data", data=bytes(blob)))
    return Case("external", f"{base}: {how}", _serialize(model), extras, hostile=hostile)


# --------------------------------------------------------------------------- bombs


def nested_if_bytes(depth: int) -> bytes:
    """A valid model of ``depth`` nested If bodies, built on the wire (the Python protobuf
    cannot hold more than ~32 levels in memory)."""
    tvi = _serialize_msg(_vi("o", [1]))

    def graph(d: int) -> bytes:
        head = _serialize_msg(helper.make_graph([], f"g{d}", [], []))
        if d == 0:
            node = _serialize_msg(helper.make_node("Identity", ["x"], ["o"]))
        else:
            then_attr = _serialize_msg(AttributeProto(name="then_branch", type=AttributeProto.GRAPH)) + _field(6, graph(d - 1))
            leaf = _serialize_msg(helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], f"l{d}", [],
                                                    [_vi("o", [1])]))
            else_attr = _serialize_msg(AttributeProto(name="else_branch", type=AttributeProto.GRAPH)) + _field(6, leaf)
            node = (_serialize_msg(helper.make_node("If", ["c"], ["o"], name=f"if{d}"))
                    + _field(5, then_attr) + _field(5, else_attr))
        return head + _field(1, node) + _field(12, tvi)

    main_graph = graph(depth)
    main_inputs = _field(11, _serialize_msg(_vi("x", [1]))) + _field(11, _serialize_msg(_vi("c", [], TensorProto.BOOL)))
    head = onnx.ModelProto(ir_version=8, opset_import=[helper.make_opsetid("", 17)])
    return _serialize_msg(head) + _field(7, main_graph + main_inputs)


def _serialize_msg(msg: Any) -> bytes:
    return bytes(msg.SerializeToString())


def _chain(n: int, op: str = "Relu") -> onnx.ModelProto:
    nodes = [helper.make_node(op, [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(n)]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    g = helper.make_graph(nodes, "chain", [_vi("x", [1, 4])], [_vi("y", [1, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _wide(n: int, op: str, distinct: bool) -> onnx.ModelProto:
    """One node reading ``n`` inputs: one tensor ``n`` times, or ``n`` distinct ones."""
    if distinct:
        nodes = [helper.make_node("Relu", ["x"], [f"r{i}"]) for i in range(n)]
        wide = helper.make_node(op, [f"r{i}" for i in range(n)], ["y"], name="wide", **({"axis": 1} if op == "Concat" else {}))
        nodes.append(wide)
    else:
        nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
                 helper.make_node(op, ["r"] * n, ["y"], name="wide", **({"axis": 1} if op == "Concat" else {}))]
    g = helper.make_graph(nodes, "wide", [_vi("x", [1, 4])], [_vi("y", None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _huge_dims(where: str) -> onnx.ModelProto:
    t = TensorProto(name="t", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20, 1 << 0],
                    raw_data=np.ones(16, np.float32).tobytes())
    if where == "constant":
        return _carrier_model("constant", t)
    if where == "input":
        model = _carrier_model("initializer", _vector("t"))
        model.graph.input[0].CopyFrom(_vi("x", [1 << 40, 4]))
        return model
    if where == "batch":
        model = _carrier_model("initializer", _vector("t"))
        model.graph.input[0].CopyFrom(_vi("x", [1 << 31, 4]))
        return model
    return _carrier_model("initializer", t)


def _blowup(op: str) -> onnx.ModelProto:
    """Ops that make onnxruntime allocate what the file claims (a parity run would)."""
    x, y = _vi("x", [1, 4]), _vi("y", None)
    big = numpy_helper.from_array(np.array([1 << 20, 1 << 20, 1 << 10], np.int64), "shape")
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    opsets = [helper.make_opsetid("", 17)]
    mm = helper.make_node("MatMul", ["x", "w"], ["h"], name="mm")  # a weighted unit to differentiate
    if op == "ConstantOfShape":
        nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"]), helper.make_node("Add", ["h", "c"], ["y"])]
        inits = [big]
    elif op == "Expand":
        nodes = [helper.make_node("Expand", ["h", "shape"], ["y"])]
        inits = [big]
    elif op == "Tile":
        reps = numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "reps")
        nodes = [helper.make_node("Tile", ["h", "reps"], ["y"])]
        inits = [reps]
    else:
        scales = numpy_helper.from_array(np.array([1e6, 1e6], np.float32), "scales")
        nodes = [helper.make_node("Resize", ["h", "", "scales"], ["y"], mode="nearest")]
        inits = [scales]
    return helper.make_model(helper.make_graph([mm, *nodes], op, [x], [y], [w, *inits]), opset_imports=opsets)


#: (label, builder, heavy): heavy bombs take seconds on purpose (the 200 000-node chain).
BOMBS: dict[str, tuple[Callable[[], Case], bool]] = {}


def _bomb(label: str, heavy: bool = False) -> Callable[[Callable[[], onnx.ModelProto | bytes | Case]], None]:
    def register(fn: Callable[[], onnx.ModelProto | bytes | Case]) -> None:
        def make() -> Case:
            out = fn()
            if isinstance(out, Case):
                return out
            data = out if isinstance(out, bytes) else _serialize(out)
            return Case("bombs", label, data, heavy=heavy)

        BOMBS[label] = (make, heavy)

    return register


_bomb("nested-if-50")(lambda: nested_if_bytes(50))
_bomb("nested-if-30")(lambda: nested_if_bytes(30))
_bomb("chain-200000", heavy=True)(lambda: _chain(200_000))
_bomb("chain-20000")(lambda: _chain(20_000))
_bomb("inputs-1000000-distinct", heavy=True)(lambda: _wide(1_000_000, "Sum", distinct=False))
_bomb("reads-500000-concat", heavy=True)(lambda: _wide(500_000, "Concat", distinct=False))
_bomb("reads-100000-sum")(lambda: _wide(100_000, "Sum", distinct=False))
_bomb("inputs-20000-distinct")(lambda: _wide(20_000, "Concat", distinct=True))
_bomb("dims-2^40-constant")(lambda: _huge_dims("constant"))
_bomb("dims-2^40-initializer")(lambda: _huge_dims("initializer"))
_bomb("dims-2^40-input")(lambda: _huge_dims("input"))
_bomb("batch-2^31-input")(lambda: _huge_dims("batch"))
_bomb("constant-of-shape")(lambda: _blowup("ConstantOfShape"))
_bomb("expand")(lambda: _blowup("Expand"))
_bomb("tile")(lambda: _blowup("Tile"))
_bomb("resize")(lambda: _blowup("Resize"))


@_bomb("external-2GB-sparse")
def _external_2gb() -> Case:
    t = TensorProto(name="t", data_type=TensorProto.FLOAT, dims=[1 << 29])
    _externalize(t, "big.bin", {"offset": "0", "length": str(1 << 31)})
    x, y = _vi("x", [1, 1 << 29]), _vi("y", [1, 1 << 29])
    g = helper.make_graph([helper.make_node("Add", ["x", "t"], ["y"], name="add")], "big", [x], [y], [t])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return Case("bombs", "external-2GB-sparse", _serialize(model), (Extra("big.bin", kind="sparse", size=1 << 31),))


@_bomb("scope-metadata-2MB")
def _scope_bomb() -> onnx.ModelProto:
    model = _carrier_model("initializer", _vector("t"))
    model.graph.node[0].metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['" + "a" * 2_000_000 + "']")
    return model


@_bomb("loop-nested-30")
def _nested_loop() -> onnx.ModelProto:
    """30 Loops, each body running the next (the deepest a Python protobuf holds is ~32)."""
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("MatMul", ["v_in", "w"], ["v_out"])], "body0",
                             [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("v_in", [1, 4])],
                             [_vi("cond_out", [], TensorProto.BOOL), _vi("v_out", [1, 4])])
    for d in range(1, 30):
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
             helper.make_node("Loop", ["trip", "cond_in", "v_in"], ["v_out"], body=body, name=f"loop{d}")],
            f"body{d}", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("v_in", [1, 4])],
            [_vi("cond_out", [], TensorProto.BOOL), _vi("v_out", [1, 4])])
    model = _loop_model()
    model.graph.node[0].attribute[0].g.CopyFrom(body)
    return model


# --------------------------------------------------------------------------- the generator


def _m_bombs(ch: Chooser) -> Case:
    return BOMBS[ch.choice(list(BOMBS))][0]()


MUTATIONS: dict[str, Callable[[Chooser], Case]] = {
    "bytes": _m_bytes,
    "nodes": _m_nodes,
    "initializers": _m_initializers,
    "attributes": _m_attributes,
    "versions": _m_versions,
    "dtypes": _m_dtypes,
    "values": _m_values,
    "names": _m_names,
    "external": _m_external,
    "bombs": _m_bombs,
}


def make_case(ch: Chooser, klass: str | None = None) -> Case:
    """One case of ``klass`` (a key of :data:`MUTATIONS`; chosen by ``ch`` when ``None``)."""
    return MUTATIONS[klass or ch.choice(list(MUTATIONS))](ch)


def campaign(n: int, seed: int = 0, classes: Sequence[str] | None = None) -> list[Case]:
    """``n`` cases, round-robin over ``classes`` (all by default), each from its own seed."""
    names = list(classes or MUTATIONS)
    return [make_case(RandomChooser(seed * 1_000_003 + i), names[i % len(names)]) for i in range(n)]


__all__ = ["BOMBS", "CANARY_MARK", "CANARY_NAME", "CARRIERS", "Case", "Chooser", "Extra", "HypothesisChooser",
           "MUTATIONS", "RandomChooser", "campaign", "external_case", "make_case", "nested_if_bytes"]
