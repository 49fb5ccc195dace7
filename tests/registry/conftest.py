"""Registry fixtures: tiny real models (a residual block, seeded weights) written to a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from tests.conftest import RESIDUAL, parse

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


@pytest.fixture
def tiny(tmp_path: Path) -> Callable[..., Path]:
    """``tiny(name, seed=0, folder=tmp_path)``: a residual block with seeded weights."""

    def write(name: str = "m.onnx", seed: int = 0, folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(parse(RESIDUAL, seed=seed), str(path))
        return path

    return write
