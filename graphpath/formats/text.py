"""Terminal text: rich tables rendered to a string (no colour codes, fixed width)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from graphpath.report import Report


def _shape(shape: tuple[int | str | None, ...] | None) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, v)
    return table


def render(report: Report, width: int = 100) -> str:
    m, lay = report.model, report.layers
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False, markup=False, emoji=False)
    console.print(_kv_table(f"Model {m.file_name}", [
        ("producer", f"{m.producer_name} {m.producer_version}".strip() or "-"),
        ("IR version", str(m.ir_version)),
        ("opsets", ", ".join(f"{d} {v}" for d, v in m.opsets)),
        ("nodes", str(m.node_count)),
        ("parameters", f"{m.parameter_count:,} ({m.parameter_bytes:,} bytes; "
                       + ", ".join(f"{d} {n:,}" for d, n in m.parameter_dtypes) + ")"),
        ("initializers", str(m.initializer_count)),
        ("external data", "yes" if m.external_data else "no"),
        ("custom domains", ", ".join(m.custom_domains) or "none"),
        ("subgraphs", ", ".join(f"{s.node} ({s.op_type}.{s.attr}: {s.node_count} nodes)" for s in m.subgraphs) or "none"),
        ("shape inference", m.shape_inference),
        ("shared weights", ", ".join(f"{n} ×{c}" for n, c in m.shared_parameters) or "none"),
    ]))
    io_table = Table(title="Inputs and outputs", title_justify="left")
    for col in ("", "name", "dtype", "shape"):
        io_table.add_column(col)
    for t in m.inputs:
        io_table.add_row("in", t.name, t.dtype, _shape(t.shape))
    for t in m.outputs:
        io_table.add_row("out", t.name, t.dtype, _shape(t.shape))
    console.print(io_table)
    ops = Table(title="Op histogram", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in sorted(m.op_histogram, key=lambda kv: (-kv[1], kv[0])):
        ops.add_row(op, str(n))
    console.print(ops)
    console.print(_kv_table("Layer view", [
        ("units", ", ".join(f"{k} {n}" for k, n in lay.unit_counts if n) + f"  (total {lay.unit_total})"),
        ("depth", f"{lay.depth} weighted units on the longest input→output path"),
        ("activations", ", ".join(f"{a} {n}" for a, n in lay.activations) or "none"),
        ("weighted ops", ", ".join(f"{a} {n}" for a, n in lay.weighted_ops) or "none"),
        ("folded nodes", str(lay.folded_nodes)),
    ]))
    out = buf.getvalue()
    paths = report.section("paths")
    if paths is not None:
        from graphpath.formats.paths_text import render_paths_text

        out += "\nGradient paths\n" + render_paths_text(paths)
    if report.section("block_counts") is not None:
        from graphpath.formats.blocks_text import render_structure

        out += "\nStructure\n" + render_structure(report.to_dict(), max_lines=60)
    numeric = report.section("numeric")
    if numeric is not None:
        from graphpath.formats.numeric_text import render_numeric_text

        out += "\nGradient flow (numeric)\n" + render_numeric_text(numeric)
    if report.section("fingerprint") is not None:
        from graphpath.formats.table_text import render_row_text
        from graphpath.stability.table import build_row

        out += "\n" + render_row_text(build_row(report)) + "\n"
    return out
