"""Options more than one command shares: the MODEL argument and the numeric options that
``analyze --numeric`` and ``backward`` both take.

The numeric options map one to one onto :class:`graphpath.numeric.backward.BackwardOptions`;
torch is imported only when a numeric run starts, so ``--help`` stays light.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from graphpath.errors import MissingExtraError

#: Mirrors of the numeric choices, so that ``--help`` does not import the numeric package.
BACKENDS = ("auto", "torch", "ort-training", "both")
REINIT = ("kaiming-normal",)
DEVICES = ("auto", "cpu", "cuda")
CONDITIONS = ("weights", "init")
INITS = ("torch-default", "kaiming-normal", "xavier")
NORMS = ("auto", "batch", "none")


def model_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    """The MODEL argument. Existence is checked by the loader so that every bad-input message
    has one shape."""
    return click.argument("model", type=click.Path(path_type=Path))(f)


def _threshold_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE with a number, got {item!r}", ctx, param)
    return out


#: The measurement condition and its repetitions (also on ``report`` and ``audit``).
_CONDITION_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--condition", type=click.Choice(CONDITIONS), default="weights", show_default=True,
                 help="weights: the file's own weights; init: the network as it starts training "
                      "(weights re-drawn with --init, train-mode BatchNorm restored per --norm)."),
    click.option("--init", type=click.Choice(INITS), default="torch-default", show_default=True,
                 help="Init scheme under --condition init."),
    click.option("--norm", type=click.Choice(NORMS), default="auto", show_default=True,
                 help="Train-mode BatchNorm under --condition init (auto: where the graph carries the "
                      "BN-fused signature or BatchNormalization nodes)."),
    click.option("--seeds", type=click.IntRange(min=1), default=None,
                 help="Repetitions with independent seeds; every metric gets a 95 % interval "
                      "(default 5 under init, 1 under weights)."),
    click.option("--seed-offset", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Run seeds SEED+OFFSET … (e.g. 5 for seeds 5–9)."),
]

_NUMERIC_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--probes", type=click.IntRange(min=1), default=4, show_default=True,
                 help="Random cotangent probes averaged."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seeds images, cotangents, power iterations and --reinit."),
    click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
    click.option("--imgsz", type=click.IntRange(min=32), default=None,
                 help="Input size for graphs with dynamic height/width."),
    click.option("--input", "input_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="An image as .npy (NCHW or CHW float) instead of seeded random images."),
    click.option("--reinit", type=click.Choice(REINIT), default=None,
                 help="Replace the weights by a documented initialisation (study the architecture)."),
    click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                 help="auto: onnxruntime-training when installed and able, else torch."),
    click.option("--power-iters", type=click.IntRange(min=1), default=20, show_default=True,
                 help="Power-iteration steps per block Jacobian bound."),
    click.option("--max-blocks", type=click.IntRange(min=0), default=24, show_default=True,
                 help="Blocks that get a Jacobian bound (every block gets its gain)."),
    click.option("--threshold", "thresholds", metavar="NAME=VALUE", multiple=True, callback=_threshold_pairs,
                 help="Move a verdict boundary, e.g. stable_low=0.05 (repeatable; names in docs/numeric.md)."),
    *_CONDITION_OPTIONS,
]


def numeric_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the numeric options (see :class:`BackwardOptions`) to a command."""
    for option in reversed(_NUMERIC_OPTIONS):
        f = option(f)
    return f


def condition_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--condition``, ``--init``, ``--norm``, ``--seeds`` and ``--seed-offset`` to a command
    that runs the numeric pass with its other options at their defaults (``report``, ``audit``)."""
    for option in reversed(_CONDITION_OPTIONS):
        f = option(f)
    return f


def backward_options(**values: Any) -> Any:
    """:class:`BackwardOptions` from the parsed numeric options (raises the install hint
    without torch before anything heavy is imported)."""
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError("torch", "torch", "the numeric backward pass")
    from graphpath.numeric.backward import BackwardOptions
    from graphpath.numeric.metrics import thresholds_with

    input_file = values.pop("input_file", None)
    thresholds = thresholds_with(values.pop("thresholds", None) or {})
    return BackwardOptions(input_file=None if input_file is None else str(input_file), thresholds=thresholds,
                           **values)
