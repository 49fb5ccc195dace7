"""The measurements of the numeric backward pass, one probe or one block at a time.

One probe's forward and backward (:func:`probe_pass`), block Jacobian lower bounds by power
iteration (:func:`block_jacobian_sigma`), operator norms from weights alone (:func:`operator_norms`),
Clip bounds for the dead fractions (:func:`clip_bounds`), per-parameter gradient norms
from another backend (:func:`backend_gradient_norms`), and two scale-free views of the same
pass:

- **Signal propagation** (Brock et al. 2021, "Characterizing signal propagation to close the
  performance gap in unnormalized ResNets"): for a forward activation ``x`` of shape
  ``(N, C, …)``, the *average channel squared mean* ``mean_c (mean_{N,H,W} x)²`` and the
  *average channel variance* ``mean_c var_{N,H,W} x`` (biased variance; 0 for a tensor with one
  element per channel), :func:`channel_moments`, averaged over probes (:class:`SignalPoint`).
- **Gradient-to-weight ratios** ``‖∂L/∂W_l‖ / ‖W_l‖`` per weighted layer (weight only, bias
  excluded; ``‖∂L/∂W_l‖`` relative to the probe norm as everywhere), their spread
  ``max / min`` and the least-squares slope of ``ln`` ratio against depth
  (:func:`grad_to_weight`, :class:`GradToWeight`): the imbalance across depth that layer-wise
  learning-rate schemes (LARS, LAMB) correct. Layers with a zero weight or a zero gradient are
  listed but left out of the spread and the slope.
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
from graphpath.numeric.norm import TrainNorm
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


@dataclass(frozen=True)
class SignalPoint:
    """The forward signal at one tensor (a weighted unit's feature map or a block's output),
    averaged over probes (see the module docstring)."""

    name: str
    kind: str            # "unit" | "block"
    tensor: str
    depth: int
    channel_sq_mean: float
    channel_var: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "tensor": self.tensor, "depth": self.depth,
                "avg_channel_squared_mean": self.channel_sq_mean, "avg_channel_variance": self.channel_var}


@dataclass(frozen=True)
class GradWeightPoint:
    """One weighted layer's ``‖∂L/∂W‖ / ‖W‖``."""

    unit: str
    weight: str
    depth: int
    grad_norm: float
    weight_norm: float

    @property
    def ratio(self) -> float:
        return self.grad_norm / self.weight_norm if self.weight_norm > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "weight": self.weight, "depth": self.depth, "grad_norm": self.grad_norm,
                "weight_norm": self.weight_norm, "ratio": self.ratio}


@dataclass(frozen=True)
class GradToWeight:
    """Per-layer gradient-to-weight ratios, their spread and their trend with depth.

    Attributes:
        points: every weighted layer with a weight parameter, in topological order.
        spread: ``max / min`` ratio over the layers with a finite, positive ratio (``nan`` with
            fewer than one).
        log_slope: least-squares slope of ``ln(ratio)`` against depth (``nan`` with fewer than
            two distinct depths); ``exp(log_slope)`` is the factor per unit of depth.
        used: how many layers entered ``spread`` and ``log_slope``.
    """

    points: tuple[GradWeightPoint, ...] = ()
    spread: float = math.nan
    log_slope: float = math.nan
    used: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"spread": self.spread, "log_slope_per_depth": self.log_slope,
                "factor_per_depth": math.exp(self.log_slope) if math.isfinite(self.log_slope) else math.nan,
                "used": self.used, "layers": [p.to_dict() for p in self.points]}


def log_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ln y`` against ``x`` (``nan`` with fewer than two distinct ``x``).

    >>> round(log_slope([1, 2, 3], [1.0, 2.0, 4.0]) / math.log(2), 6)
    1.0
    """
    if len(set(xs)) < 2:
        return math.nan
    x = np.asarray(xs, dtype=np.float64)
    y = np.log(np.asarray(ys, dtype=np.float64))
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def grad_to_weight(points: Sequence[GradWeightPoint]) -> GradToWeight:
    """The spread and the depth trend of ``points`` (see :class:`GradToWeight`)."""
    used = [p for p in points if math.isfinite(p.ratio) and p.ratio > 0]
    ratios = [p.ratio for p in used]
    spread = max(ratios) / min(ratios) if ratios else math.nan
    return GradToWeight(tuple(points), spread, log_slope([p.depth for p in used], ratios), len(used))


def channel_moments(x: Any) -> tuple[float, float]:
    """``(average channel squared mean, average channel variance)`` of a forward activation
    (channels on axis 1, statistics over every other axis; a tensor of rank < 2 is one channel)."""
    import torch

    with torch.no_grad():
        t = x.detach().double()
        if t.dim() < 2:
            t = t.reshape(1, 1, -1)
        dims = [0, *range(2, t.dim())]
        mean = t.mean(dims)
        var = ((t - mean.reshape((1, -1) + (1,) * (t.dim() - 2))) ** 2).mean(dims)
        return float((mean * mean).mean().item()), float(var.mean().item())


def tensor_norm(t: Any) -> float:
    """The 2-norm of a torch tensor, in float64."""
    return float(t.detach().double().norm().item())

def probe_pass(ev: Any, params: Mapping[str, Any], heads: Sequence[str], capture: Sequence[str],
               inputs: Mapping[str, np.ndarray], cot: Mapping[str, np.ndarray],
               grad_of: Sequence[str] | None = None, train_norm: TrainNorm | None = None
               ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One probe: forward to the heads (capturing ``capture``) and one backward of
    ``Σ_h ⟨cot_h, head_h⟩``. Returns the forward values, ``∂L/∂θ`` by parameter name and
    ``∂L/∂F`` for the captured tensors in ``grad_of`` (default: all; ``None`` where no
    gradient flows). ``train_norm``: the evaluator option of the ``init`` condition."""
    import torch

    leaves = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
    feed = {n: torch.from_numpy(np.asarray(v)) for n, v in inputs.items()}
    out = ev(feed, leaves, outputs=list(heads), capture=capture, train_norm=train_norm)
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
                 at: Any, iters: int, seed: int, train_norm: TrainNorm | None = None
                 ) -> tuple[float | None, int, float, str]:
    """Power iteration on the block Jacobian ``∂exit/∂entry`` at ``at`` (jvp + vjp)."""
    import torch

    def f(v: Any) -> Any:
        return ev(x0, params, outputs=[exit_], replace={entry: v}, train_norm=train_norm)[exit_]

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
