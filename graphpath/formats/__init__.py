"""Pure renderers behind one registry: ``render(value) -> str``, one module per format.

:data:`RENDERERS` is keyed by *what is rendered* (the :data:`Kind`) and the format name:

- ``"report"``: a :class:`~graphpath.report.Report` (``graphpath analyze``);
- ``"table"``: a :class:`~graphpath.stability.table.StabilityTable` (``graphpath report``);
- ``"audit"``: an :class:`~graphpath.audit.run.AuditResult` (``graphpath audit``);
- ``"curvature"``: a :class:`~graphpath.numeric.curvature.CurvatureReport` (``graphpath curvature``).

Each value names a ``module:function``; the module is imported by :func:`get_renderer` on
first use, so importing this package loads no renderer module, no rich and no matplotlib (the
CLI imports it to build its ``--format`` choices). :func:`format_names` feeds ``click.Choice``,
and :func:`get_renderer` refuses an unknown name with the list of choices: never a silent
fallback.

>>> format_names("table")
('text', 'md', 'html', 'json', 'csv')
>>> get_renderer("audit", "markdown").__module__
'graphpath.formats.audit_md'

Adding a format: write a module here with a pure ``render(value) -> str`` (deterministic, no
timestamps, every model-supplied string escaped for the target: Markdown through
:func:`graphpath.formats.markdown.md_escape`, HTML through :func:`html.escape`), add one
``(kind, name)`` line to :data:`RENDERERS`, and the CLI offers it;
``tests/test_formats_registry.py`` renders every registered format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args, overload

from graphpath.errors import GraphpathError

if TYPE_CHECKING:
    from graphpath.audit.run import AuditResult
    from graphpath.report import Report
    from graphpath.stability.table import StabilityTable

#: What a renderer takes: a report, a stability table, an audit result or a curvature report.
Kind = Literal["report", "table", "audit", "curvature"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

#: ``(kind, format name)`` → ``"module:function"`` (imported on first lookup). The order within
#: a kind is the order of the CLI's choices.
RENDERERS: Final[Mapping[tuple[Kind, str], str]] = MappingProxyType({
    ("report", "text"): "graphpath.formats.text:render",
    ("report", "json"): "graphpath.formats.json_format:render",
    ("table", "text"): "graphpath.formats.table_text:render",
    ("table", "md"): "graphpath.formats.table_md:render",
    ("table", "html"): "graphpath.formats.table_html:render",
    ("table", "json"): "graphpath.formats.table_json:render",
    ("table", "csv"): "graphpath.formats.table_csv:render",
    ("audit", "text"): "graphpath.formats.audit_text:render",
    ("audit", "json"): "graphpath.formats.audit_json:render",
    ("audit", "sarif"): "graphpath.formats.sarif:render",
    ("audit", "junit"): "graphpath.formats.junit:render",
    ("audit", "github"): "graphpath.formats.github:render",
    ("audit", "md"): "graphpath.formats.audit_md:render",
    ("curvature", "text"): "graphpath.formats.curvature_text:render",
    ("curvature", "json"): "graphpath.formats.curvature_json:render",
})

#: Other names accepted for a format: ``(kind, alias)`` → format name.
ALIASES: Final[Mapping[tuple[Kind, str], str]] = MappingProxyType({
    ("audit", "markdown"): "md",
})


class UnknownFormatError(GraphpathError, KeyError):
    """A format name the registry does not know; the message lists the choices.

    A :class:`~graphpath.errors.GraphpathError` (the CLI exits 2 with the message) and a
    :class:`KeyError` (it is a failed lookup).
    """

    def __init__(self, kind: Kind, name: str) -> None:
        choices = ", ".join(format_names(kind, aliases=True))
        super().__init__(f"unknown {kind} format {name!r}; choose one of {choices}")
        self.kind = kind
        self.name = name

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of rendered value {kind!r}; choose one of {', '.join(KINDS)}")


def format_names(kind: Kind, *, aliases: bool = False) -> tuple[str, ...]:
    """The format names of ``kind`` in registration order, with the aliases after them if asked.

    >>> format_names("audit", aliases=True)
    ('text', 'json', 'sarif', 'junit', 'github', 'md', 'markdown')
    """
    _check_kind(kind)
    names = tuple(n for k, n in RENDERERS if k == kind)
    return names + tuple(n for k, n in ALIASES if k == kind) if aliases else names


def canonical_format(kind: Kind, name: str) -> str:
    """The registered name of ``name`` (an alias resolved).

    >>> canonical_format("audit", "markdown"), canonical_format("audit", "sarif")
    ('md', 'sarif')

    Raises:
        UnknownFormatError: ``name`` is neither a format nor an alias of ``kind``.
    """
    _check_kind(kind)
    name = ALIASES.get((kind, name), name)
    if (kind, name) not in RENDERERS:
        raise UnknownFormatError(kind, name)
    return name


@overload
def get_renderer(kind: Literal["report"], name: str) -> Callable[[Report], str]: ...
@overload
def get_renderer(kind: Literal["table"], name: str) -> Callable[[StabilityTable], str]: ...
@overload
def get_renderer(kind: Literal["audit"], name: str) -> Callable[[AuditResult], str]: ...
@overload
def get_renderer(kind: Kind, name: str) -> Callable[[Any], str]: ...
def get_renderer(kind: Kind, name: str) -> Callable[[Any], str]:
    """The renderer of format ``name`` (or an alias) for ``kind``, its module imported now.

    >>> get_renderer("report", "json").__module__
    'graphpath.formats.json_format'
    >>> get_renderer("table", "pdf")
    Traceback (most recent call last):
    ...
    graphpath.formats.UnknownFormatError: unknown table format 'pdf'; choose one of text, md, html, json, csv

    Raises:
        UnknownFormatError: ``name`` is not a format of ``kind``.
        ValueError: ``kind`` is not one of :data:`KINDS`.
    """
    target = RENDERERS[(kind, canonical_format(kind, name))]
    module, _, func = target.partition(":")
    render: Callable[[Any], str] = getattr(import_module(module), func)
    return render


def parse_write(kind: Kind, spec: str) -> tuple[str, Path]:
    """``FORMAT=FILE`` (``--write``): the registered format name and the file.

    >>> parse_write("audit", "sarif=out/graphpath.sarif")
    ('sarif', PosixPath('out/graphpath.sarif'))

    Raises:
        GraphpathError: no ``=``, no file, or an unknown format (the message lists the choices).
    """
    fmt, sep, file = spec.partition("=")
    choices = ", ".join(format_names(kind, aliases=True))
    if not sep or not file or (kind, ALIASES.get((kind, fmt), fmt)) not in RENDERERS:
        raise GraphpathError(f"--write {spec!r}: expected FORMAT=FILE with FORMAT one of {choices}")
    return canonical_format(kind, fmt), Path(file)
