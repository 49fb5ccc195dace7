"""Generation fingerprints: the zoo with its ground-truth block counts, degraded counts,
structural facts, thin evidence, and the JSON form."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import onnx
import pytest

from graphpath import onnx_io
from graphpath.fingerprint.facts import GraphFacts, graph_facts
from graphpath.fingerprint.generation import GENERATIONS, Fingerprint, Signals, decide, fingerprint
from graphpath.model.graph import ModelGraph
from graphpath.model.layers import LayerGraph, build_layers
from tests.blocks.transforms import fold_constants, rename_everything
from tests.conftest import RESIDUAL

MODELS = Path(__file__).resolve().parent.parent / "models"
MANIFEST = {m["name"]: m for m in json.loads((MODELS / "manifest.json").read_text())["models"]}

#: The block whose loss must cost each generation confidence (its defining block).
DEFINING = {
    "v1": "fc_head", "v2": "passthrough", "v3": "residual", "v4": "csp", "v5": "csp",
    "yolox": "csp", "v6": "repvgg", "v7": "elan", "v8": "c2f", "v9": "gelan", "v10": "scdown",
    "v11": "c3k2", "v12": "a2c2f",
}


@cache
def views(name: str) -> tuple[ModelGraph, LayerGraph]:
    graph = onnx_io.load(MODELS / MANIFEST[name]["file"])
    return graph, build_layers(graph)


def fp_of(name: str, counts: dict[str, int] | None = None) -> Fingerprint:
    graph, layers = views(name)
    return fingerprint(MANIFEST[name]["block_counts"] if counts is None else counts, layers, graph)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_zoo_model_fingerprints_to_its_generation(name: str) -> None:
    fp = fp_of(name)
    assert fp.generation == MANIFEST[name]["generation"] and fp.variant == "", fp
    assert fp.confidence >= 0.7, fp
    assert fp.evidence and all(isinstance(e, str) and e for e in fp.evidence)
    assert all(g != fp.generation and 0 <= c < fp.confidence for g, c in fp.alternatives)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_removing_the_defining_block_costs_confidence(name: str) -> None:
    entry = MANIFEST[name]
    full = fp_of(name)
    kind = {"yolov6n": "plain_stage", "yolov6n-train": "repvgg"}.get(name, DEFINING[entry["generation"]])
    assert kind in entry["block_counts"]
    less = fp_of(name, {k: v for k, v in entry["block_counts"].items() if k != kind})
    assert less.generation != full.generation or less.confidence < full.confidence


@pytest.mark.parametrize("name", ["yolov8n", "yolov9c", "yolov10n", "yolo11n", "yolo12n", "yolov7"])
def test_without_blocks_structure_alone_does_not_name_a_generation(name: str) -> None:
    # DFL, decoupled heads and SiLU are shared by v8 … v12; coupled anchors by v5 and v7.
    fp = fp_of(name, {})
    assert fp.generation == "unknown"  # a detection head, but no generation's defining blocks
    assert fp.confidence <= 0.3
    assert fp.alternatives  # the candidates are still listed


def test_structure_alone_is_enough_for_yolox_and_v6() -> None:
    # Focus stem + objectness convs; ReLU body + ConvTranspose + decoupled head.
    assert fp_of("yoloxs", {}).generation == "yolox"
    assert fp_of("yolov6n", {}).generation == "v6"


def test_fingerprint_uses_no_names(tmp_path: Path) -> None:
    for name in ("yoloxs", "yolov5s", "yolov8n"):
        model = onnx.load(str(MODELS / MANIFEST[name]["file"]))
        path = tmp_path / f"{name}.onnx"
        onnx.save(fold_constants(rename_everything(model)), str(path))
        graph = onnx_io.load(path)
        renamed = fingerprint(MANIFEST[name]["block_counts"], build_layers(graph), graph)
        assert renamed == fp_of(name)


def test_graph_facts_on_the_zoo() -> None:
    yolox = graph_facts(*reversed(views("yoloxs")))
    assert yolox.objectness and yolox.focus and yolox.anchors == 1 and not yolox.dfl
    v5 = graph_facts(*reversed(views("yolov5s")))
    assert v5.anchors == 3 and v5.stem == (6, 2) and set(v5.pred_channels) == {255}
    v8 = graph_facts(*reversed(views("yolov8n")))
    assert v8.dfl == 1 and v8.decoupled and not v8.objectness and v8.dominant_activation[0] == "silu"
    v6 = graph_facts(*reversed(views("yolov6n")))
    assert v6.dominant_activation[0] == "relu" and v6.op("ConvTranspose") == 2 and not v6.objectness
    v4 = graph_facts(*reversed(views("yolov4")))
    assert v4.dominant_activation[0] == "mish" and v4.share("leaky_relu") > 0.2


def test_empty_graph_is_unknown(write_model) -> None:
    graph = onnx_io.load(write_model("empty (float[1,4] x) => (float[1,4] y) { y = Identity (x) }"))
    fp = fingerprint({}, build_layers(graph), graph)
    assert fp.generation == "unknown" and fp.confidence <= 0.1


def test_tiny_conv_graph_is_unknown_or_cnn_with_low_confidence(write_model) -> None:
    graph = onnx_io.load(write_model(RESIDUAL))
    fp = fingerprint({"residual": 1}, build_layers(graph), graph)
    assert fp.generation in ("unknown", "cnn") and fp.confidence <= 0.3


def test_plain_conv_stack_is_cnn(write_model) -> None:
    convs = "\n".join(
        f"c{i} = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> ({'x' if i == 0 else f'r{i - 1}'}, w{i})\n"
        f"r{i} = Relu (c{i})" for i in range(4)
    )
    weights = ", ".join(f"float[4,4,3,3] w{i}" for i in range(4))
    text = f"stack (float[1,4,8,8] x) => (float[1,4,8,8] r3) <{weights}> {{ {convs} }}"
    graph = onnx_io.load(write_model(text))
    fp = fingerprint({"plain_stage": 1}, build_layers(graph), graph)
    assert fp.generation == "cnn" and fp.confidence <= 0.3


def test_close_calls_resolved_by_their_evidence() -> None:
    head = {"fpn": 2, "pan": 2, "coupled_head": 3}
    silu = GraphFacts(activations=(("silu", 50),))
    leaky = GraphFacts(activations=(("leaky_relu", 50),))
    mish = GraphFacts(activations=(("leaky_relu", 30), ("mish", 70)))
    # A v5 whose C3s were missed is not called v3: residual-only needs leaky ReLU.
    assert decide(Signals({**head, "residual": 7, "sppf": 1}, silu)).generation != "v3"
    assert decide(Signals({"residual": 23, "fpn": 2, "coupled_head": 3}, leaky)).generation == "v3"
    assert decide(Signals({**head, "residual": 23, "csp": 5, "spp": 1}, mish)).generation == "v4"
    assert decide(Signals({**head, "residual": 7, "csp": 8, "sppf": 1}, silu)).generation == "v5"
    dfl = {"decoupled_head": 3, "dfl": 1, "sppf": 1}
    assert decide(Signals({**dfl, "c2f": 8}, silu)).generation == "v8"
    assert decide(Signals({**dfl, "c3k2": 8, "c2psa": 1, "attention": 1}, silu)).generation == "v11"
    assert decide(Signals({"decoupled_head": 3, "dfl": 1, "c3k2": 3, "a2c2f": 5, "attention": 8},
                          silu)).generation == "v12"
    assert decide(Signals({**dfl, "gelan": 8, "adown": 5, "sppelan": 1}, silu)).generation == "v9"
    assert decide(Signals({**dfl, "c2f": 7, "scdown": 3, "psa": 1, "c2fcib": 1, "one2one_head": 1},
                          silu)).generation == "v10"


def test_ultralytics_u_variants_keep_their_generation() -> None:
    """YOLOv3u / YOLOv5u: the old body with v8's anchor-free DFL head (and SiLU)."""
    silu = GraphFacts(activations=(("silu", 70),))
    u_head = {"decoupled_head": 3, "dfl": 1, "fpn": 2}
    v3u = decide(Signals({**u_head, "residual": 23}, silu))
    assert v3u.generation == "v3" and any("'u' variant" in e for e in v3u.evidence)
    assert decide(Signals({**u_head, "pan": 2, "csp": 8, "residual": 7, "sppf": 1}, silu)).generation == "v5"
    # the v8 head on a later body stays with that body's generation, at full confidence
    v8 = decide(Signals({**u_head, "pan": 2, "c2f": 8, "residual": 6, "sppf": 1}, silu))
    assert v8.generation == "v8" and all(a["generation"] not in ("v3", "v5") or a["confidence"] < 0.1
                                         for a in v8.to_dict()["alternatives"])
    # a v8 whose C2f blocks were all missed is no confident v3u: SPPF and PAN speak against it
    missed = decide(Signals({**u_head, "pan": 2, "residual": 6, "sppf": 1}, silu))
    assert missed.generation != "v3" or missed.confidence < 0.5


