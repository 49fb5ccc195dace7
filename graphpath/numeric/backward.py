"""The numeric backward pass's front door: :func:`run_backward` → :class:`NumericReport`.

Steps (each reported through ``progress(done, total, label)``):

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
6. The verdict (:func:`graphpath.numeric.metrics.verdict`).

``--reinit`` replaces the parameters before step 3 (the scheme is in :func:`reinit_parameters`);
the parity check always runs on the model's own weights.

Example::

    report = run_backward("models/yolov8n.onnx", BackwardOptions(probes=2))
    print(report.verdict, report.ratio)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import build_layers
from graphpath.numeric.backends import Backend, TorchBackend, select_backends
from graphpath.numeric.measures import (
    OperatorNorm,
    _backend_norms,
    _block_sigma,
    _clip_bounds,
    _cn,
    _norm,
    _operator_norms,
    probe_pass,
)
from graphpath.numeric.metrics import (
    DEFAULT_THRESHOLDS,
    VerdictThresholds,
    activation_input,
    dead_fraction,
    unit_depths,
    verdict,
)
from graphpath.numeric.probes import (
    HeadCut,
    HeadFinder,
    all_heads,
    find_head_cuts,
    probe_cotangents,
    probe_inputs,
)
from graphpath.numeric.reinit import REINIT_SCHEMES, reinit_parameters
from graphpath.numeric.scope import (
    _consumers,
    _detected_blocks,
    _feature_tensor,
    _input_setup,
    _reach,
    _sibling_entry,
    _stage_blocks,
)

__all__ = ["BackwardOptions", "NumericReport", "REINIT_SCHEMES", "reinit_parameters", "run_backward"]

Progress = Callable[[int, int, str], None]


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


# --------------------------------------------------------------------------- report


def _r(x: float) -> float | str:
    """Round to 6 significant digits; non-finite values as strings (JSON has no NaN)."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return float(f"{x:.6g}")


def _sorted(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_sorted(v) for v in obj]
    if isinstance(obj, float):
        return _r(obj)
    return obj


@dataclass(frozen=True)
class UnitGradient:
    """One point of the gradient-versus-depth curve."""

    unit: str
    tensor: str
    depth: int
    rel_grad_norm: float
    numel: int


@dataclass(frozen=True)
class BlockResult:
    """A block's observed gradient gain and its Jacobian spectral-norm lower bound."""

    name: str
    kind: str
    source: str
    entry: str
    exit: str
    gain: float
    jacobian_sigma: float | None
    iterations: int
    last_change: float
    note: str = ""

@dataclass(frozen=True)
class NumericReport:
    """Everything the numeric backward pass measured; ``to_dict()`` is its JSON form."""

    model: str
    backend: str
    backend_reason: str
    device: str
    dtype: str
    options: Mapping[str, Any]
    input_shapes: Mapping[str, tuple[int, ...]]
    parity: Mapping[str, Any]
    probes: int
    seed: int
    reinit: str | None
    cuts: tuple[HeadCut, ...]
    curve: tuple[UnitGradient, ...]
    parameters: Mapping[str, float]
    param_flags: Mapping[str, tuple[str, ...]]
    ratio: float
    ratio_rms: float
    first_units: tuple[str, ...]
    blocks: tuple[BlockResult, ...]
    block_source: str
    operator_norms: tuple[OperatorNorm, ...]
    dead: Mapping[str, Mapping[str, float]]
    nonfinite: tuple[str, ...]
    backend_agreement: Mapping[str, Any] | None
    verdict: str
    reason: str
    thresholds: VerdictThresholds
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self, *, timings: bool = False) -> dict[str, Any]:
        """JSON-ready dict: keys sorted, floats rounded to 6 significant digits, non-finite
        floats as ``"nan"``/``"inf"``. Wall times only with ``timings=True`` (determinism)."""
        d: dict[str, Any] = {
            "model": self.model,
            "backend": {"name": self.backend, "reason": self.backend_reason,
                        "agreement": None if self.backend_agreement is None else dict(self.backend_agreement)},
            "device": self.device,
            "dtype": self.dtype,
            "options": dict(self.options),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "parity": dict(self.parity),
            "probes": self.probes,
            "seed": self.seed,
            "reinit": self.reinit,
            "cuts": [c.to_dict() for c in self.cuts],
            "curve": [{"unit": u.unit, "tensor": u.tensor, "depth": u.depth,
                       "rel_grad_norm": u.rel_grad_norm, "numel": u.numel} for u in self.curve],
            "parameters": dict(self.parameters),
            "param_flags": {k: list(v) for k, v in self.param_flags.items()},
            "ratio": {"value": self.ratio, "rms": self.ratio_rms, "first_units": list(self.first_units),
                      "last": "raw head tensors (the probe)"},
            "blocks": {"source": self.block_source, "items": [
                {"name": b.name, "kind": b.kind, "entry": b.entry, "exit": b.exit, "gain": b.gain,
                 "jacobian_sigma_lower_bound": b.jacobian_sigma, "iterations": b.iterations,
                 "last_change": b.last_change, "note": b.note} for b in self.blocks]},
            "operator_norms": [{"unit": o.unit, "weight": o.weight, "method": o.method, "sigma": o.sigma,
                                "iterations": o.iterations, "last_change": o.last_change,
                                "input_shape": list(o.shape)} for o in self.operator_norms],
            "dead": {k: dict(v) for k, v in self.dead.items()},
            "nonfinite": list(self.nonfinite),
            "verdict": {"value": self.verdict, "reason": self.reason, "thresholds": self.thresholds.to_dict()},
        }
        if timings:
            d["timings"] = dict(self.timings)
        out: dict[str, Any] = _sorted(d)
        return out


