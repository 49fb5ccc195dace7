"""Terminal text for the numeric backward pass: plain rich tables (no markup, no colour).

A pure renderer of :class:`graphpath.numeric.results.NumericReport`; importing it never
imports torch.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from graphpath.numeric.results import NumericReport

__all__ = ["render_numeric_text"]



def _g(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def _table(columns: list[str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style=None)
    for c in columns:
        table.add_column(c)
    return table


def _condition(report: NumericReport) -> str:
    """The measurement condition in one line: weights or init (scheme), and the norm decision."""
    norm = report.norm
    if report.condition == "init":
        head = f"init ({report.options.init})"
    else:
        head = "weights (the file's own)"
    if norm.mode == "batch":
        what = f"train-mode BatchNorm after {len(norm.convs)} convs"
        if norm.bn_nodes:
            what += f", {len(norm.bn_nodes)} BatchNormalization nodes on batch statistics"
        if norm.skipped:
            what += f", {len(norm.skipped)} skipped (one element per channel)"
        return f"{head}; norm {norm.requested} → batch: {what} ({norm.reason})"
    return f"{head}; norm {norm.requested} → none ({norm.reason})"


def render_numeric_text(report: NumericReport, width: int = 110, *, curve_rows: int = 0,
                        block_rows: int = 40, param_rows: int = 10) -> str:
    """The report as fixed-width text.

    Args:
        report: what :func:`graphpath.numeric.backward.run_backward` returned.
        width: console width.
        curve_rows: gradient-vs-depth rows to print (0: every weighted unit).
        block_rows, param_rows: caps on the block table and the smallest/largest parameters.

    One function because the sections print into one console, top to bottom in reading order.
    """
    buf = io.StringIO()

    def section(title: str, table: Table) -> None:
        # the title is its own line so that it never wraps to the table's width
        console.print(title)
        console.print(table)
        console.print()

    console = Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False,
                      markup=False, emoji=False)
    summary_title, summary = f"Numeric backward pass: {report.model}", _table(["", ""])
    summary.show_header = False
    par = report.parity
    rows = [
        ("verdict", f"{report.verdict}: {report.reason}"),
        ("ratio ‖∂L/∂F₀‖/‖∂L/∂F_L‖", f"{_g(report.ratio)} (rms {_g(report.ratio_rms)}; F₀ = "
                                     f"{', '.join(report.first_units) or '-'}; F_L = raw heads)"),
        ("backend", f"{report.backend} — {report.backend_reason}"),
        ("device", f"{report.device} ({report.dtype})"),
        ("inputs", ", ".join(f"{k} {list(v)}" for k, v in report.input_shapes.items())),
        ("parity vs onnxruntime", f"ok, max abs {_g(par.max_abs)}, max rel {_g(par.max_rel)}"
                                  + "".join(f" {n}" for n in par.notes)),
        ("probes", f"{report.probes} per seed; seeds {', '.join(map(str, report.seeds))}"
                   f"{', reinit ' + report.reinit if report.reinit else ''}"),
        *((f"{name} (95 % interval)", iv.describe()) for name, iv in sorted(report.intervals.items())),
        ("condition", _condition(report)),
    ]
    if report.backend_agreement is not None:
        a = report.backend_agreement
        rows.append(("backend agreement", f"max rel diff {_g(a.max_rel_diff)} over {a.compared} "
                                          f"parameters (worst {a.worst_parameter})"))
    if report.nonfinite:
        rows.append(("non-finite", ", ".join(report.nonfinite[:5]) + (" …" if len(report.nonfinite) > 5 else "")))
    for k, v in rows:
        summary.add_row(k, v)
    section(summary_title, summary)

    cuts_title, cuts = "Probe points (raw heads) and the cut decode tail", _table(["output", "raw heads", "tail ops cut off"])
    for c in report.cuts:
        tail = ", ".join(f"{op}×{n}" for op, n in c.tail_ops) or "(none)"
        cuts.add_row(c.output, "\n".join(c.heads), tail)
    section(cuts_title, cuts)

    curve_title, curve = "Gradient norm vs depth (relative to the probe norm)", _table(["depth", "unit", "‖∂L/∂F‖/‖c‖"])
    pts = list(report.curve)
    if curve_rows and len(pts) > curve_rows:
        step = math.ceil(len(pts) / curve_rows)
        pts = pts[::step]
    for u in pts:
        curve.add_row(str(u.depth), u.unit, _g(u.rel_grad_norm))
    section(curve_title, curve)

    if report.blocks:
        blocks_title, blocks = f"Blocks ({report.block_source})", _table(["block", "kind", "gain", "σ_max(J) ≥", "iters", "last Δ"])
        for b in report.blocks[:block_rows]:
            blocks.add_row(b.name, b.kind, _g(b.gain), _g(b.jacobian_sigma) + (f" ({b.note})" if b.note else ""),
                           str(b.iterations), _g(b.last_change))
        section(blocks_title, blocks)

    signal = [p for p in report.signal if p.kind == "block"] or list(report.signal)
    if signal:
        where = "block outputs" if signal[0].kind == "block" else "weighted units' feature maps"
        if curve_rows and len(signal) > curve_rows:
            signal = signal[:: math.ceil(len(signal) / curve_rows)]
        sig_title = f"Signal propagation (forward, {where}; Brock et al. 2021)"
        sig_table = _table(["depth", "name", "avg channel squared mean", "avg channel variance"])
        for p in signal:
            sig_table.add_row(str(p.depth), p.name, _g(p.channel_sq_mean), _g(p.channel_var))
        section(sig_title, sig_table)

    gw = report.grad_to_weight
    if gw.used:
        console.print(f"‖∂L/∂W‖/‖W‖ over {gw.used} layers: spread (max/min) {_g(gw.spread)}, "
                      f"slope of ln against depth {_g(gw.log_slope)} (×{_g(math.exp(gw.log_slope))} per depth)"
                      if math.isfinite(gw.log_slope) else
                      f"‖∂L/∂W‖/‖W‖ over {gw.used} layers: spread (max/min) {_g(gw.spread)}")

    if report.operator_norms:
        sig = [o.sigma for o in report.operator_norms]
        top = max(report.operator_norms, key=lambda o: o.sigma)
        console.print(f"Operator norms from weights ({len(sig)} layers): min {_g(min(sig))}, "
                      f"median {_g(sorted(sig)[len(sig) // 2])}, max {_g(max(sig))} ({top.unit})")

    if report.dead:
        dead_title, dead = "Dead activations (|f'(x)| below threshold)", _table(["kind", "units", "dead fraction"])
        for kind, d in sorted(report.dead.items()):
            dead.add_row(kind, str(d.units), _g(d.fraction))
        section(dead_title, dead)

    if report.parameters and param_rows:
        ordered = sorted(report.parameters.items(), key=lambda kv: (kv[1], kv[0]))
        params_title, params = f"Parameter gradient norms (smallest and largest {param_rows})", _table(["parameter", "‖∂L/∂θ‖/‖c‖"])
        picked = ordered if len(ordered) <= 2 * param_rows else ordered[:param_rows] + ordered[-param_rows:]
        for pname, pval in picked:
            params.add_row(pname, _g(pval))
        section(params_title, params)
        flags = report.param_flags
        console.print(f"flagged parameters: {len(flags.get('vanishing', ()))} vanishing, "
                      f"{len(flags.get('exploding', ()))} exploding")
    return buf.getvalue()
