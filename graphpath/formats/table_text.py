"""Terminal text of the stability table (rich tables rendered to a string, no colour codes),
and :func:`render_row_text`, the one-line summary ``graphpath analyze`` prints at its end."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from graphpath.stability.table import StabilityRow, StabilityTable, cell, verdict_label


def _console(buf: io.StringIO, width: int) -> Console:
    return Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False,
                   markup=False, emoji=False, soft_wrap=False)


def render(table: StabilityTable, width: int | None = None) -> str:
    buf = io.StringIO()
    console = _console(buf, width or (260 if table.numeric else 200))
    title = "Stability table" + ("" if table.numeric else " (static only: run with --numeric to measure)")
    t = Table(title=title, title_justify="left")
    numeric_keys = {"units", "depth", "paths_log10", "shortest_path", "longest_path", "effective_depth", "ratio",
                    "min_block_gain", "max_block_gain", "max_block_jacobian", "dead_fraction"}
    for key, header in table.columns():
        t.add_column(header, justify="right" if key in numeric_keys else "left", overflow="fold",
                     min_width={"reason": 40, "architecture": 26, "model": 14}.get(key),
                     max_width=60 if key == "reason" else None)
    for row in table.rows:
        t.add_row(*(cell(row, k) for k, _ in table.columns()))
    if table.numeric:
        opts = ", ".join(f"{k} {v}" for k, v in sorted(table.numeric_options.items()) if v is not None)
        console.print(f"Measured by the numeric backward pass ({opts or 'default options'}).")
    console.print(t)
    s = Table(title="Seed 000 §18.2 against graphpath", title_justify="left")
    for h in ("seed row", "claims", "claimed reason", "models", "measured", "vs seed"):
        s.add_column(h, overflow="fold")
    for c in table.seed_comparison():
        s.add_row(c.row, verdict_label(c.claimed_verdict), c.claimed_reason, ", ".join(c.models) or "-",
                  ", ".join(verdict_label(v) for v in c.measured) or "-", c.agreement)
    console.print(s)
    line = table.rank_agreement_line()
    if line is not None:
        console.print(line)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def render_row_text(row: StabilityRow) -> str:
    """One line: generation, main blocks, size, paths, verdict and the seed's claim.

    Example::

        stability: m.onnx · v3 · residual · 3 units, depth 2 · 10^0.90 gradient paths, length 2–4 (mean 3.0) · not measured · seed v3 claims ✅ stable (residual bounds the gradient)
    """
    paths = ("paths n/a" if row.paths_log10 is None else
             f"10^{row.paths_log10:.2f} gradient paths, length {cell(row, 'shortest_path')}–"
             f"{cell(row, 'longest_path')} (mean {cell(row, 'effective_depth')})")
    verdict = row.verdict_label
    if row.ratio is not None:
        verdict += f" (ratio {row.ratio:.3g})"
    parts = [f"stability: {row.model}", row.generation, row.architecture,
             f"{cell(row, 'units')} units, depth {cell(row, 'depth')}", paths, verdict]
    if row.seed_row is not None:
        seed = f"seed {row.seed_row} claims {row.seed_verdict_label} ({row.seed_reason})"
        if row.seed_agreement in ("agree", "disagree"):
            seed += f": {row.seed_agreement}"
        parts.append(seed)
    return " · ".join(parts)
