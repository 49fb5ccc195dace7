"""The numeric backward pass's front door: :func:`run_backward` → :class:`NumericReport`.

Steps (each a function returning a frozen dataclass; progress through
``progress(done, total, label)``):

1. Load the graph and its layer view; find the raw head tensors and the decode tail cut off
   after them (:mod:`graphpath.numeric.probes`).
2. Build the torch evaluator for the heads and check its forward against onnxruntime at the
   heads on probe 0's input; refuse (:class:`~graphpath.errors.GraphpathError`) beyond
   tolerance.
3. For each of ``K`` probes (seeded random image — or ``--input`` — and seeded standard-normal
   cotangents at the heads): one forward and one backward give ``∂L/∂θ`` for every parameter
   and ``∂L/∂F`` at every weighted unit's feature map and every block boundary; the
   pre-activations give the dead fractions.
4. On probe 0: block Jacobian bounds by power iteration (jvp + vjp); from weights alone: conv
   operator norms.
5. Per-parameter gradients from the selected backend (``--backend``); with ``both``, the
   agreement of per-parameter gradient norms between torch and onnxruntime-training.
6. Steps 3–5 repeat for every seed of ``BackwardOptions.seed_list`` (``--seeds``; the loaded
   model, the evaluator, the parity check and the plan are shared); the repetitions are pooled,
   the ratio, gains and Jacobian bounds get 95 % intervals (:mod:`graphpath.numeric.intervals`),
   and the verdict (:func:`graphpath.numeric.metrics.verdict`) is decided on the ratio's
   interval when there are several seeds (``inconclusive`` when it straddles a boundary).

The **condition** (``BackwardOptions.condition``): ``weights`` runs at the file's own weights;
``init`` re-draws every weighted layer with ``BackwardOptions.init``
(:func:`graphpath.numeric.reinit.init_parameters`) and restores train-mode BatchNorm where
``BackwardOptions.norm`` resolves to ``batch`` (:func:`graphpath.numeric.norm.resolve_norm`; the
evaluator's ``train_norm`` option) for steps 3–5. ``--reinit kaiming-normal`` is ``init`` with
``kaiming-normal`` and no norm. Under ``init`` only the torch evaluator can run (the parameters
and the restored BatchNorm live there). The parity check always runs on the model's own weights
without restored BatchNorm.

Step 3 also records the forward signal (average channel squared mean and variance, Brock et
al. 2021) at every weighted unit's feature map and every block's output, and the report
derives the per-layer gradient-to-weight ratios ``‖∂L/∂W‖/‖W‖`` from its parameter gradients
(:mod:`graphpath.numeric.measures`).

Example::

    report = run_backward(onnx_io.open_model("models/yolov8n.onnx"), BackwardOptions(probes=2))
    print(report.verdict, report.ratio)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph
from graphpath.model.loaded import LoadedModel
from graphpath.numeric.backends import Backend, TorchBackend, select_backends
from graphpath.numeric.intervals import Interval, interval, verdict_on_interval
from graphpath.numeric.measures import (
    GradWeightPoint,
    OperatorNorm,
    SignalPoint,
    backend_gradient_norms,
    block_jacobian_sigma,
    channel_moments,
    clip_bounds,
    cotangent_norm,
    grad_to_weight,
    operator_norms,
    probe_pass,
    tensor_norm,
)
from graphpath.numeric.metrics import activation_input, dead_fraction, unit_depths, verdict
from graphpath.numeric.norm import NormPlan, TrainNorm, resolve_norm
from graphpath.numeric.options import BackwardOptions
from graphpath.numeric.probes import HeadCut, all_heads, find_head_cuts, probe_cotangents, probe_inputs
from graphpath.numeric.reinit import REINIT_SCHEMES, init_parameters, reinit_parameters
from graphpath.numeric.results import (
    BackendAgreement,
    BlockResult,
    DeadFraction,
    NumericReport,
    Parity,
    UnitGradient,
    Verdict,
)
from graphpath.numeric.scope import (
    detected_blocks,
    feature_tensor,
    input_setup,
    reachable_tensors,
    sibling_entry,
    stage_blocks,
    tensor_consumers,
)

__all__ = ["BackwardOptions", "NumericReport", "REINIT_SCHEMES", "init_parameters", "reinit_parameters",
           "run_backward"]

Progress = Callable[[int, int, str], None]


class _Ticker:
    """``progress(done, total, label)`` over the pass's steps; ``total`` is known after planning."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, label: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, label)


