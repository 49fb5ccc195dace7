"""graphpath's own ONNX → torch evaluator: the torch route of the numeric backward pass.

At load the evaluator reads the graph through :mod:`graphpath.onnx_io`, turns the float
initializers into ``nn.Parameter`` s named after them, and *folds* shape arithmetic: every tensor
computed only from shapes, constants and initializers (``ModelGraph.shape_tensors``) is computed
once for the static input shape and becomes a constant. A shape pass on the ``meta`` device
gives every data tensor its concrete shape on the way. What is left is pure tensor math, so
``torch.func`` (``vjp``, ``jvp``, Hessian-vector products) runs on the whole graph.

Example::

    ev = Evaluator.from_model("yolo.onnx", device="auto")   # a path or a LoadedModel
    require_parity(ev, "yolo.onnx")                 # refuse before reporting any gradient
    x = torch.rand(ev.input_shapes["images"])
    heads = ["/model.22/Concat_output_0"]            # raw head tensors, decode tail cut off
    out = ev({"images": x}, outputs=heads)
    # gradient w.r.t. an intermediate activation: perturb it by zero and differentiate
    delta = torch.zeros(ev.shapes["/model.4/Add_output_0"])
    f = lambda d: ev({"images": x}, outputs=heads, perturb={"/model.4/Add_output_0": d})
    _, pullback = torch.func.vjp(f, delta)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphpath import onnx_io
from graphpath.errors import GraphpathError, MissingExtraError
from graphpath.model.graph import ModelGraph, OpNode
from graphpath.model.loaded import LoadedModel
from graphpath.model.ops import SHAPE_OPS, carries_gradient

try:
    import torch
    from torch import nn
except ImportError as exc:  # the torch extra is optional
    raise MissingExtraError("torch", "torch", "the numeric backward pass") from exc

from graphpath.numeric.evaluator.ops_common import int_attr
from graphpath.numeric.evaluator.ops_quant import OUTPUT_GRIDS, QUANT_OPS, dequantize_weights, passthrough
from graphpath.numeric.evaluator.ops_torch import (
    FOLD_ONLY,
    OPS,
    Node,
    OpFn,
    batch_norm_batch_stats,
    batch_stat_norm,
    to_tensor,
    torch_dtype,
)
from graphpath.numeric.norm import TrainNorm

__all__ = ["Evaluator", "OutputParity", "ParityResult", "check_parity", "require_parity"]

#: ONNX data-type names (as ModelGraph reports them) → the TensorProto enum.
_TYPE_ENUM = {
    "FLOAT": 1, "UINT8": 2, "INT8": 3, "UINT16": 4, "INT16": 5, "INT32": 6, "INT64": 7, "BOOL": 9,
    "FLOAT16": 10, "DOUBLE": 11, "UINT32": 12, "UINT64": 13, "BFLOAT16": 16,
}
_FLOAT_NAMES = frozenset({"FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16"})
#: Constant inputs at gradient-carrying positions are also handed to ops when this small.
_SMALL_CONST = 64
#: Ops that quantize activations in the forward pass (straight-through in the backward pass).
_FAKE_QUANT_OPS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                             "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax",
                             "QLinearConcat", "QLinearGlobalAveragePool", "QGemm"})
#: Ops that pick elements by value: outputs downstream of them flip on near-ties.
_SELECTION_OPS = frozenset({"TopK", "ArgMax", "ArgMin"})


@dataclass(frozen=True)
class _Step:
    node: Node
    fn: OpFn


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _sanitize(names: Iterable[str]) -> dict[str, str]:
    """ONNX name → a ParameterDict key (no dots, unique, no clash with ParameterDict attributes)."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = re.sub(r"\W", "_", name) or "param"
        if base[0].isdigit() or hasattr(nn.ParameterDict, base):
            base = f"p_{base}"
        key, n = base, 1
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        keys[name] = key
    return keys


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    resolved = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise GraphpathError(f"evaluator dtype must be a float dtype, not {dtype!r}")
    return resolved


