"""Audit configuration: ``[tool.graphpath]`` in ``pyproject.toml``, or the top level of a
``graphpath.toml``; an explicit ``--config FILE`` wins over the search, which walks from the
current directory upwards and takes, in each folder, ``graphpath.toml`` before a
``pyproject.toml`` that has a ``[tool.graphpath]`` table)::

    fail_on = "error"                 # default of --fail-on
    disable = ["GP107"]               # rule ids or names; or enable = [...] to run only those
    [severity]                        # per-rule severity overrides
    GP201 = "error"
    [thresholds]                      # see graphpath.audit.rules.catalog.DEFAULT_THRESHOLDS
    max_shortest_path = 32
    [[models]]                        # per-model expectations; every matching entry applies,
    match = "yolov8*.onnx"            # later entries override earlier ones key by key
    expect_blocks = ["c2f", "sppf"]
    generation = "v8"
    form = "deploy"

Unknown keys and wrong types are errors (:class:`GraphpathError`, one line naming the key and
the file).

Example:
    >>> cfg = parse_config({"thresholds": {"max_shortest_path": 20},
    ...     "models": [{"match": "yolov8*.onnx", "generation": "v8"}]}, "graphpath.toml")
    >>> rc, enabled = cfg.for_model("models/yolov8n.onnx")
    >>> rc.generation, rc.thresholds["max_shortest_path"], "GP101" in enabled
    ('v8', 20, True)
    >>> parse_config({"tresholds": {}}, "graphpath.toml")
    Traceback (most recent call last):
    ...
    graphpath.errors.GraphpathError: graphpath.toml: unknown key 'tresholds' (known: disable, enable, fail_on, models, numeric, severity, thresholds)
"""

from __future__ import annotations

import fnmatch
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphpath.audit.rules.catalog import DEFAULT_THRESHOLDS, RULES, SEVERITIES, RuleConfig, find_rule
from graphpath.errors import GraphpathError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FORMS = ("deploy", "training")

_TOP_KEYS = ("disable", "enable", "fail_on", "models", "numeric", "severity", "thresholds")
_MODEL_KEYS = ("disable", "expect_blocks", "form", "generation", "match", "severity", "thresholds")


@dataclass(frozen=True)
class ModelExpectation:
    """One ``[[models]]`` entry: what the models whose path or name matches must look like."""

    match: tuple[str, ...]
    expect_blocks: tuple[str, ...] | None = None
    generation: str | None = None
    form: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    disable: tuple[str, ...] = ()
    severity: Mapping[str, str] = field(default_factory=dict)

    def matches(self, display: str) -> bool:
        name = display.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(display, p) or fnmatch.fnmatchcase(name, p) for p in self.match)


@dataclass(frozen=True)
class AuditConfig:
    """The parsed configuration (defaults everywhere when no file was found)."""

    source: str | None = None
    fail_on: str | None = None
    numeric: bool = False
    enable: tuple[str, ...] | None = None
    disable: tuple[str, ...] = ()
    severity: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    models: tuple[ModelExpectation, ...] = ()

    def for_model(self, display: str) -> tuple[RuleConfig, frozenset[str]]:
        """The rule configuration and the enabled rule ids for the model shown as ``display``."""
        thresholds: dict[str, float | None] = dict(DEFAULT_THRESHOLDS)
        thresholds.update(self.thresholds)
        severity = dict(self.severity)
        enabled = set(self.enable if self.enable is not None else RULES) - set(self.disable)
        expect_blocks: tuple[str, ...] = ()
        generation = form = None
        for m in self.models:
            if not m.matches(display):
                continue
            thresholds.update(m.thresholds)
            severity.update(m.severity)
            enabled -= set(m.disable)
            expect_blocks = m.expect_blocks if m.expect_blocks is not None else expect_blocks
            generation = m.generation or generation
            form = m.form or form
        rc = RuleConfig(thresholds=thresholds, expect_blocks=expect_blocks, generation=generation,
                        form=form, model=display, severity=severity)
        return rc, frozenset(enabled)


class _Checker:
    """Type checks that fail with one line naming the key and the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> GraphpathError:
        return GraphpathError(f"{self.source}: {key}: {problem}")

    def keys(self, table: Any, known: Sequence[str], prefix: str) -> Mapping[str, Any]:
        if not isinstance(table, Mapping):
            raise self.fail(prefix.rstrip(".") or "config", "expected a table")
        for key in sorted(table):
            if key not in known:
                raise GraphpathError(
                    f"{self.source}: unknown key '{prefix}{key}' (known: {', '.join(sorted(known))})")
        return table

    def string(self, value: Any, key: str, choices: Sequence[str] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def strings(self, value: Any, key: str, choices: Sequence[str] | None = None) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {type(value).__name__}")
        return tuple(self.string(v, key, choices) for v in value)

    def rule_ids(self, value: Any, key: str) -> tuple[str, ...]:
        out = []
        for name in self.strings(value, key):
            rule = find_rule(name)
            if rule is None:
                raise self.fail(key, f"unknown rule {name!r} (see `graphpath rules`)")
            out.append(rule.id)
        return tuple(out)

    def severity(self, value: Any, key: str) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise self.fail(key, "expected a table of rule = severity")
        out = {}
        for name, sev in sorted(value.items()):
            rule = find_rule(name)
            if rule is None:
                raise self.fail(f"{key}.{name}", "unknown rule (see `graphpath rules`)")
            out[rule.id] = self.string(sev, f"{key}.{name}", SEVERITIES)
        return out

    def thresholds(self, value: Any, key: str) -> dict[str, float]:
        table = self.keys(value, list(DEFAULT_THRESHOLDS), f"{key}.")
        out: dict[str, float] = {}
        for name, v in table.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise self.fail(f"{key}.{name}", f"expected a number, got {type(v).__name__}")
            out[name] = v
        return out



def display_path(path: str | os.PathLike[str]) -> str:
    """A model or file as shown in reports: relative to the current folder when inside it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return p.as_posix()