@dataclass(frozen=True)
class _Setup:
    """Step 1: the model, its heads, the evaluator and the parameters the probes run at."""

    model: LoadedModel
    cuts: tuple[HeadCut, ...]
    heads: tuple[str, ...]
    ev: Any
    fixed_input: np.ndarray | None
    seed: int
    named: Mapping[str, Any]          # the evaluator's own parameters (torch), by ONNX name
    overrides: Mapping[str, Any]      # the init condition's values by ONNX name
    base: Mapping[str, Any]           # what the probes run at: overrides else the model's own
    norm: NormPlan                    # where train-mode BatchNorm is restored

    @property
    def train_norm(self) -> TrainNorm | None:
        return self.norm.train_norm

    def inputs_for(self, k: int) -> dict[str, np.ndarray]:
        """Probe ``k``'s input (seeded image, or ``--input`` for every probe)."""
        dtypes = {t.name: t.dtype for t in self.model.graph.inputs}
        arr = probe_inputs(self.ev.input_shapes, dtypes, self.seed, k)
        if self.fixed_input is not None:
            first = next(iter(arr))
            arr[first] = self.fixed_input.astype(arr[first].dtype)
        return arr


@dataclass(frozen=True)
class _Plan:
    """Step 3 planning: what the probes capture, the blocks whose gain is measured (every detected
    block with one entry and one exit in scope) and how many of them (the first ``jacobians``)
    also get a Jacobian bound."""

    feature: Mapping[str, str]        # weighted unit → its feature tensor
    activations: Mapping[str, tuple[str, str, dict[str, Any], tuple[float, float] | None]]
    blocks: tuple[tuple[str, str, str, str], ...]   # (name, kind, entry, exit)
    block_source: str
    jacobians: int
    boundary: tuple[str, ...]                       # entries and exits of the blocks with a bound
    grad_of: tuple[str, ...]
    capture: tuple[str, ...]
    depths: Mapping[str, int]
    first_units: tuple[str, ...]
    consumers: Mapping[str, Sequence[str]]
    signal: tuple[tuple[str, str, str, int], ...]   # (name, kind, tensor, depth) of the forward signal


@dataclass(frozen=True)
class _ProbeTotals:
    """Step 3: the probes' sums (divided by ``K`` in the report)."""

    grad_sum: Mapping[str, float]
    numel: Mapping[str, int]
    param_sum: Mapping[str, float]
    dead: Mapping[str, DeadFraction]
    nonfinite: tuple[str, ...]
    ratios: tuple[float, ...]         # per probe
    ratios_rms: tuple[float, ...]
    moments: Mapping[str, tuple[float, float]]        # tensor → summed (channel squared mean, variance)
    cotangents: tuple[dict[str, np.ndarray], ...]
    torch_param_grads: tuple[dict[str, np.ndarray], ...]   # only with --backend both


@dataclass(frozen=True)
class _BackendOutcome:
    """Step 5: which backends ran, why, and what they gave."""

    name: str
    reason: str
    parameters: Mapping[str, float] | None      # replaces torch's when another backend ran alone
    agreement: BackendAgreement | None


def _why_no_gradient(graph: ModelGraph, heads: Sequence[str], op_norms: Sequence[OperatorNorm]) -> str:
    """Why nothing reaches the first feature map, when the weights say it: zero prediction convs
    (YOLOv6 and others initialise them to zero) pass no gradient back at all."""
    sigma = {o.weight: o.sigma for o in op_norms}
    zero = sorted(w for h in heads if h in graph.producer_of
                  for w in graph.op(graph.producer_of[h]).inputs[1:2] if sigma.get(w) == 0.0)
    if zero:
        return (f"; {len(zero)} of the {len(heads)} raw head convs have all-zero weights (zero-initialised "
                "prediction layers), so no gradient flows back into the body at these weights")
    return "; no gradient reaches the first feature map (zero weights or dead activations on every path)"


# --------------------------------------------------------------------------- steps


