"""``graphpath zoo list`` and ``zoo build``: graphpath's own reference graphs
(:mod:`graphpath.zoo.catalog`; building needs the torch extra, loaded inside the command)."""

from __future__ import annotations

from pathlib import Path

import click

from graphpath.cli.output import format_option, write_output


@click.group()
def zoo() -> None:
    """graphpath's own reference YOLO graphs (needs the torch extra)."""


@zoo.command("list")
@format_option()
def zoo_list(fmt: str) -> None:
    """List the reference models the zoo can build."""
    from graphpath.formats.zoo import render_catalog
    from graphpath.zoo.catalog import catalog

    write_output(render_catalog(list(catalog().values()), fmt), None)


@zoo.command("build")
@click.argument("names", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("models"), show_default=True, help="Folder for the .onnx files and manifest.json.")
@click.option("--width", type=float, default=None, help="Width factor instead of each model's own.")
@click.option("--imgsz", type=int, default=None, help="Input size instead of each model's own.")
def zoo_build(names: tuple[str, ...], out_dir: Path, width: float | None, imgsz: int | None) -> None:
    """Build NAMES (default: every model) into --out and update its manifest.json."""
    from graphpath.zoo.catalog import build_models

    for entry in build_models(names, out_dir, width=width, imgsz=imgsz):
        click.echo(f"{out_dir / entry['file']}  {entry['bytes']:>9,d} bytes  sha256 {entry['sha256'][:12]}")
