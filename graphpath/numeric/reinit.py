"""``--reinit``: fresh parameter values for the numeric backward pass (:func:`reinit_parameters`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph

#: ``--reinit`` schemes (see :func:`reinit_parameters`).
REINIT_SCHEMES = ("kaiming-normal",)


def reinit_parameters(graph: ModelGraph, named: Mapping[str, Any], seed: int,
                      scheme: str = "kaiming-normal") -> dict[str, np.ndarray]:
    """New values for the trainable parameters (ONNX name → float32 array), for ``--reinit``.

    ``kaiming-normal`` (He et al. 2015, fan-in, ReLU gain):

    - weights of Conv / ConvTranspose / Gemm / MatMul: ``N(0, 2 / fan_in)`` with
      ``fan_in = (C_in / groups) · prod(kernel)`` (Conv: ``W.shape[1] · prod(W.shape[2:])``;
      ConvTranspose: ``W.shape[1]·groups``… taken as ``W.shape[0] / groups · prod(kernel)``;
      Gemm: the reduced dimension per ``transB``; MatMul: ``W.shape[0]``);
    - their biases (BN already folded into them in deploy exports): 0;
    - BatchNormalization / LayerNormalization / InstanceNormalization scale 1, bias 0 (running
      statistics are not parameters and are left as exported);
    - every other float parameter: unchanged.

    Drawn with ``numpy.random.default_rng([seed, 3])`` in sorted-name order.
    """
    if scheme not in REINIT_SCHEMES:
        raise GraphpathError(f"unknown --reinit scheme {scheme!r}; choose one of {', '.join(REINIT_SCHEMES)}")
    role: dict[str, tuple[str, Any]] = {}
    for op in graph.ops():
        for pos, t in enumerate(op.inputs):
            if t not in named or t in role:
                continue
            ot = op.op_type
            if ot in ("Conv", "ConvTranspose", "Gemm", "MatMul") and pos == 1:
                role[t] = ("weight", op)
            elif ot in ("Conv", "ConvTranspose", "Gemm") and pos == 2:
                role[t] = ("zero", op)
            elif ot == "MatMul" and pos == 0:
                role[t] = ("weight0", op)
            elif ot in ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"):
                role[t] = ("one" if pos == 1 else "zero", op)
    rng = np.random.default_rng([seed, 3])
    out: dict[str, np.ndarray] = {}
    for name in sorted(named):
        shape = tuple(named[name].shape)
        what, op = role.get(name, ("keep", None))
        if what in ("weight", "weight0") and len(shape) >= 2:
            if op.op_type == "Conv":
                fan_in = int(np.prod(shape[1:]))
            elif op.op_type == "ConvTranspose":
                fan_in = int(shape[0] // int(op.attrs.get("group", 1)) * np.prod(shape[2:]))
            elif op.op_type == "Gemm":
                fan_in = int(shape[1] if op.attrs.get("transB", 0) else shape[0])
            else:
                fan_in = int(shape[-2]) if what == "weight" else int(shape[-1])
            out[name] = rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), size=shape).astype(np.float32)
        elif what == "zero":
            out[name] = np.zeros(shape, dtype=np.float32)
        elif what == "one":
            out[name] = np.ones(shape, dtype=np.float32)
    return out
