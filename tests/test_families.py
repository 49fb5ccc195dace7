"""Detector families beyond the seed table, Ultralytics' "u" re-releases, and near misses.

The block counts and facts in the Signals below are written from each family's model code
(the numbers a correct detection gives), not from graphpath's output:

* PP-YOLOE+ s (PaddleDetection ``ppyoloe_plus_crn_s``): CSPResNet with 4 CSPResStages, each
  ending in an EffectiveSE (hard-sigmoid) gate; CustomCSPPAN neck (5 CSP stages, SPP at the top);
  ET-head with an ESEAttn (sigmoid) gate on the class and the box stem of each of 3 levels;
  DFL over reg_max + 1 = 17 bins; swish (SiLU).
* YOLO-NAS S (super-gradients): ReLU; YoloNASCSPLayer stages (4 in the backbone, 4 in the neck);
  SPP context module; ConvTranspose up-stages; DFL head, reg_max 16 (17 bins).
* DAMO-YOLO (GiraffeNeckV2, the same neck in T and S): two three-input fusions, node x4
  ``[x1, down(x2), up(x3)]`` and node x6 ``[x3, down(x4), down(x7)]``; 5 CSPStages; ZeroHead
  GFL box convs of 4 × 17 channels decoded by a softmax and a product with the bin values.
* YOLO-World v8s: the v8 body (C2f, SPPF) and a class head that multiplies by the baked text
  embeddings per level (ultralytics' export: a MatMul of the (1, classes, 512) text embeddings,
  a Constant the graph expands and L2-normalises, with the 512-channel embedding conv's map).
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
    facts = GraphFacts(activations=(("relu", 70),), pred_channels=(68, 80) * 3, gfpn_merges=2, decoupled=True,
                       dfl=1, dfl_bins=17, convs=70, weighted=70)
    fp = decide(Signals({"csp": 5, "spp": 1, "residual": 20, "decoupled_head": 3, "dfl": 1}, facts))
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


# --------------------------------------------------------------------------- shapes of the real exports


def _counts(model):
    from graphpath.blocks import block_counts

    return block_counts(model.blocks)


# YOLO-World's class branch (ultralytics WorldDetect + BNContrastiveHead): the text embeddings are
# a Constant node reshaped by static ops (the model's txt_feats, baked at export), and the class
# scores are their product with the embedding conv's map: ``text @ emb.flatten(2)``. Beside it,
# the box conv of the same level.
WORLD_HEAD = """
world (float[1,8,4,4] x) => (float[1,5,16] cls, float[1,4,16] box)
<float[6,8,1,1] we, float[4,8,1,1] wb, int64[3] se = {1, 6, 16}, int64[3] sb = {1, 4, 16},
 int64[3] st = {1, 5, 6}>
{
    t = Constant <value_floats = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0,
                                  4.0, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]> ()
    t3 = Reshape (t, st)
    e = Conv <kernel_shape = [1, 1]> (x, we)
    ef = Reshape (e, se)
    cls = MatMul (t3, ef)
    b = Conv <kernel_shape = [1, 1]> (x, wb)
    box = Reshape (b, sb)
}
"""


def test_text_embedding_product_with_a_computed_constant(write_model):
    """The embedding matrix is no initializer but computed from a Constant: the product is still
    a weighted unit with that matrix's shape, its rows are the classes, and the level is
    decoupled (box conv beside the contrastive class branch), not a coupled anchor head."""
    model = onnx_io.open_model(write_model(WORLD_HEAD))
    facts = graph_facts(model.layers, model.graph)
    assert facts.embedding_heads == 1 and 5 in facts.pred_channels and 4 in facts.pred_channels
    counts = _counts(model)
    assert counts.get("decoupled_head") == 1 and not counts.get("coupled_head"), counts


# DAMO-YOLO's ZeroHead decode on two levels: box conv of 4 × 17 bins → softmax over the bins per
# level → concat over levels → GFL's Integral, a product with the (17, 1) bin values.
GFL_HEAD = """
gfl (float[1,8,4,4] x1, float[1,8,2,2] x2) => (float[1,20,4] box, float[1,3,4,4] c1, float[1,3,2,2] c2)
<float[68,8,1,1] wr1, float[68,8,1,1] wr2, float[3,8,1,1] wc1, float[3,8,1,1] wc2, float[17,1] proj,
 int64[4] s1 = {1, 4, 17, 16}, int64[4] s2 = {1, 4, 17, 4}, int64[2] sf = {-1, 17}, int64[3] so = {1, 20, 4}>
{
    r1 = Conv <kernel_shape = [1, 1]> (x1, wr1)
    q1 = Reshape (r1, s1)
    m1 = Softmax <axis = 2> (q1)
    p1 = Transpose <perm = [0, 3, 1, 2]> (m1)
    r2 = Conv <kernel_shape = [1, 1]> (x2, wr2)
    q2 = Reshape (r2, s2)
    m2 = Softmax <axis = 2> (q2)
    p2 = Transpose <perm = [0, 3, 1, 2]> (m2)
    cat = Concat <axis = 1> (p1, p2)
    f = Reshape (cat, sf)
    d = MatMul (f, proj)
    box = Reshape (d, so)
    k1 = Conv <kernel_shape = [1, 1]> (x1, wc1)
    c1 = Sigmoid (k1)
    k2 = Conv <kernel_shape = [1, 1]> (x2, wc2)
    c2 = Sigmoid (k2)
}
"""


def test_dfl_as_a_product_with_the_bin_values(write_model):
    """The Integral is the DFL projection written as a MatMul: one DFL over 17 bins, the box
    convs (68 = 4 × 17) are the raw head units behind it, and each level is decoupled."""
    model = onnx_io.open_model(write_model(GFL_HEAD))
    facts = graph_facts(model.layers, model.graph)
    assert (facts.dfl, facts.dfl_bins) == (1, 17) and facts.pred_channels.count(68) == 2
    counts = _counts(model)
    assert counts.get("dfl") == 1 and counts.get("decoupled_head") == 2, counts
    # without the softmax the product is a plain linear layer, not a DFL
    plain = onnx_io.open_model(write_model(GFL_HEAD.replace("Softmax <axis = 2>", "Relu"), "plain.onnx"))
    assert graph_facts(plain.layers, plain.graph).dfl == 0


# The end of a DAMO-YOLO TinyNAS backbone meeting the GFPN: x → [conv 1×1 → conv 3×3 stride 2 →
# SPP 5 ‖ 9 ‖ 13] (the last stage, with_spp) and a bottom-up conv 3×3 stride 2 of the same x, joined
# by a Concat → conv: a CSP split's wiring, but it halves the resolution.
SPP_STAGE = """
sppstage (float[1,8,8,8] x) => (float[1,8,4,4] y)
<float[8,8,1,1] w1, float[8,8,3,3] w2, float[4,8,1,1] wf, float[8,16,1,1] wq, float[8,8,3,3] wd,
 float[8,16,1,1] wy>
{
    a = Conv <kernel_shape = [1, 1]> (x, w1)
    ar = Relu (a)
    b = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (ar, w2)
    br = Relu (b)
    f = Conv <kernel_shape = [1, 1]> (br, wf)
    fr = Relu (f)
    p5 = MaxPool <kernel_shape = [5, 5], pads = [2, 2, 2, 2]> (fr)
    p9 = MaxPool <kernel_shape = [9, 9], pads = [4, 4, 4, 4]> (fr)
    p13 = MaxPool <kernel_shape = [13, 13], pads = [6, 6, 6, 6]> (fr)
    cat = Concat <axis = 1> (fr, p5, p9, p13)
    q = Conv <kernel_shape = [1, 1]> (cat, wq)
    qr = Relu (q)
    d = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (x, wd)
    dr = Relu (d)
    cat2 = Concat <axis = 1> (qr, dr)
    y = Conv <kernel_shape = [1, 1]> (cat2, wy)
}
"""


def test_spp_before_a_strided_merge_is_no_sppcspc(write_model):
    counts = _counts(onnx_io.open_model(write_model(SPP_STAGE)))
    assert counts.get("spp") == 1 and not counts.get("sppcspc"), counts
    # the same wiring at one resolution (stride-1 convs, a 1×1 bypass) is SPPCSPC
    same = (SPP_STAGE.replace("strides = [2, 2]", "strides = [1, 1]").replace("float[1,8,4,4] y", "float[1,8,8,8] y")
            .replace("float[8,8,3,3] wd", "float[8,8,1,1] wd")
            .replace("d = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [1, 1]>",
                     "d = Conv <kernel_shape = [1, 1]>"))
    assert _counts(onnx_io.open_model(write_model(same, "same.onnx"))).get("sppcspc") == 1


# GiraffeNeckV2's CSPStage (damo/base_models/core/ops.py) with n = 2: conv1 1×1 ‖ conv2 1×1 from
# one input; conv2 → BasicBlock_3x3_Reverse ×2 (3×3, 3×3, + shortcut); cat(conv1, block 1,
# block 2) → conv3 1×1.
CSP_STAGE = """
cspstage (float[1,8,8,8] x) => (float[1,8,8,8] y)
<float[4,8,1,1] w1, float[4,8,1,1] w2, float[4,4,3,3] a1, float[4,4,3,3] a2, float[4,4,3,3] b1,
 float[4,4,3,3] b2, float[8,12,1,1] w3>
{
    c1 = Conv <kernel_shape = [1, 1]> (x, w1)
    r1 = Relu (c1)
    c2 = Conv <kernel_shape = [1, 1]> (x, w2)
    r2 = Relu (c2)
    u1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (r2, a1)
    v1 = Relu (u1)
    u2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (v1, a2)
    v2 = Relu (u2)
    k1 = Add (r2, v2)
    g1 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (k1, b1)
    h1 = Relu (g1)
    g2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (h1, b2)
    h2 = Relu (g2)
    k2 = Add (k1, h2)
    cat = Concat <axis = 1> (r1, k1, k2)
    y = Conv <kernel_shape = [1, 1]> (cat, w3)
}
"""


def test_csp_stage_with_taps_along_its_chain(write_model):
    counts = _counts(onnx_io.open_model(write_model(CSP_STAGE)))
    assert counts.get("csp") == 1 and counts.get("residual") == 2, counts
    # tapping the second branch itself too is the ELAN / C2f wiring, not a CSP
    elan = CSP_STAGE.replace("float[8,12,1,1] w3", "float[8,16,1,1] w3").replace("(r1, k1, k2)", "(r1, r2, k1, k2)")
    assert not _counts(onnx_io.open_model(write_model(elan, "elan.onnx"))).get("csp")


def test_queen_fusion_with_two_downsampled_features(write_model):
    """GiraffeNeckV2's node x6 fuses ``[x3, down(x4), down(x7)]``: a same-level feature and two
    from another scale count; a stack along a new axis (PGI's CBFuse) does not."""
    text = """
    fused (float[1,8,4,4] lat, float[1,8,8,8] a, float[1,8,8,8] b) => (float[1,24,4,4] y, float[3,1,8,4,4] z)
    <float[8,8,3,3] wa, float[8,8,3,3] wb, int64[1] ax = {0}>
    {
        da = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (a, wa)
        db = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (b, wb)
        y = Concat <axis = 1> (lat, da, db)
        l0 = Unsqueeze (lat, ax)
        a0 = Unsqueeze (da, ax)
        b0 = Unsqueeze (db, ax)
        z = Concat <axis = 0> (l0, a0, b0)
    }
    """
    model = onnx_io.open_model(write_model(text))
    assert graph_facts(model.layers, model.graph).gfpn_merges == 1
