"""The onnxruntime-training route of the numeric backward pass.

onnxruntime-training builds the gradient graph from the ONNX itself, so it is an independent
check of graphpath's own torch evaluator. The model is first rewritten by
:func:`graphpath.onnx_io.training_model`: its outputs replaced by the probe loss
``L = Σ_h ⟨cotangent_h, head_h⟩`` (cotangents fed as graph inputs), float ``Constant`` nodes
turned into initializers, and nearest-neighbour Resizes with integer factors written as
Unsqueeze → Expand → Reshape (the same function; onnxruntime-training has no CPU ResizeGrad
kernel), and ConvTransposes whose stride equals their kernel as MatMul/Reshape/Transpose
(no ConvTransposeGrad kernel either), and inference-mode BatchNormalization as elementwise
ops (its gradient graph fails to build). ``onnxruntime.training.artifacts.generate_artifacts``
then builds the training
model, and one ``train_step`` leaves ``∂L/∂θ`` in the checkpoint state, read per parameter
(``state.parameters[name].grad``), not through ``get_contiguous_parameters``. The only graph
output is the loss, whose name does not end in ``_grad`` (``Module`` hides such outputs).

onnxruntime-training (last release 1.19.2, CPU wheels for Python ≤ 3.12) installs under the
import name ``onnxruntime`` and overwrites the plain build, so it lives in its own environment:
``scripts/make_ort_venv.sh`` builds ``.venv-ort``. Its import also imports torch. This module
imports neither at import time.

Known gaps on CPU, checked statically by :meth:`OrtTrainingBackend.can_differentiate` on the
nodes the backward pass goes through (the decode tail cut off at the raw heads does not
count): no gradient kernel for ConvTranspose or Resize beyond the rewrites; no gradient builder for
Softplus/Mish, HardSwish, HardSigmoid (rewritten as elementwise ops), Elu, PRelu, ReduceMax/Min, Einsum, Mod, GridSample,
DepthToSpace, CumSum …; LayerNormalization-17 (and BatchNormalization, when not rewritten)
fail while the gradient graph is built. The op table below lists what was verified to build *and*
run on 1.19.2; anything else is refused with its name (the caller falls back to torch).

Example::

    backend = OrtTrainingBackend()
    ok, why = backend.can_differentiate("yolov8n.onnx")
    grads = backend.parameter_gradients("yolov8n.onnx", {"images": x}, heads, cotangents)
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.model.loaded import LoadedModel

__all__ = ["DIFFERENTIABLE_OPS", "UNSUPPORTED_OPS", "OrtTrainingBackend"]


#: Ops whose gradient onnxruntime-training 1.19.2 builds and runs on CPU (each verified on a
#: one-op graph; the rewritten nearest Resize becomes Unsqueeze/Expand/Reshape).
DIFFERENTIABLE_OPS = frozenset({
    "Abs", "Add", "AveragePool", "Cast", "Clip", "Concat", "Conv", "Cos", "Div", "Dropout", "Erf",
    "Exp", "Expand", "Flatten", "Gather", "GatherElements", "Gemm", "GlobalAveragePool",
    "Identity", "LeakyRelu", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg",
    "Pad", "Pow", "Reciprocal", "ReduceL2", "ReduceLogSumExp", "ReduceMean", "ReduceSum", "Relu",
    "Reshape", "ScatterND", "Sigmoid", "Sin", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub",
    "Tanh", "Tile", "TopK", "Transpose", "Unsqueeze", "Where",
})

#: Ops known to fail, with the reason (anything outside both tables is refused as unverified).
UNSUPPORTED_OPS: dict[str, str] = {
    "ConvTranspose": ("no ConvTransposeGrad kernel on CPU (only 2-D, stride == kernel, unpadded, group-1 "
                      "ConvTranspose is rewritten)"),
    "Resize": "no ResizeGrad kernel on CPU (only nearest Resize by integer factors is rewritten)",
    "Upsample": "no gradient kernel on CPU",
    "BatchNormalization": ("the gradient graph of BatchNormalization fails to build (inference-mode BN "
                           "with a known input rank is rewritten)"),
    "LayerNormalization": "the gradient builder fails on single-output LayerNormalization",
    "Softplus": "no gradient builder (rewritten unless the rewrite is off or the dtype is not float)",
    "Mish": "no gradient builder (rewritten unless the rewrite is off or the dtype is not float)",
    "HardSwish": "no gradient builder (rewritten unless the rewrite is off or the dtype is not float)",
    "HardSigmoid": "no gradient builder (rewritten unless the rewrite is off or the dtype is not float)",
    "Elu": "no gradient builder",
    "Selu": "no gradient builder",
    "PRelu": "no gradient builder",
    "Softsign": "no gradient builder",
    "Atan": "no gradient builder",
    "ReduceMax": "no gradient builder",
    "ReduceMin": "no gradient builder",
    "ReduceProd": "no gradient builder",
    "ReduceSumSquare": "no gradient builder",
    "Einsum": "no gradient builder",
    "Mod": "no gradient builder",
    "GridSample": "no gradient builder",
    "DepthToSpace": "no gradient builder",
    "SpaceToDepth": "no gradient builder",
    "CumSum": "no gradient builder",
    "InstanceNormalization": "no gradient builder",
    "GroupNormalization": "no gradient builder",
    "Sum": "no gradient builder",
    "Floor": "no gradient builder",
    "Round": "no gradient builder",
    "Ceil": "no gradient builder",
}

#: ``(op_type, input position)`` whose gradient onnxruntime-training cannot build: parameters
#: read only there stay frozen (their gradient is left out of the result).
FROZEN_USES = frozenset({("Pow", 1)})

_INSTALL_HINT = "build its environment with scripts/make_ort_venv.sh (onnxruntime-training-cpu==1.19.2)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _ort_version() -> str:
    for dist in ("onnxruntime-training-cpu", "onnxruntime-training"):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "onnxruntime-training"


@dataclass
class _Prepared:
    """Artifacts of one (model, heads) pair, kept for repeated probes."""

    key: tuple[str, int, int, tuple[str, ...], tuple[tuple[str, tuple[int, ...]], ...]]
    training: onnx_io.TrainingModel
    trainable: tuple[str, ...]
    workdir: tempfile.TemporaryDirectory[str]
    state: Any
    module: Any


class OrtTrainingBackend:
    """Per-parameter gradients from onnxruntime-training (see the module docstring).

    Args:
        rewrite_nearest_resize: rewrite exact nearest Resizes (off: every Resize on the
            gradient path makes the model unsupported).
        rewrite_conv_transpose: rewrite non-overlapping ConvTransposes (stride == kernel) as
            MatMul/Reshape/Transpose.
        rewrite_batch_norm: rewrite inference-mode BatchNormalization as elementwise ops.
        rewrite_activations: rewrite Softplus/Mish/HardSigmoid/HardSwish as elementwise ops.
        threads: intra-op threads of the training session (``None``: onnxruntime's default).
    """

    name = "ort-training"

    def __init__(self, *, rewrite_nearest_resize: bool = True, rewrite_conv_transpose: bool = True,
                 rewrite_batch_norm: bool = True, rewrite_activations: bool = True,
                 threads: int | None = None) -> None:
        self.rewrite_nearest_resize = rewrite_nearest_resize
        self.rewrite_activations = rewrite_activations
        self.rewrite_batch_norm = rewrite_batch_norm
        self.rewrite_conv_transpose = rewrite_conv_transpose
        self.threads = threads
        self._prepared: _Prepared | None = None

    # ------------------------------------------------------------------ protocol

    def available(self) -> tuple[bool, str]:
        """Whether ``onnxruntime.training`` (and the torch it imports) can be imported.

        Looks the modules up without importing them (importing onnxruntime.training imports torch).
        """
        try:
            spec = importlib.util.find_spec("onnxruntime.training")
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return False, f"onnxruntime-training is not installed; {_INSTALL_HINT}"
        if importlib.util.find_spec("torch") is None:
            return False, "onnxruntime-training is installed but imports torch, which is not installed"
        return True, _ort_version()

    def can_differentiate(self, model: LoadedModel, head_tensors: Sequence[str] | None = None) -> tuple[bool, str]:
        """Static check of the nodes the backward pass goes through against the known gaps.

        Args:
            model: the loaded model.
            head_tensors: where the probe loss attaches (default: the raw head tensors of
                :func:`graphpath.numeric.probes.raw_head_tensors`, else the graph outputs).

        Returns:
            ``(True, summary)`` or ``(False, reason)``; the reason names the unsupported ops
            with node counts and an example node.
        """
        ok, why = self.available()
        if not ok:
            return ok, why
        heads = list(head_tensors) if head_tensors is not None else default_heads(model)
        try:
            tm = self._training_model(model, heads, None)
        except GraphpathError as exc:
            return False, str(exc)
        return check_training_model(tm)

    def parameter_gradients(self, model: LoadedModel, inputs: dict[str, np.ndarray],
                            head_tensors: Sequence[str],
                            cotangents: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``∂L/∂θ`` (float64) for every trainable float initializer, by ONNX name.

        Parameters that onnxruntime-training cannot differentiate (read only as a ``Pow``
        exponent) are left out.

        Raises:
            GraphpathError: onnxruntime-training is missing, the model is outside what it can
                differentiate, or an input/cotangent is missing or of the wrong shape.
        """
        heads = list(dict.fromkeys(head_tensors))
        missing = [h for h in heads if h not in cotangents]
        if missing:
            raise GraphpathError(f"no cotangent given for head tensor(s) {missing}")
        prep = self._prepare(model, heads, inputs)
        module, state, tm = prep.module, prep.state, prep.training
        feed: list[np.ndarray] = []
        for name in module.input_names():
            if name in tm.data_inputs:
                if name not in inputs:
                    raise GraphpathError(f"missing graph input {name!r}")
                feed.append(np.ascontiguousarray(inputs[name]))
            else:
                head = next((h for h, c in tm.cotangent_inputs.items() if c == name), None)
                if head is None:
                    raise GraphpathError(f"the training model asks for an unknown input {name!r}")
                feed.append(np.ascontiguousarray(cotangents[head], dtype=_np_dtype_like(cotangents[head])))
        module.train()
        module.lazy_reset_grad()
        try:
            module(*feed)
        except Exception as exc:  # onnxruntime raises its own exception types (shapes, kernels)
            raise GraphpathError(f"onnxruntime-training failed on {model.name}: {_ort_message(exc)}") from None
        return {name: np.asarray(state.parameters[name].grad, dtype=np.float64).copy() for name in prep.trainable}

    # ------------------------------------------------------------------ internals

    def _training_model(self, model: LoadedModel, heads: list[str],
                        inputs: dict[str, np.ndarray] | None) -> onnx_io.TrainingModel:
        """:func:`onnx_io.training_model`, with Resize sizes and shapes that a static read
        cannot give folded from one onnxruntime run at the given (or declared) input shapes."""
        tm = onnx_io.training_model(model, heads, rewrite_nearest_resize=self.rewrite_nearest_resize,
                                    rewrite_conv_transpose=self.rewrite_conv_transpose,
                                    rewrite_batch_norm=self.rewrite_batch_norm,
                                    rewrite_activations=self.rewrite_activations)
        if not tm.resize_unknowns:
            return tm
        graph = model.graph
        feed: dict[str, np.ndarray] = {}
        for t in graph.inputs:
            if inputs is not None and t.name in inputs:
                feed[t.name] = np.zeros(np.shape(inputs[t.name]), dtype=np.asarray(inputs[t.name]).dtype)
            elif t.shape is not None and all(isinstance(d, int) and d > 0 for d in t.shape):
                dtype = {"FLOAT16": np.float16, "DOUBLE": np.float64, "INT64": np.int64,
                         "INT32": np.int32}.get(t.dtype, np.float32)
                feed[t.name] = np.zeros(tuple(int(d) for d in t.shape if isinstance(d, int)), dtype=dtype)
            else:
                return tm  # dynamic input: the kept Resizes stay, and say why
        ort = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        wanted = list(tm.resize_unknowns)
        try:
            session = ort.InferenceSession(model.serialized(wanted), options,
                                           providers=["CPUExecutionProvider"])
            values = session.run(wanted, {i.name: feed[i.name] for i in session.get_inputs()})
        except Exception:  # onnxruntime's own error types; the Resizes then stay as they are
            return tm
        # Values only for tensors computed from shapes alone: they hold for any input of this size.
        known_values = {t: np.asarray(v) for t, v in zip(wanted, values, strict=True) if t in graph.shape_tensors}
        known_shapes = {t: tuple(np.shape(v)) for t, v in zip(wanted, values, strict=True)}
        return onnx_io.training_model(model, heads, rewrite_nearest_resize=self.rewrite_nearest_resize,
                                      rewrite_conv_transpose=self.rewrite_conv_transpose,
                                      rewrite_batch_norm=self.rewrite_batch_norm,
                                      rewrite_activations=self.rewrite_activations,
                                      known_values=known_values, known_shapes=known_shapes)

    def _prepare(self, model: LoadedModel, heads: list[str], inputs: dict[str, np.ndarray]) -> _Prepared:
        ok, why = self.available()
        if not ok:
            raise GraphpathError(f"the onnxruntime-training backend is unavailable: {why}")
        p = model.path
        try:
            st = p.stat()
        except OSError as exc:
            raise GraphpathError(f"{p}: {exc.strerror or exc}") from None
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size, tuple(heads),
               tuple(sorted((k, tuple(np.shape(v))) for k, v in inputs.items())))
        if self._prepared is not None and self._prepared.key == key:
            return self._prepared
        self.close()
        tm = self._training_model(model, heads, inputs)
        ok, why = check_training_model(tm)
        if not ok:
            raise GraphpathError(f"onnxruntime-training cannot differentiate {p.name}: {why}")
        trainable, frozen = split_frozen(tm)
        ort = importlib.import_module("onnxruntime")
        ort.set_default_logger_severity(3)  # warnings about initializers the rewrites left unused
        artifacts = importlib.import_module("onnxruntime.training.artifacts")
        api = importlib.import_module("onnxruntime.training.api")
        workdir = tempfile.TemporaryDirectory(prefix="graphpath-ort-")
        base = Path(workdir.name)
        try:
            with _quiet_native_stderr():
                artifacts.generate_artifacts(
                    # A proto, not a path: given a path, onnxblock writes temp.onnx(.data)
                    # into the current directory.
                    onnx_io.parse_model_bytes(tm.model_bytes),
                    requires_grad=list(trainable), frozen_params=list(frozen), loss=None,
                    artifact_directory=str(base),
                )
            state = api.CheckpointState.load_checkpoint(str(base / "checkpoint"))
            options = ort.SessionOptions()
            options.log_severity_level = 3
            if self.threads is not None:
                options.intra_op_num_threads = self.threads
            module = api.Module(str(base / "training_model.onnx"), state, str(base / "eval_model.onnx"),
                                device="cpu", session_options=options)
        except Exception as exc:  # onnxruntime's errors are RuntimeError subclasses of its own
            workdir.cleanup()
            raise GraphpathError(
                f"onnxruntime-training could not build the gradient graph of {p.name}: {_ort_message(exc)}"
            ) from None
        self._prepared = _Prepared(key, tm, trainable, workdir, state, module)
        return self._prepared

    def close(self) -> None:
        """Drop the cached artifacts of the last model."""
        if self._prepared is not None:
            prep, self._prepared = self._prepared, None
            del prep.module, prep.state
            prep.workdir.cleanup()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ INFO log of the gradient-graph builder (one line per graph transformer).

    The builder makes its own ``SessionOptions``, so ``set_default_logger_severity`` does not
    reach it; file descriptor 2 is pointed at a temporary file for the duration instead.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def _np_dtype_like(a: np.ndarray) -> Any:
    return a.dtype if np.issubdtype(a.dtype, np.floating) else np.float32


