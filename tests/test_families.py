"""Detector families beyond the seed table, Ultralytics' "u" re-releases, and near misses.

The block counts and facts in the Signals below are written from each family's model code
(the numbers a correct detection gives), not from graphpath's output:

* PP-YOLOE+ s (PaddleDetection ``ppyoloe_plus_crn_s``): CSPResNet with 4 CSPResStages, each
  ending in an EffectiveSE (hard-sigmoid) gate; CustomCSPPAN neck (5 CSP stages, SPP at the top);
  ET-head with an ESEAttn (sigmoid) gate on the class and the box stem of each of 3 levels;
  DFL over reg_max + 1 = 17 bins; swish (SiLU).
* YOLO-NAS S (super-gradients): ReLU; YoloNASCSPLayer stages (4 in the backbone, 4 in the neck);
  SPP context module; ConvTranspose up-stages; DFL head, reg_max 16 (17 bins).
* DAMO-YOLO S: RepGFPN neck whose fusions concat the same-level, the upsampled and the
  downsampled feature (4 such merges); ZeroHead GFL box convs of 4 × 17 channels.
* YOLO-World v8s: the v8 body (C2f, SPPF) and a class head that multiplies by the baked text
  embeddings (an Einsum with a (1, classes, 512) constant) per level.
* YOLO26 n: C3k2 + C2PSA + SPPF, a decoupled head whose box convs emit 4 channels (no DFL).
"""

from __future__ import annotations

from dataclasses import replace

from graphpath import onnx_io
from graphpath.fingerprint.facts import GraphFacts, graph_facts
from graphpath.fingerprint.generation import Signals, decide, fingerprint

SILU = (("silu", 80),)
DFL_HEAD = {"decoupled_head": 3, "dfl": 1, "fpn": 2, "pan": 2}


def _conf(fp, generation: str) -> float:
    if fp.generation == generation:
        return fp.confidence
    return dict(fp.alternatives).get(generation, 0.0)


def test_ppyoloe_plus_is_named_and_not_v5():
    facts = GraphFacts(activations=SILU, pred_channels=(80, 68) * 3, decoupled=True, dfl=1, dfl_bins=17,
                       se_gates=10, hard_se_gates=4, convs=90, weighted=90)
    fp = decide(Signals({**DFL_HEAD, "csp": 9, "spp": 1, "residual": 6}, facts))
    assert fp.generation == "ppyoloe" and fp.confidence >= 0.7, fp
    assert any("channel-attention" in e for e in fp.evidence) and any("17 bins" in e for e in fp.evidence)
    assert _conf(fp, "v5") < 0.5 and _conf(fp, "v8") < 0.5


def test_yolonas_is_named_and_not_v6():
    facts = GraphFacts(activations=(("relu", 70),), pred_channels=(80, 68) * 3, decoupled=True, dfl=1,
                       dfl_bins=17, ops=(("ConvTranspose", 2),), levels=3, convs=80, weighted=80)
    fp = decide(Signals({**DFL_HEAD, "csp": 8, "spp": 1, "residual": 12}, facts))
    assert fp.generation == "yolonas" and fp.confidence >= 0.7, fp
    assert _conf(fp, "v6") < 0.5


def test_damoyolo_is_named_by_its_gfpn():
    facts = GraphFacts(activations=(("relu", 40), ("silu", 40)), pred_channels=(80, 68) * 3, gfpn_merges=4,
                       convs=70, weighted=70)
    fp = decide(Signals({"csp": 6, "fpn": 2, "residual": 6}, facts))
    assert fp.generation == "damoyolo" and fp.confidence >= 0.5, fp
    assert all(c < 0.5 for _, c in fp.alternatives)


