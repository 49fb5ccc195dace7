"""Attention, PSA, C2PSA and A2C2f detectors on the smallest graphs that show them, and
near-misses (the DFL softmax, a softmax without a second MatMul, C2f-style concats, pooling
chains, ELAN's parallel branch)."""

from __future__ import annotations

from graphpath import onnx_io
from graphpath.blocks.attention import A2C2fDetector, AttentionDetector, C2PSADetector, PSADetector
from graphpath.blocks.base import BlockMatch, DetectionContext
from graphpath.model.layers import build_layers
from tests.blocks.test_elan import Net, counts, detect

MINE = ("attention", "psa", "c2psa", "a2c2f")
HW = 32 * 32  # tokens of Net's 32×32 input


def const(net: Net, prefix: str, values: tuple[int, ...]) -> str:
    name = net._name(prefix)
    net.decls.append(f"int64[{len(values)}] {name} = {{{', '.join(map(str, values))}}}")
    return name


def attention(net: Net, x: str, c: int) -> str:
    """PSA/AAttn-style attention: qkv 1×1 → split → softmax(qᵀk)·v + dw 3×3 on v → proj 1×1."""
    qkv = net.conv(x, c, 2 * c, act=False)
    q, k, v = net._name("q"), net._name("k"), net._name("v")
    sizes = const(net, "sz", (c // 2, c // 2, c))
    net.lines.append(f"{q}, {k}, {v} = Split <axis = 1> ({qkv}, {sizes})")
    tok_qk, tok_v, img = const(net, "t", (1, 1, c // 2, HW)), const(net, "t", (1, 1, c, HW)), const(net, "t", (1, c, 32, 32))
    s, p, o, o4, v4 = (net._name(n) for n in ("s", "p", "o", "o4", "v4"))
    net.lines += [
        f"{q}r = Reshape ({q}, {tok_qk})", f"{k}r = Reshape ({k}, {tok_qk})", f"{v}r = Reshape ({v}, {tok_v})",
        f"{q}t = Transpose <perm = [0, 1, 3, 2]> ({q}r)",
        f"{s} = MatMul ({q}t, {k}r)",
        f"{s}c = Constant <value = float {{0.5}}> ()",
        f"{s}m = Mul ({s}, {s}c)",
        f"{p} = Softmax <axis = -1> ({s}m)",
        f"{p}t = Transpose <perm = [0, 1, 3, 2]> ({p})",
        f"{o} = MatMul ({v}r, {p}t)",
        f"{o4} = Reshape ({o}, {img})", f"{v4} = Reshape ({v}r, {img})",
    ]
    pe = net.conv(v4, c, c, 3, g=c, act=False)
    return net.conv(net.add(o4, pe), c, c, act=False)


def psa_block(net: Net, x: str, c: int) -> str:
    """Attention with a residual add, then FFN (1×1 to 2c, 1×1 back) with a residual add."""
    a = net.add(x, attention(net, x, c))
    return net.add(a, net.conv(net.conv(a, c, 2 * c), 2 * c, c, act=False))


def psa(net: Net, x: str, c: int, blocks: int = 1, slices: bool = False) -> str:
    first = net.conv(x, c, c)
    keep, b = net.slices(first, c) if slices else net.split(first, c)
    for _ in range(blocks):
        b = psa_block(net, b, c // 2)
    return net.conv(net.cat(keep, b), c, c)


def test_psa_holds_one_attention(write_model):
    net = Net()
    y = psa(net, "x", 8)
    assert counts(write_model, net, y, MINE) == {"attention": 1, "psa": 1}
    (top,) = [m for m in detect(write_model, net, y) if m.kind == "psa"]

    def kinds(m: BlockMatch) -> list[str]:
        return [m.kind] + [k for c in m.children for k in kinds(c)]

    assert "attention" in kinds(top)  # nested inside the PSA
    graph = onnx_io.load(write_model(net.text(y)))
    ctx = DetectionContext(build_layers(graph), graph)
    (m,) = AttentionDetector().detect(ctx)
    ops = sorted(ctx.unit(u).op_type for u in m.units)
    # qkv conv, split, both MatMuls, positional conv, its add, output projection
    assert ops == ["Add", "Conv", "Conv", "Conv", "MatMul", "MatMul", "Split"]


def test_psa_split_as_two_slices(write_model):
    net = Net()
    y = psa(net, "x", 8, slices=True)
    assert counts(write_model, net, y, MINE) == {"attention": 1, "psa": 1}


def test_two_chained_psa_blocks_are_c2psa(write_model):
    net = Net()
    y = psa(net, "x", 8, blocks=2)
    assert counts(write_model, net, y, MINE) == {"attention": 2, "c2psa": 1}


def _ctx(write_model, net: Net, y: str) -> DetectionContext:
    graph = onnx_io.load(write_model(net.text(y)))
    ctx = DetectionContext(build_layers(graph), graph)
    ctx.found["attention"] = AttentionDetector().detect(ctx)
    return ctx


def test_one_block_psa_follows_generation_evidence(write_model):
    net = Net()
    y = psa(net, "x", 8)
    ctx = _ctx(write_model, net, y)
    assert len(PSADetector().detect(ctx)) == 1 and not C2PSADetector().detect(ctx)
    ctx.found["c3k2"] = [BlockMatch(kind="c3k2", units=frozenset())]  # a YOLO11 graph
    assert not PSADetector().detect(ctx) and len(C2PSADetector().detect(ctx)) == 1
    ctx.found["scdown"] = [BlockMatch(kind="scdown", units=frozenset())]  # v10 wins
    assert len(PSADetector().detect(ctx)) == 1 and not C2PSADetector().detect(ctx)


def test_transformer_attention_with_weight_matmuls(write_model):
    text = """
    mha (float[1,16,8] x) => (float[1,16,8] y)
    <float[8,8] wq, float[8,8] wk, float[8,8] wv, float[8,8] wo>
    {
        q = MatMul (x, wq)
        k = MatMul (x, wk)
        v = MatMul (x, wv)
        kt = Transpose <perm = [0, 2, 1]> (k)
        s = MatMul (q, kt)
        r = Constant <value = float {2.0}> ()
        d = Div (s, r)
        p = Softmax <axis = -1> (d)
        o = MatMul (p, v)
        y = MatMul (o, wo)
    }
    """
    graph = onnx_io.load(write_model(text))
    ctx = DetectionContext(build_layers(graph), graph)
    (m,) = AttentionDetector().detect(ctx)
    assert sum(ctx.is_weighted(u) for u in m.units) == 4  # q, k, v and output projections


def test_masked_scores_softmax_in_the_mask_add(write_model):
    text = """
    masked (float[1,16,8] x, float[1,16,16] mask) => (float[1,16,8] y)
    <float[8,8] wq, float[8,8] wk>
    {
        q = MatMul (x, wq)
        k = MatMul (x, wk)
        kt = Transpose <perm = [0, 2, 1]> (k)
        s = MatMul (q, kt)
        a = Add (s, mask)
        p = Softmax <axis = -1> (a)
        y = MatMul (p, x)
    }
    """
    graph = onnx_io.load(write_model(text))
    assert len(AttentionDetector().detect(DetectionContext(build_layers(graph), graph))) == 1


def test_decomposed_softmax_counts(write_model):
    text = """
    expanded (float[1,16,8] x, float[1,16,8] z) => (float[1,16,8] y)
    {
        zt = Transpose <perm = [0, 2, 1]> (z)
        s = MatMul (x, zt)
        e = Exp (s)
        ax = Constant <value = int64[1] {-1}> ()
        r = ReduceSum <keepdims = 1> (e, ax)
        p = Div (e, r)
        y = MatMul (p, z)
    }
    """
    graph = onnx_io.load(write_model(text))
    assert len(AttentionDetector().detect(DetectionContext(build_layers(graph), graph))) == 1


def test_dfl_softmax_and_lone_softmax_are_not_attention(write_model):
    dfl = """
    dfl (float[1,64,100] x) => (float[1,4,100] y)
    <float[1,16,1,1] bins>
    {
        shp = Constant <value = int64[4] {1, 4, 16, 100}> ()
        r = Reshape (x, shp)
        t = Transpose <perm = [0, 2, 1, 3]> (r)
        p = Softmax <axis = 1> (t)
        c = Conv (p, bins)
        out = Constant <value = int64[3] {1, 4, 100}> ()
        y = Reshape (c, out)
    }
    """
    lone = """
    lone (float[1,16,8] x, float[1,16,8] z) => (float[1,16,16] y)
    {
        zt = Transpose <perm = [0, 2, 1]> (z)
        s = MatMul (x, zt)
        y = Softmax <axis = -1> (s)
    }
    """
    for text in (dfl, lone):
        graph = onnx_io.load(write_model(text))
        assert AttentionDetector().detect(DetectionContext(build_layers(graph), graph)) == []


def test_split_half_without_attention_or_c2f_concat_is_not_psa(write_model):
    net = Net()  # FFN residuals only
    first = net.conv("x", 8, 8)
    keep, b = net.split(first, 8)
    b = net.add(b, net.conv(net.conv(b, 4, 8), 8, 4, act=False))
    y = net.conv(net.cat(keep, b), 8, 8)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # C2f-style: both halves and the unit concatenated (C2fPSA, YOLO26 C3k2)
    first = net.conv("x", 8, 8)
    a, b = net.split(first, 8)
    u = psa_block(net, b, 4)
    y = net.conv(net.cat(a, b, u), 12, 8)
    assert counts(write_model, net, y, MINE) == {"attention": 1}


# --------------------------------------------------------------------------- A2C2f


def area_unit(net: Net, x: str, c: int) -> str:
    return psa_block(net, psa_block(net, x, c), c)


def c3k(net: Net, x: str, c: int) -> str:
    h = c // 2
    inner = net.conv(x, c, h)
    for _ in range(2):
        inner = net.add(inner, net.conv(net.conv(inner, h, h, 3), h, h, 3))
    return net.conv(net.cat(inner, net.conv(x, c, h)), c, c)


def a2c2f(net: Net, x: str, c: int, unit, n: int = 2, scaled: bool = False) -> str:
    taps = [net.conv(x, c, c // 2)]
    for _ in range(n):
        taps.append(unit(net, taps[-1], c // 2))
    y = net.conv(net.cat(*taps), (n + 1) * (c // 2), c)
    if scaled:  # x + γ·y: the learned per-channel γ folds into the conv
        net.decls.append(f"float[1,{c},1,1] gamma")
        net.lines.append(f"{y}g = Mul ({y}, gamma)")
        return net.add(x, f"{y}g")
    return y


def test_a2c2f_with_area_attention_units(write_model):
    net = Net()
    y = a2c2f(net, "x", 8, area_unit)
    assert counts(write_model, net, y, MINE) == {"attention": 4, "a2c2f": 1}


def test_a2c2f_with_c3k_units_and_scaled_residual(write_model):
    net = Net()
    y = a2c2f(net, "x", 8, c3k, n=1)
    assert counts(write_model, net, y, MINE) == {"a2c2f": 1}
    net = Net()
    y = a2c2f(net, "x", 8, c3k, n=1, scaled=True)
    graph = onnx_io.load(write_model(net.text(y)))
    ctx = DetectionContext(build_layers(graph), graph)
    (m,) = A2C2fDetector().detect(ctx)
    assert any(ctx.unit(u).op_type == "Add" and "x" in ctx.preds(u) for u in m.units)


def test_pool_chains_elan_and_c2f_are_not_a2c2f(write_model):
    net = Net()  # SPPF / SPPELAN: no weighted unit between taps
    first = net.conv("x", 8, 4)
    p1 = net.pool(first, 5)
    p2 = net.pool(p1, 5)
    y = net.conv(net.cat(first, p1, p2), 12, 8)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # ELAN-like: a second 1×1 branch from the input
    bypass = net.conv("x", 8, 4)
    t0 = net.conv("x", 8, 4)
    t1 = c3k(net, t0, 4)
    y = net.conv(net.cat(t0, t1, bypass), 12, 8)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # C2f: the first conv is split
    a, b = net.split(net.conv("x", 8, 8), 8)
    u = c3k(net, b, 4)
    y = net.conv(net.cat(a, b, u), 12, 8)
    assert counts(write_model, net, y, MINE) == {}
    net = Net()  # chain units without merges (HGNet / VoVNet aggregation)
    t0 = net.conv("x", 8, 4)
    t1 = net.conv(net.conv(t0, 4, 4, 3), 4, 4, 3)
    y = net.conv(net.cat(t0, t1), 8, 8)
    assert counts(write_model, net, y, MINE) == {}
