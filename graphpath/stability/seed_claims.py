"""The seed's stability claims as data, and the words the table uses for verdicts and
architectures.

``SEED_CLAIMS`` transcribes, as facts, the v1–v12 + YOLOX rows of the seed's stability table
(seed 000, section 18.2): the claimed verdict per generation and the blocks its reason rests
on. :func:`architecture` and :func:`topology_reason` turn detected block counts into the
table's "architecture" and "reason" words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# --------------------------------------------------------------------------- verdicts

#: graphpath's table verdicts, worst first, with their glyphs (the seed table's notation).
VERDICT_GLYPHS: dict[str, str] = {
    "unstable": "❌",
    "moderate": "⚠️",
    "stable": "✅",
    "very stable": "✅✅",
}
NOT_MEASURED = "not measured"
NOT_AVAILABLE = "n/a"
#: The table verdict when the ratio's interval over seeds straddles a boundary.
INCONCLUSIVE = "inconclusive"

#: Ordinal rank of the seed's verdicts (Spearman against the measured ratio's closeness to 1).
VERDICT_RANK: dict[str, int] = {"unstable": 0, "moderate": 1, "stable": 2, "very stable": 3}

#: numeric verdict (graphpath.numeric.metrics.VERDICTS) → table verdict.
NUMERIC_TO_TABLE: dict[str, str] = {
    "nan": "unstable",
    "vanishing": "unstable",
    "exploding": "unstable",
    "moderate": "moderate",
    "stable": "stable",
    "very stable": "very stable",
    "inconclusive": "inconclusive",
}


def verdict_label(verdict: str) -> str:
    """The verdict with its glyph, e.g. ``"✅ stable"``; other values unchanged.

    >>> verdict_label("unstable"), verdict_label("not measured")
    ('❌ unstable', 'not measured')
    """
    glyph = VERDICT_GLYPHS.get(verdict)
    return f"{glyph} {verdict}" if glyph else verdict


# --------------------------------------------------------------------------- the seed's claims


@dataclass(frozen=True)
class SeedClaim:
    """One row of the seed's stability table, as facts.

    Attributes:
        row: the seed row's version label (``v11–12`` covers both generations).
        architecture: what the seed says the network is built from (keywords).
        verdict: the claimed stability, in graphpath's verdict words.
        reason: the claimed key reason, paraphrased to keywords.
        requires: block kinds (``docs/block-conventions.md``) whose presence the claimed reason
            rests on; any one suffices. Empty where the reason names nothing a graph can show.
        forbids: block kinds the claimed reason says are absent.
        graph_visible: ``False`` where the reason is a training-time mechanism that no exported
            graph carries (EMA of weights).
    """

    row: str
    architecture: str
    verdict: str
    reason: str
    requires: tuple[str, ...] = ()
    forbids: tuple[str, ...] = ()
    graph_visible: bool = True


_SHORTCUT_KINDS = ("residual", "csp", "c2f", "c3k2", "elan", "e_elan", "gelan", "repvgg", "a2c2f", "pgi")

#: Seed 000, section 18.2 ("Stability Table v1--v12"): per generation the claimed verdict and the
#: claimed key reason, transcribed as facts (verdict word, reason keywords), not as sentences.
#: The seed marks v5 "Very stable" with a single check mark and v7/v9 with two; all three are
#: taken as "very stable". Its "v11--12" row is one claim for both generations.
SEED_CLAIMS: dict[str, SeedClaim] = {
    "v1": SeedClaim("v1", "24 conv + FC", "unstable", "no residual; FC layers",
                    requires=("fc_head",), forbids=_SHORTCUT_KINDS),
    "v2": SeedClaim("v2", "Darknet-19 + BN", "moderate", "BN helps; no shortcut",
                    forbids=_SHORTCUT_KINDS),
    "v3": SeedClaim("v3", "Darknet-53 + residual", "stable", "residual bounds the gradient",
                    requires=("residual",)),
    "v4": SeedClaim("v4", "CSPDarknet53 + SPP", "stable", "CSP split + residual",
                    requires=("csp",)),
    "v5": SeedClaim("v5", "CSP + SPPF + EMA", "very stable", "EMA weight smoothing",
                    graph_visible=False),
    "yolox": SeedClaim("YOLOX", "CSP + decoupled head", "stable", "decoupled head isolates gradients",
                       requires=("decoupled_head",)),
    "v6": SeedClaim("v6", "RepVGG", "stable", "re-parameterisation normalises",
                    requires=("repvgg",)),
    "v7": SeedClaim("v7", "E-ELAN", "very stable", "E-ELAN expands gradient paths",
                    requires=("e_elan", "elan")),
    "v8": SeedClaim("v8", "C2f", "stable", "fine-grained C2f concat", requires=("c2f",)),
    "v9": SeedClaim("v9", "GELAN + PGI", "very stable", "PGI injects gradient explicitly",
                    requires=("pgi",)),
    "v10": SeedClaim("v10", "NMS-free dual head", "stable", "standard backbone"),
    "v11": SeedClaim("v11–12", "C3k2 + C2PSA", "stable", "attention smoothing",
                     requires=("attention", "c2psa", "a2c2f", "psa")),
    "v12": SeedClaim("v11–12", "C3k2 + C2PSA", "stable", "attention smoothing",
                     requires=("attention", "c2psa", "a2c2f", "psa")),
}

#: The seed table's rows in its own order (row label → generations it covers).
SEED_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("v1", ("v1",)), ("v2", ("v2",)), ("v3", ("v3",)), ("v4", ("v4",)), ("v5", ("v5",)),
    ("YOLOX", ("yolox",)), ("v6", ("v6",)), ("v7", ("v7",)), ("v8", ("v8",)), ("v9", ("v9",)),
    ("v10", ("v10",)), ("v11–12", ("v11", "v12")),
)

#: Generation order of the table's rows (the seed's order; anything else after it).
GENERATION_ORDER: tuple[str, ...] = tuple(g for _, gens in SEED_ROWS for g in gens)

# --------------------------------------------------------------------------- architecture


_KIND_LABEL: dict[str, str] = {
    "plain_stage": "plain conv", "residual": "residual", "csp": "CSP", "c2f": "C2f", "c2fcib": "C2fCIB",
    "c3k2": "C3k2", "elan": "ELAN", "e_elan": "E-ELAN", "gelan": "GELAN", "repvgg": "RepVGG",
    "a2c2f": "A2C2f", "c2psa": "C2PSA", "psa": "PSA", "attention": "attention", "sppf": "SPPF",
    "spp": "SPP", "sppcspc": "SPPCSPC", "sppelan": "SPPELAN", "pan": "PAN", "fpn": "FPN",
    "passthrough": "passthrough", "dfl": "DFL", "fc_head": "FC", "decoupled_head": "decoupled",
    "one2one_head": "one2one", "aux_head": "aux head", "pgi": "PGI",
}


def architecture(counts: Mapping[str, int]) -> str:
    """The main blocks, e.g. ``"C2f + SPPF + PAN + DFL"``, from ``block_counts``.

    Blocks nested in a bigger named block (residual inside C2f, CSP inside C3k2) and plumbing
    (FPN under PAN, heads that every detector has) are left out.

    >>> architecture({"residual": 6, "c2f": 8, "sppf": 1, "fpn": 2, "pan": 2, "decoupled_head": 3, "dfl": 1})
    'C2f + SPPF + PAN + DFL'
    >>> architecture({})
    '-'
    """
    has = {k for k, v in counts.items() if v}
    out: list[str] = []
    big = has & {"c2f", "c3k2", "gelan", "elan", "e_elan", "a2c2f", "c2fcib"}
    if "e_elan" in has:
        out.append("E-ELAN")
    if "elan" in has:
        out.append("ELAN")
    for k in ("gelan", "c3k2", "a2c2f", "c2f", "c2fcib"):
        if k in has:
            out.append(_KIND_LABEL[k])
    if "csp" in has and not big:
        out.append("CSP")
    if "residual" in has and not big:
        out.append("residual")
    if "repvgg" in has and not big:
        out.append("RepVGG")
    if "plain_stage" in has and not out:
        out.append("plain conv")
    if "c2psa" in has:
        out.append("C2PSA")
    elif "psa" in has:
        out.append("PSA")
    elif "attention" in has and "a2c2f" not in has:
        out.append("attention")
    for k in ("sppf", "spp", "sppcspc", "sppelan"):
        if k in has:
            out.append(_KIND_LABEL[k])
    if "pan" in has:
        out.append("PAN")
    elif "fpn" in has:
        out.append("FPN")
    if "passthrough" in has:
        out.append("passthrough")
    if "dfl" in has:
        out.append("DFL")
    elif "decoupled_head" in has:
        out.append("decoupled")
    if "fc_head" in has:
        out.append("FC")
    if "one2one_head" in has:
        out.append("one2one + one2many" if "aux_head" in has and "pgi" not in has else "one2one")
    if "pgi" in has:
        out.append("PGI")
    return " + ".join(out) or "-"


def topology_reason(counts: Mapping[str, int], paths_total_log2: float | None) -> str:
    """What the graph offers the gradient, in a few words (the static half of the reason).

    >>> topology_reason({"plain_stage": 1, "fc_head": 1}, 0.0)
    'no shortcut: one gradient path; FC head'
    >>> topology_reason({"residual": 23, "fpn": 2}, 24.6)
    '23 residual'
    """
    has = {k: v for k, v in counts.items() if v}
    shortcuts = [(k, has[k]) for k in ("pgi", "e_elan", "elan", "gelan", "c3k2", "a2c2f", "c2f", "csp",
                                       "residual", "repvgg") if k in has]
    parts: list[str] = []
    if not shortcuts:
        if paths_total_log2 is not None and paths_total_log2 == 0.0:
            parts.append("no shortcut: one gradient path")
        else:
            parts.append("no shortcut")
    else:
        parts.append(", ".join(f"{n} {_KIND_LABEL[k]}" if k != "pgi" else "PGI aux branch"
                               for k, n in shortcuts[:3]))
    if "fc_head" in has:
        parts.append("FC head")
    if any(k in has for k in ("attention", "c2psa", "psa")) and "attention" not in parts[0]:
        parts.append(f"{has.get('attention', 1)} attention")
    return "; ".join(parts)


#: What a graph says about the structure a seed's reason rests on.
StructureOutcome = Literal["shows it", "not in this graph", "contradicts it", "training-time only", "nothing to check"]


@dataclass(frozen=True)
class StructureCheck:
    """:func:`seed_structure_check`'s answer: the outcome, and the sentence the table shows."""

    outcome: StructureOutcome
    text: str


