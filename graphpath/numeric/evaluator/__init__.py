"""graphpath's own ONNX → torch evaluator: :mod:`.core` (the graph walk, parameters, parity
against onnxruntime) over the op tables in :mod:`.ops_torch` (with :mod:`.ops_common`,
:mod:`.ops_layout` and :mod:`.ops_resample`). Importing this package imports torch.
"""

from __future__ import annotations

from graphpath.numeric.evaluator.core import (
    Evaluator,
    OutputParity,
    ParityResult,
    check_parity,
    require_parity,
)

__all__ = ["Evaluator", "OutputParity", "ParityResult", "check_parity", "require_parity"]
