"""CSP-family detectors (csp, c2f, c3k2, c2fcib) on the smallest graphs."""

from __future__ import annotations

from graphpath.blocks import block_counts
from tests.blocks.test_residual import Net, counts, family_matches


def bottleneck(n: Net, x: str, hidden: int, shortcut: bool = True) -> str:
    c = n.channels[x]
    y = n.conv(n.conv(x, hidden, 3), c, 3)
    return n.add(x, y) if shortcut else y


def c3(n: Net, x: str, c2: int, units: int = 1, pool: bool = False) -> str:
    """C3 / C3k: cv1 1×1 → bottlenecks ‖ cv2 1×1 → cat → cv3 1×1."""
    h = c2 // 2
    y = n.conv(x, h, 1)
    for _ in range(units):
        y = bottleneck(n, y, h)
    if pool:
        y = n.op(f"mp = MaxPool <kernel_shape = [5, 5], pads = [2, 2, 2, 2]> ({y})", "mp", h)
    return n.conv(n.cat(y, n.conv(x, h, 1)), c2, 1)


def c2f(n: Net, x: str, c2: int, unit, units: int = 1, slices: bool = False) -> str:
    """cv1 1×1 → split in 2 → ``units`` chained units → cat of 2 + units → cv2 1×1."""
    y = n.conv(x, c2, 1)
    a, b = n.slices2(y) if slices else n.split2(y)
    outs = [a, b]
    for _ in range(units):
        outs.append(unit(n, outs[-1]))
    return n.conv(n.cat(*outs), c2, 1)


def cib(n: Net, x: str) -> str:
    c = n.channels[x]
    y = n.conv(x, c, 3, group=c)
    y = n.conv(y, 2 * c, 1)
    y = n.conv(y, 2 * c, 7, group=2 * c)
    y = n.conv(y, c, 1)
    return n.add(x, n.conv(y, c, 3, group=c))


# --------------------------------------------------------------------------- csp


def test_c3_is_one_csp_holding_its_residual(write_model):
    n = Net(8)
    found = family_matches(write_model(n.text(c3(n, n.x, 8, units=2))))
    assert block_counts(found) == {"csp": 1, "residual": 2}
    assert [m.kind for m in found] == ["csp"]
    assert dict(found[0].structure)["residual_bottlenecks"] == 2


def test_cspdarknet_stage_with_transition_conv_is_csp(write_model):
    n = Net(8)
    body = n.conv(bottleneck(n, n.conv(n.x, 4, 1), 4), 4, 1)  # main half ends in a 1×1
    y = n.conv(n.cat(body, n.conv(n.x, 4, 1)), 8, 1)
    assert counts(write_model, n.text(y)) == {"csp": 1, "residual": 1}


def test_v5_bottleneck_csp_with_activation_after_the_cat_is_csp(write_model):
    n = Net(8)
    main = n.conv(bottleneck(n, n.conv(n.x, 4, 1), 4), 4, 1, act=False)  # cv3: plain conv
    cat = n.cat(main, n.conv(n.x, 4, 1, act=False))  # cv2: plain conv
    act = n.op(f"lr = LeakyRelu <alpha = 0.1> ({cat})", "lr", 8)  # BN + act of the cat
    y = n.conv(act, 8, 1)
    assert counts(write_model, n.text(y)) == {"csp": 1, "residual": 1}


def gate(n: Net, x: str, *, pool: bool = False, hard: bool = True) -> str:
    """A channel-attention gate on ``x``: mean over H, W (ReduceMean, or GlobalAveragePool) → 1×1
    conv with bias → hard sigmoid (EffectiveSE) or sigmoid (SE) → × ``x``."""
    c = n.channels[x]
    m, w, b, g, s, y = (n._name(t) for t in ("m", "wg", "bg", "g", "gs", "gx"))
    n.inits += [f"float[{c},{c},1,1] {w}", f"float[{c}] {b}"]
    mean = f"{m} = GlobalAveragePool ({x})" if pool else f"{m} = ReduceMean <axes = [2, 3], keepdims = 1> ({x})"
    act = f"{s} = HardSigmoid <alpha = 0.1666667, beta = 0.5> ({g})" if hard else f"{s} = Sigmoid ({g})"
    n.lines += [mean, f"{g} = Conv <kernel_shape = [1, 1]> ({m}, {w}, {b})", act, f"{y} = Mul ({x}, {s})"]
    n.channels[y] = c
    return y


