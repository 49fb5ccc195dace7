"""The reference zoo as a catalogue: which models exist, building them, and the manifest.

The builders live in one module per family; importing a module registers its models. This
module is the only place that knows the list, the order (the seed's table order) and the
manifest's layout. It needs the ``torch`` extra; the CLI imports it only inside ``zoo``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from graphpath.cli.output import atomic_write
from graphpath.errors import GraphpathError, MissingExtraError

#: Builder modules, in the order of the seed's stability table (v1 … v12, YOLOX after v5).
FAMILY_MODULES = ("darknet", "v5_yolox", "v6", "v7", "ultralytics", "v9", "v10", "v11_v12")

#: Order of generations in listings and in the manifest.
GENERATION_ORDER = ("v1", "v2", "v3", "v4", "v5", "yolox", "v6", "v7", "v8", "v9", "v10", "v11", "v12")

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "1.0"


def catalog() -> dict[str, Any]:
    """Every registered :class:`~graphpath.zoo.common.ZooSpec` by name, in table order.

    Raises:
        MissingExtraError: torch is not installed.
    """
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError("torch", "torch", "building the reference zoo")
    for family in FAMILY_MODULES:
        importlib.import_module(f"graphpath.zoo.{family}")
    from graphpath.zoo.common import ZOO

    def order(name: str) -> tuple[int, bool, str]:
        spec = ZOO[name]
        return (GENERATION_ORDER.index(spec.generation), spec.form != "deploy", name)

    return {name: ZOO[name] for name in sorted(ZOO, key=order)}


def select(names: tuple[str, ...] | list[str]) -> list[Any]:
    """The specs for ``names`` (all of them when empty); unknown names are a one-line error."""
    specs = catalog()
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise GraphpathError(
            f"unknown zoo model(s) {', '.join(unknown)}; known: {', '.join(specs)}"
        )
    return [specs[n] for n in names] if names else list(specs.values())


def build_models(
    names: tuple[str, ...] | list[str], out_dir: Path,
    width: float | None = None, imgsz: int | None = None,
) -> list[dict[str, Any]]:
    """Build ``names`` (all when empty) into ``out_dir`` and update its manifest.

    Entries already in the manifest for models not rebuilt are kept, so building one model
    never forgets the others. Files are written atomically.
    """
    from graphpath.zoo.common import build

    if imgsz is not None and (imgsz <= 0 or imgsz % 32):
        raise GraphpathError(f"--imgsz must be a positive multiple of 32, got {imgsz}")
    if width is not None and not 0 < width <= 4:
        raise GraphpathError(f"--width must be in (0, 4], got {width}")
    specs = select(names)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [build(spec, out_dir, width=width, imgsz=imgsz, write=atomic_write) for spec in specs]
    manifest_path = out_dir / MANIFEST_NAME
    manifest = read_manifest(manifest_path) if manifest_path.exists() else {}
    models = {m["name"]: m for m in manifest.get("models", [])}
    models.update({e["name"]: e for e in entries})
    rank = {name: i for i, name in enumerate(catalog())}
    import torch

    manifest = {
        "schema_version": MANIFEST_SCHEMA,
        "builder": {"torch": torch.__version__.split("+")[0], "opset": 17, "exporter": "torchscript"},
        "models": sorted(models.values(), key=lambda m: (rank.get(m["name"], len(rank)), m["name"])),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(manifest_path, text)
    return entries


def read_manifest(path: Path) -> dict[str, Any]:
    """Load a zoo manifest; a malformed one is a one-line error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GraphpathError(f"cannot read zoo manifest {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise GraphpathError(f"{path} is not a graphpath zoo manifest")
    return data
