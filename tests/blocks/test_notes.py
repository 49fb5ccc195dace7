"""Export notes: what deploy exports fused or dropped, on the zoo and on tiny graphs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import onnx
import pytest

from graphpath import onnx_io
from graphpath.blocks.notes import CODES, ExportNote, export_notes
from graphpath.model.layers import build_layers
from tests.blocks.transforms import fold_constants, rename_everything

MODELS = Path(__file__).resolve().parents[2] / "models"
MANIFEST = {m["name"]: m for m in json.loads((MODELS / "manifest.json").read_text())["models"]}
DROPPED = {"repvgg-fused", "pgi-dropped", "one2many-dropped"}


@cache
def codes(name: str, path: Path | None = None) -> tuple[str, ...]:
    entry = MANIFEST[name]
    graph = onnx_io.load(path or MODELS / entry["file"])
    notes = export_notes(entry["block_counts"], build_layers(graph), graph, entry["generation"])
    return tuple(n.code for n in notes)


@pytest.mark.parametrize(("deploy", "expected"), [
    ("yolov6n", {"repvgg-fused", "bn-fused", "decode-in-graph"}),
    ("yolov9c", {"repvgg-fused", "pgi-dropped", "bn-fused", "decode-in-graph"}),
    ("yolov10n", {"repvgg-fused", "one2many-dropped", "bn-fused", "decode-in-graph"}),
    ("yolov7", {"repvgg-fused", "bn-fused", "decode-in-graph"}),
])
def test_deploy_exports_get_their_notes(deploy: str, expected: set[str]) -> None:
    assert set(codes(deploy)) == expected


@pytest.mark.parametrize("train", ["yolov6n-train", "yolov9c-train", "yolov10n-train"])
def test_training_forms_get_no_fused_or_dropped_notes(train: str) -> None:
    assert not DROPPED & set(codes(train))


def test_v6_training_form_keeps_bn_and_deploy_forms_fuse_it() -> None:
    # The zoo folds BN into every conv; only v6's RepVGG identity branches keep a BN node.
    assert "bn-fused" not in codes("yolov6n-train")
    assert "bn-fused" in codes("yolov8n")
    assert "bn-fused" not in codes("yolov1")  # YOLOv1 predates BatchNormalization


def test_decode_tail_is_seen_only_where_the_export_decodes() -> None:
    for decoded in ("yolov5s", "yolov6n", "yolov7", "yolov8n", "yolo11n", "yolo12n"):
        assert "decode-in-graph" in codes(decoded), decoded
    # Raw maps (v2–v4) and YOLOX's undecoded export keep the raw head tensors.
    for raw in ("yolov2", "yolov3", "yolov4", "yoloxs"):
        assert "decode-in-graph" not in codes(raw), raw


def test_notes_use_no_names(tmp_path: Path) -> None:
    for name in ("yolov5s", "yolov9c", "yolov10n", "yoloxs"):
        model = onnx.load(str(MODELS / MANIFEST[name]["file"]))
        path = tmp_path / f"{name}.onnx"
        onnx.save(fold_constants(rename_everything(model)), str(path))
        assert codes(name, path) == codes(name)


NMS = """
nms (float[1,100,4] boxes, float[1,80,100] scores) => (int64[N,3] keep)
{
    k = Constant <value = int64[1] {10}> ()
    keep = NonMaxSuppression (boxes, scores, k)
}
"""

CONV_BN = """
convbn (float[1,4,8,8] x) => (float[1,4,8,8] y)
<float[4,4,3,3] w, float[4] g, float[4] b, float[4] m, float[4] v>
{
    c = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w)
    n = BatchNormalization (c, g, b, m, v)
    y = Relu (n)
}
"""

CONV = """
conv (float[1,4,8,8] x) => (float[1,4,8,8] y)
<float[4,4,3,3] w>
{
    c = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w)
    y = Relu (c)
}
"""


def _notes(write_model, text: str, generation: str, counts: dict[str, int] | None = None) -> tuple[ExportNote, ...]:
    graph = onnx_io.load(write_model(text))
    return export_notes(counts or {}, build_layers(graph), graph, generation)


def test_embedded_nms_is_noted_whatever_the_generation(write_model) -> None:
    notes = _notes(write_model, NMS, "unknown")
    assert [n.code for n in notes] == ["nms-embedded"]
    assert _notes(write_model, NMS, "v8", {"nms": 1})[0].code == "nms-embedded"


def test_bn_fused_only_without_bn_and_for_generations_that_train_with_it(write_model) -> None:
    assert [n.code for n in _notes(write_model, CONV, "v8")] == ["bn-fused"]
    assert _notes(write_model, CONV_BN, "v8") == ()
    assert _notes(write_model, CONV, "cnn") == ()


def test_rules_on_counts(write_model) -> None:
    def got(counts: dict[str, int], generation: str) -> set[str]:
        return {n.code for n in _notes(write_model, CONV, generation, counts)} - {"bn-fused"}

    assert got({"gelan": 8}, "v9") == {"repvgg-fused", "pgi-dropped"}
    assert got({"gelan": 12, "pgi": 1, "aux_head": 1, "repvgg": 24}, "v9") == set()
    assert got({"one2one_head": 1, "c2fcib": 1}, "v10") == {"repvgg-fused", "one2many-dropped"}
    assert got({"one2one_head": 1, "aux_head": 1, "repvgg": 1, "c2fcib": 1}, "v10") == set()
    assert got({"repvgg": 35}, "v6") == set()
    assert got({"plain_stage": 8}, "v6") == {"repvgg-fused"}
    assert got({"c2f": 8}, "v8") == set()


def test_no_fused_repconv_where_batch_norm_is_left(write_model) -> None:
    """Re-parameterising folds BN first: a graph that keeps BN fused nothing, and one without
    RepConv blocks never had them (YOLOv7-W6/E6E, v7-tiny training exports)."""
    codes_bn = {n.code for n in _notes(write_model, CONV_BN, "v7", {"elan": 8})}
    assert "repvgg-fused" not in codes_bn
    assert "repvgg-fused" in {n.code for n in _notes(write_model, CONV, "v7", {"elan": 8})}
    leaky = CONV.replace("Relu (c)", "LeakyRelu <alpha = 0.1> (c)")  # v7-tiny: no RepConv at all
    assert "repvgg-fused" not in {n.code for n in _notes(write_model, leaky, "v7", {"elan": 8})}


IMPLICIT = """
implicit (float[1,4,8,8] x) => (float[1,24,8,8] y)
<float[24,4,1,1] w, float[1,24,1,1] im, float[1,24,1,1] grid>
{
    c = Conv (x, w)
    y = Mul (c, im)
}
"""


def test_a_per_channel_scale_after_the_prediction_conv_is_no_decode(write_model) -> None:
    """v7's ImplicitM multiplies each prediction channel by a learned scale: not a decode."""
    assert "decode-in-graph" not in {n.code for n in _notes(write_model, IMPLICIT, "v7")}
    grid = IMPLICIT.replace("float[1,24,1,1] grid", "float[1,1,8,8] grid").replace("Mul (c, im)", "Mul (c, grid)")
    assert "decode-in-graph" in {n.code for n in _notes(write_model, grid, "v7")}


def test_note_form() -> None:
    notes = [ExportNote(c, "m") for c in CODES]
    assert all(list(n.to_dict()) == sorted(n.to_dict()) for n in notes)
    for name in ("yolov9c", "yolov10n", "yolov6n"):
        entry = MANIFEST[name]
        graph = onnx_io.load(MODELS / entry["file"])
        for note in export_notes(entry["block_counts"], build_layers(graph), graph, entry["generation"]):
            assert note.code in CODES
            assert note.message.endswith(".") and note.message.count(". ") == 0  # one sentence
            assert note.evidence
