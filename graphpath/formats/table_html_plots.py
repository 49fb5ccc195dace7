"""The HTML report's plots: inline SVG drawn by matplotlib (the ``report`` extra).

Readable with many models: each model gets its own small plots (its section), where its line
is drawn over the range of all the table's models (a grey band: at each x, the lowest and the
highest value any model has there), and the overview shows one small panel per model (small
multiples) instead of every model on one axis.

The per-model plots are :data:`MODEL_PLOTS`: a :class:`ModelPlot` says what to read from a
row and how to draw it. A new measurement adds a plot by adding an entry (e.g. a spectrum plot
reading a new row field); a plot whose points are empty for a row is left out of that row's
section, so nothing is drawn for data that does not exist.

Output is deterministic: a fixed ``svg.hashsalt``, no date, and ids prefixed per figure so
that the figures of one page never share an id.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from graphpath.stability.table import StabilityRow

__all__ = ["MODEL_PLOTS", "ModelPlot", "PlotRenderer", "overview_plot"]

Points = Sequence[tuple[float, float]]

#: This model's line; the band of all models behind it.
LINE_COLOUR = "#0b5cad"
BAND_COLOUR = "#c9ced6"


@dataclass(frozen=True)
class ModelPlot:
    """One per-model plot.

    Attributes:
        key: a short name (CSS class and element ids).
        title: the heading above the plot.
        xlabel, ylabel: axis labels.
        points: ``(x, y)`` of one row; empty when the row has no such data.
        log_y: a log y axis (non-positive values are left out).
        band: draw the range of all rows behind the row's line.
        style: ``line`` (joined points) or ``markers`` (one marker per point, e.g. blocks).
        reference: a horizontal reference line (``None``: none).
        measured: needs the numeric pass (a static table says so instead of drawing it).
        needs: the flag a static table names for it (``None``: not named, e.g. a plot that
            only ``--curvature`` fills).
    """

    key: str
    title: str
    xlabel: str
    ylabel: str
    points: Callable[[StabilityRow], Points]
    log_y: bool = True
    band: bool = True
    style: Literal["line", "markers"] = "line"
    reference: float | None = None
    measured: bool = True
    needs: str | None = "--numeric"


def _gains(row: StabilityRow) -> Points:
    return [(float(i), g) for i, (_, _, g) in enumerate(row.block_gains, start=1)]


#: The plots of each model's section, in order.
MODEL_PLOTS: tuple[ModelPlot, ...] = (
    ModelPlot("gradient", "Gradient norm versus depth", "depth (weighted units from the input)",
              "‖∂L/∂F‖ / ‖∂L/∂heads‖", lambda r: r.curve),
    ModelPlot("signal", "Signal propagation (forward): average channel variance versus depth",
              "depth (weighted units from the input)", "average channel variance", lambda r: r.signal),
    ModelPlot("gains", "Per-block gradient gain", "block (topological order)", "‖∂L/∂entry‖ / ‖∂L/∂exit‖",
              _gains, band=False, style="markers", reference=1.0),
    ModelPlot("spectrum", "Spectral density of the distill GGN (stochastic Lanczos quadrature, first seed)",
              "eigenvalue λ", "density p(λ)", lambda r: r.curvature.density if r.curvature is not None else (),
              band=False, needs=None),
    ModelPlot("lengths", "Gradient-path length distribution", "path length (weighted units)",
              "log2(number of paths)", lambda r: r.path_lengths, log_y=False, measured=False),
)


def _label(s: str) -> str:
    """A matplotlib text label that is taken literally (no mathtext, not hidden)."""
    s = s.replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _usable(points: Points, log_y: bool) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if y == y and (y > 0 if log_y else abs(y) != float("inf"))]


def _band(plot: ModelPlot, rows: Sequence[StabilityRow]) -> tuple[list[float], list[float], list[float]]:
    lo: dict[float, float] = {}
    hi: dict[float, float] = {}
    for r in rows:
        for x, y in _usable(plot.points(r), plot.log_y):
            lo[x] = min(lo.get(x, y), y)
            hi[x] = max(hi.get(x, y), y)
    xs = sorted(lo)
    return xs, [lo[x] for x in xs], [hi[x] for x in xs]


class PlotRenderer:
    """Draws the page's figures, numbering them so that every SVG gets its own id prefix."""

    def __init__(self) -> None:
        self._count = 0

    @contextmanager
    def _figure(self, size: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
        import matplotlib
        from matplotlib.figure import Figure  # no pyplot: no global figure manager, no GUI backend

        with matplotlib.rc_context({"svg.hashsalt": "graphpath", "svg.fonttype": "none", "font.size": 8,
                                    "axes.grid": True, "grid.alpha": 0.3}):
            fig = Figure(figsize=size)
            yield fig, fig.subplots()

    def _svg(self, fig: Any) -> str:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        text = buf.getvalue()
        text = text[text.index("<svg"):]
        text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
        self._count += 1
        p = f"f{self._count}-"
        text = re.sub(r'\bid="([^"]+)"', rf'id="{p}\1"', text)
        text = text.replace("url(#", f"url(#{p}").replace('href="#', f'href="#{p}')
        return text

    def model_plot(self, plot: ModelPlot, row: StabilityRow, rows: Sequence[StabilityRow], *,
                   small: bool = False) -> str | None:
        """``plot`` of ``row`` over the band of ``rows``; ``None`` when the row has no points.

        ``small``: a panel of the overview (no axis labels, the model's name as title)."""
        # sorted by x: a curve listed in graph order steps back in depth at every branch
        pts = sorted(_usable(plot.points(row), plot.log_y))
        if not pts:
            return None
        size = (2.3, 1.5) if small else (6.4, 3.0)
        with self._figure(size) as (fig, ax):
            if plot.band and len(rows) > 1:
                xs, lo, hi = _band(plot, rows)
                ax.fill_between(xs, lo, hi, color=BAND_COLOUR, lw=0, step=None,
                                label=f"range of all {len(rows)} models")
            xs, ys = [x for x, _ in pts], [y for _, y in pts]
            if plot.style == "markers":
                from matplotlib.ticker import MaxNLocator

                ax.plot(xs, ys, "o", color=LINE_COLOUR, ms=3 if small else 4, label=_label(row.model))
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            else:
                ax.plot(xs, ys, ".-", color=LINE_COLOUR, lw=0.8 if small else 1.0, ms=2 if small else 3,
                        label=_label(row.model))
            if plot.reference is not None:
                ax.axhline(plot.reference, color="black", lw=0.7)
            if plot.log_y:
                ax.set_yscale("log")
            if small:
                ax.set_title(_label(row.model), fontsize=7)
                ax.tick_params(labelsize=6)
                fig.subplots_adjust(left=0.2, right=0.97, top=0.85, bottom=0.15)
            else:
                ax.set_xlabel(plot.xlabel)
                ax.set_ylabel(plot.ylabel)
                ax.legend(fontsize=7, loc="best")
                fig.subplots_adjust(left=0.12, right=0.98, top=0.95, bottom=0.16)
            return self._svg(fig)


def overview_plot(rows: Sequence[StabilityRow]) -> ModelPlot | None:
    """The plot the overview shows as small multiples: the first of :data:`MODEL_PLOTS` that
    some row has points for."""
    for plot in MODEL_PLOTS:
        if any(_usable(plot.points(r), plot.log_y) for r in rows):
            return plot
    return None