def _setup(model: LoadedModel, opts: BackwardOptions) -> _Setup:

    from graphpath.numeric.evaluator.core import Evaluator

    cuts = find_head_cuts(model.graph, model.layers, opts.head_finder)
    heads = all_heads(cuts)
    if not heads:
        raise GraphpathError(f"{model.name}: no weighted unit feeds any output; nothing to differentiate")
    shapes, fixed = input_setup(model.graph, opts)
    ev = Evaluator.from_model(model, device=opts.device, outputs=list(heads), input_shapes=shapes)
    named = ev.named_onnx_parameters()
    in_scope = {t: s for t, s in ev.shapes.items() if t not in ev.folded and t not in model.graph.params}
    norm = resolve_norm(model, heads, in_scope, opts.norm, opts.condition)
    own = {k: v.detach() for k, v in named.items()}
    if opts.condition == "weights":
        _require_finite(model, own)
    return _reseed(_Setup(model, cuts, heads, ev, fixed, opts.seed_list[0], named, {}, own, norm),
                   opts.seed_list[0], opts)


def _require_finite(model: LoadedModel, params: Mapping[str, Any]) -> None:
    """The file's own weights must be finite: a gradient through NaN or Inf weights is no
    measurement (and the SVDs of the operator norms do not converge on them)."""
    bad = sorted(k for k, v in params.items() if v.is_floating_point() and not bool(v.isfinite().all()))
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise GraphpathError(
            f"{model.name}: parameter {bad[0]!r}{more} holds NaN or Inf; gradients at these weights mean "
            "nothing (--condition init measures the architecture at a fresh initialisation)"
        )


def _reseed(s: _Setup, seed: int, opts: BackwardOptions) -> _Setup:
    """``s`` for one repetition: its seed and, under ``init``, the parameters drawn with it (the
    evaluator, the heads and the BatchNorm plan are shared by every repetition)."""
    import torch

    if opts.condition != "init":
        return dataclasses.replace(s, seed=seed)
    overrides = init_parameters(s.model.graph, s.named, seed, opts.init)
    base = {k: (torch.as_tensor(overrides[k], device=s.ev.device, dtype=s.ev.dtype) if k in overrides
                else v.detach()) for k, v in s.named.items()}
    return dataclasses.replace(s, seed=seed, overrides=overrides, base=base)


def _parity(s: _Setup, opts: BackwardOptions) -> Parity:
    """Step 2: the model's own weights, probe 0's input, compared at the heads."""
    from graphpath.numeric.parity import verified_parity

    parity, notes = verified_parity(s.ev, s.model, s.inputs_for(0), rtol=opts.parity_rtol, atol=opts.parity_atol,
                                    seed=opts.seed)
    return Parity(max_abs=parity.max_abs, max_rel=parity.max_rel, rtol=parity.rtol, atol=parity.atol,
                  compared_at=s.heads, notes=notes)


