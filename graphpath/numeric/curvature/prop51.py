"""Proposition 5.1 of seed 002 on every maximal residual chain, measured.

A chain is a run of residual blocks ``F_l = F_{l−1} + 𝓕_l(F_{l−1})`` in which each block's entry
is the previous block's exit (Darknet-53 stages, C3/C2f bottleneck runs). For each block the
branch Jacobian's spectral norm ``σ_l = ‖∂𝓕_l/∂F_{l−1}‖`` is estimated by power iteration
(jvp + vjp through graphpath's evaluator, a lower bound; iterations and last change reported).
The measured side is the probe gradient at the chain's exit ``u = ∂L/∂F_L`` pulled back through
the chain alone, ``‖(∂F_L/∂F₀)ᵀ u‖ / ‖u‖``: the proposition's statement treats ``L`` as a
function of ``F_L``; a side exit (C2f's concat of every bottleneck's output) adds gradient at
``F₀`` that the proposition does not speak about.

The checked bounds (see docs/curvature.md for why):

- ``1 − Σσ_l`` (the seed's statement): ``holds`` / ``vacuous`` (``Σσ ≥ 1``) / ``violated``;
- ``Π(1 − σ_l)``, which follows from ``‖(I + J)ᵀu‖ ≥ (1 − ‖J‖)‖u‖`` block by block and is at
  least ``1 − Σσ_l`` whenever every ``σ_l ≤ 1``.

Since ``σ_l`` are lower bounds, a computed bound can exceed the true one only by the
estimates' error: a ``violated`` beyond the slack ``Σ σ_l · last_change_l`` names the blocks
whose power iteration did not converge, or says that every one did (a bug to report).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from graphpath.model.loaded import LoadedModel
from graphpath.numeric.curvature.results import ChainBranch, Prop51Chain, Prop51Verdict
from graphpath.numeric.metrics import power_iteration
from graphpath.numeric.norm import TrainNorm
from graphpath.numeric.scope import detected_blocks, sibling_entry, tensor_consumers

__all__ = ["chain_bound", "exit_gradients", "prop51_chains", "pullback_ratio", "residual_chains"]

#: Block kinds whose exit is ``entry + branch(entry)``.
RESIDUAL_KINDS = frozenset({"residual"})


def residual_chains(model: LoadedModel, in_scope: Any) -> list[list[tuple[str, str, str]]]:
    """Maximal chains of residual blocks ``[(name, entry, exit), …]``: blocks whose exit is an
    ``Add`` of their entry and a branch, linked when one's entry is the previous one's exit."""
    graph = model.graph
    consumers = tensor_consumers(graph)
    blocks = []
    for name, kind, entry, exit_ in detected_blocks(model.blocks, in_scope):
        prod = graph.producer_of.get(exit_)
        if kind not in RESIDUAL_KINDS or prod is None:
            continue
        op = graph.op(prod)
        if entry not in op.inputs:  # a split's other output feeds the block (C2f's last chunk)
            entry = sibling_entry(graph, entry, exit_, consumers) or entry
        if op.op_type == "Add" and entry in op.inputs:
            blocks.append((name, entry, exit_))
    by_entry: dict[str, list[tuple[str, str, str]]] = {}
    for b in blocks:
        by_entry.setdefault(b[1], []).append(b)
    exits = {b[2] for b in blocks}
    chains = []
    for b in blocks:
        if b[1] in exits:
            continue
        chain, seen = [b], {b[2]}
        while len(by_entry.get(chain[-1][2], [])) == 1 and by_entry[chain[-1][2]][0][2] not in seen:
            chain.append(by_entry[chain[-1][2]][0])
            seen.add(chain[-1][2])
        chains.append(chain)
    return chains


def _verdict(ratio: float, bound: float, vacuous: bool, slack: float) -> Prop51Verdict:
    if vacuous:
        return "vacuous"
    return "holds" if ratio >= bound - slack else "violated"


def chain_bound(name: str, seed: int, branches: Sequence[ChainBranch], ratio: float) -> Prop51Chain:
    """The two bounds and their verdicts for measured ``branches`` and ``ratio``.

    >>> b = ChainBranch("b", "x", "y", 0.25, 5, 1e-5, True)
    >>> c = chain_bound("b", 0, [b, b], 0.9)
    >>> c.sum_bound, c.product_bound, c.verdict
    (0.5, 0.5625, 'holds')
    """
    sigmas = [b.sigma for b in branches]
    total = sum(sigmas)
    product = math.prod(1.0 - s for s in sigmas)
    slack = sum(b.sigma * (b.last_change if math.isfinite(b.last_change) else 1.0) for b in branches) + 1e-6
    verdict = _verdict(ratio, 1.0 - total, not total < 1.0 or not math.isfinite(total), slack)
    pverdict = _verdict(ratio, product, any(not s < 1.0 for s in sigmas), slack)
    note = ""
    if "violated" in (verdict, pverdict):
        loose = [b.block for b in branches if not b.converged]
        note = (f"σ did not converge on {', '.join(loose)}: the estimate is a lower bound" if loose else
                "every σ converged: the bound should hold; this is a bug to report")
    return Prop51Chain(name, seed, tuple(branches), total, 1.0 - total, product, ratio, verdict, pverdict, note)


def prop51_chains(ev: Any, model: LoadedModel, x0: Mapping[str, Any], params: Mapping[str, Any],
                  heads: Sequence[str], cotangent: Mapping[str, Any], chains: Sequence[Sequence[tuple[str, str, str]]],
                  *, seed: int, iters: int, tol: float, train_norm: TrainNorm | None = None) -> tuple[Prop51Chain, ...]:
    """Measure every chain (see the module docstring) at ``params`` on input ``x0``, with the
    probe ``Σ⟨cotangent, head⟩`` at the raw heads."""
    import torch

    if not chains:
        return ()
    boundary = sorted({t for c in chains for b in c for t in (b[1], b[2])})
    leaves = {t: v for t, v in boundary_values(ev, x0, params, heads, boundary, train_norm).items()}
    grads = exit_gradients(ev, x0, params, heads, cotangent, [c[-1][2] for c in chains], train_norm)
    out = []
    for ci, chain in enumerate(chains):
        branches = []
        for bi, (bname, entry, exit_) in enumerate(chain):
            at = leaves[entry].detach()

            def branch(v: Any, entry: str = entry, exit_: str = exit_) -> Any:
                return ev(x0, params, outputs=[exit_], replace={entry: v}, train_norm=train_norm)[exit_] - v

            pull = torch.func.vjp(branch, at)[1]
            gen = torch.Generator().manual_seed(seed * 7919 + ci * 131 + bi)
            v0 = torch.randn(tuple(at.shape), generator=gen, dtype=torch.float64).to(at.device, at.dtype)
            def apply(v: Any, branch: Any = branch, at: Any = at) -> Any:
                return torch.func.jvp(branch, (at,), (v,))[1]

            def adjoint(u: Any, pull: Any = pull) -> Any:
                return pull(u)[0]

            est = power_iteration(apply, adjoint, v0, iters=iters, tol=tol)
            branches.append(ChainBranch(bname, entry, exit_, est.sigma, est.iterations, est.last_change,
                                        est.last_change < tol))
        f0, fl = chain[0][1], chain[-1][2]
        ratio = pullback_ratio(ev, x0, params, f0, fl, leaves[f0], grads[fl], train_norm)
        name = chain[0][0] if len(chain) == 1 else f"{chain[0][0]} … {chain[-1][0]}"
        out.append(chain_bound(name, seed, branches, ratio))
    return tuple(out)


def boundary_values(ev: Any, x0: Mapping[str, Any], params: Mapping[str, Any], heads: Sequence[str],
                    tensors: Sequence[str], train_norm: TrainNorm | None) -> dict[str, Any]:
    """Forward values of ``tensors`` (no gradient)."""
    import torch

    with torch.no_grad():
        out = ev(x0, params, outputs=list(heads), capture=list(tensors), train_norm=train_norm)
    return {t: out[t] for t in tensors}


def pullback_ratio(ev: Any, x0: Mapping[str, Any], params: Mapping[str, Any], f0: str, fl: str, at: Any, u: Any,
                   train_norm: TrainNorm | None) -> float:
    """``‖(∂F_L/∂F₀)ᵀ u‖ / ‖u‖``: the gradient ``u`` at tensor ``fl`` pulled back to tensor
    ``f0`` (whose forward value is ``at``) through the subgraph between them alone; side inputs
    into that subgraph other than ``f0`` are held at their forward values."""
    import torch

    def through(v: Any) -> Any:
        return ev(x0, params, outputs=[fl], replace={f0: v}, train_norm=train_norm)[fl]

    w = torch.func.vjp(through, at.detach())[1](u)[0]
    un = float(u.double().norm())
    return float(w.double().norm()) / un if un > 0 else math.nan


def exit_gradients(ev: Any, x0: Mapping[str, Any], params: Mapping[str, Any], heads: Sequence[str],
                   cotangent: Mapping[str, Any], exits: Sequence[str], train_norm: TrainNorm | None) -> dict[str, Any]:
    """``∂L/∂F`` at each tensor of ``exits`` for the probe ``L = Σ⟨c, head⟩`` (whole network)."""
    import torch

    zeros = {t: torch.zeros(ev.shapes[t], device=ev.device, dtype=ev.dtype, requires_grad=True) for t in exits}
    out = ev(x0, params, outputs=list(heads), perturb=zeros, train_norm=train_norm)
    loss = sum((out[h] * cotangent[h]).sum() for h in heads)
    grads = torch.autograd.grad(loss, list(zeros.values()), allow_unused=True)
    return {t: (torch.zeros_like(z) if g is None else g.detach()) for (t, z), g in zip(zeros.items(), grads, strict=True)}
