"""Detected block counts against the zoo manifest, model by model.

    python scripts/block_diff.py [NAME ...]

Prints one line per model: ``ok`` or the kinds whose counts differ (detected/manifest).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from graphpath import onnx_io
from graphpath.blocks import block_counts, detect_blocks
from graphpath.model.layers import build_layers

MODELS = Path(__file__).resolve().parent.parent / "models"


def main(names: list[str]) -> int:
    manifest = json.loads((MODELS / "manifest.json").read_text(encoding="utf-8"))
    bad = 0
    for entry in manifest["models"]:
        if names and entry["name"] not in names:
            continue
        graph = onnx_io.load(MODELS / entry["file"])
        found = block_counts(detect_blocks(build_layers(graph), graph))
        truth = entry["block_counts"]
        diff = {k: (found.get(k, 0), truth.get(k, 0)) for k in sorted(set(found) | set(truth))
                if found.get(k, 0) != truth.get(k, 0)}
        bad += bool(diff)
        detail = "  ".join(f"{k} {a}/{b}" for k, (a, b) in diff.items()) if diff else "ok"
        print(f"{entry['name']:<16} {detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
