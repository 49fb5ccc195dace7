"""Fresh parameter values for the ``init`` condition (:func:`init_parameters`).

Three schemes (:data:`INIT_SCHEMES`), each seeded and deterministic:

- ``torch-default``: exactly what PyTorch's ``nn.Conv2d`` / ``nn.ConvTranspose2d`` /
  ``nn.Linear`` ``reset_parameters`` draw — ``kaiming_uniform_(a=√5)`` on the weight, which is
  ``U(±1/√fan_in)`` (gain ``√(2/(1+5))`` times ``√3/√fan_in``), and ``U(±1/√fan_in)`` on the
  bias, with torch's fan-in convention ``W.shape[1] · prod(kernel)`` for conv weights (for a
  ConvTranspose that is ``C_out / groups · prod(kernel)``, as torch computes it). Ultralytics,
  YOLOv5, YOLOv7, YOLOv9 and YOLOX train from it.
- ``kaiming-normal`` (He et al. 2015, fan-in, ReLU gain): ``N(0, 2 / fan_in)`` with the true
  fan-in of the layer (ConvTranspose: ``C_in / groups · prod(kernel)``); biases 0. This is the
  scheme ``--reinit kaiming-normal`` has always used, draw for draw.
- ``xavier`` (Glorot & Bengio 2010, uniform, gain 1): ``U(±√(6 / (fan_in + fan_out)))`` with
  torch's fan convention; biases 0.

Fan-in of a weight by the op that reads it: Conv ``W.shape[1] · prod(W.shape[2:])``; Gemm the
reduced dimension (``W.shape[1]`` with ``transB``, else ``W.shape[0]``); MatMul ``x @ W``
``W.shape[-2]``, ``W @ x`` ``W.shape[-1]``.

Under every scheme the biases of BN-fused convs are what the conv itself starts with (the
restored train-mode BatchNorm that follows removes them anyway), and the scale / bias of
BatchNormalization, LayerNormalization, InstanceNormalization and GroupNormalization nodes are
1 / 0 (their defaults in torch); running statistics are not parameters and stay as exported.
Every other float parameter is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph, OpNode

__all__ = ["INIT_SCHEMES", "REINIT_SCHEMES", "InitScheme", "init_parameters", "reinit_parameters"]

InitScheme = Literal["torch-default", "kaiming-normal", "xavier"]
#: ``--init`` schemes (see the module docstring).
INIT_SCHEMES: tuple[InitScheme, ...] = ("torch-default", "kaiming-normal", "xavier")
#: The older ``--reinit`` flag's schemes (``--reinit X`` = ``--condition init --init X --norm none``).
REINIT_SCHEMES = ("kaiming-normal",)

_NORM_OPS = frozenset({"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"})


def _roles(graph: ModelGraph, named: Mapping[str, Any]) -> dict[str, tuple[str, OpNode]]:
    """Parameter name → (role, the first op that reads it): ``weight`` (``x·W``), ``weight0``
    (``W·x``), ``bias``, ``one`` or ``zero`` (normalisation scale and shift)."""
    role: dict[str, tuple[str, OpNode]] = {}
    for op in graph.ops():
        for pos, t in enumerate(op.inputs):
            if t not in named or t in role:
                continue
            ot = op.op_type
            if ot in ("Conv", "ConvTranspose", "Gemm", "MatMul") and pos == 1:
                role[t] = ("weight", op)
            elif ot in ("Conv", "ConvTranspose", "Gemm") and pos == 2:
                role[t] = ("bias", op)
            elif ot == "MatMul" and pos == 0:
                role[t] = ("weight0", op)
            elif ot in _NORM_OPS and pos in (1, 2):  # scale, shift (never running statistics)
                role[t] = ("one" if pos == 1 else "zero", op)
    return role


def _fans(what: str, op: OpNode, shape: tuple[int, ...], *, torch_convention: bool) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight read by ``op``."""
    if op.op_type in ("Conv", "ConvTranspose"):
        rf = int(np.prod(shape[2:]))
        if op.op_type == "ConvTranspose" and not torch_convention:
            groups = int(op.attrs.get("group", 1))
            return shape[0] // groups * rf, shape[1] * groups * rf
        return shape[1] * rf, shape[0] * rf
    if op.op_type == "Gemm":
        return (shape[1], shape[0]) if op.attrs.get("transB", 0) else (shape[0], shape[1])
    return (shape[-2], shape[-1]) if what == "weight" else (shape[-1], shape[-2])


def init_parameters(graph: ModelGraph, named: Mapping[str, Any], seed: int,
                    scheme: str = "torch-default") -> dict[str, np.ndarray]:
    """New values for the trainable parameters (ONNX name → float32 array) under ``scheme``
    (see the module docstring); parameters the scheme leaves alone are not in the result.

    Drawn with ``numpy.random.default_rng([seed, 3])`` in sorted-name order (the same seed gives
    the same values on every machine).
    """
    if scheme not in INIT_SCHEMES:
        raise GraphpathError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    role = _roles(graph, named)
    rng = np.random.default_rng([seed, 3])
    out: dict[str, np.ndarray] = {}
    for name in sorted(named):
        shape = tuple(int(d) for d in named[name].shape)
        what, op = role.get(name, ("keep", None))
        if op is None:
            continue
        if what in ("weight", "weight0") and len(shape) >= 2:
            fan_in, fan_out = _fans(what, op, shape, torch_convention=scheme != "kaiming-normal")
            if scheme == "kaiming-normal":
                out[name] = rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), size=shape).astype(np.float32)
            elif scheme == "xavier":
                bound = math.sqrt(6.0 / max(fan_in + fan_out, 1))
                out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
            else:
                bound = 1.0 / math.sqrt(max(fan_in, 1))
                out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        elif what == "bias" and scheme == "torch-default":
            w = op.inputs[1] if len(op.inputs) > 1 else ""
            w_shape = tuple(int(d) for d in named[w].shape) if w in named else None
            fan_in = _fans("weight", op, w_shape, torch_convention=True)[0] if w_shape and len(w_shape) >= 2 else 0
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        elif what in ("bias", "zero"):
            out[name] = np.zeros(shape, dtype=np.float32)
        elif what == "one":
            out[name] = np.ones(shape, dtype=np.float32)
    return out


def reinit_parameters(graph: ModelGraph, named: Mapping[str, Any], seed: int,
                      scheme: str = "kaiming-normal") -> dict[str, np.ndarray]:
    """``--reinit``: :func:`init_parameters` restricted to :data:`REINIT_SCHEMES` (kept for the
    older flag; ``--reinit kaiming-normal`` is ``--condition init --init kaiming-normal
    --norm none``)."""
    if scheme not in REINIT_SCHEMES:
        raise GraphpathError(f"unknown --reinit scheme {scheme!r}; choose one of {', '.join(REINIT_SCHEMES)}")
    return init_parameters(graph, named, seed, scheme)