def _input_shapes(graph: ModelGraph, given: Mapping[str, Sequence[int]] | None,
                  imgsz: int | tuple[int, int], batch: int) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes: declared dims, then ``given``, then batch/imgsz for dynamic dims."""
    hw = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    out: dict[str, tuple[int, ...]] = {}
    for t in graph.inputs:
        if given and t.name in given:
            out[t.name] = tuple(int(d) for d in given[t.name])
            continue
        if t.shape is None:
            raise GraphpathError(f"input {t.name!r} declares no shape; pass input_shapes={{...}}")
        dims = []
        for i, d in enumerate(t.shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)
            elif i == 0:
                dims.append(batch)
            elif len(t.shape) == 4 and i in (2, 3):
                dims.append(int(hw[i - 2]))
            else:
                raise GraphpathError(
                    f"input {t.name!r} has a dynamic dimension {i} ({d!r}) that graphpath cannot "
                    "guess; pass input_shapes={...}"
                )
        out[t.name] = tuple(dims)
    for name, shape in out.items():
        _check_input_size(name, shape)
    return out


#: Elements one input of the numeric pass may have (2²⁸: a 1 GiB float32 tensor; a detector's
#: 1×3×640×640 image is 1.2 M). Raised with the environment variable named in the message.
MAX_INPUT_ELEMENTS_ENV = "GRAPHPATH_MAX_INPUT_ELEMENTS"


def _check_input_size(name: str, shape: tuple[int, ...]) -> None:
    text = os.environ.get(MAX_INPUT_ELEMENTS_ENV, "").strip()
    if text and not (text.isascii() and text.isdigit()):
        raise GraphpathError(f"{MAX_INPUT_ELEMENTS_ENV}={text!r} is not a whole number of elements")
    limit = int(text) if text else 1 << 28
    count = math.prod(shape)
    if count > limit:
        raise GraphpathError(
            f"input {name!r} has shape {shape} ({count} elements), past the numeric pass's limit of "
            f"{limit} elements per input; raise it with {MAX_INPUT_ELEMENTS_ENV}=N"
        )


def _is_static(graph: ModelGraph, op: OpNode) -> bool:
    outs = [o for o in op.outputs if o]
    return bool(outs) and all(o in graph.shape_tensors for o in outs)


def _scope(graph: ModelGraph, targets: Sequence[str]) -> list[str]:
    """Names of the nodes needed for ``targets``, in topological order."""
    known = set(graph.producer_of) | set(graph.params) | {t.name for t in graph.inputs}
    for t in targets:
        if t not in known:
            raise GraphpathError(f"no tensor named {t!r} in the graph")
    needed: set[str] = set()
    stack = list(targets)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        prod = graph.producer_of.get(t)
        if prod is None or prod in needed:
            continue
        needed.add(prod)
        stack.extend(i for i in graph.op(prod).inputs if i)
        stack.extend(graph.dag.nodes[prod].get("implicit", ()))
    return [n for n in graph.dag.nodes if n in needed]


def _check_support(graph: ModelGraph, order: Sequence[str]) -> None:
    """One error naming every unsupported op in scope, with counts."""
    bad: Counter[str] = Counter()
    for name in order:
        op = graph.op(name)
        label = op.op_type if op.is_standard else f"{op.domain}.{op.op_type}"
        if not (op.is_standard or op.op_type in QUANT_OPS) or op.op_type not in OPS:
            bad[label] += 1
        elif op.op_type in FOLD_ONLY and not _is_static(graph, op):
            bad[f"{label} (on data)"] += 1
    if bad:
        listed = ", ".join(f"{k} ({_plural(n, 'node')})" for k, n in sorted(bad.items(), key=lambda kv: (-kv[1], kv[0])))
        raise GraphpathError(
            f"unsupported ops: {listed}; evaluate up to tensors before them with outputs=[...] "
            "(for gradients, cut the decode/NMS tail at the raw head tensors)"
        )


def _results(node: Node, res: Any) -> tuple[torch.Tensor, ...]:
    out = res if isinstance(res, tuple) else (res,)
    read = [i for i, o in enumerate(node.outputs) if o]
    if read and len(out) <= read[-1]:
        raise node.fail(f"graphpath computes {len(out)} of its outputs; the graph uses output {read[-1]}")
    return out


def _run_at_load(node: Node, fn: OpFn, xs: list[Any]) -> tuple[torch.Tensor, ...]:
    try:
        return _results(node, fn(node, xs))
    except GraphpathError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else None for x in xs]
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise node.fail(f"cannot be evaluated on inputs of shapes {shapes}: {first}") from None


def _scales_after(graph: ModelGraph, order: Sequence[str],
                  arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[float, str, int]]:
    """For each ConvInteger/MatMulInteger whose per-tensor weight scale the graph applies after
    it (``quantize_dynamic``: op → Cast → Mul by ``x_scale × w_scale``): the scale, that Mul's
    node name and the position of its data operand."""
    found: dict[str, tuple[float, str, int]] = {}
    for name in order:
        op = graph.op(name)
        if op.op_type not in ("ConvInteger", "MatMulInteger") or not op.outputs:
            continue
        casts = [c for c in graph.dag.successors(name) if graph.op(c).op_type == "Cast"]
        muls = [(m, c) for c in casts for m in graph.dag.successors(c) if graph.op(m).op_type == "Mul"]
        for m, c in muls[:1]:
            mul = graph.op(m)
            data = next((i for i, t in enumerate(mul.inputs) if t == graph.op(c).outputs[0]), None)
            other = mul.inputs[1 - data] if data is not None and len(mul.inputs) == 2 else ""
            prod = graph.producer_of.get(other)
            if data is None or not prod or graph.op(prod).op_type != "Mul":
                continue
            scalars = [np.asarray(arrays[i]).reshape(-1) for i in graph.op(prod).inputs if i in arrays]
            if len(scalars) == 1 and scalars[0].size == 1 and float(scalars[0][0]) > 0:
                found[name] = (float(scalars[0][0]), m, data)
    return found


def _weight_axis(op: OpNode) -> int:
    """The axis a weight's per-channel scale runs along: a DequantizeLinear's ``axis``; QGemm's
    B: its N axis (0 with ``transB``, else -1)."""
    where = f"{op.op_type} node {op.name!r}"
    if op.op_type == "QGemm":
        return 0 if int_attr(op.attrs, "transB", 0, where) else -1
    if op.op_type in ("DequantizeLinear", "QuantizeLinear"):  # no other op's ``axis`` is read here
        return int_attr(op.attrs, "axis", 1, where)
    return 1


def _quantization_statement(graph: ModelGraph, order: Sequence[str], dequantized: Mapping[str, np.ndarray],
                            after: Mapping[str, object]) -> str:
    """What the evaluator does with a quantized graph, in one sentence ("" for a float graph)."""
    fake = sum(1 for n in order if graph.op(n).op_type in _FAKE_QUANT_OPS
               and not all(t in graph.params or graph.is_shape(t) for t in graph.op(n).inputs[:1]))
    if not dequantized and not fake:
        return ""
    return (f"quantized graph evaluated in float32 on real values: {len(dequantized)} weight tensors "
            f"dequantized at load (the parameters differentiated); {fake} activation quantizers "
            "(fake-quantization) differentiated with the straight-through estimator (gradient 1 inside "
            "the integer range, 0 where clamped)")


class Evaluator(nn.Module):
    """An ONNX graph as a torch module: parameters named after initializers, shapes folded.

    Build with :meth:`from_model`. Attributes:
        graph: the op view it was built from.
        device, dtype: where and in which float dtype it computes (fp16/bf16 models: float32).
        input_shapes: the concrete input shapes the shape arithmetic was folded for.
        output_names: the tensors it was built to produce (default: the graph outputs).
        shapes: concrete shape of every tensor in scope.
        folded: tensors computed once at load (shape arithmetic, constants).
        params: ``nn.ParameterDict`` of float initializers that carry gradient; keys are
            sanitized ONNX names, :attr:`param_keys` maps ONNX name → key.

    The device is fixed at build (folded constants live there too): build another evaluator
    rather than calling ``.to(device)``.
    """

    def __init__(self, graph: ModelGraph, arrays: Mapping[str, np.ndarray], *,
                 input_shapes: Mapping[str, tuple[int, ...]], outputs: Sequence[str],
                 device: torch.device, dtype: torch.dtype, model: LoadedModel | None = None) -> None:
        super().__init__()
        self.graph, self.model, self.device, self.dtype = graph, model, device, dtype
        self.input_shapes = dict(input_shapes)
        self.output_names = tuple(outputs)
        opset = int(graph.meta.get("opsets", {}).get("ai.onnx", 1))
        order = _scope(graph, self.output_names)
        _check_support(graph, order)
        # Quantized weights are dequantized once, here, and become float parameters; a
        # DequantizeLinear of an initializer leaves the schedule (its output is the parameter).
        after = _scales_after(graph, order, arrays)
        #: Tensors held in real units where the file holds integer accumulators (an integer
        #: op's output and its Cast, before the Mul by the folded scale): not comparable as is.
        self.rescaled = frozenset(
            t for n in after for t in (*graph.op(n).outputs, *(o for c in graph.dag.successors(n)
                                                               if graph.op(c).op_type == "Cast"
                                                               for o in graph.op(c).outputs)))
        dequantized = dequantize_weights(
            [(n, graph.op(n).op_type, graph.op(n).inputs, _weight_axis(graph.op(n))) for n in order],
            arrays, {n: v[0] for n, v in after.items()})
        extra_attrs = {m: {"graphpath_passthrough": pos} for _, m, pos in after.values()}
        order = [n for n in order if n not in dequantized]
        static = {n for n in order if _is_static(graph, graph.op(n))}
        self.quantization = _quantization_statement(graph, order, dequantized, after)
        #: Quantized tensor → (scale, zero point) of its grid, where both are known at load.
        self.grids: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

        # Load-time pass: real values for constants, meta tensors (shapes only) for data.
        values = {k: to_tensor(a, dtype) for k, a in arrays.items()}
        dq_names = {graph.op(n).outputs[0] if n in graph.dag and graph.op(n).op_type == "DequantizeLinear" else n: a
                    for n, a in dequantized.items()}
        values.update({k: to_tensor(a, dtype) for k, a in dq_names.items()})
        metas = {k: torch.empty(s, dtype=self._input_dtype(k), device="meta") for k, s in self.input_shapes.items()}
        nodes: dict[str, Node] = {}
        for name in order:
            op = graph.op(name)
            consts = {pos: values[t].numpy() for pos, t in enumerate(op.inputs)
                      if t in values and (not carries_gradient(op.op_type, pos) or values[t].numel() <= _SMALL_CONST)}
            attrs = {**op.attrs, **extra_attrs[name]} if name in extra_attrs else op.attrs
            node = nodes[name] = Node(name, op.op_type, op.inputs, op.outputs, attrs, opset, dtype, consts)
            fn = OPS[op.op_type]
            if name in static:
                xs = [values.get(t, metas.get(t)) if t else None for t in op.inputs]
                outs, store = _run_at_load(node, fn, xs), values
            else:
                xs = [None if not t else (metas[t] if t in metas else values[t].to("meta")) for t in op.inputs]
                outs, store = _run_at_load(node, fn, xs), metas
            for o, v in zip(op.outputs, outs, strict=False):
                if o:
                    store[o] = v
            if op.op_type in OUTPUT_GRIDS and op.outputs and op.outputs[0]:
                s_pos, z_pos = OUTPUT_GRIDS[op.op_type]
                scale = consts.get(s_pos)
                if scale is not None:
                    self.grids[op.outputs[0]] = (scale, consts.get(z_pos))
        self.shapes: dict[str, tuple[int, ...]] = {k: tuple(v.shape) for d in (values, metas) for k, v in d.items()}

        # Static tensors stay live (recomputed from parameters each call) only when they
        # depend on a float parameter and reach a gradient-carrying input downstream.
        float_inits = {t for t, p in graph.params.items() if p.dtype in _FLOAT_NAMES} | set(dq_names)
        param_dep = set(float_inits)
        for name in order:
            op = graph.op(name)
            if name in static and op.op_type not in SHAPE_OPS and any(
                    t in param_dep for pos, t in enumerate(op.inputs) if carries_gradient(op.op_type, pos)):
                param_dep.update(o for o in op.outputs if o)
        grad_needed: set[str] = set()
        runtime: list[str] = []
        for name in reversed(order):
            op = graph.op(name)
            if name in static and not any(o in grad_needed and o in param_dep for o in op.outputs):
                continue
            runtime.append(name)
            grad_needed.update(t for pos, t in enumerate(op.inputs) if t and carries_gradient(op.op_type, pos))
        runtime.reverse()
        live = {o for n in runtime for o in graph.op(n).outputs if o}
        self.folded = frozenset(t for n in order if n in static for t in graph.op(n).outputs if t and t not in live)

        trainable = sorted({t for n in runtime for pos, t in enumerate(graph.op(n).inputs)
                            if t in float_inits and carries_gradient(graph.op(n).op_type, pos)})
        self.param_keys = _sanitize(trainable)
        self.params = nn.ParameterDict({self.param_keys[t]: nn.Parameter(values[t].to(device)) for t in trainable})
        used = {t for n in runtime for t in graph.op(n).inputs if t} | set(self.output_names)
        self._consts = {t: values[t].to(device) for t in used
                        if t in values and t not in self.param_keys
                        and (t in self.folded or t in graph.params or t in dq_names)}
        self._steps = [_Step(nodes[n], passthrough if n in extra_attrs else OPS[graph.op(n).op_type])
                       for n in runtime]
        self._producer = {o: i for i, s in enumerate(self._steps) for o in s.node.outputs if o}
        self._schedules: dict[tuple[tuple[str, ...], frozenset[str]], tuple[list[_Step], frozenset[str]]] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_model(cls, model: LoadedModel | str | os.PathLike[str], *, device: str | torch.device = "auto",
                  dtype: str | torch.dtype = torch.float32, outputs: Sequence[str] | None = None,
                  input_shapes: Mapping[str, Sequence[int]] | None = None,
                  imgsz: int | tuple[int, int] = 640, batch: int = 1) -> Evaluator:
        """Build the evaluator of ``model`` (a path is opened with :func:`onnx_io.open_model`).

        Args:
            model: the loaded model or its path.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` …
            dtype: float dtype to compute in (``torch.float64`` for finite-difference checks);
                float16/bfloat16 models are evaluated in this dtype too.
            outputs: tensors the evaluator must produce (default: the graph outputs). Only the
                ops needed for them have to be supported: pass the raw head tensors to leave a
                NonMaxSuppression/TopK tail out.
            input_shapes: concrete shapes for inputs with dynamic dimensions.
            imgsz, batch: fill dynamic NCHW dimensions when ``input_shapes`` does not.

        Raises:
            GraphpathError: unreadable model, unsupported ops in scope (all listed in one
                message), shape arithmetic that cannot be folded.
        """
        loaded = onnx_io.as_loaded(model)
        graph = loaded.graph
        targets = tuple(outputs) if outputs is not None else tuple(o.name for o in graph.outputs)
        shapes = _input_shapes(graph, input_shapes, imgsz, batch)
        wanted = {i for n in _scope(graph, targets) for i in graph.op(n).inputs if i in graph.params}
        wanted |= {t for t in targets if t in graph.params}
        arrays = loaded.arrays(wanted)
        return cls(graph, arrays, input_shapes=shapes, outputs=targets, device=_resolve_device(device),
                   dtype=_resolve_dtype(dtype), model=loaded)

    def _input_dtype(self, name: str) -> torch.dtype:
        info = next(t for t in self.graph.inputs if t.name == name)
        return torch_dtype(_TYPE_ENUM.get(info.dtype, 1), self.dtype)

    # ------------------------------------------------------------------ evaluation

    def named_onnx_parameters(self) -> dict[str, nn.Parameter]:
        """The trainable parameters keyed by their ONNX initializer names."""
        return {t: self.params[k] for t, k in self.param_keys.items()}

    def forward(
        self,
        inputs: torch.Tensor | Mapping[str, torch.Tensor],
        params: Mapping[str, torch.Tensor] | None = None,
        *,
        outputs: Sequence[str] | None = None,
        capture: Iterable[str] | None = None,
        replace: Mapping[str, torch.Tensor] | None = None,
        perturb: Mapping[str, torch.Tensor] | None = None,
        train_norm: TrainNorm | None = None,
        forced: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Evaluate the graph; every tensor is addressed by its ONNX name.

        Args:
            inputs: graph inputs by name (a single tensor when the graph has one input).
                Float inputs are cast to :attr:`dtype`; shapes must match :attr:`input_shapes`.
            params: values for initializers by ONNX name, overriding the module's parameters
                (what ``torch.func.vjp``/``jvp`` differentiate through).
            outputs: tensors to return instead of :attr:`output_names` (e.g. raw head tensors);
                only the ops they need are run.
            capture: further tensors to return (intermediate activations).
            replace: tensors whose value is given instead of computed (upstream ops skipped).
            perturb: tensors to which a value is added right after they are computed; a zero
                perturbation turns ``torch.func.vjp`` into the gradient at that tensor.
            train_norm: train-mode BatchNorm restored (the ``init`` condition, see
                :mod:`graphpath.numeric.norm`): its ``tensors`` are normalised with batch
                statistics right after they are computed (before ``perturb``; a captured or
                replaced tensor holds the normalised value), and with ``bn_nodes``
                BatchNormalization nodes use batch statistics.
            forced: teacher forcing: tensors still computed (and returned as computed), whose
                consumers read the given value instead (each op then sees a reference's inputs:
                :func:`check_op_parity`).

        Returns:
            ``{name: tensor}`` for ``outputs`` (or :attr:`output_names`) and ``capture``.
        """
        if not isinstance(inputs, Mapping):
            if len(self.input_shapes) != 1:
                raise GraphpathError(f"the graph has {len(self.input_shapes)} inputs; pass a dict by name")
            inputs = {next(iter(self.input_shapes)): inputs}
        wanted = tuple(dict.fromkeys([*(self.output_names if outputs is None else outputs), *sorted(capture or ())]))
        replace, perturb, params = dict(replace or {}), dict(perturb or {}), dict(params or {})
        steps, needed_inputs = self._schedule(wanted, frozenset(replace))
        for t in perturb:
            if t not in self._producer and t not in self.input_shapes and t not in replace:
                what = "a folded constant or a parameter (use params=)" if t in self.shapes else "not in scope"
                raise GraphpathError(f"cannot perturb {t!r}: it is {what}")
        env: dict[str, torch.Tensor] = {}
        for name in sorted(needed_inputs):
            if name not in inputs:
                raise GraphpathError(f"missing graph input {name!r}")
            env[name] = self._prepare_input(name, inputs[name])
        env.update(replace)
        for t in list(env):
            if t in perturb:
                env[t] = env[t] + perturb[t]

        def value(t: str) -> torch.Tensor:
            if t in env:
                return env[t]
            if t in params:
                return params[t]
            if t in self.param_keys:
                return self.params[self.param_keys[t]]
            return self._consts[t]

        norm = train_norm or TrainNorm()
        forced = forced or {}
        computed: dict[str, torch.Tensor] = {}
        for step in steps:
            fn = batch_norm_batch_stats if norm.bn_nodes and step.node.op_type == "BatchNormalization" else step.fn
            outs = fn(step.node, [value(t) if t else None for t in step.node.inputs])
            for o, v in zip(step.node.outputs, outs if isinstance(outs, tuple) else (outs,), strict=False):
                if o:
                    if o in norm.tensors:
                        v = batch_stat_norm(v, norm.eps)
                    env[o] = v + perturb[o] if o in perturb else v
                    if o in forced:
                        computed[o], env[o] = env[o], forced[o]
        return {t: computed[t] if t in computed else value(t) for t in wanted}

    def computed_tensors(self, outputs: Sequence[str] | None = None) -> tuple[str, ...]:
        """The tensors the ops run for ``outputs`` (default :attr:`output_names`) compute, in
        order: what a teacher-forced comparison can check op by op."""
        steps, _ = self._schedule(tuple(self.output_names if outputs is None else outputs), frozenset())
        return tuple(o for step in steps for o in step.node.outputs if o)

    def _prepare_input(self, name: str, x: Any) -> torch.Tensor:
        t = torch.as_tensor(x)
        if tuple(t.shape) != self.input_shapes[name]:
            raise GraphpathError(
                f"input {name!r} has shape {tuple(t.shape)}, but the evaluator folded its shape "
                f"arithmetic for {self.input_shapes[name]}; rebuild with input_shapes= or imgsz="
            )
        if t.is_floating_point():
            return t.to(self.device, self.dtype)
        return t.to(self.device)

    def _schedule(self, wanted: tuple[str, ...], replaced: frozenset[str]) -> tuple[list[_Step], frozenset[str]]:
        """The steps (in order) and graph inputs needed for ``wanted`` given ``replaced``."""
        key = (wanted, replaced)
        if key in self._schedules:
            return self._schedules[key]
        picked: set[int] = set()
        inputs: set[str] = set()
        stack, seen = list(wanted), set()
        while stack:
            t = stack.pop()
            if t in seen or t in replaced:
                continue
            seen.add(t)
            if t in self.input_shapes:
                inputs.add(t)
            elif t in self._consts or t in self.param_keys:
                continue
            elif t in self._producer:
                idx = self._producer[t]
                if idx not in picked:
                    picked.add(idx)
                    stack.extend(i for i in self._steps[idx].node.inputs if i)
            else:
                raise GraphpathError(self._unknown(t))
        plan = ([self._steps[i] for i in sorted(picked)], frozenset(inputs))
        self._schedules[key] = plan
        return plan

    def _unknown(self, t: str) -> str:
        if t in self.graph.producer_of or t in self.graph.params:
            return (f"tensor {t!r} is outside this evaluator's scope (built for {list(self.output_names)}); "
                    "rebuild with outputs= that depend on it")
        return f"no tensor named {t!r} in the graph"


# --------------------------------------------------------------------------- parity


@dataclass(frozen=True)
class OutputParity:
    """One output compared with onnxruntime.

    ``max_rel`` is the largest ``|ours − ref| / |ref|`` over elements with ``|ref| > atol``;
    ``ok`` means every element satisfies ``|ours − ref| <= atol + rtol·|ref|``.
    """

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class ParityResult:
    """The evaluator's forward against onnxruntime (CPU) on the same inputs."""

    outputs: tuple[OutputParity, ...]
    rtol: float
    atol: float
    reference: str = ""  # what onnxruntime ran when not the file as is (a re-encoded copy)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    def describe(self) -> str:
        bad = [o for o in self.outputs if not o.ok] or list(self.outputs)
        parts = [f"{o.name!r}: max abs {o.max_abs:.3g}, max rel {o.max_rel:.3g}{' ' + o.note if o.note else ''}"
                 for o in bad[:3]]
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return f"{'; '.join(parts)}{more} (atol {self.atol:g}, rtol {self.rtol:g})"


#: Steps of the float16 grid (at an output's largest magnitude) that parity always allows on a
#: float16 output: onnxruntime rounds there, the evaluator compares in float64.
FP16_PARITY_STEPS = 2


def compare_arrays(name: str, ours: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> OutputParity:
    """``ours`` against onnxruntime's ``ref``: every element within ``atol·max|ref| + rtol·|ref|``
    (float16 references: at least a few steps of their grid)."""
    if ours.shape != ref.shape:
        return OutputParity(name, tuple(ref.shape), float("inf"), float("inf"), False,
                            f"(shape {ours.shape} vs onnxruntime {ref.shape})")
    if ours.size == 0:
        return OutputParity(name, tuple(ref.shape), 0.0, 0.0, True)
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    err = np.where(both_nan, 0.0, np.abs(a - b))
    err = np.where(np.isnan(err), np.inf, err)
    finite = np.abs(b[np.isfinite(b)])
    # atol is relative to the output's scale: raw head tensors of small models are ~1e-3, where
    # a fixed 1e-4 would accept almost anything.
    abs_tol = atol * (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
    note = ""
    if ref.dtype == np.float16 and finite.size:
        # onnxruntime rounds every float16 output to the format's grid: near the output's largest
        # magnitude one step is ~1e-3 of it (10× atol), so the floor is two steps there
        step = float(np.spacing(np.float16(finite.max())))
        if FP16_PARITY_STEPS * step > abs_tol:
            abs_tol = FP16_PARITY_STEPS * step
            note = f"(float16 output: tolerance {FP16_PARITY_STEPS} steps of its float16 grid, {abs_tol:.3g})"
    big = np.abs(b) > abs_tol
    rel = float(np.max(err[big] / np.abs(b[big]))) if big.any() else 0.0
    ok = bool(np.all(err <= abs_tol + rtol * np.abs(np.nan_to_num(b))))
    return OutputParity(name, tuple(ref.shape), float(err.max()), rel, ok, note)


def _compare_up_to_order(name: str, ours: np.ndarray, ref: np.ndarray, rtol: float, atol: float,
                         lengths: set[int]) -> OutputParity | None:
    """The comparison after matching slices along one axis of a TopK's length, or ``None``.

    Downstream of a TopK (RT-DETR's query selection), candidates whose scores tie to the last
    bit come out in an order that depends on the implementation: the same queries, permuted.
    For each axis whose length is a TopK's ``k``, each of our slices is paired with the nearest
    onnxruntime slice; when that pairing is a permutation and the paired tensors agree within
    tolerance, the outputs are the same up to that order (which no gradient norm depends on).
    """
    if ours.shape != ref.shape or not ours.dtype.kind == "f":
        return None
    for axis in range(ours.ndim):
        n = ours.shape[axis]
        if n < 2 or n not in lengths:
            continue
        a = np.moveaxis(ours, axis, 0).reshape(n, -1)
        b = np.moveaxis(ref.astype(np.float64), axis, 0).reshape(n, -1)
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        dist = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        match = dist.argmin(axis=1)
        if len(set(match.tolist())) != n:
            continue
        moved = int((match != np.arange(n)).sum())
        res = compare_arrays(name, np.moveaxis(np.moveaxis(ours, axis, 0)[np.argsort(match)], 0, axis), ref, rtol, atol)
        if res.ok:
            return dataclasses.replace(res, note=f"(up to the order of {moved} of {n} near-tied TopK selections)")
    return None


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's exception types (pybind11 classes deriving from ``Exception`` directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
             "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
    return tuple(c for c in (getattr(state, n, None) for n in names) if isinstance(c, type))


def check_parity(evaluator: Evaluator, model: LoadedModel | None = None,
                 inputs: Mapping[str, np.ndarray] | None = None, *, rtol: float = 1e-3,
                 atol: float = 1e-4, seed: int = 0) -> ParityResult:
    """Compare the evaluator's outputs with onnxruntime (CPU execution provider).

    Args:
        evaluator: the evaluator to check; its :attr:`~Evaluator.output_names` are compared
            (intermediate tensors too: they become outputs of the onnxruntime copy).
        model: the model (default: the one the evaluator was built from).
        inputs: numpy inputs in the model's declared dtypes (default: seeded uniform [0, 1)).
        rtol, atol: per-element tolerance ``|ours − ref| <= atol·max|ref| + rtol·|ref|`` (atol
            scales with each output's largest magnitude).
        seed: for the default inputs.
    """
    loaded = model if model is not None else evaluator.model
    if loaded is None:
        raise GraphpathError("check_parity needs the model the evaluator was built from")
    if inputs is None:
        rng = np.random.default_rng(seed)
        inputs = {}
        for t in evaluator.graph.inputs:
            shape = evaluator.input_shapes[t.name]
            np_dtype = {"FLOAT16": np.float16, "DOUBLE": np.float64}.get(t.dtype, np.float32)
            if t.dtype in _FLOAT_NAMES:
                inputs[t.name] = rng.random(shape).astype(np_dtype)
            else:
                inputs[t.name] = np.zeros(shape, dtype=np.int64 if t.dtype == "INT64" else np.int32)
    names = list(evaluator.output_names)
    refs, reference = onnxruntime_values(evaluator, loaded, names, inputs)
    with torch.no_grad():
        ours = evaluator({k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()})
    results = []
    for n in names:
        got, r = ours[n].detach().cpu(), refs[n]
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # inf/NaN: a failed comparison
            res = compare_arrays(n, got.to(torch.float64 if got.is_floating_point() else got.dtype).numpy(),
                           r, rtol, atol)
        steps = evaluator._schedule((n,), frozenset())[0]
        selecting = sorted({s.node.op_type for s in steps} & _SELECTION_OPS)
        if not res.ok and selecting:
            picked = {evaluator.shapes[s.node.outputs[0]][s.node.i("axis", -1)]
                      for s in steps if s.node.op_type == "TopK"}
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # inf/NaN: a failed comparison
                reordered = _compare_up_to_order(n, got.to(torch.float64).numpy(), np.asarray(r), rtol, atol,
                                                 picked)
            res = reordered or dataclasses.replace(res, note=(
                f"(downstream of {'/'.join(selecting)}: near-tied scores can pick other elements; "
                "compare at the raw head tensors with outputs=[...])"))
        results.append(res)
    return ParityResult(tuple(results), rtol, atol, reference)


def onnxruntime_values(evaluator: Evaluator, loaded: LoadedModel, names: Sequence[str],
                       inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """The tensors ``names`` as onnxruntime (CPU, no graph optimisation) computes them on
    ``inputs``, quantized tensors as the real values of their grid (as the evaluator holds
    them), and what ran when not the file as is ("" then).

    Raises:
        GraphpathError: onnxruntime refuses the model or fails on it (the model is the user's
            input: an invalid graph, a Resize or ConstantOfShape past memory).
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingExtraError("onnxruntime", "torch", "the forward parity check") from exc
    same = list(names) == [o.name for o in evaluator.graph.outputs]
    # onnxruntime's U8S8 integer kernels (uint8 activations × int8 weights) sum pairs of products
    # in saturating int16 on x86 CPUs without VNNI, off the ONNX definition; the reference runs
    # the value-identical copy with uint8 weights (U8U8 kernels, exact int32 sums) instead.
    reencoded = 0
    if any(op.op_type in ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm")
           for op in loaded.graph.ops()):
        blob, reencoded = onnx_io.uint8_weights_bytes(loaded, None if same else list(names))
    else:
        blob = loaded.serialized(None if same else list(names))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # fatal only: a failure is raised (and reported) below, not logged
    refused: tuple[type[BaseException], ...] = (*_ort_errors(), MemoryError)
    try:
        session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        feed = {i.name: inputs[i.name] for i in session.get_inputs()}
        refs = session.run(list(names), feed)
    except refused as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise GraphpathError(f"onnxruntime cannot run this model for the parity check: {text[:300]}") from None
    out = {}
    for n, r in zip(names, refs, strict=True):
        r = np.asarray(r)
        if r.dtype.kind in "iu" and n in evaluator.grids:  # ours holds the grid's real values
            scale, zp = evaluator.grids[n]
            shape = (1, -1) + (1,) * (r.ndim - 2) if np.asarray(scale).size > 1 and r.ndim >= 2 else ()
            r = (r.astype(np.float64) - (np.asarray(zp, np.float64).reshape(shape) if zp is not None else 0.0)) \
                * np.asarray(scale, np.float64).reshape(shape)
        out[n] = r
    reference = (f"onnxruntime on the value-identical copy with {reencoded} int8 weight tensors re-encoded as "
                 "uint8 (+128 on weights and zero points), since its U8S8 kernels saturate on x86 CPUs "
                 "without VNNI") if reencoded else ""
    return out, reference


def require_parity(evaluator: Evaluator, model: LoadedModel | None = None,
                   inputs: Mapping[str, np.ndarray] | None = None, *, rtol: float = 1e-3,
                   atol: float = 1e-4, seed: int = 0) -> ParityResult:
    """:func:`check_parity`, raising :class:`GraphpathError` beyond tolerance."""
    result = check_parity(evaluator, model, inputs, rtol=rtol, atol=atol, seed=seed)
    if not result.ok:
        raise GraphpathError(
            f"the torch evaluator disagrees with onnxruntime: {result.describe()}; refusing to "
            "report gradients from it"
        )
    return result