def _plan(s: _Setup, opts: BackwardOptions) -> _Plan:
    graph, layers, ev = s.model.graph, s.model.layers, s.ev

    def in_scope(t: str) -> bool:
        return t in ev.shapes and t not in ev.folded and t not in graph.params

    depths = unit_depths(layers)
    feature: dict[str, str] = {}
    for uid in (u for u in layers.topo_order() if layers.unit(u).weighted):
        t = feature_tensor(graph, layers, uid, in_scope)
        if t is not None and uid in depths:
            feature[uid] = t
    acts: dict[str, tuple[str, str, dict[str, Any], tuple[float, float] | None]] = {}
    for uid in feature:
        info = activation_input(graph, layers, uid)
        # the activation itself must feed the heads: a head conv's decode sigmoid does not
        if info is None or not in_scope(info[1]) or not in_scope(layers.unit(uid).tensor):
            continue
        kind, x, attrs = info
        acts[uid] = (kind, x, attrs, clip_bounds(s.model, attrs) if kind == "clip" else None)

    found = detected_blocks(s.model.blocks, in_scope)
    if found:
        source, block_list = "graphpath.blocks.detect_blocks", found
    else:
        source = "resolution stages (no detected block with one entry and one exit)"
        block_list = [(n, "stage", e, x) for n, e, x in stage_blocks(graph, layers, in_scope)]
    consumers = tensor_consumers(graph)
    blocks = tuple((n, k, e if x in reachable_tensors(graph, e, consumers)
                    else (sibling_entry(graph, e, x, consumers) or e), x)
                   for n, k, e, x in block_list)
    jacobians = min(opts.max_blocks, len(blocks))
    boundary = tuple(sorted({t for _, _, e, x in blocks[:jacobians] for t in (e, x)}))
    rank = {u: i for i, u in enumerate(layers.topo_order())}
    tensor_depth = _tensor_depths(graph, layers, depths)
    # the forward signal at every block's output, not only the max_blocks with a Jacobian bound
    signal = tuple((u, "unit", t, depths[u]) for u, t in sorted(feature.items(), key=lambda kv: rank[kv[0]]))
    signal += tuple(sorted(((n, "block", x, tensor_depth.get(x, 0)) for n, _, _, x in block_list),
                           key=lambda p: p[3]))
    # every block's entry and exit: its gain costs two gradient norms, only the bound is dear
    grad_of = tuple(sorted(set(feature.values()) | {t for _, _, e, x in blocks for t in (e, x)}))
    # pre-activations and block outputs beyond max_blocks: forward only
    capture = tuple(sorted(set(grad_of) | {a[1] for a in acts.values()} | {t for _, _, t, _ in signal}))
    return _Plan(feature=feature, activations=acts, blocks=blocks, block_source=source, jacobians=jacobians,
                 boundary=boundary,
                 grad_of=grad_of, capture=capture, depths=depths,
                 first_units=tuple(u for u in feature if depths.get(u) == 1), consumers=consumers, signal=signal)


def _tensor_depths(graph: ModelGraph, layers: LayerGraph, depths: Mapping[str, int]) -> dict[str, int]:
    """The depth of every tensor a unit's ops produce (the unit's depth)."""
    out: dict[str, int] = {}
    for uid, d in depths.items():
        for name in layers.unit(uid).nodes:
            for t in graph.op(name).outputs:
                if t:
                    out[t] = d
    return out


def _probes(s: _Setup, plan: _Plan, opts: BackwardOptions, tick: _Ticker) -> _ProbeTotals:
    """Step 3: ``K`` probes, each one forward and one backward."""
    import torch

    ev, heads = s.ev, s.heads
    grad_sum = dict.fromkeys(plan.capture, 0.0)
    numel: dict[str, int] = {}
    param_sum = dict.fromkeys(s.named, 0.0)
    dead_counts: dict[str, list[int]] = {}
    nonfinite: set[str] = set()
    ratios: list[float] = []
    ratios_rms: list[float] = []
    moments = {t: (0.0, 0.0) for _, _, t, _ in plan.signal}
    param_grads: list[dict[str, np.ndarray]] = []
    cots: list[dict[str, np.ndarray]] = []
    nh = sum(int(np.prod(ev.shapes[h])) for h in heads) or 1
    for k in range(opts.probes):
        cot = probe_cotangents(ev.shapes, heads, s.seed, k)
        cots.append(cot)
        cnorm = cotangent_norm(cot)
        out, pg, ag = probe_pass(ev, s.base, heads, plan.capture, s.inputs_for(k), cot, plan.grad_of,
                                 train_norm=s.train_norm)
        nonfinite.update(f"forward:{h}" for h in heads if not bool(torch.isfinite(out[h]).all()))
        for n, g in pg.items():
            if g is None:
                continue
            if not bool(torch.isfinite(g).all()):
                nonfinite.add(f"param-grad:{n}")
            param_sum[n] += tensor_norm(g) / cnorm
        if opts.backend == "both":
            param_grads.append({n: (np.zeros(tuple(s.base[n].shape)) if g is None else
                                    g.detach().cpu().double().numpy()) for n, g in pg.items()})
        for t in plan.capture:
            numel[t] = int(out[t].numel())
            g = ag.get(t)
            if g is None:
                continue
            if not bool(torch.isfinite(g).all()):
                nonfinite.add(f"act-grad:{t}")
            grad_sum[t] += tensor_norm(g) / cnorm
        first = [plan.feature[u] for u in plan.first_units if ag.get(plan.feature[u]) is not None]
        f0 = math.sqrt(sum(tensor_norm(ag[t]) ** 2 for t in first))
        n0 = sum(numel[plan.feature[u]] for u in plan.first_units) or 1
        ratios.append(f0 / cnorm)
        ratios_rms.append((f0 / math.sqrt(n0)) / (cnorm / math.sqrt(nh)))
        for t, (m2, var) in moments.items():
            dm2, dvar = channel_moments(out[t])
            moments[t] = (m2 + dm2, var + dvar)
        with torch.no_grad():
            for kind, xt, attrs, bounds in plan.activations.values():
                res = dead_fraction(kind, out[xt], attrs, threshold=opts.dead_threshold, bounds=bounds)
                if res is None:
                    continue
                c = dead_counts.setdefault(kind, [0, 0, 0])
                c[0] += res[0]
                c[1] += res[1]
                c[2] += k == 0
        del out, pg, ag
        tick(f"probe {k + 1}/{opts.probes}")
    return _ProbeTotals(grad_sum=grad_sum, numel=numel, param_sum=param_sum,
                        dead={kind: DeadFraction(dead=c[0], total=c[1], units=c[2]) for kind, c in dead_counts.items()},
                        nonfinite=tuple(sorted(nonfinite)), ratios=tuple(ratios), ratios_rms=tuple(ratios_rms),
                        moments=moments, cotangents=tuple(cots), torch_param_grads=tuple(param_grads))


