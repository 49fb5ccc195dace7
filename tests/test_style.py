"""House rules that a linter would miss if it were not run: one door to ONNX."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "graphpath"
ONNX_IO = PACKAGE / "onnx_io"


def test_only_onnx_io_imports_onnx():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if ONNX_IO in path.parents or PACKAGE / "zoo" in path.parents:
            continue  # the onnx_io package is the door; zoo/ builds models with onnx and torch
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "onnx" or n.startswith("onnx.") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
