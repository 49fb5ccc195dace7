"""The one renderer registry: every registered format of every kind renders the smallest value
of its kind; aliases resolve; an unknown name is refused with the choices; importing the
package loads no renderer; the CLI's ``--format`` choices are the registry's names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import onnx
import pytest

from graphpath.errors import GraphpathError
from graphpath.formats import (
    ALIASES,
    KINDS,
    RENDERERS,
    UnknownFormatError,
    canonical_format,
    format_names,
    get_renderer,
    parse_write,
)
from tests.conftest import RESIDUAL, parse


@pytest.fixture(scope="module")
def values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One value of each kind, from a single residual block."""
    from graphpath.analysis import analyze
    from graphpath.audit.run import audit
    from graphpath.stability.table import build_row, make_table

    path = tmp_path_factory.mktemp("registry") / "residual.onnx"
    onnx.save(parse(RESIDUAL), str(path))
    report = analyze(path)
    return {
        "report": report,
        "table": make_table([build_row(report, None)]),
        "audit": audit([path], analyzer=lambda _: report.to_dict()),
        "curvature": _curvature_report(),
    }


def _curvature_report() -> Any:
    """The smallest curvature report: one seed, top-1 only (its renderers need no torch)."""
    from graphpath.numeric.curvature import CurvatureOptions, CurvatureReport
    from graphpath.numeric.curvature.results import Eigen, SeedCurvature
    from graphpath.numeric.intervals import interval

    seed = SeedCurvature(0, Eigen("LA", (2.0,), 1e-3, 21, (1e-6,), True), None, None, None, (), (), 0.0)
    return CurvatureReport("residual", CurvatureOptions(top_k=1), "distill: …", "GGN", "cpu", "float32",
                           {"x": (1, 4, 8, 8)}, ("y",), 256, 160, "none: the file's own weights", 1e-7, (seed,),
                           {"lambda_max": interval([2.0], log=True, over="seeds"),
                            "predicted_lr": interval([1.0], log=True, over="seeds")})


def test_values_cover_every_kind(values: dict[str, Any]) -> None:
    assert set(values) == set(KINDS)


@pytest.mark.parametrize(("kind", "name"), list(RENDERERS))
def test_every_registered_format_renders(values: dict[str, Any], kind: str, name: str) -> None:
    render = get_renderer(kind, name)  # type: ignore[call-overload]
    out = render(values[kind])
    assert isinstance(out, str) and out == render(values[kind])


def test_every_kind_has_formats_and_every_alias_a_target() -> None:
    assert KINDS == ("report", "table", "audit", "curvature")
    assert {k for k, _ in RENDERERS} == set(KINDS)
    for (kind, alias), name in ALIASES.items():
        assert (kind, name) in RENDERERS and (kind, alias) not in RENDERERS
        assert get_renderer(kind, alias) is get_renderer(kind, name)


def test_names_in_registration_order() -> None:
    assert format_names("report") == ("text", "json")
    assert format_names("table") == ("text", "md", "html", "json", "csv")
    assert format_names("audit") == ("text", "json", "sarif", "junit", "github", "md")
    assert format_names("audit", aliases=True)[-1] == "markdown"
    assert canonical_format("audit", "markdown") == "md"


def test_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(UnknownFormatError) as info:
        get_renderer("report", "md")
    assert str(info.value) == "unknown report format 'md'; choose one of text, json"
    assert isinstance(info.value, GraphpathError) and isinstance(info.value, KeyError)
    assert (info.value.kind, info.value.name) == ("report", "md")
    with pytest.raises(UnknownFormatError, match="choose one of text, md, html, json, csv$"):
        get_renderer("table", "markdown")  # an alias of one kind only


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of report, table, audit"):
        get_renderer("graph", "text")  # type: ignore[call-overload]


def test_parse_write() -> None:
    assert parse_write("audit", "markdown=out/summary.md") == ("md", Path("out/summary.md"))
    for bad in ("sarif", "sarif=", "pdf=x.pdf", "=x.json"):
        with pytest.raises(GraphpathError, match="expected FORMAT=FILE with FORMAT one of text, json, sarif"):
            parse_write("audit", bad)


def test_importing_the_registry_loads_no_renderer() -> None:
    code = ("import sys, graphpath.formats; print(sorted(m for m in sys.modules if m.startswith("
            "('graphpath.formats.', 'rich', 'matplotlib', 'torch', 'onnx', 'numpy', 'graphpath.audit'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_choices_are_the_registry_names() -> None:
    from graphpath.cli.main import cli

    def choices(*path: str) -> tuple[str, ...]:
        command: Any = cli
        for name in path:
            command = command.get_command(click.Context(command), name)  # commands load lazily
        (option,) = [p for p in command.params if p.name == "fmt"]
        return tuple(option.type.choices)

    assert choices("analyze") == format_names("report")
    assert choices("report") == format_names("table")
    assert choices("audit") == format_names("audit", aliases=True)
    assert choices("curvature") == format_names("curvature")


def test_the_docs_list_every_format() -> None:
    root = Path(__file__).resolve().parent.parent
    ci = (root / "docs" / "ci.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert all(f"| `{name}`" in ci for name in format_names("audit"))
    assert f"graphpath report MODEL... [--format {'|'.join(format_names('table'))}]" in readme
    assert f"graphpath analyze MODEL [--numeric] [--format {'|'.join(format_names('report'))}]" in readme
    assert f"[--format {'|'.join(format_names('audit'))}]" in readme
