"""``graphpath backward``: the numeric backward pass of one model (:mod:`graphpath.numeric.backward`).

Its numeric options live in :mod:`graphpath.cli.options` (``analyze --numeric`` shares them);
torch is imported only when a numeric run starts, so ``--help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphpath.cli.options import backward_options, model_argument, numeric_options
from graphpath.cli.output import format_option, output_option, write_output
from graphpath.cli.progress import progress_reporter


@click.command()
@model_argument
@numeric_options
@format_option()
@output_option()
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def backward(model: Path, fmt: str, output: Path | None, quiet: bool, **numeric: Any) -> None:
    """Numeric backward pass of MODEL: gradient norm versus depth, block gains and Jacobian
    bounds, dead activations, and a vanishing/exploding verdict.

    Probes put seeded random cotangents on the raw head tensors (the decode tail is cut off and
    named); the forward pass is checked against onnxruntime first.
    """
    options = backward_options(**numeric)
    from graphpath.numeric.backward import run_backward

    with progress_reporter(1, quiet=quiet, min_models=1, prefix="graphpath backward") as progress:
        result = run_backward(model, options, progress=progress)
    if fmt == "json":
        import json

        text = json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"
    else:
        from graphpath.formats.numeric_text import render_numeric_text

        text = render_numeric_text(result)
    write_output(text, output)