def test_yoloworld_is_named_and_not_v8():
    facts = GraphFacts(activations=SILU, pred_channels=(64, 512) * 3, decoupled=True, dfl=1, dfl_bins=16,
                       embedding_heads=3, convs=70, weighted=73)
    fp = decide(Signals({**DFL_HEAD, "c2f": 8, "sppf": 1, "residual": 6}, facts))
    assert fp.generation == "yoloworld" and fp.confidence >= 0.7, fp
    assert _conf(fp, "v8") < 0.5


def test_yolo26_is_named_and_not_v11():
    facts = GraphFacts(activations=SILU, pred_channels=(4, 80) * 3, decoupled=True, convs=90, weighted=90)
    fp = decide(Signals({"decoupled_head": 3, "fpn": 2, "pan": 2, "c3k2": 8, "c2psa": 1, "sppf": 1,
                         "one2one_head": 1}, facts))
    assert fp.generation == "v26" and fp.confidence >= 0.7, fp
    assert any("no DFL" in e for e in fp.evidence) and _conf(fp, "v11") < 0.5
    # and YOLO11 with its DFL head stays YOLO11
    v11 = replace(facts, pred_channels=(64, 80) * 3, dfl=1, dfl_bins=16)
    assert decide(Signals({"decoupled_head": 3, "dfl": 1, "c3k2": 8, "c2psa": 1, "sppf": 1}, v11)).generation == "v11"


def test_unknown_family_is_unknown_with_the_nearest_generation():
    """A SiLU detector with a decoupled DFL head and plain stages only (no known family's block):
    never a confident guess."""
    facts = GraphFacts(activations=SILU, pred_channels=(64, 80) * 3, decoupled=True, dfl=1, dfl_bins=16,
                       convs=40, weighted=40)
    fp = decide(Signals({"decoupled_head": 3, "dfl": 1, "plain_stage": 4}, facts))
    assert fp.generation == "unknown" and fp.confidence < 0.5
    assert any(e.startswith("closest generation") for e in fp.evidence)


def test_yolov3_tinyu_is_v3_tiny_with_the_head_difference():
    """yolov3-tinyu.yaml: 11 SiLU convs with 5 stride-2 max pools, an FPN merge, and v8's Detect
    on 2 levels (box and class branches, 17 bins? no: Ultralytics' 16-bin DFL)."""
    tiny = GraphFacts(activations=(("silu", 23),), convs=24, weighted=24, maxpool_downsamples=5,
                      pred_channels=(64, 80) * 2, decoupled=True, dfl=1, dfl_bins=16)
    fp = decide(Signals({"plain_stage": 2, "decoupled_head": 2, "dfl": 1, "fpn": 1}, tiny))
    assert (fp.generation, fp.variant) == ("v3", "tiny"), fp
    assert "'u' variant" in fp.evidence[0] and fp.confidence >= 0.5


# --------------------------------------------------------------------------- real graphs

# A PP-YOLOE CSPResStage (ppdet/modeling/backbones/cspresnet.py): a 3×3 stride-2 down conv;
# conv1 1×1 ‖ conv2 1×1 → BasicBlock (3×3, 3×3, + shortcut); cat → EffectiveSE (mean over H, W
# → 1×1 conv with bias → hard sigmoid → × the cat) → conv3 1×1; every conv swish-activated.
PPYOLOE_STAGE = """
stage (float[1,8,16,16] x) => (float[1,16,8,8] y)
<float[16,8,3,3] wd, float[8,16,1,1] w1, float[8,16,1,1] w2, float[8,8,3,3] wb1, float[8,8,3,3] wb2,
 float[16,16,1,1] wse, float[16] bse, float[16,16,1,1] w3, int64[2] hw = {2, 3}>
{
    d = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (x, wd)
    ds = Sigmoid (d)
    da = Mul (d, ds)
    c1 = Conv <kernel_shape = [1, 1]> (da, w1)
    s1 = Sigmoid (c1)
    a1 = Mul (c1, s1)
    c2 = Conv <kernel_shape = [1, 1]> (da, w2)
    s2 = Sigmoid (c2)
    a2 = Mul (c2, s2)
    b1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (a2, wb1)
    bs1 = Sigmoid (b1)
    ba1 = Mul (b1, bs1)
    b2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (ba1, wb2)
    bs2 = Sigmoid (b2)
    ba2 = Mul (b2, bs2)
    r = Add (a2, ba2)
    cat = Concat <axis = 1> (a1, r)
    m = ReduceMean <keepdims = 1> (cat, hw)
    g = Conv <kernel_shape = [1, 1]> (m, wse, bse)
    gh = HardSigmoid <alpha = 0.1666667, beta = 0.5> (g)
    e = Mul (cat, gh)
    c3 = Conv <kernel_shape = [1, 1]> (e, w3)
    s3 = Sigmoid (c3)
    y = Mul (c3, s3)
}
"""