def test_darknet_tiny_variants_by_their_layout() -> None:
    """yolov2/v3/v4-tiny: a short leaky conv stack pooled down, one or two anchor head levels;
    v4-tiny's CSP-tiny blocks (half-channel route splits) tell it from v3-tiny."""
    tiny = GraphFacts(activations=(("leaky_relu", 13),), convs=13, weighted=13, maxpool_downsamples=5)
    two_levels = {"plain_stage": 2, "coupled_head": 2, "fpn": 1}
    v3 = decide(Signals(two_levels, tiny))
    assert v3.generation == "v3" and v3.evidence[0].startswith("tiny Darknet layout") and v3.confidence >= 0.7
    assert v3.to_dict()["variant"] == "tiny"
    v4 = decide(Signals(two_levels, replace(tiny, half_splits=3)))
    assert v4.generation == "v4" and any("CSP-tiny" in e for e in v4.evidence)
    assert decide(Signals({"plain_stage": 1, "coupled_head": 1}, tiny)).generation == "v2"
    # no anchor head: a leaky, max-pooled classifier stays a generic cnn
    assert decide(Signals({"plain_stage": 2}, tiny)).generation == "cnn"
    # residual stages or strided convs instead of pools are not the tiny layout
    assert not any("tiny" in e for e in decide(Signals({**two_levels, "residual": 4}, tiny)).evidence)
    strided = replace(tiny, maxpool_downsamples=0)
    assert decide(Signals(two_levels, strided)).generation == "unknown"  # anchor heads, no family