def _blocks(s: _Setup, plan: _Plan, totals: _ProbeTotals, opts: BackwardOptions,
            tick: _Ticker) -> tuple[BlockResult, ...]:
    """Step 4a: each block's observed gain and its Jacobian bound, on probe 0."""
    import torch

    x0 = {n: torch.from_numpy(v) for n, v in s.inputs_for(0).items()}
    with torch.no_grad():
        entry_vals = (s.ev(x0, s.base, outputs=list(s.heads), capture=list(plan.boundary), train_norm=s.train_norm)
                      if plan.boundary else {})
    out: list[BlockResult] = []
    for i, (name, kind, entry, exit_) in enumerate(plan.blocks):
        g_in, g_out = totals.grad_sum.get(entry, 0.0), totals.grad_sum.get(exit_, 0.0)
        gain = g_in / g_out if g_out > 0 else math.nan
        if exit_ not in reachable_tensors(s.model.graph, entry, plan.consumers):
            sigma, iters, change, note = None, 0, math.nan, "exit does not depend on entry: no Jacobian"
        elif i >= plan.jacobians:
            sigma, iters, change, note = None, 0, math.nan, "gain only: beyond --max-blocks"
        else:
            sigma, iters, change, note = block_jacobian_sigma(s.ev, x0, s.base, entry, exit_, entry_vals[entry],
                                                              opts.power_iters, s.seed + i, s.train_norm)
        out.append(BlockResult(name, kind, plan.block_source, entry, exit_, gain, sigma, iters, change, note))
        tick(f"block {i + 1}/{len(plan.blocks)}")
    return tuple(out)


def _backends(s: _Setup, totals: _ProbeTotals, opts: BackwardOptions) -> _BackendOutcome:
    """Step 5: the gradient backends (``--backend``) and, with ``both``, their agreement."""
    torch_backend = TorchBackend(opts.device, evaluator=s.ev, params=s.overrides, train_norm=s.train_norm)
    if opts.condition == "init" or s.train_norm is not None:
        chosen: list[Backend] = [torch_backend]
        what = [w for w, on in (("the init condition's parameters", opts.condition == "init"),
                                ("train-mode BatchNorm", s.train_norm is not None)) if on]
        why = f"torch: only the torch evaluator runs {' and '.join(what)}"
    else:
        chosen, why = select_backends(opts.backend, s.model, torch_backend=torch_backend)
    name = "+".join(b.name for b in chosen)
    if chosen[-1].name == "torch":
        return _BackendOutcome(name, why, None, None)
    other = backend_gradient_norms(chosen[-1], s.model, s.inputs_for, s.heads, list(totals.cotangents))
    if len(chosen) == 1:
        return _BackendOutcome(name, why, other, None)
    K = len(totals.cotangents)
    tn = {n: sum(float(np.linalg.norm(g[n])) / cotangent_norm(c)
                 for g, c in zip(totals.torch_param_grads, totals.cotangents, strict=True)) / K
          for n in s.named}
    diffs = {n: abs(tn[n] - other.get(n, math.nan)) / max(tn[n], other.get(n, 0.0), 1e-30) for n in tn}
    worst = max(diffs, key=lambda n: -1.0 if math.isnan(diffs[n]) else diffs[n]) if diffs else ""
    agreement = BackendAgreement(
        max_rel_diff=max((v for v in diffs.values() if not math.isnan(v)), default=math.nan),
        worst_parameter=worst, compared=len(diffs), missing=tuple(sorted(set(tn) ^ set(other))))
    return _BackendOutcome(name, why, None, agreement)


