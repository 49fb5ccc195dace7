"""Gradient backends behind one :class:`Backend` protocol.

A backend answers one question: given a model, inputs, the raw head tensors and a cotangent
for each, what is the gradient of ``L = Σ_h ⟨cotangent_h, head_h⟩`` with respect to every
trainable float initializer (keyed by its ONNX name)? Everything else the numeric report
contains (activation gradients, block Jacobians, spectral norms) needs the torch evaluator;
the per-parameter gradients are what two backends can be compared on.

Two implementations:

- :class:`TorchBackend` (here): graphpath's own ONNX → torch evaluator.
- ``OrtTrainingBackend`` (:mod:`graphpath.numeric.backends.ort_training`, optional): onnxruntime-training
  builds the gradient graph from the ONNX itself.

:func:`select_backends` maps the ``--backend`` choice to backends; it imports the
onnxruntime-training module lazily and tolerates its absence. Importing this module never
imports torch.

Example::

    model = onnx_io.open_model("model.onnx")
    backends, why = select_backends("auto", model)
    grads = backends[0].parameter_gradients(model, {"images": x}, heads, cotangents)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from graphpath.errors import GraphpathError
from graphpath.model.loaded import LoadedModel
from graphpath.numeric.norm import TrainNorm

__all__ = ["BACKEND_CHOICES", "Backend", "TorchBackend", "select_backends"]

#: Values of ``--backend``.
BACKEND_CHOICES = ("auto", "torch", "ort-training", "both")


@runtime_checkable
class Backend(Protocol):
    """A way to compute per-parameter gradients of a probe loss at the raw head tensors.

    The loss is ``L = Σ_h sum(cotangents[h] * head_h)``: its gradient with respect to a
    parameter is the vector–Jacobian product of the cotangents through the graph. Gradients are
    returned as float64 arrays keyed by ONNX initializer name, one entry per trainable float
    initializer the heads depend on.
    """

    name: str

    def available(self) -> tuple[bool, str]:
        """Whether the backend's dependencies are installed, and why not (or which version)."""
        ...

    def can_differentiate(self, model: LoadedModel) -> tuple[bool, str]:
        """Whether the backend can build the gradient of this model, and the reason if not."""
        ...

    def parameter_gradients(self, model: LoadedModel, inputs: dict[str, np.ndarray],
                            head_tensors: Sequence[str],
                            cotangents: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``∂L/∂θ`` for every trainable float initializer ``θ`` (ONNX name → array)."""
        ...


class TorchBackend:
    """The torch route: graphpath's own evaluator (:class:`graphpath.numeric.Evaluator`).

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` … (see ``Evaluator.from_model``).
        evaluator: an already built evaluator to reuse (its outputs must cover the heads);
            when ``None`` one is built per call from the model.
        params: parameter values by ONNX name to use instead of the model's own (the ``init``
            condition).
        train_norm: the evaluator's ``train_norm`` option (train-mode BatchNorm restored under
            ``init``).
    """

    name = "torch"

    def __init__(self, device: str = "auto", *, evaluator: Any = None,
                 params: Mapping[str, Any] | None = None, train_norm: TrainNorm | None = None) -> None:
        self.device = device
        self.evaluator = evaluator
        self.params = dict(params or {})
        self.train_norm = train_norm

    def available(self) -> tuple[bool, str]:
        try:
            torch = importlib.import_module("torch")
        except ImportError:
            return False, "torch is not installed (pip install 'graphpath[torch]')"
        return True, f"torch {torch.__version__}"

    def can_differentiate(self, model: LoadedModel) -> tuple[bool, str]:
        ok, why = self.available()
        if not ok:
            return ok, why
        from graphpath.numeric.evaluator.ops_torch import OPS

        missing = sorted({op.op_type for op in model.graph.ops()} - set(OPS))
        if missing:
            # The heads may not need them (NMS/TopK tails are cut off); the evaluator decides.
            return True, f"ops outside the torch op set (fine if only in the cut tail): {', '.join(missing)}"
        return True, "every op has a torch implementation"

    def parameter_gradients(self, model: LoadedModel, inputs: dict[str, np.ndarray],
                            head_tensors: Sequence[str],
                            cotangents: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from graphpath.numeric.evaluator.core import Evaluator

        ev = self.evaluator
        if ev is None:
            shapes = {k: tuple(np.shape(v)) for k, v in inputs.items()}
            ev = Evaluator.from_model(model, device=self.device, outputs=list(head_tensors),
                                     input_shapes=shapes)
        named = ev.named_onnx_parameters()
        base = {k: (torch.as_tensor(self.params[k], device=ev.device, dtype=ev.dtype)
                    if k in self.params else p.detach()) for k, p in named.items()}
        leaves = {k: v.clone().requires_grad_(True) for k, v in base.items()}
        feed = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
        out = ev(feed, leaves, outputs=list(head_tensors), train_norm=self.train_norm)
        loss = sum((out[h] * torch.as_tensor(cotangents[h], device=ev.device, dtype=out[h].dtype)).sum()
                   for h in head_tensors)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        return {k: (np.zeros(tuple(v.shape)) if g is None else g.detach().cpu().double().numpy())
                for (k, v), g in zip(leaves.items(), grads, strict=True)}


def _ort_backend() -> Backend | None:
    """The onnxruntime-training backend, or ``None`` when its module is absent."""
    try:
        mod = importlib.import_module("graphpath.numeric.backends.ort_training")
    except ImportError:
        return None
    cls = getattr(mod, "OrtTrainingBackend", None)
    if cls is None:
        return None
    backend: Backend = cls()
    return backend


def select_backends(name: str, model: LoadedModel | None = None, *,
                    torch_backend: Backend | None = None) -> tuple[list[Backend], str]:
    """The backends ``--backend NAME`` runs, and a sentence saying why.

    Args:
        name: ``auto`` (onnxruntime-training when installed and able to differentiate the
            model, else torch), ``torch``, ``ort-training``, or ``both`` (torch first).
        model: the loaded model, for ``can_differentiate`` (needed for ``auto``).
        torch_backend: the torch backend to use (default: a new :class:`TorchBackend`).

    Raises:
        GraphpathError: an unknown name, or a backend asked for by name that is unavailable.
    """
    if name not in BACKEND_CHOICES:
        raise GraphpathError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    tb: Backend = torch_backend if torch_backend is not None else TorchBackend()
    ort = _ort_backend() if name != "torch" else None
    if name == "torch":
        return [tb], "torch (asked for)"
    if name in ("ort-training", "both"):
        if ort is None:
            raise GraphpathError("the onnxruntime-training backend is not part of this install "
                                 "(graphpath.numeric.backends.ort_training is missing)")
        ok, why = ort.available()
        if not ok:
            raise GraphpathError(f"the onnxruntime-training backend is unavailable: {why}")
        if model is not None:
            ok, why = ort.can_differentiate(model)
            if not ok:
                raise GraphpathError(f"onnxruntime-training cannot differentiate this model: {why}")
        return ([tb, ort], "both (asked for)") if name == "both" else ([ort], "onnxruntime-training (asked for)")
    # auto
    if ort is None:
        return [tb], "torch: the onnxruntime-training backend module is not installed"
    ok, why = ort.available()
    if not ok:
        return [tb], f"torch: onnxruntime-training unavailable ({why})"
    if model is not None:
        ok, why = ort.can_differentiate(model)
        if not ok:
            return [tb], f"torch: onnxruntime-training cannot differentiate this model ({why})"
    return [ort], f"onnxruntime-training: installed and able ({why})"
