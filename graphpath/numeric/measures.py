"""The measurements of the numeric backward pass, one probe or one block at a time.

One probe's forward and backward (:func:`probe_pass`), block Jacobian lower bounds by power
iteration (:func:`block_jacobian_sigma`), operator norms from weights alone (:func:`operator_norms`),
Clip bounds for the dead fractions (:func:`clip_bounds`) and per-parameter gradient norms
from another backend (:func:`backend_gradient_norms`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph
from graphpath.model.loaded import LoadedModel
from graphpath.numeric.backends import Backend
from graphpath.numeric.metrics import conv_operator_norm, power_iteration
from graphpath.numeric.options import BackwardOptions


@dataclass(frozen=True)
class OperatorNorm:
    """A weighted unit's operator norm from its weights alone."""

    unit: str
    weight: str
    method: str
    sigma: float
    iterations: int
    last_change: float
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "weight": self.weight, "method": self.method, "sigma": self.sigma,
                "iterations": self.iterations, "last_change": self.last_change, "input_shape": list(self.shape)}


def tensor_norm(t: Any) -> float:
    """The 2-norm of a torch tensor, in float64."""
    return float(t.detach().double().norm().item())

def probe_pass(ev: Any, params: Mapping[str, Any], heads: Sequence[str], capture: Sequence[str],
               inputs: Mapping[str, np.ndarray], cot: Mapping[str, np.ndarray],
               grad_of: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One probe: forward to the heads (capturing ``capture``) and one backward of
    ``Σ_h ⟨cot_h, head_h⟩``. Returns the forward values, ``∂L/∂θ`` by parameter name and
    ``∂L/∂F`` for the captured tensors in ``grad_of`` (default: all; ``None`` where no
    gradient flows)."""
    import torch

    leaves = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
    feed = {n: torch.from_numpy(np.asarray(v)) for n, v in inputs.items()}
    out = ev(feed, leaves, outputs=list(heads), capture=capture)
    loss = sum((out[h] * torch.as_tensor(cot[h], device=ev.device, dtype=out[h].dtype)).sum() for h in heads)
    targets = [t for t in (capture if grad_of is None else grad_of) if out[t].requires_grad]
    wrt = list(leaves.values()) + [out[t] for t in targets]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    pg = dict(zip(leaves, grads[: len(leaves)], strict=True))
    ag = dict(zip(targets, grads[len(leaves):], strict=True))
    return out, pg, ag


def cotangent_norm(cot: Mapping[str, np.ndarray]) -> float:
    """The 2-norm of a probe's cotangents over all heads."""
    return math.sqrt(sum(float(np.square(c, dtype=np.float64).sum()) for c in cot.values()))


def backend_gradient_norms(backend: Backend, model: LoadedModel, inputs_for: Callable[[int], dict[str, np.ndarray]],
                   heads: Sequence[str], cots: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """Mean relative per-parameter gradient norms from another backend, same probes."""
    sums: dict[str, float] = {}
    for k, cot in enumerate(cots):
        grads = backend.parameter_gradients(model, inputs_for(k), heads, cot)
        for n, g in grads.items():
            sums[n] = sums.get(n, 0.0) + float(np.linalg.norm(np.asarray(g, dtype=np.float64))) / cotangent_norm(cot)
    return {n: v / len(cots) for n, v in sums.items()}


def clip_bounds(model: LoadedModel, attrs: Mapping[str, Any]) -> tuple[float, float] | None:
    """A Clip's (min, max), from its attributes (old opsets) or its constant inputs."""
    graph = model.graph
    if "min" in attrs or "max" in attrs:
        return float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))
    names = [t for t in attrs.get("_inputs", ()) if t]
    constants = {t for t in names if t in graph.producer_of and graph.op(graph.producer_of[t]).op_type == "Constant"}
    if not all(t in graph.params or t in constants for t in names):
        return None
    arrays = model.arrays(set(names))
    ins = list(attrs.get("_inputs", ())) + ["", ""]
    lo = float(arrays[ins[0]]) if ins[0] else -math.inf
    hi = float(arrays[ins[1]]) if ins[1] else math.inf
    return lo, hi


def block_jacobian_sigma(ev: Any, x0: Mapping[str, Any], params: Mapping[str, Any], entry: str, exit_: str,
                 at: Any, iters: int, seed: int) -> tuple[float | None, int, float, str]:
    """Power iteration on the block Jacobian ``∂exit/∂entry`` at ``at`` (jvp + vjp)."""
    import torch

    def f(v: Any) -> Any:
        return ev(x0, params, outputs=[exit_], replace={entry: v})[exit_]

    gen = torch.Generator().manual_seed(seed)
    v0 = torch.randn(tuple(at.shape), generator=gen, dtype=torch.float64).to(at.device, at.dtype)
    base = at.detach()
    try:
        pull = torch.func.vjp(f, base)[1]

        def apply(v: Any) -> Any:
            return torch.func.jvp(f, (base,), (v,))[1]

        est = power_iteration(apply, lambda u: pull(u)[0], v0, iters=iters, tol=1e-3)
    except Exception as exc:  # an op without forward-mode AD: report, never crash
        return None, 0, math.nan, f"power iteration failed: {type(exc).__name__}: {str(exc)[:120]}"
    return est.sigma, est.iterations, est.last_change, ""


def operator_norms(graph: ModelGraph, layers: LayerGraph, ev: Any, params: Mapping[str, Any],
                   opts: BackwardOptions) -> list[OperatorNorm]:
    """Every weighted unit's operator norm from its weights alone: power iteration on convs
    (inputs capped to ``spectral_max_hw``), the exact 2-norm of Gemm/MatMul weights."""
    import torch

    out: list[OperatorNorm] = []
    for i, uid in enumerate(u for u in layers.topo_order() if layers.unit(u).weighted):
        op = graph.op(layers.unit(uid).nodes[0])
        w_name = op.inputs[1] if len(op.inputs) > 1 else ""
        if w_name not in params:
            continue
        w = params[w_name]
        if op.op_type == "Conv" and w.dim() == 4 and op.attrs.get("auto_pad", "NOTSET") in ("NOTSET", b"NOTSET"):
            x_shape = ev.shapes.get(op.inputs[0])
            if x_shape is None or len(x_shape) != 4:
                continue
            nd = 2
            pads = list(op.attrs.get("pads", [0] * (2 * nd)))
            est = conv_operator_norm(w, strides=list(op.attrs.get("strides", [1] * nd)), pads=pads,
                                     dilations=list(op.attrs.get("dilations", [1] * nd)),
                                     groups=int(op.attrs.get("group", 1)), in_hw=x_shape[2:],
                                     max_hw=opts.spectral_max_hw, iters=opts.power_iters, seed=opts.seed + i,
                                     dtype=torch.float32)
            hw = tuple(min(int(s), opts.spectral_max_hw) for s in x_shape[2:])
            out.append(OperatorNorm(uid, w_name, "power-iteration", est.sigma, est.iterations, est.last_change,
                                    (int(x_shape[1]), *hw)))
        elif op.op_type in ("Gemm", "MatMul") and w.dim() == 2:
            s = float(np.linalg.norm(w.detach().cpu().double().numpy(), 2))
            out.append(OperatorNorm(uid, w_name, "svd", s, 0, 0.0, tuple(int(d) for d in w.shape)))
    return out
