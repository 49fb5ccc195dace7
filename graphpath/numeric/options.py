"""Options of the numeric backward pass (one per CLI flag), shared by every numeric step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphpath.numeric.metrics import DEFAULT_THRESHOLDS, VerdictThresholds
from graphpath.numeric.probes import HeadFinder

__all__ = ["BackwardOptions"]


@dataclass(frozen=True)
class BackwardOptions:
    """Options of :func:`run_backward` (one per CLI flag).

    Attributes:
        probes: ``K``, the number of probes averaged (``--probes``).
        seed: seeds images, cotangents, power-iteration starts and ``--reinit``.
        device: ``auto`` | ``cpu`` | ``cuda`` (``--device``).
        imgsz: input size for dynamic graphs (``--imgsz``); static graphs run at their size.
        input_file: a ``.npy`` image (NCHW or CHW, float) used by every probe (``--input``).
        reinit: ``None`` or a scheme of :data:`REINIT_SCHEMES` (``--reinit``).
        backend: ``auto`` | ``torch`` | ``ort-training`` | ``both`` (``--backend``).
        power_iters: power-iteration steps per block Jacobian (``--power-iters``).
        max_blocks: at most this many blocks get a Jacobian bound (largest first kept in
            topological order).
        spectral_max_hw: conv operator norms are computed on inputs capped to this size.
        dead_threshold: ``|f'(x)|`` below which an activation element is dead.
        parity_rtol, parity_atol: forward parity tolerance against onnxruntime.
        thresholds: the verdict thresholds.
        head_finder: swap the raw-head rule (default :func:`probes.raw_head_tensors`).
    """

    probes: int = 4
    seed: int = 0
    device: str = "auto"
    imgsz: int | None = None
    input_file: str | None = None
    reinit: str | None = None
    backend: str = "auto"
    power_iters: int = 20
    max_blocks: int = 24
    spectral_max_hw: int = 64
    dead_threshold: float = 0.01
    parity_rtol: float = 1e-3
    parity_atol: float = 1e-4
    thresholds: VerdictThresholds = DEFAULT_THRESHOLDS
    head_finder: HeadFinder | None = field(default=None, compare=False)

    def echo(self) -> dict[str, Any]:
        """The options as the report states them (the input file by name only)."""
        return {"probes": self.probes, "seed": self.seed, "imgsz": self.imgsz, "reinit": self.reinit,
                "backend": self.backend, "power_iters": self.power_iters, "max_blocks": self.max_blocks,
                "spectral_max_hw": self.spectral_max_hw, "dead_threshold": self.dead_threshold,
                "input_file": None if self.input_file is None else Path(self.input_file).name}
