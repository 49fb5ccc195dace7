"""Plain-text rendering of a :class:`~graphpath.numeric.curvature.CurvatureReport` (pure)."""

from __future__ import annotations

import math

from graphpath.numeric.curvature.results import CurvatureReport, Eigen


def _g(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _eigen_line(label: str, e: Eigen) -> str:
    vals = ", ".join(_g(v) for v in e.values)
    res = max(e.residuals, default=math.nan)
    state = "converged" if e.converged else "NOT converged"
    return (f"  {label}: {vals}  (eigsh {e.which}, tol {e.tol:g}, {e.matvecs} products, "
            f"max residual {_g(res)}, {state})")


def render(report: CurvatureReport) -> str:
    """The report as text: condition and loss first, then per-seed figures and the intervals."""
    o = report.options
    p = o.protocol
    cond = p.condition + (f" (init {p.init})" if p.condition == "init" else "")
    lines = [
        f"curvature of {report.model}",
        f"  condition: {cond}; norm: {report.norm}",
        f"  loss: {report.loss_definition}",
        f"  operator: {report.operator}; {report.parameters} parameters, {report.outputs} raw-head outputs",
        f"  input {', '.join(f'{k} {list(v)}' for k, v in report.input_shapes.items())}; device {report.device}, "
        f"{report.dtype}; parity with onnxruntime at the heads: max rel {_g(report.parity_max_rel)}",
        *(f"  parity: {n.strip('()')}" for n in report.parity_notes),
        f"  seeds: {', '.join(str(s.seed) for s in report.seeds)}",
    ]
    for name, label in (("lambda_max", "λ_max"), ("predicted_lr", "predicted max stable LR 2/λ_max"),
                        ("lambda_min", "λ_min"), ("trace", "trace (Hutchinson)"),
                        ("backbone_ratio", "backbone gradient ratio (probe gradient at its exit pulled back to its stem)")):
        iv = report.intervals.get(name)
        if iv is not None:
            lines.append(f"  {label}: {iv.describe()}")
    if report.backbone is not None:
        lines.append(f"  backbone: {report.backbone}")
    for s in report.seeds:
        lines.append(f"seed {s.seed}:")
        lines.append(_eigen_line("top", s.top))
        if s.bottom is not None:
            lines.append(_eigen_line("bottom", s.bottom))
        if s.trace is not None:
            lines.append(f"  trace: {_g(s.trace.mean)} ± {_g(s.trace.stderr)} (standard error, "
                         f"{s.trace.samples} {s.trace.distribution} samples)")
        if s.density is not None:
            peak = max(range(len(s.density.density)), key=s.density.density.__getitem__, default=0)
            lines.append(f"  density: {len(s.density.grid)} points on [{_g(s.density.grid[0])}, "
                         f"{_g(s.density.grid[-1])}], {s.density.ncv} Lanczos vectors, peak at "
                         f"{_g(s.density.grid[peak]) if s.density.grid else 'n/a'}")
        if s.backbone_ratio is not None:
            lines.append(f"  backbone gradient ratio: {_g(s.backbone_ratio)}")
        for g in s.gd:
            lines.append(f"  GD at {g.factor:g}×2/λ_max (lr {_g(g.lr)}), {len(g.losses) - 1} steps: {g.outcome} "
                         f"(loss {_g(g.losses[0])} → {_g(g.losses[-1])}, max {_g(max(g.losses))})")
        for c in s.prop51:
            sig = ", ".join(f"{_g(b.sigma)}{'' if b.converged else '*'}" for b in c.branches)
            lines.append(f"  Prop 5.1 {c.name}: σ = [{sig}], Σσ = {_g(c.sum_sigma)}, ratio {_g(c.ratio)}; "
                         f"1−Σσ = {_g(c.sum_bound)} {c.verdict}; Π(1−σ) = {_g(c.product_bound)} "
                         f"{c.product_verdict}{'; ' + c.note if c.note else ''}")
    if any(not b.converged for s in report.seeds for c in s.prop51 for b in c.branches):
        lines.append("  (* power iteration did not reach its tolerance: σ is a lower bound)")
    if report.prop51:
        lines.append("Prop 5.1 over the seeds:")
        for ps in report.prop51:
            verdicts = ", ".join(f"{k} {n}" for k, n in ps.verdicts)
            lines.append(f"  {ps.name} ({ps.blocks} blocks): Σσ {ps.sum_sigma.describe()}; "
                         f"ratio {ps.ratio.describe()}; {verdicts}")
    return "\n".join(lines) + "\n"
