"""The op view: every ONNX node of the main graph in a ``networkx.DiGraph``.

Node attribute schema (node key = the ONNX node's name, made unique and non-empty at load):

============  ==================================================================
``op``        the :class:`OpNode` (op_type, domain, name, inputs, outputs, attrs)
``scope``     name scope (``model.2.m.0.cv1``) from a TorchScript-style name or from the
              dynamo exporter's ``metadata_props``; ``""`` when there is none
``params``    tuple of :class:`Param` for the initializers it consumes
``shapes``    output tensor name → shape (tuple of int | str | None), where known
``implicit``  tensors an If/Loop/Scan body reads from the enclosing scope
============  ==================================================================

Edge attribute schema (producer → consumer, one edge per distinct tensor; repeated use of one
tensor by one consumer is recorded in ``positions``):

=============  ================================================================
``tensor``     the tensor name (one edge per tensor; parallel tensors are listed in ``tensors``)
``tensors``    all tensor names joining the two nodes
``kind``       ``"data"`` or ``"shape"`` (computed only from shapes, constants, initializers)
``positions``  input positions of the consumer that read the tensor(s)
``shape``      the tensor's shape, where known
=============  ================================================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

Shape = tuple["int | str | None", ...]


@dataclass(frozen=True)
class OpNode:
    """One ONNX node with plain-Python attributes.

    Attribute values are ``int``, ``float``, ``str``, ``bytes``, tuples of those, a
    ``numpy.ndarray`` for tensor attributes, or a :class:`SubgraphInfo` for graph attributes.
    """

    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_standard(self) -> bool:
        return self.domain in ("", "ai.onnx")


@dataclass(frozen=True)
class SubgraphInfo:
    """What an If/Loop/Scan subgraph holds (kept as a summary; the node stays opaque)."""

    attr: str
    node_count: int
    op_histogram: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Param:
    """An initializer as metadata only: no data is read to count it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    nbytes: int
    external: bool = False


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output."""

    name: str
    dtype: str
    shape: Shape | None


@dataclass
class ModelGraph:
    """The op view of one model. Built by :func:`graphpath.onnx_io.load`.

    Attributes:
        dag: the op graph (schema in the module docstring).
        inputs, outputs: graph inputs (initializers excluded) and outputs.
        params: every initializer by name.
        shape_tensors: names of tensors whose ``kind`` is ``shape``.
        value_shapes: tensor name → shape for every tensor shape inference reached.
        zero_floor_ops: quantized ops whose output is clamped at real zero (see the field).
        meta: model-level facts (producer, IR version, opsets, custom domains …).
    """

    dag: nx.DiGraph
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    params: Mapping[str, Param]
    shape_tensors: frozenset[str]
    value_shapes: Mapping[str, Shape]
    meta: Mapping[str, Any]
    producer_of: Mapping[str, str] = field(default_factory=dict)
    #: Ops whose integer output's lowest value is real zero (a QuantizeLinear, QLinearConv,
    #: QLinearMatMul or QGemm whose output zero point is its type's minimum): the output is
    #: clamped at 0 as a ReLU clamps it. onnxruntime's quantizer drops a Relu after a conv when
    #: the quantizer can do the clamp, so in QDQ and QOperator graphs this clamp is the ReLU.
    zero_floor_ops: frozenset[str] = frozenset()

    def op(self, name: str) -> OpNode:
        return self.dag.nodes[name]["op"]

    def ops(self) -> Iterator[OpNode]:
        """Nodes in the model's (topological) order."""
        return (self.dag.nodes[n]["op"] for n in self.dag.nodes)

    def scope(self, name: str) -> str:
        return str(self.dag.nodes[name].get("scope", ""))

    def is_shape(self, tensor: str) -> bool:
        return tensor in self.shape_tensors

    @property
    def node_count(self) -> int:
        return self.dag.number_of_nodes()