def _ort_message(exc: BaseException, limit: int = 300) -> str:
    """onnxruntime's message without the C++ source location and signature it starts with."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker in ("[ONNXRuntimeError]", "The gradient builder"):
        if marker in text:
            text = text[text.index(marker):]
            break
    return text if len(text) <= limit else text[:limit] + " …"


def default_heads(model: LoadedModel) -> list[str]:
    """The raw head tensors of ``model`` (graph outputs when the head rule finds none)."""
    from graphpath.numeric.probes import all_heads, find_head_cuts

    graph = model.graph
    heads = list(all_heads(find_head_cuts(graph, model.layers)))
    return heads or [o.name for o in graph.outputs]


def split_frozen(tm: onnx_io.TrainingModel) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Trainable parameters, and those read only where onnxruntime-training has no gradient."""
    trainable, frozen = [], []
    for name in tm.requires_grad:
        uses = tm.param_uses.get(name, ())
        if uses and all(u in FROZEN_USES for u in uses):
            frozen.append(name)
        else:
            trainable.append(name)
    return tuple(trainable), tuple(frozen)


def check_training_model(tm: onnx_io.TrainingModel) -> tuple[bool, str]:
    """Whether every node the backward pass goes through is in :data:`DIFFERENTIABLE_OPS`."""
    bad: Counter[str] = Counter()
    example: dict[str, str] = {}
    for node, op in tm.differentiated:
        if op not in DIFFERENTIABLE_OPS:
            bad[op] += 1
            example.setdefault(op, node)
    if bad:
        parts = []
        for op, n in sorted(bad.items(), key=lambda kv: (-kv[1], kv[0])):
            reason = UNSUPPORTED_OPS.get(op, "not verified with onnxruntime-training 1.19.2")
            if op == "Resize":
                whys = sorted({w for k, w in tm.kept_resizes.items()})
                reason += f"; kept because: {'; '.join(whys)}" if whys else ""
            parts.append(f"{op} ({_plural(n, 'node')}, e.g. {example[op]!r}): {reason}")
        return False, "on the gradient path: " + "; ".join(parts)
    if not tm.requires_grad:
        return False, "no trainable float initializer reaches the head tensors"
    trainable, frozen = split_frozen(tm)
    summary = (f"{_plural(len(trainable), 'parameter')} through {_plural(len(tm.differentiated), 'node')}"
               + (f", {_plural(len(tm.rewritten), 'node')} rewritten as equivalent ops" if tm.rewritten else "")
               + (f", {len(frozen)} read only as a Pow exponent left out" if frozen else ""))
    return True, summary
