"""Options of the numeric backward pass (one per CLI flag), shared by every numeric step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from graphpath.errors import GraphpathError
from graphpath.numeric.metrics import DEFAULT_THRESHOLDS, VerdictThresholds
from graphpath.numeric.probes import HeadFinder
from graphpath.numeric.reinit import INIT_SCHEMES, REINIT_SCHEMES, InitScheme

__all__ = ["CONDITIONS", "NORM_MODES", "BackwardOptions", "Condition", "NormMode"]

Condition = Literal["weights", "init"]
NormMode = Literal["auto", "batch", "none"]
#: ``--condition``: the file's own weights, or the network as it starts training.
CONDITIONS: tuple[Condition, ...] = ("weights", "init")
#: ``--norm``: where train-mode BatchNorm is restored under ``init`` (see :mod:`graphpath.numeric.norm`).
NORM_MODES: tuple[NormMode, ...] = ("auto", "batch", "none")


@dataclass(frozen=True)
class BackwardOptions:
    """Options of :func:`run_backward` (one per CLI flag).

    Attributes:
        probes: ``K``, the number of probes averaged (``--probes``).
        seed: seeds images, cotangents, power-iteration starts and the ``init`` draw.
        seeds: repetitions with independent seeds (``--seeds``); ``None``: 5 under ``init``,
            1 under ``weights``. Every metric is reported as a mean and a 95 % interval over
            them (over the probes of the one seed when there is one).
        seed_offset: the repetitions use seeds ``seed + seed_offset + i`` (``--seed-offset``:
            ``--seed-offset 5`` with 5 seeds runs seeds 5–9).
        device: ``auto`` | ``cpu`` | ``cuda`` (``--device``).
        imgsz: input size for dynamic graphs (``--imgsz``); static graphs run at their size.
        input_file: a ``.npy`` image (NCHW or CHW, float) used by every probe (``--input``).
        reinit: ``None`` or a scheme of :data:`REINIT_SCHEMES` (``--reinit``, the older flag):
            ``reinit="kaiming-normal"`` is ``condition="init", init="kaiming-normal",
            norm="none"`` (set so at construction; an explicit ``norm="batch"`` is kept).
        condition: ``weights`` (the file's own weights) or ``init`` (every weighted layer
            re-drawn with ``init``, BatchNorm restored in training mode per ``norm``)
            (``--condition``).
        init: the init scheme under ``condition="init"`` (:data:`INIT_SCHEMES`, ``--init``).
        norm: ``auto`` | ``batch`` | ``none`` (``--norm``): under ``init``, whether train-mode
            BatchNorm is restored after the BN-fused convs and BatchNormalization nodes switch
            to batch statistics; ``auto`` decides from the graph
            (:func:`graphpath.numeric.norm.resolve_norm`). Under ``weights`` only an explicit
            ``batch`` restores it.
        backend: ``auto`` | ``torch`` | ``ort-training`` | ``both`` (``--backend``).
        power_iters: power-iteration steps per block Jacobian (``--power-iters``).
        max_blocks: at most this many blocks get a Jacobian bound (top-level blocks first, then
            nested ones); every block gets its gain.
        spectral_max_hw: conv operator norms are computed on inputs capped to this size.
        dead_threshold: ``|f'(x)|`` below which an activation element is dead.
        parity_rtol, parity_atol: forward parity tolerance against onnxruntime.
        thresholds: the verdict thresholds.
        head_finder: swap the raw-head rule (default :func:`probes.raw_head_tensors`).
    """

    probes: int = 4
    seed: int = 0
    seeds: int | None = None
    seed_offset: int = 0
    device: str = "auto"
    imgsz: int | None = None
    input_file: str | None = None
    reinit: str | None = None
    condition: Condition = "weights"
    init: InitScheme = "torch-default"
    norm: NormMode = "auto"
    backend: str = "auto"
    power_iters: int = 20
    max_blocks: int = 24
    spectral_max_hw: int = 64
    dead_threshold: float = 0.01
    parity_rtol: float = 1e-3
    parity_atol: float = 1e-4
    thresholds: VerdictThresholds = DEFAULT_THRESHOLDS
    head_finder: HeadFinder | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.seeds is not None and self.seeds < 1:
            raise GraphpathError("--seeds must be at least 1")
        for name, value, allowed in (("--condition", self.condition, CONDITIONS), ("--init", self.init, INIT_SCHEMES),
                                     ("--norm", self.norm, NORM_MODES)):
            if value not in allowed:
                raise GraphpathError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if self.reinit is not None:
            if self.reinit not in REINIT_SCHEMES:
                raise GraphpathError(f"unknown --reinit scheme {self.reinit!r}; choose one of {', '.join(REINIT_SCHEMES)}")
            # the older flag is a condition: the frozen dataclass sets its own derived fields once
            object.__setattr__(self, "condition", "init")
            object.__setattr__(self, "init", self.reinit)
            if self.norm == "auto":
                object.__setattr__(self, "norm", "none")

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds of the repetitions."""
        n = self.seeds if self.seeds is not None else (5 if self.condition == "init" else 1)
        return tuple(self.seed + self.seed_offset + i for i in range(n))

    def echo(self) -> dict[str, Any]:
        """The options as the report states them (the input file by name only; ``init`` only
        under the ``init`` condition)."""
        return {"probes": self.probes, "seed": self.seed, "seeds": list(self.seed_list), "imgsz": self.imgsz,
                "reinit": self.reinit,
                "condition": self.condition, "init": self.init if self.condition == "init" else None,
                "norm": self.norm,
                "backend": self.backend, "power_iters": self.power_iters, "max_blocks": self.max_blocks,
                "spectral_max_hw": self.spectral_max_hw, "dead_threshold": self.dead_threshold,
                "input_file": None if self.input_file is None else Path(self.input_file).name}
