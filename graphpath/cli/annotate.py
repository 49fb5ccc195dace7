"""``graphpath annotate``: a copy of the model whose nodes carry graphpath's findings where
Netron shows them (:mod:`graphpath.annotate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphpath.cli.options import backward_options, model_argument, numeric_options
from graphpath.cli.output import atomic_write
from graphpath.cli.progress import progress_reporter


@click.command()
@model_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The annotated copy (written only after success; never the input).")
@click.option("--numeric", is_flag=True,
              help="Also run the numeric backward pass (torch extra) and add the measured gradient and "
                   "block gains, with their condition.")
@click.option("--copy-external-data", is_flag=True,
              help="Copy the model's external data into OUTPUT.data beside the copy (default: the copy "
                   "keeps the original's references, so it must sit in the model's folder).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@numeric_options
def annotate(model: Path, output: Path, numeric: bool, copy_external_data: bool, quiet: bool,
             **numeric_values: Any) -> None:
    """Write a copy of MODEL whose nodes carry graphpath's findings in doc_string and
    metadata_props (block and nesting, depth, gradient paths; with --numeric the measured
    gradient and block gain), and the model-level findings in its metadata_props. Graph,
    weights, names and order are unchanged."""
    from graphpath import onnx_io
    from graphpath.annotate import write_annotated

    options = backward_options(**numeric_values) if numeric else None
    loaded = onnx_io.open_model(model)
    with progress_reporter(1, quiet=quiet or not numeric, min_models=1, prefix="graphpath annotate") as progress:
        found = write_annotated(loaded, output, numeric=options, copy_external_data=copy_external_data,
                                write=atomic_write, progress=progress)
    click.echo(f"graphpath annotate: {len(found.nodes)} nodes annotated, written to {output}", err=True)
