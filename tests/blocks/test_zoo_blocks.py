"""On every reference model the detected block counts equal the builders' ground truth, also
after every node is renamed and every Constant folded."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from graphpath import onnx_io
from graphpath.blocks import block_counts, detect_blocks
from graphpath.model.layers import build_layers
from tests.blocks.transforms import fold_constants, rename_everything

MODELS = Path(__file__).resolve().parents[2] / "models"
MANIFEST = {m["name"]: m for m in json.loads((MODELS / "manifest.json").read_text())["models"]}


def _counts(path: Path) -> dict[str, int]:
    graph = onnx_io.load(path)
    return block_counts(detect_blocks(build_layers(graph), graph))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_block_counts_equal_manifest(name: str) -> None:
    entry = MANIFEST[name]
    assert _counts(MODELS / entry["file"]) == entry["block_counts"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_block_counts_survive_renaming_and_constant_folding(name: str, tmp_path: Path) -> None:
    entry = MANIFEST[name]
    model = onnx.load(str(MODELS / entry["file"]))
    path = tmp_path / "renamed.onnx"
    onnx.save(fold_constants(rename_everything(model)), str(path))
    assert _counts(path) == entry["block_counts"]