def _verdict(s: _Setup, ratio: float, curve: Sequence[UnitGradient], nonfinite: tuple[str, ...],
             first_units: tuple[str, ...], op_norms: Sequence[OperatorNorm],
             opts: BackwardOptions) -> tuple[Verdict, str]:
    """Step 6: the verdict on the ratio and the curve, with the reason."""
    if not first_units and not nonfinite:
        return "nan", "no depth-1 weighted unit feeds the heads; the ratio is undefined"
    value, reason = verdict(ratio, [c.rel_grad_norm for c in curve], nonfinite, opts.thresholds)
    if ratio == 0.0:
        reason += _why_no_gradient(s.model.graph, s.heads, op_norms)
    return value, reason


def _grad_weight_points(s: _Setup, plan: _Plan, parameters: Mapping[str, float]) -> list[GradWeightPoint]:
    """``‖∂L/∂W‖`` and ``‖W‖`` of every weighted unit feeding the heads (its weight: the
    anchoring op's parameter input, ``x·W`` first), at the parameters the probes ran at."""
    graph, layers = s.model.graph, s.model.layers
    points: list[GradWeightPoint] = []
    for uid in plan.feature:
        op = graph.op(layers.unit(uid).nodes[0])
        w = next((t for t in (op.inputs[1:2] + op.inputs[:1]) if t in s.base and t in parameters), None)
        if w is None:
            continue
        points.append(GradWeightPoint(uid, w, plan.depths[uid], float(parameters[w]), tensor_norm(s.base[w])))
    return points


@dataclass(frozen=True)
class _SeedRun:
    """Steps 3–5 of one repetition."""

    setup: _Setup
    totals: _ProbeTotals
    blocks: tuple[BlockResult, ...]
    op_norms: tuple[OperatorNorm, ...]
    backends: _BackendOutcome

    @property
    def parameters(self) -> dict[str, float]:
        K = len(self.totals.ratios)
        return dict(self.backends.parameters or {n: v / K for n, v in self.totals.param_sum.items()})


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _pooled_blocks(runs: Sequence[_SeedRun]) -> tuple[BlockResult, ...]:
    """Each block's gain and Jacobian bound averaged over the repetitions."""
    out = []
    for per_seed in zip(*(r.blocks for r in runs), strict=True):
        first = per_seed[0]
        sigmas = [b.jacobian_sigma for b in per_seed]
        out.append(dataclasses.replace(
            first, gain=_mean([b.gain for b in per_seed]),
            jacobian_sigma=None if any(x is None for x in sigmas) else _mean([x for x in sigmas if x is not None]),
            iterations=max(b.iterations for b in per_seed), last_change=max(b.last_change for b in per_seed)))
    return tuple(out)


def _clipped(iv: Interval, *, high: float = math.inf) -> Interval:
    """``iv`` kept inside the quantity's range [0, ``high``] (a linear t-interval need not be)."""
    if math.isnan(iv.low) or math.isnan(iv.high):  # not a measurement: leave it as it is
        return iv
    return dataclasses.replace(iv, low=max(0.0, iv.low), high=min(high, iv.high))


