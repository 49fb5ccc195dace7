"""One self-contained HTML file: the stability table, the seed comparison, an overview of every
model in small plots, and a section per model (facts, block map, plots).

No network: nothing is fetched (no external scripts, stylesheets, fonts or images). One small
inline script makes the table's columns sortable (without it the page reads the same, in the
table's order); verdicts are text badges styled with CSS, readable without an emoji font and in
print (a print stylesheet drops the colours' meaning onto borders and starts each model on a
new page). Plots are inline SVG drawn by matplotlib (the ``report`` extra,
:mod:`graphpath.formats.table_html_plots`); without it the page still renders and says what the
extra adds. The block map is :mod:`graphpath.formats.table_html_blocks`. Every model-supplied
string goes through :func:`html.escape`; element ids are numbers, never names.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from graphpath.formats.table_html_blocks import block_map
from graphpath.formats.table_html_plots import MODEL_PLOTS, PlotRenderer, overview_plot
from graphpath.stability.seed_claims import VERDICT_RANK
from graphpath.stability.table import StabilityRow, StabilityTable, cell

_NUMERIC = {"units", "depth", "paths_log10", "shortest_path", "longest_path", "effective_depth", "ratio",
            "min_block_gain", "max_block_gain", "max_block_jacobian", "dead_fraction", "confidence"}
_BADGES = {"verdict", "seed_verdict", "seed_agreement"}

_CSS = """
:root{--fg:#1b1f23;--muted:#57606a;--line:#d0d7de;--head:#f6f8fa}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em;color:var(--fg);
 max-width:1400px}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid var(--line);padding-bottom:.2em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 8px;vertical-align:top}
