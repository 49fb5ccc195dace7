"""The forward parity the numeric passes require before reporting gradients or curvature
(:func:`verified_parity`): the evaluator against onnxruntime at the heads, at a tolerance that
fits the graph (float, float16, quantized), and for quantized graphs whose heads drift beyond
it, teacher-forced parity (:func:`check_op_parity`): every op of the evaluator against
onnxruntime, each on onnxruntime's own values of its inputs.

Parity at the heads cannot tell a wrong op from a rounding flip that grows. In a quantized
graph a float-ulp difference in a sum decides a rounding tie the other way (one step of the
output grid); a deep stack that does not attenuate (Darknet-53's residual body) carries such
flips to the heads, where they reach several percent of the range, while a second input agrees
bit for bit. Teacher forcing removes the propagation: each op reads onnxruntime's inputs, so
what is left is the op's own difference — at most one grid step on an output on a quantization
grid (a tie decided the other way), the float tolerance on a float output. An op beyond that
is a defect, and it is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from graphpath.errors import GraphpathError
from graphpath.model.graph import ModelGraph
from graphpath.model.loaded import LoadedModel
from graphpath.numeric.evaluator.core import (
    Evaluator,
    ParityResult,
    check_parity,
    compare_arrays,
    onnxruntime_values,
)

__all__ = ["FLOAT16_PARITY_ATOL", "QUANTIZED_PARITY_ATOL", "OpParity", "check_op_parity", "is_float16",
           "verified_parity"]

#: Parity tolerance (relative to each head's largest magnitude) for graphs with activation
#: quantizers: 8 steps of an 8-bit grid.
QUANTIZED_PARITY_ATOL = 8 / 255

#: Parity tolerance (relative to each head's largest magnitude) for float16 graphs, which the
#: evaluator computes in float32 while onnxruntime rounds every op to half precision: 8 units
#: of half precision's roundoff (2⁻¹¹) of the range. Measured on the fp16 forms of the reference
#: detectors (320², seed 0): the heads differ by 0.3–1.4·10⁻³ of their range (yolov3's p3 the
#: largest), each intermediate conv by ~3·10⁻⁴, i.e. rounding, not drift.
FLOAT16_PARITY_ATOL = 8 * 2.0 ** -11

#: Grid steps an op on onnxruntime's inputs may differ by: one rounding tie decided otherwise
#: (the margin covers float32 arithmetic on values up to 255 steps).
GRID_STEPS = 1.0
_MARGIN = 1e-3


@dataclass(frozen=True)
class OpParity:
    """The op-by-op comparison.

    Attributes:
        compared: tensors compared (each an op's output, in schedule order).
        skipped: tensors onnxruntime holds in another form than the evaluator (a dynamic
            quantizer's integers, an integer op's accumulators before their folded scale): not
            compared, and the evaluator's own value feeds on.
        grid_max_steps: the largest difference on a quantization grid, in steps of that grid.
        flipped: the fraction of grid elements that differ by a step.
        first_bad: ``(tensor, op type, what)`` of the first op beyond tolerance, else ``None``.
    """

    compared: int
    skipped: int
    grid_max_steps: float
    flipped: float
    first_bad: tuple[str, str, str] | None

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def describe(self) -> str:
        if self.first_bad is not None:
            tensor, op, what = self.first_bad
            return f"op by op on onnxruntime's inputs, {op} output {tensor!r} differs: {what}"
        return (f"op by op on onnxruntime's inputs every one of {self.compared} outputs agrees (quantized outputs "
                f"within {self.grid_max_steps:.3g} grid step, {self.flipped:.2%} of their elements a step off)")


def _grid_steps(evaluator: Evaluator, name: str, diff: np.ndarray) -> np.ndarray:
    scale = np.asarray(evaluator.grids[name][0], np.float64)
    shape = (1, -1) + (1,) * (diff.ndim - 2) if scale.size > 1 and diff.ndim >= 2 else ()
    return diff / scale.reshape(shape)


def _same_kind(ours: np.ndarray, ref: np.ndarray) -> bool:
    return ours.shape == ref.shape and (ours.dtype.kind == "f") == (ref.dtype.kind == "f")


def check_op_parity(evaluator: Evaluator, model: LoadedModel, inputs: Mapping[str, np.ndarray], *,
                    rtol: float = 1e-3, atol: float = 1e-4) -> OpParity:
    """Compare every op the heads need with onnxruntime, each on onnxruntime's inputs.

    Raises:
        GraphpathError: onnxruntime refuses the model or fails on it.
    """
    names = [t for t in evaluator.computed_tensors() if t in model.graph.producer_of]
    refs, _ = onnxruntime_values(evaluator, model, names, inputs)
    feed = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    with torch.no_grad():
        free = evaluator(feed, capture=names)
        kinds = {n: n not in evaluator.rescaled and _same_kind(free[n].detach().cpu().numpy(), refs[n])
                 for n in names}
        forced = {n: torch.from_numpy(np.asarray(refs[n])).to(free[n].dtype) for n in names if kinds[n]}
        del free
        ours = evaluator(feed, capture=names, forced=forced)
    producer = model.graph.producer_of
    compared, skipped, worst, flipped, total = 0, 0, 0.0, 0, 0
    for n in names:
        if not kinds[n]:
            skipped += 1
            continue
        compared += 1
        got = ours[n].detach().cpu().to(torch.float64 if ours[n].is_floating_point() else ours[n].dtype).numpy()
        op = model.graph.op(producer[n]).op_type
        if n in evaluator.grids:
            with np.errstate(invalid="ignore"):
                steps = np.abs(_grid_steps(evaluator, n, got - refs[n]))
            steps = np.where(np.isnan(steps), np.inf, steps)
            worst = max(worst, float(steps.max(initial=0.0)))
            flipped += int((steps > 0.5).sum())
            total += steps.size
            if steps.size and steps.max() > GRID_STEPS + _MARGIN:
                return OpParity(compared, skipped, worst, flipped / max(total, 1),
                                (n, op, f"{float(steps.max()):.3g} grid steps (at most {GRID_STEPS:g} allowed)"))
            continue
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            res = compare_arrays(n, got, refs[n], rtol, atol)
        if not res.ok:
            return OpParity(compared, skipped, worst, flipped / max(total, 1),
                            (n, op, f"max abs {res.max_abs:.3g}, max rel {res.max_rel:.3g} (atol {atol:g}, rtol {rtol:g})"))
    return OpParity(compared, skipped, worst, flipped / max(total, 1), None)


def is_float16(graph: ModelGraph) -> bool:
    """A graph computing in half precision: a float16 input or float16 weights."""
    return any(t.dtype == "FLOAT16" for t in graph.inputs) or any(
        p.dtype == "FLOAT16" and p.count > 1 for p in graph.params.values())


def verified_parity(evaluator: Evaluator, model: LoadedModel, inputs: Mapping[str, np.ndarray], *, rtol: float,
                    atol: float, seed: int = 0, purpose: str = "gradients") -> tuple[ParityResult, tuple[str, ...]]:
    """The evaluator's heads against onnxruntime on ``inputs``, and the notes a report states.

    A quantized graph rounds at every activation quantizer: a float-ulp difference in a sum
    flips a rounding by one step and the flips propagate, so its tolerance is a few steps of
    the grid (:data:`QUANTIZED_PARITY_ATOL` of each head's range); when its heads drift beyond
    even that, :func:`check_op_parity` decides between grown flips (every op within a step:
    accepted, and said) and a wrong op (refused, naming it). A float16 graph gets
    :data:`FLOAT16_PARITY_ATOL`.

    Raises:
        GraphpathError: beyond tolerance (``refusing to report {purpose} from it``), or
            onnxruntime cannot run the model.
    """
    quantized = bool(evaluator.quantization)
    tol = max(atol, QUANTIZED_PARITY_ATOL) if quantized else atol
    half = is_float16(model.graph) and tol < FLOAT16_PARITY_ATOL
    if half:
        tol = FLOAT16_PARITY_ATOL
    parity = check_parity(evaluator, model, inputs, rtol=rtol, atol=tol, seed=seed)
    notes = {o.note for o in parity.outputs if o.note}
    if not parity.ok:
        by_op = check_op_parity(evaluator, model, inputs, rtol=rtol, atol=atol) if quantized else None
        if by_op is None or not by_op.ok:
            raise GraphpathError(f"{model.name}: the torch evaluator disagrees with onnxruntime at the raw heads: "
                                 f"{parity.describe()}; {by_op.describe() + '; ' if by_op else ''}refusing to "
                                 f"report {purpose} from it{'; reference: ' + parity.reference if parity.reference else ''}")
        notes = {f"(at the heads beyond tolerance end to end: {parity.describe()}; {by_op.describe()}: rounding "
                 "flips grown through depth, not a wrong op)"}
    if parity.reference:
        notes.add(f"(reference: {parity.reference})")
    if half:
        notes.add(f"(float16 graph evaluated in float32; onnxruntime computes in float16: parity tolerance {tol:g} "
                  "of each head's range, 8 units of half-precision roundoff)")
    if quantized:
        notes.add(f"({evaluator.quantization}; parity tolerance {tol:g} of each head's range, 8 steps of an 8-bit "
                  "grid, for rounding flips)")
    return parity, tuple(sorted(notes))
