"""One model file, parsed once: what every analysis takes.

:func:`graphpath.onnx_io.open_model` reads a file once and returns a :class:`LoadedModel`: the
op view (:class:`~graphpath.model.graph.ModelGraph`), built eagerly; the layer view and the
detected blocks, built on first use and then shared; parameter values and serialized copies
for onnxruntime, read on demand from the one parsed protobuf (its external data from inside the
model's folder only). ``analyze``, ``structure``, the path analysis, ``run_backward``, the
evaluator, the parity check, every gradient backend and the audit take this object, so one
``graphpath report MODEL --numeric`` parses the file once.

The protobuf stays behind :class:`ModelSource` (implemented in :mod:`graphpath.onnx_io`, the
one module that imports onnx).

Example::

    from graphpath import onnx_io
    model = onnx_io.open_model("models/yolov8n.onnx")
    model.graph.meta["producer_name"], len(model.blocks), sorted(model.arrays(["w"]))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph, build_layers

if TYPE_CHECKING:
    from graphpath.blocks.base import BlockMatch

__all__ = ["LoadedModel", "ModelSource"]


class ModelSource(Protocol):
    """What the loader keeps of a parsed file (the protobuf stays inside :mod:`graphpath.onnx_io`)."""

    def arrays(self, names: Iterable[str] | None) -> dict[str, np.ndarray]:
        """Parameter values by name (initializers and Constant tensors); all when ``None``."""
        ...

    def inlined_proto(self) -> Any:
        """A fresh ``onnx.ModelProto`` copy with every external tensor read in (the caller may
        rewrite it)."""
        ...

    def serialized(self, outputs: Sequence[str] | None) -> bytes:
        """The model with external data inlined, as bytes for onnxruntime; with ``outputs``, its
        graph outputs replaced by those tensors."""
        ...


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One parsed model file. Build it with :func:`graphpath.onnx_io.open_model`.

    Attributes:
        path: the file it was read from (messages name it; external data is read beside it).
        graph: the op view.
        source: the parsed protobuf behind :class:`ModelSource`.
    """

    path: Path
    graph: ModelGraph
    source: ModelSource

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def layers(self) -> LayerGraph:
        """The layer view (built on first use, then shared by every analysis)."""
        return build_layers(self.graph)

    @cached_property
    def blocks(self) -> tuple[BlockMatch, ...]:
        """Detected blocks (built on first use, then shared by structure and the numeric pass)."""
        from graphpath.blocks import detect_blocks

        return tuple(detect_blocks(self.layers, self.graph))

    def arrays(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Parameter values by name; all parameters when ``names`` is ``None``."""
        return self.source.arrays(names)

    def serialized(self, outputs: Sequence[str] | None = None) -> bytes:
        """Bytes for an onnxruntime session (see :meth:`ModelSource.serialized`)."""
        return self.source.serialized(outputs)

    def inlined_proto(self) -> Any:
        """A fresh protobuf copy with external data read in (see :meth:`ModelSource.inlined_proto`)."""
        return self.source.inlined_proto()