def test_half_splits_and_pooling_facts(write_model) -> None:
    text = """
    csptiny (float[1,8,8,8] x) => (float[1,12,4,4] y)
    <float[8,8,3,3] w0, float[4,4,3,3] w1, int64[1] lo = {4}, int64[1] hi = {8}, int64[1] ax = {1}>
    {
        c0 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w0)
        a0 = LeakyRelu <alpha = 0.1> (c0)
        half = Slice (a0, lo, hi, ax)
        c1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (half, w1)
        a1 = LeakyRelu <alpha = 0.1> (c1)
        cat = Concat <axis = 1> (a0, a1)
        y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (cat)
    }
    """
    graph = onnx_io.load(write_model(text))
    facts = graph_facts(build_layers(graph), graph)
    assert (facts.half_splits, facts.maxpool_downsamples) == (1, 1)


def test_yolox_and_v6_apart() -> None:
    yolox = GraphFacts(activations=(("silu", 70),), pred_channels=(80, 4, 1) * 3, objectness=True,
                       decoupled=True, focus=True)
    v6 = GraphFacts(activations=(("relu", 50), ("silu", 9)), pred_channels=(80, 4) * 3,
                    decoupled=True, ops=(("ConvTranspose", 2),), levels=3)
    assert decide(Signals({"csp": 8, "decoupled_head": 3, "spp": 1}, yolox)).generation == "yolox"
    assert decide(Signals({"plain_stage": 8, "decoupled_head": 3, "sppcspc": 1, "fpn": 2}, v6)).generation == "v6"
    # A ReLU detector with box/class convs but no v6 structure (RetinaFace-like) is no v6.
    relu = GraphFacts(activations=(("relu", 50),), pred_channels=(8, 4, 20) * 3, decoupled=True, convs=50)
    assert decide(Signals({"plain_stage": 4}, relu)).generation == "unknown"  # a detector, no family


def test_rtdetr_and_transformer_from_attention() -> None:
    rtdetr = GraphFacts(ops=(("GridSample", 6), ("LayerNormalization", 10), ("TopK", 1)),
                        attention_merges=12, convs=40, linears=60, weighted=100)
    assert decide(Signals({"attention": 6}, rtdetr)).generation == "rtdetr"
    vit = GraphFacts(attention_merges=24, convs=1, linears=48, weighted=49)
    fp = decide(Signals({"attention": 12}, vit))
    assert fp.generation == "transformer" and fp.confidence <= 0.3


def test_to_dict_is_sorted_rounded_and_json_ready() -> None:
    d = fp_of("yolo12n").to_dict()
    assert list(d) == sorted(d)
    assert d["generation"] == "v12"
    assert d["confidence"] == round(d["confidence"], 3)
    assert all(list(a) == sorted(a) for a in d["alternatives"])
    assert json.loads(json.dumps(d, sort_keys=True)) == d
    assert set(GENERATIONS) >= {fp_of(n).generation for n in MANIFEST}