def seed_structure_check(claim: SeedClaim, counts: Mapping[str, int]) -> StructureCheck:
    """Whether the graph shows what the seed's reason rests on.

    >>> seed_structure_check(SEED_CLAIMS["v3"], {"residual": 23}).text
    'shows it: 23 residual'
    >>> seed_structure_check(SEED_CLAIMS["v9"], {"gelan": 8})
    StructureCheck(outcome='not in this graph', text='not in this graph: PGI (export drops training-time structure)')
    """
    has = {k: v for k, v in counts.items() if v}
    if not claim.graph_visible:
        return StructureCheck("training-time only", "training-time only, not in any exported graph")
    found_forbidden = [k for k in claim.forbids if k in has]
    if found_forbidden:
        return StructureCheck("contradicts it", "contradicts it: " + ", ".join(
            f"{has[k]} {_KIND_LABEL.get(k, k)}" for k in found_forbidden))
    if claim.requires:
        present = [k for k in claim.requires if k in has]
        if not present:
            missing = "/".join(_KIND_LABEL.get(k, k) for k in claim.requires)
            why = " (export drops training-time structure)" if "pgi" in claim.requires or "repvgg" in claim.requires else ""
            return StructureCheck("not in this graph", f"not in this graph: {missing}{why}")
        return StructureCheck("shows it", "shows it: " + ", ".join(f"{has[k]} {_KIND_LABEL.get(k, k)}" for k in present))
    if claim.forbids:
        return StructureCheck("shows it", "shows it: no shortcut")
    return StructureCheck("nothing to check", "nothing structural to check")
