"""Golden files: ``analyze|blocks|paths|report|audit --format json`` on every reference model.

The files under ``tests/golden/cli/`` were written by the CLI before the package was
restructured (issue 14) and must keep coming out the same. On the machine that wrote them the
output is byte-identical; across machines, floats may differ in their last bits (numpy picks
SIMD kernels by CPU), so numbers are compared with a tolerance and everything else exactly.

Regenerate after an intended change (and say why in the commit):
``GRAPHPATH_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graphpath.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "cli"
MODELS = sorted(p.name for p in (ROOT / "models").glob("*.onnx"))
COMMANDS = ("analyze", "blocks", "paths", "report", "audit")
UPDATE = os.environ.get("GRAPHPATH_UPDATE_GOLDEN") == "1"


def _close(a: Any, b: Any, where: str = "$") -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), where
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), where
            return
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys differ"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("model", MODELS)
def test_json_output_matches_golden(model: str, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the reports name the model by the path given on the command line
    res = CliRunner().invoke(cli, [command, f"models/{model}", "--format", "json"])
    assert res.exit_code == 0, res.output
    golden = GOLDEN / f"{model.removesuffix('.onnx')}.{command}.json"
    if UPDATE:
        golden.write_text(res.stdout)
    expected = golden.read_text()
    if res.stdout != expected:  # same machine: same bytes; elsewhere: same values
        _close(json.loads(res.stdout), json.loads(expected))
