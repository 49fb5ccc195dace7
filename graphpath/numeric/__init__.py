"""Numeric backward pass: backends that run real gradients through an ONNX graph.

Importing this package is light; torch is imported only when an evaluator name is first used
(``graphpath.numeric.Evaluator``), and a missing torch raises
:class:`~graphpath.errors.MissingExtraError` with the install hint.

Public names (loaded lazily from :mod:`graphpath.numeric.evaluator.core`):

- :class:`Evaluator` — graphpath's own ONNX → torch evaluator (``Evaluator.from_model``).
- :func:`check_parity` / :func:`require_parity` — its forward against onnxruntime.
- :class:`ParityResult`, :class:`OutputParity` — what the parity check returns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphpath.numeric.evaluator.core import (
        Evaluator,
        OutputParity,
        ParityResult,
        check_parity,
        require_parity,
    )

__all__ = ["Evaluator", "OutputParity", "ParityResult", "check_parity", "require_parity"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("graphpath.numeric.evaluator.core"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