# --------------------------------------------------------------------------- main


def run_backward(path: str | os.PathLike[str], options: BackwardOptions | None = None, *,
                 progress: Progress | None = None) -> NumericReport:
    """Run the numeric backward pass on one model (see the module docstring).

    Raises:
        GraphpathError: unreadable model, no raw heads found, unsupported ops in the heads'
            scope, forward parity beyond tolerance, a backend asked for that is unavailable.
    """
    import torch

    from graphpath.numeric.evaluator.core import Evaluator, check_parity

    opts = options or BackwardOptions()
    if opts.probes < 1:
        raise GraphpathError("--probes must be at least 1")
    if opts.reinit is not None and opts.reinit not in REINIT_SCHEMES:
        raise GraphpathError(f"unknown --reinit scheme {opts.reinit!r}; choose one of {', '.join(REINIT_SCHEMES)}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    p = Path(path)
    graph = onnx_io.load(p)
    layers = build_layers(graph)
    cuts = find_head_cuts(graph, layers, opts.head_finder)
    heads = all_heads(cuts)
    if not heads:
        raise GraphpathError(f"{p.name}: no weighted unit feeds any output; nothing to differentiate")
    shapes, fixed = _input_setup(graph, opts)
    ev = Evaluator.from_path(p, device=opts.device, outputs=list(heads), input_shapes=shapes)
    dtypes = {t.name: t.dtype for t in graph.inputs}

    def inputs_for(k: int) -> dict[str, np.ndarray]:
        arr = probe_inputs(ev.input_shapes, dtypes, opts.seed, k)
        if fixed is not None:
            arr[next(iter(arr))] = fixed.astype(arr[next(iter(arr))].dtype)
        return arr

    convs = [u for u in layers.topo_order() if layers.unit(u).weighted]
    total = 1 + opts.probes + opts.max_blocks + 1
    done = 0

    def tick(label: str, step: int = 1) -> None:
        nonlocal done
        done += step
        if progress is not None:
            progress(min(done, total), total, label)

    timings["load"] = time.perf_counter() - t0

    # --- 2. parity (model weights, probe 0's input, at the heads)
    t1 = time.perf_counter()
    parity = check_parity(ev, p, inputs_for(0), rtol=opts.parity_rtol, atol=opts.parity_atol, seed=opts.seed)
    if not parity.ok:
        raise GraphpathError(f"{p.name}: the torch evaluator disagrees with onnxruntime at the raw heads: "
                             f"{parity.describe()}; refusing to report gradients from it")
    parity_d = {"ok": True, "max_abs": parity.max_abs, "max_rel": parity.max_rel, "rtol": parity.rtol,
                "atol": parity.atol, "compared_at": list(heads),
                "notes": sorted({o.note for o in parity.outputs if o.note})}
    timings["parity"] = time.perf_counter() - t1

    # --- parameters (model's own or re-initialised)
    named = ev.named_onnx_parameters()
    overrides = reinit_parameters(graph, named, opts.seed, opts.reinit) if opts.reinit else {}
    base = {k: (torch.as_tensor(overrides[k], device=ev.device, dtype=ev.dtype) if k in overrides
                else v.detach()) for k, v in named.items()}

    # --- what to capture
    def in_scope(t: str) -> bool:
        return t in ev.shapes and t not in ev.folded and t not in graph.params

    depths = unit_depths(layers)
    feature: dict[str, str] = {}
    for uid in convs:
        t = _feature_tensor(graph, layers, uid, in_scope)
        if t is not None and uid in depths:
            feature[uid] = t
    acts: dict[str, tuple[str, str, dict[str, Any], tuple[float, float] | None]] = {}
    for uid in feature:
        info = activation_input(graph, layers, uid)
        # the activation itself must feed the heads: a head conv's decode sigmoid does not
        if info is None or not in_scope(info[1]) or not in_scope(layers.unit(uid).tensor):
            continue
        kind, x, attrs = info
        bounds = None
        if kind == "clip":
            bounds = _clip_bounds(graph, p, attrs)
        acts[uid] = (kind, x, attrs, bounds)

    detected = _detected_blocks(graph, layers, in_scope)
    if detected:
        block_source = "graphpath.blocks.detect_blocks"
        block_list = detected
    else:
        block_source = "resolution stages (no detected block with one entry and one exit)"
        block_list = [(n, "stage", e, x) for n, e, x in _stage_blocks(graph, layers, in_scope)]
    block_list = block_list[: opts.max_blocks]
    consumers = _consumers(graph)
    block_list = [(n, k, e if x in _reach(graph, e, consumers) else (_sibling_entry(graph, e, x, consumers) or e), x)
                  for n, k, e, x in block_list]
    total = 1 + opts.probes + len(block_list) + 1
    tick("parity")
    boundary = sorted({t for _, _, e, x in block_list for t in (e, x)})

    grad_of = sorted(set(feature.values()) | set(boundary))
    capture = sorted(set(grad_of) | {a[1] for a in acts.values()})  # pre-activations: forward only

    # --- 3. probes
    t2 = time.perf_counter()
    grad_sum: dict[str, float] = dict.fromkeys(capture, 0.0)
    numel: dict[str, int] = {}
    param_sum: dict[str, float] = dict.fromkeys(named, 0.0)
    dead_counts: dict[str, list[int]] = {}
    nonfinite: set[str] = set()
    first_units = tuple(u for u in feature if depths.get(u) == 1)
    ratio_sum = ratio_rms_sum = 0.0
    torch_param_grads: list[dict[str, np.ndarray]] = []
    keep_param_arrays = opts.backend in ("both",)
    cot_cache: list[dict[str, np.ndarray]] = []
    for k in range(opts.probes):
        x_np = inputs_for(k)
        cot = probe_cotangents(ev.shapes, heads, opts.seed, k)
        cot_cache.append(cot)
        cnorm = math.sqrt(sum(float(np.square(c, dtype=np.float64).sum()) for c in cot.values()))
        out, pg, ag = probe_pass(ev, base, heads, capture, x_np, cot, grad_of)
        for h in heads:
            if not bool(torch.isfinite(out[h]).all()):
                nonfinite.add(f"forward:{h}")
        for n, g in pg.items():
            if g is None:
                continue
            if not bool(torch.isfinite(g).all()):
                nonfinite.add(f"param-grad:{n}")
            param_sum[n] += _norm(g) / cnorm
        if keep_param_arrays:
            torch_param_grads.append({n: (np.zeros(tuple(base[n].shape)) if g is None else
                                          g.detach().cpu().double().numpy()) for n, g in pg.items()})
        for t in capture:
            numel[t] = int(out[t].numel())
            ga = ag.get(t)
            if ga is None:
                continue
            g = ga
            if not bool(torch.isfinite(g).all()):
                nonfinite.add(f"act-grad:{t}")
            grad_sum[t] += _norm(g) / cnorm
        f0 = math.sqrt(sum(_norm(ag[feature[u]]) ** 2 for u in first_units if ag.get(feature[u]) is not None))
        n0 = sum(numel[feature[u]] for u in first_units) or 1
        nh = sum(int(np.prod(ev.shapes[h])) for h in heads) or 1
        ratio_sum += f0 / cnorm
        ratio_rms_sum += (f0 / math.sqrt(n0)) / (cnorm / math.sqrt(nh))
        with torch.no_grad():
            for kind, xt, attrs, bounds in acts.values():
                res = dead_fraction(kind, out[xt], attrs, threshold=opts.dead_threshold, bounds=bounds)
                if res is None:
                    continue
                c = dead_counts.setdefault(kind, [0, 0, 0])
                c[0] += res[0]
                c[1] += res[1]
                if k == 0:
                    c[2] += 1
        del out, pg, ag
        tick(f"probe {k + 1}/{opts.probes}")
    K = opts.probes
    timings["probes"] = time.perf_counter() - t2

    rank = {u: i for i, u in enumerate(layers.topo_order())}
    curve = tuple(UnitGradient(u, t, depths[u], grad_sum[t] / K, numel.get(t, 0))
                  for u, t in sorted(feature.items(), key=lambda kv: rank[kv[0]]))
    parameters = {n: v / K for n, v in param_sum.items()}
    ratio = ratio_sum / K if first_units else math.nan
    ratio_rms = ratio_rms_sum / K if first_units else math.nan

    # --- 4a. block Jacobian bounds (probe 0)
    t3 = time.perf_counter()
    x0 = {n: torch.from_numpy(v) for n, v in inputs_for(0).items()}
    blocks: list[BlockResult] = []
    with torch.no_grad():
        entry_vals = ev(x0, base, outputs=list(heads), capture=boundary) if boundary else {}
    for i, (name, kind, entry, exit_) in enumerate(block_list):
        g_in, g_out = grad_sum.get(entry, 0.0), grad_sum.get(exit_, 0.0)
        gain = g_in / g_out if g_out > 0 else math.nan
        if exit_ not in _reach(graph, entry, consumers):
            sigma, iters, change, note = None, 0, math.nan, "exit does not depend on entry: no Jacobian"
        else:
            sigma, iters, change, note = _block_sigma(ev, x0, base, entry, exit_, entry_vals[entry],
                                                      opts.power_iters, opts.seed + i)
        blocks.append(BlockResult(name, kind, block_source, entry, exit_, gain, sigma, iters, change, note))
        tick(f"block {i + 1}/{len(block_list)}")
    timings["blocks"] = time.perf_counter() - t3

    # --- 4b. operator norms from weights alone
    t4 = time.perf_counter()
    op_norms = _operator_norms(graph, layers, ev, base, opts)
    timings["operator_norms"] = time.perf_counter() - t4

    # --- 5. backends
    t5 = time.perf_counter()
    torch_backend = TorchBackend(opts.device, evaluator=ev, params=overrides)
    if opts.reinit and opts.backend == "auto":
        chosen: list[Backend] = [torch_backend]
        why = "torch: --reinit parameters are only available to the torch evaluator"
    else:
        chosen, why = select_backends(opts.backend, p, torch_backend=torch_backend)
    agreement: dict[str, Any] | None = None
    ort_norms: dict[str, float] = {}
    if chosen[-1].name != "torch":
        ort_norms = _backend_norms(chosen[-1], p, inputs_for, heads, cot_cache)
        if len(chosen) == 1:
            parameters = ort_norms
    if len(chosen) == 2:
        tn = {n: sum(float(np.linalg.norm(g[n])) / _cn(c) for g, c in zip(torch_param_grads, cot_cache, strict=True)) / K
              for n in named}
        diffs = {n: abs(tn[n] - ort_norms.get(n, math.nan)) / max(tn[n], ort_norms.get(n, 0.0), 1e-30)
                 for n in tn}
        worst = max(diffs, key=lambda n: -1.0 if math.isnan(diffs[n]) else diffs[n]) if diffs else ""
        missing = sorted(set(tn) ^ set(ort_norms))
        agreement = {"max_rel_diff": max((v for v in diffs.values() if not math.isnan(v)), default=math.nan),
                     "worst_parameter": worst, "compared": len(diffs), "missing": missing}
    backend_name = "+".join(b.name for b in chosen)
    timings["backends"] = time.perf_counter() - t5
    tick("operator norms and backends")

    # --- 6. verdict
    th = opts.thresholds
    flags = {"vanishing": tuple(sorted(n for n, v in parameters.items() if v < th.param_vanishing_below)),
             "exploding": tuple(sorted(n for n, v in parameters.items() if v > th.param_exploding_above))}
    nf = tuple(sorted(nonfinite))
    if not first_units and not nf:
        verdict_value, reason = "nan", "no depth-1 weighted unit feeds the heads; the ratio is undefined"
    else:
        verdict_value, reason = verdict(ratio, [c.rel_grad_norm for c in curve], nf, th)
        if ratio == 0.0:
            reason += _why_no_gradient(graph, heads, op_norms)
    dead = {k: {"dead": v[0], "total": v[1], "fraction": v[0] / v[1] if v[1] else 0.0, "units": v[2]}
            for k, v in dead_counts.items()}
    timings["total"] = time.perf_counter() - t0
    return NumericReport(
        model=p.name, backend=backend_name, backend_reason=why, device=str(ev.device),
        dtype=str(ev.dtype).replace("torch.", ""),
        options={"probes": opts.probes, "seed": opts.seed, "imgsz": opts.imgsz, "reinit": opts.reinit,
                 "backend": opts.backend, "power_iters": opts.power_iters, "max_blocks": opts.max_blocks,
                 "spectral_max_hw": opts.spectral_max_hw, "dead_threshold": opts.dead_threshold,
                 "input_file": None if opts.input_file is None else Path(opts.input_file).name},
        input_shapes=dict(ev.input_shapes), parity=parity_d, probes=K, seed=opts.seed, reinit=opts.reinit,
        cuts=cuts, curve=curve, parameters=parameters, param_flags=flags, ratio=ratio, ratio_rms=ratio_rms,
        first_units=first_units, blocks=tuple(blocks), block_source=block_source,
        operator_norms=tuple(op_norms), dead=dead, nonfinite=nf, backend_agreement=agreement,
        verdict=verdict_value, reason=reason, thresholds=th, timings=timings,
    )