def test_ppyoloe_like_stage_is_not_called_csp_v5(write_model):
    """The near miss: a CSP stage with a residual inside, SiLU — what a YOLOv5 C3 also shows —
    plus an ESE gate, which no v5 has. It must not be a confident v5."""
    model = onnx_io.open_model(write_model(PPYOLOE_STAGE))
    facts = graph_facts(model.layers, model.graph)
    assert (facts.se_gates, facts.hard_se_gates) == (1, 1)
    # the stage is found as the CSP block it is (the gate between cat and conv3 is looked
    # through), so the v5 reading has its C3 evidence: the gate alone must keep it off v5
    csp = [b for b in model.blocks if b.kind == "csp"]
    assert len(csp) == 1 and dict(csp[0].structure).get("gate") == "channel attention"
    fp = fingerprint({}, model.layers, model.graph, model.blocks)
    assert fp.generation != "v5" and _conf(fp, "v5") < 0.5, fp
    # the same stage without its ESE gate is what the gate's contradiction is about
    v5like = decide(Signals({"csp": 1, "residual": 1}, replace(facts, se_gates=0, hard_se_gates=0)))
    with_gate = decide(Signals({"csp": 1, "residual": 1}, facts))
    assert _conf(with_gate, "v5") < _conf(v5like, "v5") or _conf(v5like, "v5") == 0.0


def test_se_gate_through_global_average_pool(write_model):
    text = """
    se (float[1,8,4,4] x) => (float[1,8,4,4] y) <float[8,8,1,1] w>
    {
        p = GlobalAveragePool (x)
        g = Conv <kernel_shape = [1, 1]> (p, w)
        s = Sigmoid (g)
        y = Mul (x, s)
    }
    """
    model = onnx_io.open_model(write_model(text))
    assert graph_facts(model.layers, model.graph).se_gates == 1


def test_embedding_head_and_gfpn_facts(write_model):
    text = """
    fused (float[1,8,8,8] lat, float[1,8,4,4] top, float[1,8,16,16] fine) => (float y)
    <float[8,8,3,3] wd, float[1,5,24] emb, float[4] sc = {1.0, 1.0, 2.0, 2.0}>
    {
        up = Resize <mode = "nearest"> (top, , sc)
        dn = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (fine, wd)
        cat = Concat <axis = 1> (lat, up, dn)
        y = Einsum <equation = "bchw,bkc->bkhw"> (cat, emb)
    }
    """
    model = onnx_io.open_model(write_model(text))
    facts = graph_facts(model.layers, model.graph)
    assert facts.gfpn_merges == 1 and facts.embedding_heads == 1


def test_seed_zoo_has_none_of_the_family_facts():
    """The families' defining structure is absent from every seed generation's reference graph."""
    import json
    from pathlib import Path

    models = Path(__file__).resolve().parent.parent / "models"
    for entry in json.loads((models / "manifest.json").read_text())["models"]:
        m = onnx_io.open_model(models / entry["file"])
        f = graph_facts(m.layers, m.graph)
        assert (f.se_gates, f.gfpn_merges, f.embedding_heads) == (0, 0, 0), entry["name"]
        assert f.dfl_bins in (0, 16), entry["name"]