th{background:var(--head);text-align:left}
th button{all:unset;cursor:pointer;font-weight:600}
th button::after{content:" \\2195";color:#8c959f;font-size:.85em}
th[aria-sort=ascending] button::after{content:" \\2191";color:var(--fg)}
th[aria-sort=descending] button::after{content:" \\2193";color:var(--fg)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.reason{max-width:36em}
.note{color:var(--muted)}
.wide{overflow-x:auto}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;line-height:1.5;
 white-space:nowrap;border:1px solid transparent}
.b-unstable{background:#ffebe9;color:#a40e26;border-color:#ff8182}
.b-moderate{background:#fff8c5;color:#7d4e00;border-color:#d4a72c}
.b-stable{background:#dafbe1;color:#116329;border-color:#4ac26b}
.b-very-stable{background:#116329;color:#fff;border-color:#116329}
.b-agree{background:#dafbe1;color:#116329;border-color:#4ac26b}
.b-disagree{background:#ffebe9;color:#a40e26;border-color:#ff8182}
.b-mixed,.b-inconclusive{background:#fff8c5;color:#7d4e00;border-color:#d4a72c}
.b-none{background:#f6f8fa;color:var(--muted);border-color:var(--line)}
.minis{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:8px}
.minis a{display:block;border:1px solid var(--line);border-radius:6px;padding:2px;color:inherit}
.minis a:hover{border-color:#0b5cad}
svg{max-width:100%;height:auto}
section.model{margin-top:2.5em}
section.model dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:13px}
section.model dt{color:var(--muted)}section.model dd{margin:0}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}
figure{margin:0}figcaption{font-size:12px;color:var(--muted)}
.blockmap{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;font-size:12px}
.stage{border:2px solid #8c959f;border-radius:6px;padding:4px;display:flex;flex-wrap:wrap;gap:4px;
 align-items:flex-start;max-width:100%}
.stage-name{width:100%;font-weight:600;text-transform:uppercase;font-size:11px;color:var(--muted)}
.s-neck{border-color:#8250df}.s-head{border-color:#bf3989}
.block{border:1px solid #57606a;border-radius:4px;padding:2px 5px;background:#fff}
.block .kind{font-weight:600}.block .label{color:var(--muted)}
.kids{display:flex;flex-wrap:wrap;gap:3px;margin-top:2px}
.kids .block{background:#f6f8fa}
.more{color:var(--muted);padding:2px}
nav.models{font-size:13px;columns:14em}
@media print{
 body{margin:0;max-width:none;font-size:11px}
 a{color:inherit;text-decoration:none}
 th button{all:unset}th button::after{content:none}
 .badge{background:none!important;color:#000!important;border:1px solid #000}
 .b-unstable,.b-disagree{border-width:2px;font-style:italic}
 .b-very-stable{border-width:2px}
 nav.models{display:none}
 .wide{overflow:visible}
 section.model{break-before:page}
 figure,.blockmap,table{break-inside:avoid}
 .plots{grid-template-columns:1fr 1fr}
 .minis{grid-template-columns:repeat(4,1fr)}
}
"""

#: Sorts the tables whose class is ``sortable``: a click on a header sorts by that column
#: (numbers by ``data-sort``, missing values last; text otherwise), a second click reverses.
_SCRIPT = """
(function () {
  function key(td) {
    var v = td.getAttribute('data-sort');
    if (v !== null) { return v === '' ? null : parseFloat(v); }
    return td.textContent.trim().toLowerCase();
  }
  function compare(a, b) {
    if (a === null || b === null) { return a === b ? 0 : (a === null ? 1 : -1); }
    if (typeof a === 'number' && typeof b === 'number') { return a - b; }
    return String(a).localeCompare(String(b));
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      var button = document.createElement('button');
      button.type = 'button';
      button.textContent = th.textContent;
      th.textContent = '';
      th.appendChild(button);
      button.addEventListener('click', function () {
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var a = key(r.cells[i]), b = key(s.cells[i]);
          var c = (a === null || b === null) ? compare(a, b) : compare(a, b) * (ascending ? 1 : -1);
          return c || (parseInt(r.getAttribute('data-index'), 10) - parseInt(s.getAttribute('data-index'), 10));
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

PLOTS_NEED = ("Install the report extra (pip install 'graphpath[report]', which adds matplotlib) to add "
              "plots: gradient norm versus depth, signal propagation, the gradient-path length "
              "distributions and the per-block gradient gains, per model and as an overview.")


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "none"


def badge(text: str, kind: str | None = None) -> str:
    """``text`` as a badge; ``kind`` (default: the text) picks its colour."""
    k = _slug(kind if kind is not None else text)
    known = {"unstable", "moderate", "stable", "very-stable", "agree", "disagree", "mixed", "inconclusive"}
    return f'<span class="badge b-{k if k in known else "none"}">{_e(text)}</span>'


def _sort_value(row: StabilityRow, key: str) -> str | None:
    """``data-sort`` of a cell: the number behind numeric cells ("" when missing), the verdict's
    rank for verdicts; ``None`` sorts by the cell's text."""
    if key in ("verdict", "seed_verdict"):
        v = row.verdict if key == "verdict" else row.seed_verdict
        return str(VERDICT_RANK[v]) if v in VERDICT_RANK else ""
    if key not in _NUMERIC:
        return None
    v = getattr(row, key)
    return repr(float(v)) if isinstance(v, (int, float)) and math.isfinite(v) else ""


def _cell_html(row: StabilityRow, key: str) -> str:
    text = cell(row, key)
    if key == "verdict":
        inner = badge(row.verdict)
    elif key == "seed_verdict":
        inner = "-" if row.seed_verdict is None else badge(row.seed_verdict) + (
            f" ({_e(row.seed_row)})" if row.seed_row else "")
    elif key == "seed_agreement":
        inner = badge(text)
    else:
        inner = _e(text)
    cls = "num" if key in _NUMERIC else ("reason" if key == "reason" else "")
    sort = _sort_value(row, key)
    attrs = (f' class="{cls}"' if cls else "") + (f' data-sort="{_e(sort)}"' if sort is not None else "")
    return f"<td{attrs}>{inner}</td>"


def _main_table(table: StabilityTable) -> str:
    cols = table.columns()
    out = ['<table class="sortable" id="stability">',
           "<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for _, h in cols) + "</tr></thead>", "<tbody>"]
    for i, r in enumerate(table.rows):
        cells = []
        for k, _ in cols:
            c = _cell_html(r, k)
            if k == "model":
                c = f'<td><a href="#m{i}">{_e(r.model)}</a></td>'
            cells.append(c)
        out.append(f'<tr data-index="{i}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _plain_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of already-escaped cells."""
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows]
    out.append("</tbody></table>")
    return "\n".join(out)


def _seed_table(table: StabilityTable) -> str:
    rows = [[_e(c.row), badge(c.claimed_verdict), _e(c.claimed_reason), _e(", ".join(c.models) or "-"),
             " ".join(badge(v) for v in c.measured) or "-", badge(c.agreement)]
            for c in table.seed_comparison()]
    return _plain_table(["seed row", "claims", "claimed reason", "models", "measured", "vs seed"], rows)


def _condition(table: StabilityTable) -> str:
    opts = ", ".join(f"{k} {v}" for k, v in sorted(table.numeric_options.items()) if v is not None)
    return f"Measured by the numeric backward pass ({opts or 'default options'})."


def _facts(row: StabilityRow, numeric: bool) -> str:
    items = [("generation", f"{row.generation}" + (f" (confidence {row.confidence:.3g})"
                                                    if row.confidence is not None else "")),
             ("architecture", row.architecture), ("units", cell(row, "units")), ("depth", cell(row, "depth")),
             ("gradient paths (log10)", cell(row, "paths_log10")),
             ("path length", f"shortest {cell(row, 'shortest_path')}, longest {cell(row, 'longest_path')}, "
                             f"mean {cell(row, 'effective_depth')}")]
    if numeric:
        items += [("gradient ratio ‖∂L/∂F₀‖/‖∂L/∂F_L‖", cell(row, "ratio")),
                  ("block gains", f"min {cell(row, 'min_block_gain')}, max {cell(row, 'max_block_gain')}"),
                  ("max block ‖J‖ (lower bound)", cell(row, "max_block_jacobian")),
                  ("dead activations", cell(row, "dead_fraction"))]
    if row.numeric_error:
        items.append(("numeric pass", row.numeric_error))
    items.append(("key reason", row.reason))
    seed = "-" if row.seed_verdict is None else f"{row.seed_verdict} ({row.seed_row}): {row.seed_reason}"
    out = [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items]
    out.append(f"<dt>seed claims</dt><dd>{_e(seed)}</dd>")
    return "<dl>" + "".join(out) + "</dl>"


def _model_section(i: int, row: StabilityRow, table: StabilityTable, plots: PlotRenderer | None) -> str:
    parts = [f'<section class="model" id="m{i}">',
             f"<h2>{_e(row.model)} {badge(row.verdict)}"
             + (f" {badge('vs seed: ' + row.seed_agreement, row.seed_agreement)}" if table.numeric else "")
             + "</h2>",
             _facts(row, table.numeric), "<h3>Block map</h3>"]
    parts.append(block_map(row.blocks))
    if plots is None:
        parts.append("</section>")
        return "\n".join(parts)
    figures, missing = [], []
    for plot in MODEL_PLOTS:
        svg = plots.model_plot(plot, row, table.rows)
        if svg is None:
            if plot.measured and plot.needs is not None and not table.numeric:
                missing.append(plot.title.split(":")[0].lower())
            continue
        caption = (_condition(table) + " " if plot.measured else "") + (
            f"Grey: the range of all {len(table.rows)} models in this table." if plot.band and len(table.rows) > 1
            else "")
        figures.append(f'<figure class="p-{plot.key}"><h4>{_e(plot.title)}</h4>{svg}'
                       f"<figcaption>{_e(caption.strip())}</figcaption></figure>")
    if figures:
        parts.append('<div class="plots">' + "".join(figures) + "</div>")
    if missing:
        parts.append(f'<p class="note">{_e(", ".join(missing).capitalize())}: run with --numeric.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _overview(table: StabilityTable, plots: PlotRenderer) -> list[str]:
    plot = overview_plot(table.rows)
    if plot is None:
        return ['<p class="note">No plottable data: the plots need path-length histograms or --numeric.</p>']
    out = [f"<h2>Overview: {_e(plot.title.lower())}, one panel per model</h2>",
           f'<p class="note">{_e(plot.ylabel)} against {_e(plot.xlabel)}; grey: the range of all '
           f"{len(table.rows)} models. {_e(_condition(table)) if plot.measured else ''} "
           "Click a panel for the model's section.</p>", '<div class="minis">']
    for i, r in enumerate(table.rows):
        svg = plots.model_plot(plot, r, table.rows, small=True)
        if svg is not None:
            out.append(f'<a href="#m{i}" class="mini">{svg}</a>')
    out.append("</div>")
    return out


def render(table: StabilityTable) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>graphpath stability table</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             "<h1>graphpath stability table</h1>"]
    if table.numeric:
        parts.append(f'<p class="note">{_e(_condition(table))}</p>')
        line = table.rank_agreement_line()
        if line is not None:
            parts.append(f'<p class="note">{_e(line)}.</p>')
    else:
        parts.append('<p class="note">Static columns only; the measured columns and verdicts need --numeric.</p>')
    parts.append('<p class="note">Click a column header to sort.</p>')
    parts.append(f'<div class="wide">{_main_table(table)}</div>')
    parts.append("<h2>Seed 000 §18.2 against graphpath</h2>")
    parts.append(_seed_table(table))
    for sec in table.claim_sections():
        parts += [f"<h2>{_e(sec.title)}</h2>", f'<p class="note">{_e(sec.intro)}</p>']
        parts.append(f'<div class="wide">{_plain_table(list(sec.head), [[_e(c) for c in r] for r in sec.body])}</div>'
                     if sec.body else '<p class="note">No model of these generations in this table.</p>')
    plots: PlotRenderer | None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots = None
        parts.append(f'<p class="note">{_e(PLOTS_NEED)}</p>')
    else:
        plots = PlotRenderer()
        parts += _overview(table, plots)
    parts.append("<h2>Models</h2>")
    parts.append('<nav class="models"><ol>' + "".join(
        f'<li><a href="#m{i}">{_e(r.model)}</a></li>' for i, r in enumerate(table.rows)) + "</ol></nav>")
    parts += [_model_section(i, r, table, plots) for i, r in enumerate(table.rows)]
    parts += [f"<script>{_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
