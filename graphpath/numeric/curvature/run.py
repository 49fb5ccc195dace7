"""The curvature measurement's front door: :func:`run_curvature` → :class:`CurvatureReport`.

Steps (progress through ``progress(done, total, label)``):

1. Load; find the raw heads (:mod:`graphpath.numeric.probes`); build the evaluator for them;
   check its forward against onnxruntime on the file's own weights (refuse beyond tolerance);
   resolve where train-mode BatchNorm is restored (:func:`graphpath.numeric.norm.resolve_norm`).
2. For each seed of the protocol (``CurvatureOptions.protocol.seed_list``): the parameters of
   the condition (``init``: :func:`graphpath.numeric.reinit.init_parameters` with that seed),
   the seeded image of probe 0 (or ``--input``), and the loss's target (``distill``: the heads
   themselves; ``probe``: the seeded cotangent of probe 0, scaled to unit norm);
3. top-k eigenvalues by scipy ``eigsh`` over the curvlinops operator (``probe``: also the most
   negative ones); Hutchinson trace and SLQ density when asked; the gradient-descent check
   (``distill``); Proposition 5.1 on every residual chain;
4. intervals over the seeds (log space for ``λ_max`` and ``2/λ_max``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from graphpath import onnx_io
from graphpath.blocks.backbone import find_backbone
from graphpath.errors import GraphpathError
from graphpath.model.loaded import LoadedModel
from graphpath.numeric.curvature.options import CurvatureOptions
from graphpath.numeric.curvature.results import CurvatureReport, Prop51Chain, Prop51Summary, SeedCurvature
from graphpath.numeric.intervals import Interval, interval
from graphpath.numeric.probes import all_heads, find_head_cuts, probe_cotangents, probe_inputs

__all__ = ["run_curvature"]

Progress = Callable[[int, int, str], None]

LOSS_DEFINITIONS = {
    "distill": ("distill: L(θ) = (1/M) Σ (f(θ) − f(θ₀))² over the M raw-head elements of one seeded image; "
                "at θ₀ the residual is zero, so the Hessian equals the GGN (2/M) JᵀJ (positive semi-definite)"),
    "probe": ("probe: L(θ) = ⟨c, f(θ)⟩ with c the seeded standard-normal cotangent of the backward pass scaled "
              "to unit norm, at the raw heads of one seeded image; its Hessian is indefinite"),
}


def _summaries(chains: list[Prop51Chain]) -> tuple[Prop51Summary, ...]:
    by_name: dict[str, list[Prop51Chain]] = {}
    for c in chains:
        by_name.setdefault(c.name, []).append(c)
    out = []
    for name, cs in by_name.items():
        counts: dict[str, int] = {}
        for c in cs:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        out.append(Prop51Summary(name, len(cs[0].branches),
                                 interval([c.sum_sigma for c in cs], log=True, over="seeds"),
                                 interval([c.ratio for c in cs], log=True, over="seeds"),
                                 tuple(sorted(counts.items()))))
    return tuple(out)


def _shifted_target(module: Any, x: Any, named: dict[str, Any], seed: int, scale: float) -> Any:
    """The GD check's target: the heads at ``θ₀ + δ``, ``δ`` seeded standard normal scaled per
    tensor to ``scale`` × that tensor's RMS: a small target shift the network can reach, so the
    residual has a component along every curvature direction (a random shift of the heads
    themselves lies almost entirely outside the span of the Jacobian)."""
    import torch

    rng = np.random.default_rng([seed, 16, 1])
    saved = {k: p.detach().clone() for k, p in named.items()}
    try:
        with torch.no_grad():
            for k in sorted(named):
                p = named[k]
                rms = float(p.detach().double().pow(2).mean().sqrt()) if p.numel() else 0.0
                xi = torch.as_tensor(rng.standard_normal(tuple(p.shape)), device=p.device, dtype=p.dtype)
                p.add_(scale * rms * xi)
            return module(x).detach()
    finally:
        with torch.no_grad():
            for k, p in named.items():
                p.copy_(saved[k])


def run_curvature(model: LoadedModel | str | os.PathLike[str], options: CurvatureOptions | None = None, *,
                  progress: Progress | None = None) -> CurvatureReport:
    """Measure the curvature of one model (see the module docstring); a path is opened with
    :func:`graphpath.onnx_io.open_model`.

    Raises:
        GraphpathError: unreadable model, no raw heads, unsupported ops in the heads' scope,
            forward parity beyond tolerance, a missing extra (torch, curvlinops).
    """
    opts = options or CurvatureOptions()
    proto = opts.protocol
    import torch

    from graphpath.numeric.curvature import operators as ops
    from graphpath.numeric.curvature.prop51 import (
        exit_gradients,
        prop51_chains,
        pullback_ratio,
        residual_chains,
    )
    from graphpath.numeric.evaluator.core import Evaluator
    from graphpath.numeric.norm import resolve_norm
    from graphpath.numeric.parity import verified_parity
    from graphpath.numeric.reinit import init_parameters
    from graphpath.numeric.scope import input_setup

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    start = clock

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = timings.get(step, 0.0) + now - clock
        clock = now

    loaded = onnx_io.as_loaded(model)
    graph = loaded.graph
    heads = all_heads(find_head_cuts(graph, loaded.layers, proto.head_finder))
    if not heads:
        raise GraphpathError(f"{loaded.name}: no weighted unit feeds any output; nothing to differentiate")
    shapes, fixed_input = input_setup(graph, proto)
    ev = Evaluator.from_model(loaded, device=proto.device, outputs=list(heads), input_shapes=shapes,
                              dtype=getattr(torch, opts.dtype))
    dtypes = {t.name: t.dtype for t in graph.inputs}
    floats = [t.name for t in graph.inputs if t.dtype in ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16")]
    if not floats:
        raise GraphpathError(f"{loaded.name}: no float graph input to evaluate the loss on")
    input_name = floats[0]
    seeds = proto.seed_list

    def inputs_for(seed: int) -> dict[str, np.ndarray]:
        arr = probe_inputs(ev.input_shapes, dtypes, seed, 0)
        if fixed_input is not None:
            arr[input_name] = fixed_input.astype(arr[input_name].dtype)
        return arr

    parity, parity_notes = verified_parity(ev, loaded, inputs_for(seeds[0]), rtol=proto.parity_rtol,
                                           atol=proto.parity_atol, seed=proto.seed, purpose="curvature")
    in_scope = {t: s for t, s in ev.shapes.items() if t not in ev.folded and t not in graph.params}
    plan = resolve_norm(loaded, heads, in_scope, proto.norm, proto.condition)
    train_norm = plan.train_norm
    named = ev.named_onnx_parameters()
    own = {k: v.detach().clone() for k, v in named.items()}
    params = list(ev.params.values())
    chains = residual_chains(loaded, lambda t: t in in_scope) if opts.prop51 else []
    backbone = find_backbone(loaded.layers, loaded.blocks) if opts.backbone else None
    if backbone is not None and not (backbone.stem_tensor in in_scope and backbone.exit_tensor in in_scope):
        backbone = None  # the backbone's ends are not both in the heads' evaluated scope
    lap("load")

    per_gd = len(opts.gd_factors) if opts.loss == "distill" and opts.gd_check else 0
    total = len(seeds) * (1 + (opts.loss == "probe") + opts.trace + opts.density + per_gd + bool(chains)
                          + (backbone is not None))
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total), total, label)

    results: list[SeedCurvature] = []
    for seed in seeds:
        with torch.no_grad():
            values = own
            if proto.condition == "init":
                drawn = init_parameters(graph, named, seed, proto.init)
                values = {k: (torch.as_tensor(drawn[k]) if k in drawn else v) for k, v in own.items()}
            for k, p in named.items():
                p.copy_(values[k].to(p.device, p.dtype))
        arrays = inputs_for(seed)
        fixed = {n: torch.from_numpy(a) for n, a in arrays.items() if n != input_name}
        x = torch.from_numpy(arrays[input_name]).to(ev.device, ev.dtype)
        module = ops.HeadsModule(ev, heads, input_name, fixed, train_norm)
        with torch.no_grad():
            f0 = module(x).detach()
        cot_np = probe_cotangents(ev.shapes, heads, seed, 0)
        cot = {h: torch.as_tensor(c, device=ev.device, dtype=ev.dtype) for h, c in cot_np.items()}
        cnorm = math.sqrt(sum(float((c.double() ** 2).sum()) for c in cot.values()))
        if opts.loss == "distill":
            target = f0
        else:
            target = torch.cat([cot[h].reshape(1, -1) for h in heads], dim=1) / cnorm
        op = ops.curvature_operator(module, opts.loss, x, target, params)
        which_top = "LA"
        top = ops.extreme_eigen(op, opts.top_k, which_top, tol=opts.eig_tol, max_matvecs=opts.max_matvecs, seed=seed)
        tick(f"seed {seed}: top eigenvalues")
        lap("eigenvalues")
        bottom = None
        if opts.loss == "probe":
            bottom = ops.extreme_eigen(op, opts.top_k, "SA", tol=opts.eig_tol, max_matvecs=opts.max_matvecs,
                                       seed=seed + 1)
            tick(f"seed {seed}: bottom eigenvalues")
            lap("eigenvalues")
        trace = ops.hutchinson(op, opts.trace_samples, seed) if opts.trace else None
        if opts.trace:
            tick(f"seed {seed}: trace")
            lap("trace")
        dens = None
        if opts.density:
            lam_max = top.values[0] if top.values else 0.0
            lo = bottom.values[0] if bottom is not None and bottom.values else 0.0
            dens = ops.density(op, (lo, lam_max), ncv=opts.density_ncv, points=opts.density_points, seed=seed)
            tick(f"seed {seed}: density")
            lap("density")
        gd: tuple[Any, ...] = ()
        if per_gd and top.values:
            target_shift = _shifted_target(module, x, named, seed, opts.gd_shift)
            gd = ops.gd_check(module, x, target_shift, params, top.values[0], opts.gd_factors, opts.gd_steps,
                              progress=tick)
            lap("gd")
        p51: tuple[Prop51Chain, ...] = ()
        if chains:
            base = {k: p.detach() for k, p in named.items()}
            feed = {n: torch.from_numpy(a) for n, a in arrays.items()}
            p51 = prop51_chains(ev, loaded, feed, base, heads, cot, chains, seed=seed, iters=opts.power_iters,
                                tol=opts.power_tol, train_norm=train_norm)
            tick(f"seed {seed}: Prop 5.1")
            lap("prop51")
        backbone_ratio = None
        if backbone is not None:
            feed = {n: torch.from_numpy(a) for n, a in arrays.items()}
            base = {k: p.detach() for k, p in named.items()}
            stem, top_end = backbone.stem_tensor, backbone.exit_tensor
            u = exit_gradients(ev, feed, base, heads, cot, [top_end], train_norm)[top_end]
            with torch.no_grad():
                at = ev(feed, base, outputs=list(heads), capture=[stem], train_norm=train_norm)[stem]
            backbone_ratio = pullback_ratio(ev, feed, base, stem, top_end, at, u, train_norm)
            tick(f"seed {seed}: backbone")
            lap("backbone")
        with torch.no_grad():
            at_point = float(torch.nn.functional.mse_loss(module(x), f0)) if opts.loss == "distill" else \
                float((module(x) * target).sum())
        results.append(SeedCurvature(seed, top, bottom, trace, dens, gd, p51, at_point, backbone_ratio))
    with torch.no_grad():
        for k, p in named.items():
            p.copy_(own[k])

    intervals: dict[str, Interval] = {}
    lams = [r.lambda_max for r in results]
    if all(math.isfinite(v) for v in lams):
        intervals["lambda_max"] = interval(lams, log=True, over="seeds")
        intervals["predicted_lr"] = interval([r.predicted_lr for r in results], log=True, over="seeds")
    if opts.loss == "probe" and all(math.isfinite(r.lambda_min) for r in results):
        intervals["lambda_min"] = interval([r.lambda_min for r in results], log=False, over="seeds")
    if opts.trace:
        intervals["trace"] = interval([r.trace.mean for r in results if r.trace is not None], log=False,
                                      over="seeds")
    ratios = [r.backbone_ratio for r in results if r.backbone_ratio is not None]
    if ratios and len(ratios) == len(results) and all(v > 0 and math.isfinite(v) for v in ratios):
        intervals["backbone_ratio"] = interval(ratios, log=True, over="seeds")
    timings["total"] = time.perf_counter() - start
    return CurvatureReport(
        model=loaded.name, options=opts, loss_definition=LOSS_DEFINITIONS[opts.loss],
        operator=("GGN (curvlinops GGNLinearOperator; = Hessian at the point)" if opts.loss == "distill"
                  else "Hessian (curvlinops HessianLinearOperator)"),
        device=str(ev.device), dtype=opts.dtype, input_shapes=dict(ev.input_shapes), heads=tuple(heads),
        outputs=int(f0.numel()), parameters=sum(int(p.numel()) for p in params), norm=f"{plan.mode}: {plan.reason}",
        parity_max_rel=parity.max_rel, parity_notes=parity_notes, seeds=tuple(results), intervals=intervals,
        prop51=_summaries([c for r in results for c in r.prop51]),
        backbone=None if backbone is None else f"{backbone.describe()}; exit: {backbone.rule}",
        timings=timings)
