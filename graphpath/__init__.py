"""graphpath: what an exported ONNX detector is, and how gradients can and do flow through it.

Heavy optional dependencies (torch, matplotlib, onnxruntime-training) are imported lazily by
the modules that need them, never at ``import graphpath``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