def _seed_intervals(runs: Sequence[_SeedRun]) -> dict[str, Interval]:
    """Ratios, block gains and Jacobian bounds: mean and 95 % interval over the repetitions (log
    space), and the dead fraction (linear); or the ratios over the probes of the one repetition."""
    if len(runs) == 1:
        t = runs[0].totals
        return {"ratio": interval(t.ratios, log=True, over="probes"),
                "ratio_rms": interval(t.ratios_rms, log=True, over="probes")}
    out = {"ratio": interval([_mean(r.totals.ratios) for r in runs], log=True, over="seeds"),
           "ratio_rms": interval([_mean(r.totals.ratios_rms) for r in runs], log=True, over="seeds")}
    # every finite gain, zeros included, as in the table's cells (a zero makes the interval linear)
    gains = [[b.gain for b in r.blocks if math.isfinite(b.gain)] for r in runs]
    if all(gains):
        out["min_block_gain"] = _clipped(interval([min(g) for g in gains], log=True, over="seeds"))
        out["max_block_gain"] = _clipped(interval([max(g) for g in gains], log=True, over="seeds"))
    sigmas = [[b.jacobian_sigma for b in r.blocks if b.jacobian_sigma is not None and b.jacobian_sigma > 0]
              for r in runs]
    if all(sigmas):
        out["max_block_jacobian"] = interval([max(x for x in g if x is not None) for g in sigmas], log=True,
                                             over="seeds")
    dead = [(sum(d.dead for d in r.totals.dead.values()), sum(d.total for d in r.totals.dead.values())) for r in runs]
    if all(t for _, t in dead):  # a fraction: its interval is linear, not in log space
        out["dead_fraction"] = _clipped(interval([n / t for n, t in dead], log=False, over="seeds"), high=1.0)
    return out


# --------------------------------------------------------------------------- main


def run_backward(model: LoadedModel | str | os.PathLike[str], options: BackwardOptions | None = None, *,
                 progress: Progress | None = None) -> NumericReport:
    """Run the numeric backward pass on one model (see the module docstring); a path is opened
    with :func:`graphpath.onnx_io.open_model`.

    Raises:
        GraphpathError: unreadable model, no raw heads found, unsupported ops in the heads'
            scope, forward parity beyond tolerance, a backend asked for that is unavailable.
    """
    opts = options or BackwardOptions()
    if opts.probes < 1:
        raise GraphpathError("--probes must be at least 1")
    if opts.reinit is not None and opts.reinit not in REINIT_SCHEMES:
        raise GraphpathError(f"unknown --reinit scheme {opts.reinit!r}; choose one of {', '.join(REINIT_SCHEMES)}")
    if (opts.condition == "init" or opts.norm == "batch") and opts.backend in ("ort-training", "both"):
        what = "--condition init" if opts.condition == "init" else "--norm batch"
        raise GraphpathError(f"--backend {opts.backend} cannot run under {what}: onnxruntime-training differentiates "
                             "the file's own graph and weights; use --backend torch (or auto)")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now

    start = clock
    loaded = onnx_io.as_loaded(model)
    s0 = _setup(loaded, opts)
    lap("load")
    parity = _parity(s0, opts)
    lap("parity")
    plan = _plan(s0, opts)
    seeds = opts.seed_list
    tick = _Ticker(progress, 1 + len(seeds) * (opts.probes + len(plan.blocks) + 1))
    tick("parity")
    runs: list[_SeedRun] = []
    for seed in seeds:
        began = time.perf_counter()
        s = s0 if seed == s0.seed else _reseed(s0, seed, opts)
        totals = _probes(s, plan, opts, tick)
        blocks = _blocks(s, plan, totals, opts, tick)
        op_norms = tuple(operator_norms(loaded.graph, loaded.layers, s.ev, s.base, opts))
        backends = _backends(s, totals, opts)
        tick("operator norms and backends")
        runs.append(_SeedRun(s, totals, blocks, op_norms, backends))
        timings[f"seed {seed}"] = time.perf_counter() - began
    lap("seeds")
    return _report(loaded, opts, s0, parity, plan, runs, timings, start)


