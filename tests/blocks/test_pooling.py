"""SPP, SPPF, SPPCSPC, SPPELAN, MP, ADown and SCDown detectors on the smallest graphs that
show them, and near-misses."""

from __future__ import annotations

from tests.blocks.test_elan import Net, counts, detect, gelan

MINE = ("mp", "gelan", "adown", "spp", "sppf", "sppcspc", "sppelan", "scdown")


def sppf(net: Net, x: str, c: int) -> str:
    first = net.conv(x, c, c // 2)
    p1 = net.pool(first, 5)
    p2 = net.pool(p1, 5)
    p3 = net.pool(p2, 5)
    return net.conv(net.cat(first, p1, p2, p3), 2 * c, c)


def spp(net: Net, x: str, c: int, ks: tuple[int, ...] = (5, 9, 13)) -> str:
    first = net.conv(x, c, c // 2)
    pools = [net.pool(first, k) for k in ks]
    return net.conv(net.cat(*pools, first), (len(ks) + 1) * (c // 2), c)


def test_sppf_chained_pools(write_model):
    net = Net()
    y = sppf(net, "x", 8)
    (m,) = [m for m in detect(write_model, net, y) if m.kind == "sppf"]
    assert len(m.units) == 6  # both convs, three pools, the Concat
    assert counts(write_model, net, y, MINE) == {"sppf": 1}


def test_spp_parallel_pools(write_model):
    net = Net()
    y = spp(net, "x", 8)
    assert counts(write_model, net, y, MINE) == {"spp": 1}


def test_pools_of_equal_kernel_or_foreign_inputs_are_not_spp(write_model):
    net = Net()
    y = spp(net, "x", 8, ks=(5, 5, 5))
    assert counts(write_model, net, y, MINE) == {}
    net = Net()
    a, b = net.conv("x", 8, 4), net.conv("x", 8, 4)
    y = net.conv(net.cat(a, net.pool(b, 5), net.pool(b, 9)), 12, 8)
    assert counts(write_model, net, y, MINE) == {}


def test_sppf_graph_in_a_gelan_model_is_sppelan(write_model):
    net = Net()
    y = sppf(net, gelan(net, "x", 8), 8)
    assert counts(write_model, net, y, MINE) == {"gelan": 1, "sppelan": 1}


def csp_wrapped(net: Net, x: str, c: int, chained: bool) -> str:
    inner = net.conv(net.conv(net.conv(x, c, c), c, c, 3), c, c)
    if chained:
        p1 = net.pool(inner, 5)
        p2 = net.pool(p1, 5)
        cat = net.cat(inner, p1, p2, net.pool(p2, 5))
    else:
        cat = net.cat(inner, *(net.pool(inner, k) for k in (5, 9, 13)))
    main = net.conv(net.conv(cat, 4 * c, c), c, c, 3)
    return net.conv(net.cat(main, net.conv(x, c, c)), 2 * c, c)


def test_sppcspc_parallel_and_chained_forms(write_model):
    for chained in (False, True):
        net = Net()
        y = csp_wrapped(net, "x", 8, chained)
        assert counts(write_model, net, y, MINE) == {"sppcspc": 1}, chained


def mp(net: Net, x: str, c: int, extra: str | None = None) -> str:
    pooled = net.conv(net.pool(x, 2, 2), c, c // 2)
    strided = net.conv(net.conv(x, c, c // 2), c // 2, c // 2, 3, 2)
    return net.cat(strided, pooled, *([extra] if extra else []))


def test_mp_alone_and_fused_with_a_pan_concat(write_model):
    net = Net()
    y = mp(net, "x", 8)
    assert counts(write_model, net, y, MINE) == {"mp": 1}
    net = Net()
    top = net.conv("x", 8, 8, 3, 2)
    y = mp(net, "x", 8, extra=top)
    (m,) = [m for m in detect(write_model, net, y) if m.kind == "mp"]
    assert dict(m.structure)["concat_inputs"] == 3 and len(m.units) == 5


def test_pool_and_strided_conv_from_different_inputs_are_not_mp(write_model):
    net = Net()
    other = net.conv("x", 8, 8)
    pooled = net.conv(net.pool("x", 2, 2), 8, 4)
    strided = net.conv(net.conv(other, 8, 4), 4, 4, 3, 2)
    y = net.cat(strided, pooled)
    assert counts(write_model, net, y, MINE) == {}


def adown(net: Net, x: str, c: int, split: str = "slices", extra: str | None = None) -> str:
    avg = net.pool(x, 2, 1, op="AveragePool")
    a, b = net.split(avg, c) if split == "split" else net.slices(avg, c)
    left = net.conv(a, c // 2, c // 2, 3, 2)
    right = net.conv(net.pool(b, 3, 2), c // 2, c // 2)
    return net.cat(left, right, *([extra] if extra else []))


def test_adown_with_slices_and_with_split_fused_into_pan_concat(write_model):
    net = Net()
    y = adown(net, "x", 8)
    assert counts(write_model, net, y, MINE) == {"adown": 1}
    net = Net()
    top = net.conv("x", 8, 8, 3, 2)
    y = adown(net, "x", 8, split="split", extra=top)
    assert counts(write_model, net, y, MINE) == {"adown": 1}


def test_sppf_graph_in_an_adown_model_is_sppelan(write_model):
    net = Net()
    y = sppf(net, net.conv(adown(net, "x", 8), 8, 8), 8)
    assert counts(write_model, net, y, MINE) == {"adown": 1, "sppelan": 1}


def test_scdown_and_its_near_misses(write_model):
    net = Net()
    y = net.conv(net.conv("x", 8, 16), 16, 16, 3, 2, g=16, act=False)
    assert counts(write_model, net, y, MINE) == {"scdown": 1}
    for stride, act, groups in ((2, True, 16), (1, False, 16), (2, False, 1)):
        net = Net()
        y = net.conv(net.conv("x", 8, 16), 16, 16, 3, stride, g=groups, act=act)
        assert counts(write_model, net, y, MINE) == {}, (stride, act, groups)
