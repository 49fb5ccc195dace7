"""Plain-text rendering of the gradient-path section (``graphpath paths``, ``analyze``)."""

from __future__ import annotations

from collections.abc import Sequence

from graphpath.paths.analysis import PathReport


def render_paths_text(report: PathReport, *, max_witness: int = 12) -> str:
    """A plain-text summary: totals, one row per output, one row per stage.

    >>> from graphpath.model.layers import LayerGraph
    >>> from graphpath.paths.analysis import analyze_paths
    >>> g = LayerGraph.from_edges([("x", "a"), ("a", "y"), ("x", "y")], weighted={"a"})
    >>> print(render_paths_text(analyze_paths(g)).splitlines()[0])
    gradient paths: 2 (from x to y)
    """
    lines = [f"gradient paths: {report.total.text()} "
             f"(from {', '.join(report.sources)} to {', '.join(report.targets)})"]
    d = report.effective_depth
    lines.append(f"effective depth: mean {_fmt(d.mean)}, median {_fmt(d.median)}, std {_fmt(d.std)}")
    lines.append(f"shortest: {_fmt(report.shortest.length)}  longest: {_fmt(report.longest.length)}")
    if report.histogram_note:
        lines.append(report.histogram_note)
    lines.append("")
    head: tuple[str, ...] = ("output", "role", "paths", "shortest", "longest", "mean", "median")
    rows: list[tuple[str, ...]] = [(o.output, o.role, o.paths.text(), _fmt(o.shortest.length), _fmt(o.longest.length),
             _fmt(o.effective_depth.mean), _fmt(o.effective_depth.median)) for o in report.per_output]
    lines += _table(head, rows)
    lines.append("")
    head = (f"stage ({report.stage_basis})", "units", "weighted", "shortest", "longest", "max through")
    rows = [(s.stage, str(s.units), str(s.weighted), _fmt(s.shortest_to_output),
             _fmt(s.longest_to_output), s.max_paths_through.text()) for s in report.stages]
    lines += _table(head, rows)
    for o in report.per_output:
        for label, w in (("shortest", o.shortest), ("longest", o.longest)):
            if w.path:
                lines.append(f"{label} to {o.output}: {_path_text(w.path, max_witness)}")
    return "\n".join(lines) + "\n"


def _fmt(x: float | int | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def _path_text(path: Sequence[str], limit: int) -> str:
    if len(path) <= limit:
        return " → ".join(path)
    half = limit // 2
    return " → ".join([*path[:half], f"… {len(path) - 2 * half} more …", *path[-half:]])


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if k == 0 else '>'}{w}}}" for k, w in enumerate(widths))
    out = [fmt.format(*head), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*r) for r in rows]
    return out
