"""GP3xx numeric rules: verdict, dead activations, NaN/Inf and backend agreement from the numeric section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphpath.audit.rules.access import (
    as_number,
    require_section,
)
from graphpath.audit.rules.types import Detect, Hit, Location, NotEvaluated, RuleConfig
from graphpath.report import get_nested

# ---------------------------------------------------------------------------------------------
# GP3xx numeric


def _numeric(report: Mapping[str, Any]) -> Mapping[str, Any]:
    numeric = require_section(report, "numeric", "run with --numeric")
    if not isinstance(numeric, Mapping):
        raise NotEvaluated("the report's numeric section is not an object")
    if numeric.get("error") and numeric.get("verdict") is None:
        raise NotEvaluated(f"the numeric analysis failed: {numeric['error']}")
    return numeric


def _value(entry: Any) -> Any:
    """``entry["value"]`` for the ``{"value": …}`` entries of the numeric section, else ``entry``."""
    return entry.get("value") if isinstance(entry, Mapping) else entry


def verdict_detector(verdict: str, threshold: str, beyond: Callable[[float, float], bool]) -> Detect:
    """The detect function of GP301/GP302: the numeric verdict is ``verdict``, or the gradient
    ratio is ``beyond`` the threshold ``threshold`` (when set)."""
    def detect(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
        numeric = _numeric(report)
        raw = numeric.get("verdict")
        found = _value(raw)
        why = raw.get("reason") if isinstance(raw, Mapping) else numeric.get("reason")
        ratio = as_number(_value(numeric.get("ratio")))
        bound = config.thresholds.get(threshold)
        if found is None and (ratio is None or bound is None):
            raise NotEvaluated("the numeric section has no verdict")
        props = {"verdict": found, "ratio": ratio, "reason": why}
        reason = f": {why}" if why else ""
        if found == verdict:
            return [Hit(f"numeric verdict is {verdict}{reason}", (Location("numeric", "verdict"),), props)]
        if ratio is not None and bound is not None and beyond(ratio, float(bound)):
            return [Hit(f"gradient ratio {ratio:.3g} is beyond the {verdict} bound {float(bound):g}",
                        (Location("numeric", "ratio"),), {**props, "bound": float(bound)})]
        return []

    return detect


def _dead_fractions(numeric: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(where, fraction)`` pairs: ``dead`` is ``{activation: {dead, total, fraction, units}}``
    (graphpath.numeric.backward); per-unit maps and lists are read too."""
    out: list[tuple[str, float]] = []
    for key in ("dead", "dead_fractions", "dead_activations"):
        value = numeric.get(key)
        if isinstance(value, Mapping):
            per_unit = value.get("per_unit")
            inner: Mapping[str, Any] = per_unit if isinstance(per_unit, Mapping) else value
            for name, frac in inner.items():
                f = as_number(frac.get("fraction") if isinstance(frac, Mapping) else frac)
                if f is not None:
                    out.append((str(name), f))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    f = as_number(item.get("fraction", item.get("dead_fraction")))
                    where = item.get("unit") or item.get("name") or item.get("tensor")
                    if f is not None and where is not None:
                        out.append((str(where), f))
    total = as_number(numeric.get("dead_fraction"))
    if total is not None and not out:
        out.append(("all", total))
    return out


def detect_dead_activations(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP303 dead-activations: activations whose dead fraction exceeds ``max_dead_fraction``."""
    bound = config.threshold("max_dead_fraction")
    fracs = _dead_fractions(_numeric(report))
    if not fracs:
        raise NotEvaluated("the numeric section has no dead-activation fractions")
    return [Hit(f"{frac:.0%} of the {name} activation elements are dead on the probe input "
                f"(bound {bound:.0%})", (Location("activation", name),), {"fraction": frac, "bound": bound})
            for name, frac in sorted(fracs) if frac > bound]


def detect_nan_inf(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP304 nan-inf: the numeric pass reports NaN or Inf values."""
    numeric = _numeric(report)
    key = "nonfinite" if "nonfinite" in numeric else "nan_inf"
    if key not in numeric:
        raise NotEvaluated("the numeric section has no nonfinite entry")
    value = numeric[key]
    names: list[str] = []
    if isinstance(value, Mapping):
        raw = value.get("tensors") or value.get("names") or []
        names = [str(n) for n in raw] if isinstance(raw, list) else []
        count = as_number(value.get("count"))
        bad = bool(names) or bool(count) or value.get("found") is True
    elif isinstance(value, list):
        names, bad = [str(n) for n in value], bool(value)
    else:
        bad = bool(value)
    if not bad:
        return []
    locs = tuple(Location("tensor", n) for n in names[:20]) or (Location("numeric", "nonfinite"),)
    shown = f": {', '.join(names[:5])}{' …' if len(names) > 5 else ''}" if names else ""
    return [Hit(f"NaN or Inf in the forward or backward pass{shown}", locs,
                {"tensors": names, "count": len(names)})]


def detect_backend_disagreement(report: Mapping[str, Any], config: RuleConfig) -> list[Hit]:
    """GP305 backend-disagreement: two backends' gradient norms differ beyond ``max_backend_rel_diff``."""
    bound = config.threshold("max_backend_rel_diff")
    numeric = _numeric(report)
    agreement = (get_nested(numeric, "backend", "agreement") or numeric.get("agreement")
                 or get_nested(numeric, "backends", "agreement"))
    if agreement is None:
        raise NotEvaluated("only one numeric backend ran, so there is no agreement to check")
    diff = None
    props: dict[str, Any] = {}
    if isinstance(agreement, Mapping):
        for key in ("max_rel_diff", "max_relative_difference", "max_rel_err", "rel_diff"):
            diff = as_number(agreement.get(key))
            if diff is not None:
                break
        props = {k: agreement[k] for k in ("worst_parameter", "compared") if k in agreement}
        if diff is None and agreement.get("agree") is False:
            return [Hit("the numeric backends disagree", (Location("numeric", "agreement"),), props)]
    else:
        diff = as_number(agreement)
    if diff is None or diff <= bound:
        return []
    worst = props.get("worst_parameter")
    where = (Location("parameter", str(worst)),) if worst else (Location("numeric", "agreement"),)
    return [Hit(f"backends disagree: largest relative gradient-norm difference {diff:.3g} "
                f"(bound {bound:g}){f' at {worst}' if worst else ''}", where,
                {**props, "max_rel_diff": diff, "bound": bound})]