def test_channel_attention_gate_between_cat_and_conv_is_still_csp(write_model):
    """PP-YOLOE's CSPResStage (ppdet/modeling/backbones/cspresnet.py): conv1 1×1 ‖ conv2 1×1 →
    BasicBlock → cat → EffectiveSE → conv3 1×1. The gate is part of the block; with either
    mean (folded ReduceMean or a GlobalAveragePool unit) and either gate activation."""
    for pool, hard in ((False, True), (True, False)):
        n = Net(8)
        body = bottleneck(n, n.conv(n.x, 4, 1), 4)
        cat = n.cat(n.conv(n.x, 4, 1), body)
        y = n.conv(gate(n, cat, pool=pool, hard=hard), 8, 1)
        found = family_matches(write_model(n.text(y)))
        assert block_counts(found) == {"csp": 1, "residual": 1}, (pool, hard)
        structure = dict(found[0].structure)
        assert structure["gate"] == "channel attention" and structure["residual_bottlenecks"] == 1
        # body (conv2, 2 bottleneck convs, add), bypass, cat, post conv; gate conv, Mul (+ the pool)
        assert len(found[0].units) == 4 + 1 + 1 + 1 + 2 + pool


def test_gate_whose_product_feeds_more_than_the_conv_is_not_csp(write_model):
    """The gated cat must be fused by one conv: a product that also leaves the block is not a
    CSP stage's fusion."""
    n = Net(8)
    cat = n.cat(n.conv(n.x, 4, 1), bottleneck(n, n.conv(n.x, 4, 1), 4))
    gated = gate(n, cat)
    assert "csp" not in counts(write_model, n.text(n.conv(gated, 8, 1), gated))


def test_pooling_inside_the_split_is_not_csp(write_model):
    n = Net(8)
    assert counts(write_model, n.text(c3(n, n.x, 8, pool=True))) == {"residual": 1}


def test_concat_of_unrelated_features_is_not_csp(write_model):
    n = Net(8)
    other = n.op("p = MaxPool <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x)", "p", 8)
    main = bottleneck(n, n.conv(n.x, 4, 1), 4)
    y = n.conv(n.cat(main, n.conv(other, 4, 1)), 8, 1)
    assert counts(write_model, n.text(y)) == {"residual": 1}


# --------------------------------------------------------------------------- C2f family


def test_c2f_with_full_width_bottlenecks(write_model):
    n = Net(8)
    y = c2f(n, n.x, 8, lambda n, x: bottleneck(n, x, 4), units=2)
    found = family_matches(write_model(n.text(y)))
    assert block_counts(found) == {"c2f": 1, "residual": 2}
    assert dict(found[0].structure)["hidden_ratio"] == 1.0


def test_c2f_from_two_slices_and_without_shortcut(write_model):
    n = Net(8)
    y = c2f(n, n.x, 8, lambda n, x: bottleneck(n, x, 4, shortcut=False), slices=True)
    assert counts(write_model, n.text(y)) == {"c2f": 1}


def test_halved_bottlenecks_make_it_c3k2(write_model):
    n = Net(8)
    y = c2f(n, n.x, 8, lambda n, x: bottleneck(n, x, 2))
    assert counts(write_model, n.text(y)) == {"c3k2": 1, "residual": 1}


def test_c3k_units_make_it_c3k2_with_nested_csp(write_model):
    n = Net(8)
    y = c2f(n, n.x, 8, lambda n, x: c3(n, x, 4, units=2))
    found = family_matches(write_model(n.text(y)))
    assert block_counts(found) == {"c3k2": 1, "csp": 1, "residual": 2}
    assert [c.kind for c in found[0].children] == ["csp"]


def test_cib_units_make_it_c2fcib(write_model):
    n = Net(8)
    y = c2f(n, n.x, 8, cib)
    assert counts(write_model, n.text(y)) == {"c2fcib": 1, "residual": 1}


def test_gelan_like_units_are_not_c2f(write_model):
    n = Net(8)
    y = c2f(n, n.x, 8, lambda n, x: n.conv(c3(n, x, 4), 4, 3), units=2)
    assert counts(write_model, n.text(y)) == {"csp": 2, "residual": 2}


def test_cat_of_one_half_and_the_unit_is_not_c2f(write_model):
    n = Net(8)
    a, b = n.split2(n.conv(n.x, 8, 1))
    y = n.conv(n.cat(a, bottleneck(n, b, 4)), 8, 1)  # PSA/C2PSA wiring
    assert counts(write_model, n.text(y)) == {"residual": 1}


def test_undecided_bottleneck_blocks_defer_to_the_graph():
    from graphpath.blocks.csp import C2fLike

    def block(kinds: tuple[str, ...], ratio: float | None) -> C2fLike:
        return C2fLike(units=frozenset(), unit_kinds=kinds, hidden_ratio=ratio, halves="split")

    assert block(("bottleneck",), 1.0).kind() == "c2f"
    assert block(("bottleneck",), 0.5).kind() == "c3k2"
    assert block(("bottleneck",), None).kind() is None  # channels unknown: the graph decides
    assert block(("c3k",), None).kind() == "c3k2"
    assert block(("cib", "cib"), None).kind() == "c2fcib"