def _report(loaded: LoadedModel, opts: BackwardOptions, s0: _Setup, parity: Parity, plan: _Plan,
            runs: Sequence[_SeedRun], timings: dict[str, float], start: float) -> NumericReport:
    """Step 6: the repetitions pooled (sums over every probe of every seed, block results and
    operator norms averaged), the intervals, and the verdict — on the ratio's interval when
    there are several seeds, on the pooled ratio (as for one seed) otherwise."""
    K = sum(len(r.totals.ratios) for r in runs)
    grad_sum = {t: sum(r.totals.grad_sum[t] for r in runs) for t in runs[0].totals.grad_sum}
    rank = {u: i for i, u in enumerate(loaded.layers.topo_order())}
    curve = tuple(UnitGradient(u, t, plan.depths[u], grad_sum[t] / K, runs[0].totals.numel.get(t, 0))
                  for u, t in sorted(plan.feature.items(), key=lambda kv: rank[kv[0]]))
    per_seed_params = [r.parameters for r in runs]
    parameters = {n: _mean([p.get(n, 0.0) for p in per_seed_params]) for n in per_seed_params[0]}
    ratios = [x for r in runs for x in r.totals.ratios]
    ratio = _mean(ratios) if plan.first_units else math.nan
    ratio_rms = _mean([x for r in runs for x in r.totals.ratios_rms]) if plan.first_units else math.nan
    th = opts.thresholds
    # biases of convs followed by restored train-mode BatchNorm get no gradient by construction
    # (the batch mean removes them): not a vanishing gradient
    normalised_bias = {op.inputs[2] for op in map(loaded.graph.op, s0.norm.convs) if len(op.inputs) > 2}
    flags = {"vanishing": tuple(sorted(n for n, v in parameters.items()
                                       if v < th.param_vanishing_below and n not in normalised_bias)),
             "exploding": tuple(sorted(n for n, v in parameters.items() if v > th.param_exploding_above))}
    nonfinite = tuple(sorted({x for r in runs for x in r.totals.nonfinite}))
    op_norms = tuple(dataclasses.replace(per_seed[0], sigma=_mean([o.sigma for o in per_seed]))
                     for per_seed in zip(*(r.op_norms for r in runs), strict=True))
    intervals = _seed_intervals(runs) if plan.first_units else {}
    verdict_value, reason = _verdict(s0, ratio, curve, nonfinite, plan.first_units, op_norms, opts)
    if len(runs) > 1 and plan.first_units and not nonfinite:
        verdict_value, reason = verdict_on_interval(intervals["ratio"], lambda r: _verdict(
            s0, r, curve, nonfinite, plan.first_units, op_norms, opts))
    dead = {kind: DeadFraction(dead=sum(r.totals.dead[kind].dead for r in runs if kind in r.totals.dead),
                               total=sum(r.totals.dead[kind].total for r in runs if kind in r.totals.dead),
                               units=d.units) for kind, d in runs[0].totals.dead.items()}
    signal = tuple(SignalPoint(n, kind, t, d, sum(r.totals.moments[t][0] for r in runs) / K,
                               sum(r.totals.moments[t][1] for r in runs) / K) for n, kind, t, d in plan.signal)
    points = [_grad_weight_points(r.setup, plan, r.parameters) for r in runs]
    pooled_points = [dataclasses.replace(per_seed[0], grad_norm=_mean([p.grad_norm for p in per_seed]),
                                         weight_norm=_mean([p.weight_norm for p in per_seed]))
                     for per_seed in zip(*points, strict=True)]
    agreements = [r.backends.agreement for r in runs if r.backends.agreement is not None]
    agreement = max(agreements, key=lambda a: -1.0 if math.isnan(a.max_rel_diff) else a.max_rel_diff,
                    default=None)
    timings["total"] = time.perf_counter() - start
    return NumericReport(
        model=loaded.name, backend=runs[0].backends.name, backend_reason=runs[0].backends.reason,
        device=str(s0.ev.device), dtype=str(s0.ev.dtype).replace("torch.", ""), options=opts,
        input_shapes=dict(s0.ev.input_shapes), parity=parity, cuts=s0.cuts, curve=curve, parameters=parameters,
        param_flags=flags, ratio=ratio, ratio_rms=ratio_rms, first_units=plan.first_units,
        blocks=_pooled_blocks(runs), block_source=plan.block_source, operator_norms=op_norms, dead=dead,
        nonfinite=nonfinite, backend_agreement=agreement, verdict=verdict_value, reason=reason, norm=s0.norm,
        signal=signal, grad_to_weight=grad_to_weight(pooled_points), intervals=intervals, timings=timings,
    )
