"""One self-contained HTML file: the stability table, the seed comparison and inline SVG plots.

No network: no scripts, stylesheets, fonts or images from anywhere; the plots are inline SVG
drawn by matplotlib (the ``report`` extra) with a fixed ``svg.hashsalt`` and no date, so the
same table gives the same bytes. Without matplotlib the page still renders and says what the
extra adds. Every model-supplied string goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

from graphpath.stability.table import StabilityRow, StabilityTable, cell, verdict_label

_NUMERIC = {"units", "depth", "paths_log10", "shortest_path", "longest_path", "effective_depth", "ratio",
            "min_block_gain", "max_block_gain", "max_block_jacobian", "dead_fraction"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1b1f23}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top}
th{background:#f6f8fa;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.reason{max-width:36em}
.note{color:#57606a}
figure{margin:1.5em 0}
"""

PLOTS_NEED = ("Install the report extra (pip install 'graphpath[report]', which adds matplotlib) to add "
              "plots: gradient norm versus depth for all models on one chart, the gradient-path "
              "length distributions and the per-block gradient gains.")


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _table(head: list[str], rows: list[list[tuple[str, str]]]) -> str:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(f'<td class="{cls}">{_e(v)}</td>' if cls else f"<td>{_e(v)}</td>"
                                    for v, cls in r) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _label(s: str) -> str:
    """A matplotlib text label that is taken literally (no mathtext, not hidden)."""
    s = s.replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _svg(draw: Callable[[Any], bool]) -> str | None:
    """Draw on a fresh figure; returns the inline ``<svg>`` text, or ``None`` when ``draw``
    had nothing to plot."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.hashsalt": "graphpath", "svg.fonttype": "none",
                                "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        try:
            if not draw(ax):
                return None
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # the RDF metadata block only names the creator; drop it (and its namespace URLs)
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)


def _style(i: int) -> dict[str, Any]:
    """The same colour and dash for model ``i`` on every chart (20 colours, then dashes)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]  # a ListedColormap: an int picks one of its 20 colours
    return {"color": cmap((2 * i) % 20 + (i // 10) % 2), "linestyle": ("-", "--", ":", "-.")[(i // 20) % 4]}


def _legend(ax: Any) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _plots(table: StabilityTable) -> list[str]:
    out: list[str] = []

    def against_depth(ax: Any, series: Callable[[StabilityRow], Sequence[tuple[int, float]]], ylabel: str,
                      title: str) -> bool:
        """One line per model of positive values against depth, log scale."""
        drawn = False
        for i, r in enumerate(table.rows):
            pts = [(d, v) for d, v in series(r) if v > 0]
            if pts:
                ax.plot([d for d, _ in pts], [v for _, v in pts], marker=".", lw=1, ms=3, label=_label(r.model),
                        **_style(i))
                drawn = True
        if drawn:
            ax.set_yscale("log")
            ax.set_xlabel("depth (weighted units from the input)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            _legend(ax)
        return drawn

    def curve(ax: Any) -> bool:
        return against_depth(ax, lambda r: r.curve, "‖∂L/∂F‖ / ‖∂L/∂heads‖", "Gradient norm versus depth")

    def signal(ax: Any) -> bool:
        return against_depth(ax, lambda r: r.signal, "average channel variance of the feature map",
                             "Signal propagation (forward)")

    def lengths(ax: Any) -> bool:
        drawn = False
        for i, r in enumerate(table.rows):
            if r.path_lengths:
                ax.plot([n for n, _ in r.path_lengths], [c for _, c in r.path_lengths], lw=1, marker=".", ms=2,
                        label=_label(r.model),
                        **_style(i))
                drawn = True
        if drawn:
            ax.set_xlabel("gradient path length (weighted units)")
            ax.set_ylabel("log2(number of paths)")
            ax.set_title("Gradient-path length distributions")
            _legend(ax)
        return drawn

    def gains(ax: Any) -> bool:
        drawn = False
        for i, r in enumerate(table.rows):
            pts = [g for _, g in r.block_gains if g > 0]
            if pts:
                ax.plot(range(1, len(pts) + 1), pts, marker="o", lw=1, ms=3, label=_label(r.model), **_style(i))
                drawn = True
        if drawn:
            ax.set_yscale("log")
            ax.axhline(1.0, color="black", lw=0.8)
            ax.set_xlabel("block (topological order)")
            ax.set_ylabel("gain ‖∂L/∂entry‖ / ‖∂L/∂exit‖")
            ax.set_title("Per-block gradient gain")
            _legend(ax)
        return drawn

    for title, draw, missing in (
        ("Gradient norm versus depth", curve, "No measured curve: run with --numeric."),
        ("Signal propagation: average channel variance versus depth", signal,
         "No measured signal: run with --numeric."),
        ("Gradient-path length distributions", lengths, "No path-length histogram in these reports."),
        ("Per-block gradient gain", gains, "No measured block gains: run with --numeric."),
    ):
        svg = _svg(draw)
        out.append(f"<h3>{_e(title)}</h3>")
        out.append(f"<figure>{svg}</figure>" if svg else f'<p class="note">{_e(missing)}</p>')
    return out


def render(table: StabilityTable) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             "<title>graphpath stability table</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             "<h1>graphpath stability table</h1>"]
    if table.numeric:
        opts = ", ".join(f"{k} {v}" for k, v in sorted(table.numeric_options.items()) if v is not None)
        parts.append(f'<p class="note">Measured by the numeric backward pass ({_e(opts or "default options")}).</p>')
        line = table.rank_agreement_line()
        if line is not None:
            parts.append(f'<p class="note">{_e(line)}.</p>')
    else:
        parts.append('<p class="note">Static columns only; the measured columns and verdicts need --numeric.</p>')
    rows = [[(cell(r, k), "num" if k in _NUMERIC else ("reason" if k == "reason" else "")) for k, _ in table.columns()]
            for r in table.rows]
    parts.append(_table([h for _, h in table.columns()], rows))
    parts.append("<h2>Seed 000 §18.2 against graphpath</h2>")
    seed_rows = [[(c.row, ""), (verdict_label(c.claimed_verdict), ""), (c.claimed_reason, ""),
                  (", ".join(c.models) or "-", ""), (", ".join(verdict_label(v) for v in c.measured) or "-", ""),
                  (c.agreement, "")] for c in table.seed_comparison()]
    parts.append(_table(["seed row", "claims", "claimed reason", "models", "measured", "vs seed"], seed_rows))
    parts.append("<h2>Plots</h2>")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parts.append(f'<p class="note">{_e(PLOTS_NEED)}</p>')
    else:
        parts += _plots(table)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
