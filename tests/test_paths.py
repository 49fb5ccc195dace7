"""Gradient paths: brute-force enumeration is the oracle, closed forms pin the blocks."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphpath import onnx_io
from graphpath.errors import GraphpathError
from graphpath.formats.paths_text import render_paths_text
from graphpath.model.layers import LayerGraph, build_layers
from graphpath.paths.analysis import (
    EXACT_CAP,
    PathCount,
    analyze_paths,
    count_product,
    count_sum,
)
from tests.conftest import RESIDUAL

# --------------------------------------------------------------------------- oracle


def all_paths(g: LayerGraph, sources: Sequence[str], targets: Sequence[str]) -> Iterator[tuple[tuple[str, ...], int]]:
    """Every source→target path with its multiplicity (product of edge counts)."""
    tset = set(targets)

    def walk(path: list[str], mult: int) -> Iterator[tuple[tuple[str, ...], int]]:
        u = path[-1]
        if u in tset:
            yield tuple(path), mult
        for v in g.dag.successors(u):
            path.append(v)
            yield from walk(path, mult * g.edge_count(u, v))
            path.pop()

    for s in sources:
        yield from walk([s], 1)


def length(g: LayerGraph, path: Sequence[str]) -> int:
    return sum(1 for u in path if g.unit(u).weighted)


def brute_histogram(g: LayerGraph, sources: Sequence[str], targets: Sequence[str]) -> Counter[int]:
    hist: Counter[int] = Counter()
    for p, m in all_paths(g, sources, targets):
        hist[length(g, p)] += m
    return hist


def exact_bins(report_hist) -> dict[int, int]:
    assert report_hist.exact
    return {k: c.exact for k, c in report_hist.bins}


def lower_median(hist: Counter[int]) -> int:
    total, cum = sum(hist.values()), 0
    for k in sorted(hist):
        cum += hist[k]
        if 2 * cum >= total:
            return k
    raise AssertionError("empty histogram")


# --------------------------------------------------------------------------- builders


def residual_chain(n: int) -> LayerGraph:
    """x → n × (fork → conv → conv → add with the identity) → y."""
    edges, prev, weighted = [], "x", set()
    for b in range(n):
        a, c, s = f"b{b}.cv1", f"b{b}.cv2", f"b{b}.add"
        edges += [(prev, a), (a, c), (c, s), (prev, s)]
        weighted |= {a, c}
        prev = s
    edges.append((prev, "y"))
    return LayerGraph.from_edges(edges, weighted=weighted)


def c2f(n: int, shortcut: bool) -> LayerGraph:
    """YOLOv8 C2f: cv1 → split in two chunks (both feed the concat: edge count 2); the second
    chunk runs through n bottlenecks (conv → conv, optional + shortcut), every bottleneck's
    output feeds the concat too; concat → cv2."""
    edges = [("x", "cv1"), ("cv1", "split"), ("split", "cat"), ("split", "cat")]
    weighted = {"cv1", "cv2"}
    prev = "split"
    for i in range(n):
        a, b, out = f"m{i}.cv1", f"m{i}.cv2", f"m{i}.add" if shortcut else f"m{i}.cv2"
        edges += [(prev, a), (a, b)]
        if shortcut:
            edges += [(b, out), (prev, out)]
        weighted |= {a, b}
        edges.append((out, "cat"))
        prev = out
    edges += [("cat", "cv2"), ("cv2", "y")]
    return LayerGraph.from_edges(edges, weighted=weighted)


def elan(k: int) -> LayerGraph:
    """YOLOv7 ELAN with k taps: cv1 ‖ cv2 → m1 → … → m_{2(k-2)}; concat(cv1, cv2, m2, m4, …)
    → cv3."""
    edges = [("x", "cv1"), ("x", "cv2"), ("cv1", "cat"), ("cv2", "cat")]
    weighted = {"cv1", "cv2", "cv3"}
    prev = "cv2"
    for t in range(1, 2 * (k - 2) + 1):
        edges.append((prev, f"m{t}"))
        weighted.add(f"m{t}")
        prev = f"m{t}"
        if t % 2 == 0:
            edges.append((prev, "cat"))
    edges += [("cat", "cv3"), ("cv3", "y")]
    return LayerGraph.from_edges(edges, weighted=weighted)


def csp(b: int) -> LayerGraph:
    """YOLOv4/v5 BottleneckCSP: cv1 → b residual bottlenecks → cv3 ‖ cv2 (the bypass);
    concat → cv4."""
    edges = [("x", "cv1"), ("x", "cv2")]
    weighted = {"cv1", "cv2", "cv3", "cv4"}
    prev = "cv1"
    for i in range(b):
        a, c, s = f"m{i}.cv1", f"m{i}.cv2", f"m{i}.add"
        edges += [(prev, a), (a, c), (c, s), (prev, s)]
        weighted |= {a, c}
        prev = s
    edges += [(prev, "cv3"), ("cv3", "cat"), ("cv2", "cat"), ("cat", "cv4"), ("cv4", "y")]
    return LayerGraph.from_edges(edges, weighted=weighted)


# --------------------------------------------------------------------------- oracle tests


@st.composite
def small_dags(draw: st.DrawFn) -> LayerGraph:
    n = draw(st.integers(2, 8))
    edges = []
    for j in range(1, n):
        for i in range(j):
            edges += [(f"n{i}", f"n{j}")] * draw(st.sampled_from((0, 0, 0, 1, 1, 2)))
    weighted = {f"n{i}" for i in range(n) if draw(st.booleans())}
    if not edges:
        edges = [("n0", "n1")]
    return LayerGraph.from_edges(edges, weighted=weighted)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_dags())
def test_counts_and_histograms_match_enumeration(g: LayerGraph) -> None:
    r = analyze_paths(g)
    hist = brute_histogram(g, g.inputs, g.outputs)
    total = sum(hist.values())
    assert r.total.exact == total
    for o in r.per_output:
        h = brute_histogram(g, g.inputs, [o.output])
        assert o.paths.exact == sum(h.values())
        if h:
            assert o.histogram is not None and exact_bins(o.histogram) == dict(h)
            assert o.shortest.length == min(h) and o.longest.length == max(h)
            assert o.effective_depth.median == lower_median(h)
            assert o.effective_depth.mean == pytest.approx(sum(k * c for k, c in h.items()) / sum(h.values()))
            for w in (o.shortest, o.longest):  # a witness is a real path of the stated length
                assert w.path[0] in g.inputs and w.path[-1] == o.output
                assert all(g.dag.has_edge(u, v) for u, v in zip(w.path, w.path[1:], strict=False))
                assert length(g, w.path) == w.length
        else:
            assert o.paths.is_zero and o.shortest.length is None and o.histogram is None
    assert r.histogram is not None and exact_bins(r.histogram) == dict(hist)
    # per unit: paths in, paths out, paths through (with multiplicity), extremes to the outputs
    paths = list(all_paths(g, g.inputs, g.outputs))
    for uid in g.dag.nodes:
        u = r.unit(uid)
        assert u.through.exact == sum(m * p.count(uid) for p, m in paths)
        assert u.from_sources.exact == sum(m for _, m in all_paths(g, g.inputs, [uid]))
        tails = list(all_paths(g, [uid], g.outputs))
        assert u.to_outputs.exact == sum(m for _, m in tails)
        assert u.shortest == min((length(g, p) for p, _ in tails), default=None)
        assert u.longest == max((length(g, p) for p, _ in tails), default=None)
        for o, c in u.per_output:
            assert c.exact == sum(m for _, m in all_paths(g, [uid], [o]))


@settings(max_examples=60, deadline=None)
@given(small_dags(), st.data())
def test_from_and_to_match_enumeration(g: LayerGraph, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(sorted(g.dag.nodes)))
    target = data.draw(st.sampled_from(g.outputs))
    r = analyze_paths(g, source=source, target=target)
    hist = brute_histogram(g, [source], [target])
    assert r.sources == (source,) and r.targets == (target,)
    assert r.total.exact == sum(hist.values())
    if hist:
        assert r.histogram is not None and exact_bins(r.histogram) == dict(hist)
        assert (r.shortest.length, r.longest.length) == (min(hist), max(hist))
        assert r.shortest.path[0] == source


@settings(max_examples=60, deadline=None)
@given(small_dags())
def test_moments_agree_with_histogram(g: LayerGraph) -> None:
    """Without a histogram (budget 0) mean and std come from the moment recursion."""
    full, cheap = analyze_paths(g), analyze_paths(g, histogram_budget=0)
    assert cheap.total == full.total
    if cheap.histogram is None:  # some unit merged two histograms: over budget
        assert cheap.histogram_note and cheap.effective_depth.median is None
    if full.effective_depth.mean is not None:
        assert cheap.effective_depth.mean == pytest.approx(full.effective_depth.mean)
        assert cheap.effective_depth.std == pytest.approx(full.effective_depth.std, abs=1e-6)


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_residual_chain_is_an_ensemble(n: int) -> None:
    # Each block is skipped (0 weighted units) or taken (2): 2**n paths, and the number of
    # taken blocks is Binomial(n, 1/2): C(n, k) paths of length 2k, mean n, median n (2k=n).
    r = analyze_paths(residual_chain(n))
    assert r.total.exact == 2**n
    assert exact_bins(r.histogram) == {2 * k: math.comb(n, k) for k in range(n + 1)}
    assert r.effective_depth.mean == pytest.approx(n)
    assert r.effective_depth.std == pytest.approx(2 * math.sqrt(n / 4))
    assert (r.shortest.length, r.longest.length) == (0, 2 * n)
    assert r.shortest.path == ("x", *(f"b{b}.add" for b in range(n)), "y")
    # the first conv sees every path in front of it times every path behind it: 1 × 2**(n-1)
    assert r.unit("b0.cv1").through.exact == 2 ** (n - 1)
    assert (r.unit("b0.cv1").shortest, r.unit("b0.cv1").longest) == (2, 2 * n)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_c2f(n: int) -> None:
    # Without shortcut: the two split chunks reach the concat directly (edge count 2: 2 paths
    # of length cv1 + cv2 = 2), bottleneck i (1-based) adds one path of length 2 + 2i.
    # Total n + 2.
    r = analyze_paths(c2f(n, shortcut=False))
    assert r.total.exact == n + 2
    assert exact_bins(r.histogram) == {2: 2, **{2 + 2 * i: 1 for i in range(1, n + 1)}}
    # With shortcut: bottleneck i's output is reached by 2**i paths (each of the i bottlenecks
    # taken or skipped), so the total is 2 + Σ_{i=1..n} 2**i = 2**(n+1); C(i, k) of the paths
    # through bottleneck i take k of them: length 2 + 2k.
    r = analyze_paths(c2f(n, shortcut=True))
    assert r.total.exact == 2 ** (n + 1)
    expect: Counter[int] = Counter({2: 2})
    for i in range(1, n + 1):
        for k in range(i + 1):
            expect[2 + 2 * k] += math.comb(i, k)
    assert exact_bins(r.histogram) == dict(expect)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_elan(k: int) -> None:
    # One path per tap: cv1 → cv3 and cv2 → cv3 (length 2), then tap t of the k - 2 conv
    # pairs adds 2t: lengths 2 + 2t. k paths, shortest 2, longest 2 + 2(k - 2).
    r = analyze_paths(elan(k))
    assert r.total.exact == k
    assert exact_bins(r.histogram) == {2: 2, **{2 + 2 * t: 1 for t in range(1, k - 1)}}
    assert (r.shortest.length, r.longest.length) == (2, 2 + 2 * (k - 2))


def test_csp_split() -> None:
    # The bypass cv2 → cv4 is one path of length 2; the main branch cv1 → 3 bottlenecks → cv3
    # → cv4 has 2**3 paths of length 3 + 2k (cv1, cv3, cv4 plus k taken bottlenecks).
    r = analyze_paths(csp(3))
    assert r.total.exact == 9
    assert exact_bins(r.histogram) == {2: 1, 3: 1, 5: 3, 7: 3, 9: 1}
    assert r.shortest.path == ("x", "cv2", "cat", "cv4", "y")


def test_edge_multiplicity_multiplies() -> None:
    # Add(x, x): two data edges between the same units are two gradient paths.
    g = LayerGraph.from_edges([("x", "a"), ("a", "add"), ("a", "add"), ("add", "y")], weighted={"a"})
    assert g.edge_count("a", "add") == 2
    r = analyze_paths(g)
    assert r.total.exact == 2 and exact_bins(r.histogram) == {1: 2}


def test_weighted_source_counts() -> None:
    g = residual_chain(2)
    r = analyze_paths(g, source="b1.cv1")
    # b1.cv1 → b1.cv2 → b1.add → y: one path, two weighted units (the source included)
    assert r.total.exact == 1 and exact_bins(r.histogram) == {2: 1}
    r = analyze_paths(g, source="b0.add")
    assert r.total.exact == 2 and exact_bins(r.histogram) == {0: 1, 2: 1}


def test_beyond_the_cap_goes_to_log2() -> None:
    n = 200
    r = analyze_paths(residual_chain(n))
    assert r.total.exact is None
    assert r.total.log2 == pytest.approx(n, abs=1e-9)
    assert r.histogram is not None and not r.histogram.exact
    bins = dict(r.histogram.bins)
    peak = max(math.log2(math.comb(n, k)) for k in range(n + 1))
    for k in range(n + 1):
        lg = math.log2(math.comb(n, k))
        if lg >= peak - 48:  # the reported range
            assert bins[2 * k].log2 == pytest.approx(lg, abs=1e-9)
        else:
            assert 2 * k not in bins
    assert r.effective_depth.mean == pytest.approx(n, abs=1e-9)
    assert r.effective_depth.median == n
    assert r.unit("b0.cv1").through.log2 == pytest.approx(n - 1, abs=1e-9)
    # crossing the cap: 63 blocks stay exact (2**63 - 1 < cap is false: 2**63 == cap)
    assert analyze_paths(residual_chain(62)).total.exact == 2**62
    assert analyze_paths(residual_chain(63)).total.exact is None


def test_count_helpers() -> None:
    assert count_sum([PathCount.of(EXACT_CAP - 1), PathCount.of(1)]).exact is None
    assert count_sum([PathCount.of(EXACT_CAP - 1), PathCount.of(1)]).log2 == 63.0
    assert count_sum([]).to_dict() == {"count": 0, "log2": None}
    assert count_product(PathCount.of(3), PathCount.of(0)).is_zero
    assert count_product(PathCount.from_log2(10.5), PathCount.of(2)).log2 == 11.5


# --------------------------------------------------------------------------- real ONNX


def silu_chain(n: int) -> str:
    body, prev = [], "x"
    for i in range(n):
        body += [f"c{i} = Conv <kernel_shape = [1, 1]> ({prev}, w{i})",
                 f"s{i} = Sigmoid (c{i})", f"a{i} = Mul (c{i}, s{i})"]
        prev = f"a{i}"
    body.append(f"y = Identity ({prev})")
    weights = ", ".join(f"float[4,4,1,1] w{i}" for i in range(n))
    return f"chain (float[1,4,8,8] x) => (float[1,4,8,8] y)\n<{weights}>\n{{\n" + "\n".join(body) + "\n}\n"


def test_silu_chain_from_onnx_is_one_path(write_model) -> None:
    # In the op view each SiLU is a Sigmoid/Mul diamond (2 edges into Mul): 2**L raw paths.
    # The layer view folds the gate: one path through L weighted units.
    layers = build_layers(onnx_io.load(write_model(silu_chain(8))))
    r = analyze_paths(layers)
    assert r.total.exact == 1
    assert (r.shortest.length, r.longest.length) == (8, 8)
    assert exact_bins(r.histogram) == {8: 1}
    assert r.stage_basis == "resolution" and [s.stage for s in r.stages] == ["8x8"]
    # --from accepts a folded node's name: the Mul of the third SiLU belongs to the third conv
    conv = next(u.id for u in layers.units() if u.tensor == "a2")
    assert layers.unit(conv).nodes[-1] != conv
    r = analyze_paths(layers, source=layers.unit(conv).nodes[-1])
    assert r.sources == (conv,) and r.longest.length == 6


def test_residual_from_onnx_and_to_by_tensor_name(write_model) -> None:
    layers = build_layers(onnx_io.load(write_model(RESIDUAL)))
    r = analyze_paths(layers, target="y")  # the tensor name resolves to the unit output:y
    assert r.targets == ("output:y",)
    assert r.total.exact == 2 and exact_bins(r.histogram) == {0: 1, 2: 1}
    assert r.effective_depth.mean == 1.0 and r.effective_depth.median == 0


# --------------------------------------------------------------------------- options, output


def test_unknown_ids_name_close_matches() -> None:
    g = residual_chain(2)
    with pytest.raises(GraphpathError, match=r"unknown unit 'b0.cv3'.*b0.cv1"):
        analyze_paths(g, source="b0.cv3")
    with pytest.raises(GraphpathError, match=r"unknown output 'yy'.*close matches: y"):
        analyze_paths(g, target="yy")
    with pytest.raises(GraphpathError, match=r"unknown output 'b0.add'"):
        analyze_paths(g, target="b0.add")
    with pytest.raises(GraphpathError, match="unknown output"):
        analyze_paths(g, auxiliary=["aux"])
    with pytest.raises(GraphpathError, match="unknown unit"):
        analyze_paths(g).unit("nope")


def test_auxiliary_outputs_are_reported_apart() -> None:
    g = LayerGraph.from_edges([("x", "a"), ("a", "main"), ("x", "b"), ("b", "c"), ("c", "aux"), ("a", "c")],
                              weighted={"a", "b", "c"})
    r = analyze_paths(g, auxiliary=["aux"])
    roles = {o.output: o.role for o in r.per_output}
    assert roles == {"main": "main", "aux": "auxiliary"}
    assert dict(r.by_role)["main"].exact == 1 and dict(r.by_role)["auxiliary"].exact == 2
    assert r.total.exact == 3


def test_json_section_is_deterministic_and_finite() -> None:
    g = LayerGraph.from_edges([("x", "a"), ("a", "y"), ("x", "y"), ("z", "w")], weighted={"a"},
                              inputs=["x"], outputs=["y", "w"])
    d = analyze_paths(g).to_dict()
    text = json.dumps(d, sort_keys=True, allow_nan=False)
    assert text == json.dumps(analyze_paths(g).to_dict(), sort_keys=True, allow_nan=False)
    assert set(d) >= {"total", "per_output", "length_histogram", "shortest", "longest", "effective_depth"}
    assert d["total"] == {"count": 2, "log2": 1.0}
    assert d["per_output"]["w"]["paths"] == {"count": 0, "log2": None}  # unreachable: log2 null
    assert d["per_output"]["w"]["effective_depth"] == {"mean": None, "median": None, "std": None}
    assert d["length_histogram"]["bins"] == [{"length": 0, "count": 1, "log2": 0.0},
                                             {"length": 1, "count": 1, "log2": 0.0}]
    big = analyze_paths(residual_chain(100)).to_dict()
    json.dumps(big, allow_nan=False)
    assert big["total"] == {"count": None, "log2": 100.0}


def test_text_renderer() -> None:
    text = render_paths_text(analyze_paths(residual_chain(30)))
    assert text.startswith("gradient paths: 1073741824 (from x to y)\n")
    assert "effective depth: mean 30.00, median 30" in text
    assert "more" in text  # the 92-unit witness is shortened
    assert "2^" in render_paths_text(analyze_paths(residual_chain(70)))


MODELS = sorted((Path(__file__).resolve().parent.parent / "models").glob("*.onnx"))


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_every_reference_model_gives_finite_reproducible_paths(path: Path) -> None:
    """Byte-identical JSON from two independent loads, no NaN/Inf anywhere, a histogram that
    adds up to the total."""
    def dump() -> str:
        return json.dumps(analyze_paths(build_layers(onnx_io.load(path))).to_dict(),
                          sort_keys=True, allow_nan=False)

    first = dump()
    assert first == dump()
    data = json.loads(first)
    assert data["total"]["log2"] is not None and data["total"]["log2"] >= 0
    hist = data["length_histogram"]
    if hist is not None and hist["exact"] and data["total"]["count"] is not None:
        assert sum(b["count"] for b in hist["bins"]) == data["total"]["count"]
