"""The reference zoo in models/: valid ONNX, runs in onnxruntime, rebuilt byte for byte, and
the manifest's ground truth is complete and consistent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphpath.cli.main import main

MODELS = Path(__file__).resolve().parent.parent / "models"
MANIFEST = json.loads((MODELS / "manifest.json").read_text(encoding="utf-8"))
ENTRIES = {m["name"]: m for m in MANIFEST["models"]}
#: The rows of the seed's stability table (table 18.2).
SEED_GENERATIONS = {"v1", "v2", "v3", "v4", "v5", "yolox", "v6", "v7", "v8", "v9", "v10", "v11", "v12"}


def test_manifest_covers_every_seed_row_and_both_forms() -> None:
    generations = {m["generation"] for m in ENTRIES.values()}
    assert generations == SEED_GENERATIONS
    for gen in ("v6", "v9", "v10"):
        forms = {m["form"] for m in ENTRIES.values() if m["generation"] == gen}
        assert forms == {"deploy", "training"}, gen


def test_files_match_manifest_and_size_limits() -> None:
    on_disk = {p.name for p in MODELS.glob("*.onnx")}
    assert on_disk == {m["file"] for m in ENTRIES.values()}
    total = 0
    for m in ENTRIES.values():
        data = (MODELS / m["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == m["sha256"], m["name"]
        assert len(data) == m["bytes"] <= 4_000_000, m["name"]
        total += len(data)
    assert total <= 40_000_000


def _flatten(tree: list[dict]) -> list[str]:
    out: list[str] = []
    for node in tree:
        out.append(node["kind"])
        out.extend(_flatten(node["children"]))
    return out


def test_block_counts_are_read_off_the_block_tree() -> None:
    from graphpath.zoo.common import BLOCK_KINDS

    for m in ENTRIES.values():
        kinds = _flatten(m["block_tree"])
        assert set(kinds) <= BLOCK_KINDS, m["name"]
        assert m["block_counts"] == {k: kinds.count(k) for k in sorted(set(kinds))}, m["name"]
        names = [o["name"] for o in m["outputs"]]
        assert len(names) == len(set(names)) >= 1


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_model_is_valid_and_runs_in_onnxruntime(name: str) -> None:
    import onnxruntime as ort

    entry = ENTRIES[name]
    path = MODELS / entry["file"]
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape == [1, 3, entry["imgsz"], entry["imgsz"]]
    x = np.random.default_rng(0).random((1, 3, entry["imgsz"], entry["imgsz"]), dtype=np.float32)
    outputs = session.run(None, {inp.name: x})
    assert [o.name for o in session.get_outputs()] == [o["name"] for o in entry["outputs"]]
    for out in outputs:
        assert np.isfinite(out).all()


def test_zoo_build_is_deterministic(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from graphpath.zoo.catalog import build_models

    entries = build_models([], tmp_path)
    assert {e["name"]: e["sha256"] for e in entries} == {
        n: m["sha256"] for n, m in ENTRIES.items()
    }
    rebuilt = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert rebuilt["models"] == MANIFEST["models"]


def test_zoo_cli_rejects_unknown_names_and_bad_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    for args in (["nope"], ["yolov8n", "--imgsz", "100"]):
        with pytest.raises(SystemExit) as exc:
            main(["zoo", "build", *args, "--out", str(tmp_path)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("graphpath: error:") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_zoo_without_torch_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    with pytest.raises(SystemExit) as exc:
        main(["zoo", "list"])
    assert exc.value.code == 2
    assert "pip install 'graphpath[torch]'" in capsys.readouterr().err