def _block_ids() -> tuple[str, ...]:
    from graphpath.blocks import BLOCK_IDS

    return BLOCK_IDS


def _generations() -> tuple[str, ...]:
    from graphpath.fingerprint.generation import GENERATIONS

    return GENERATIONS


def parse_config(data: Mapping[str, Any], source: str, prefix: str = "") -> AuditConfig:
    """Validate the graphpath table ``data`` read from ``source``.

    Raises:
        GraphpathError: an unknown key or a value of the wrong type (one line).
    """
    c = _Checker(source)
    top = c.keys(data, _TOP_KEYS, prefix)
    models = []
    raw_models = top.get("models", [])
    if not isinstance(raw_models, list):
        raise c.fail(f"{prefix}models", "expected an array of tables ([[models]])")
    for i, entry in enumerate(raw_models):
        p = f"{prefix}models[{i}]."
        m = c.keys(entry, _MODEL_KEYS, p)
        if "match" not in m:
            raise c.fail(f"{p}match", "missing (a glob such as \"yolov8*.onnx\")")
        match = (c.string(m["match"], f"{p}match"),) if isinstance(m["match"], str) \
            else c.strings(m["match"], f"{p}match")
        models.append(ModelExpectation(
            match=match,
            expect_blocks=c.strings(m["expect_blocks"], f"{p}expect_blocks", _block_ids())
            if "expect_blocks" in m else None,
            generation=c.string(m["generation"], f"{p}generation", _generations()) if "generation" in m else None,
            form=c.string(m["form"], f"{p}form", FORMS) if "form" in m else None,
            thresholds=c.thresholds(m.get("thresholds", {}), f"{p}thresholds"),
            disable=c.rule_ids(m.get("disable", []), f"{p}disable"),
            severity=c.severity(m.get("severity", {}), f"{p}severity"),
        ))
    numeric = top.get("numeric", False)
    if not isinstance(numeric, bool):
        raise c.fail(f"{prefix}numeric", f"expected true or false, got {type(numeric).__name__}")
    return AuditConfig(
        source=source,
        fail_on=c.string(top["fail_on"], f"{prefix}fail_on", SEVERITIES) if "fail_on" in top else None,
        numeric=numeric,
        enable=c.rule_ids(top["enable"], f"{prefix}enable") if "enable" in top else None,
        disable=c.rule_ids(top.get("disable", []), f"{prefix}disable"),
        severity=c.severity(top.get("severity", {}), f"{prefix}severity"),
        thresholds=c.thresholds(top.get("thresholds", {}), f"{prefix}thresholds"),
        models=tuple(models),
    )


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise GraphpathError(f"{shown}: config file not found") from None
    except IsADirectoryError:
        raise GraphpathError(f"{shown}: config file is a directory") from None
    except OSError as exc:
        raise GraphpathError(f"{shown}: cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GraphpathError(f"{shown}: invalid TOML: {exc}".splitlines()[0]) from None


def _tool_table(data: Mapping[str, Any]) -> Any:
    tool = data.get("tool")
    return tool.get("graphpath") if isinstance(tool, Mapping) else None


def load_config(path: str | os.PathLike[str]) -> AuditConfig:
    """Read the configuration file ``path``: ``[tool.graphpath]`` of a ``pyproject.toml``,
    else the whole file.

    Raises:
        GraphpathError: the file is missing, not TOML, or has an unknown key or a bad value.
    """
    p = Path(path)
    shown = display_path(p)
    data = _read_toml(p, shown)
    if p.name == "pyproject.toml":
        table = _tool_table(data)
        return parse_config(table or {}, shown, "tool.graphpath.")
    return parse_config(data, shown)


def discover_config(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file for ``start`` (default the current folder): in each folder from
    there upwards, ``graphpath.toml``, else a ``pyproject.toml`` with ``[tool.graphpath]``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "graphpath.toml"
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                if _tool_table(tomllib.loads(pyproject.read_text(encoding="utf-8"))) is not None:
                    return pyproject
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue  # someone else's broken pyproject is not our config
    return None


def resolve_config(explicit: str | os.PathLike[str] | None) -> AuditConfig:
    """``--config FILE`` when given, else the discovered file, else the defaults."""
    if explicit is not None:
        return load_config(explicit)
    found = discover_config()
    return load_config(found) if found is not None else AuditConfig()
