"""The layer view: folding of activations and transparent ops, shape arithmetic, merges."""

from __future__ import annotations

from graphpath import onnx_io
from graphpath.model.layers import LayerGraph, build_layers, depth, unit_counts
from tests.conftest import RESIDUAL


def layers_of(write_model, text: str) -> LayerGraph:
    return build_layers(onnx_io.load(write_model(text)))


def kinds(layers: LayerGraph) -> dict[str, int]:
    return {k: n for k, n in unit_counts(layers).items() if n}


def test_residual_block_is_two_weighted_units_and_one_merge(write_model):
    lay = layers_of(write_model, RESIDUAL)
    assert kinds(lay) == {"input": 1, "output": 1, "weighted": 2, "merge": 1}
    add = next(u for u in lay.units() if u.kind == "merge")
    assert add.op_type == "Add"
    # One operand of the add is the fork itself (the identity shortcut).
    second_conv = [u for u in lay.units() if u.weighted][1]
    assert set(lay.dag.predecessors(add.id)) == {"x", second_conv.id}
    assert depth(lay) == 2
    assert {u.activation for u in lay.units() if u.weighted} == {"silu"}


def _activation_graph(body: str) -> str:
    return f"""
    act (float[1,4,8,8] x) => (float[1,4,8,8] y)
    <float[4,4,1,1] w>
    {{
        c = Conv <kernel_shape = [1, 1]> (x, w)
        {body}
    }}
    """


def test_silu_mish_hardswish_gelu_fold_into_one_unit_each(write_model):
    bodies = {
        "silu": "s = Sigmoid (c)\n y = Mul (c, s)",
        "mish": "sp = Softplus (c)\n t = Tanh (sp)\n y = Mul (c, t)",
        "hardswish": "h = HardSigmoid <alpha = 0.1666667, beta = 0.5> (c)\n y = Mul (c, h)",
        "gelu": ("r = Constant <value = float {1.4142135}> ()\n d = Div (c, r)\n e = Erf (d)\n"
                 " one = Constant <value = float {1.0}> ()\n p = Add (e, one)\n m = Mul (c, p)\n"
                 " half = Constant <value = float {0.5}> ()\n y = Mul (m, half)"),
    }
    for name, body in bodies.items():
        lay = layers_of(write_model, _activation_graph(body))
        assert kinds(lay) == {"input": 1, "output": 1, "weighted": 1}, name
        conv = next(u for u in lay.units() if u.weighted)
        assert conv.activation == name
        assert len(conv.nodes) > 1  # the activation's nodes are listed on the unit


def test_a_product_with_a_constant_is_no_activation_gate(write_model):
    """YOLOv7's ImplicitM (conv · learned scale) before the decode sigmoid is no SiLU."""
    body = "k = Constant <value = float[1,4,1,1] {1.0, 2.0, 3.0, 4.0}> ()\n m = Mul (c, k)\n y = Sigmoid (m)"
    conv = next(u for u in layers_of(write_model, _activation_graph(body)).units() if u.weighted)
    assert conv.activation == "sigmoid"


def test_a_slice_that_keeps_everything_is_transparent(write_model):
    """Darknet route layers export as ``x[:, 0:C]``: no split, the pool reads the conv itself."""
    body = ("st = Constant <value = int64[1] {0}> ()\n en = Constant <value = int64[1] {4}> ()\n"
            " ax = Constant <value = int64[1] {1}> ()\n s = Slice (c, st, en, ax)\n"
            " y = MaxPool <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (s)")
    lay = layers_of(write_model, _activation_graph(body))
    assert kinds(lay) == {"input": 1, "output": 1, "weighted": 1, "pool": 1}
    half = body.replace("{4}", "{2}")  # channels 0-1 only: a real split
    assert "split" in kinds(layers_of(write_model, _activation_graph(half)))


def test_chunk_shape_arithmetic_add_is_shape_and_never_a_merge(write_model):
    # What `.chunk(2, 1)` exports to with dynamic shapes: Shape→Gather→Add→Div→Slice.
    text = """
    chunk (float[1,8,4,4] x) => (float[1,4,4,4] y)
    <float[8,8,1,1] w>
    {
        c = Conv <kernel_shape = [1, 1]> (x, w)
        shp = Shape (c)
        idx = Constant <value = int64 {1}> ()
        ch = Gather <axis = 0> (shp, idx)
        one = Constant <value = int64 {1}> ()
        ch1 = Add (ch, one)
        two = Constant <value = int64 {2}> ()
        half = Div (ch1, two)
        st = Constant <value = int64[1] {0}> ()
        en = Unsqueeze (half, st)
        ax = Constant <value = int64[1] {1}> ()
        y = Slice (c, st, en, ax)
    }
    """
    path = write_model(text)
    graph = onnx_io.load(path)
    add = next(op for op in graph.ops() if op.op_type == "Add")
    assert graph.is_shape(add.outputs[0])
    kinds_of_edges = {graph.dag.edges[e]["kind"] for e in graph.dag.in_edges(add.name)}
    assert kinds_of_edges == {"shape"}
    lay = build_layers(graph)
    assert kinds(lay) == {"input": 1, "output": 1, "weighted": 1, "split": 1}
    assert all(add.name not in u.nodes for u in lay.units())


def test_identity_aliased_initializer_gives_each_consumer_its_weight(write_model):
    text = """
    alias (float[1,4,8,8] x) => (float[1,4,8,8] y)
    <float[4,4,1,1] w>
    {
        wa = Identity (w)
        c1 = Conv <kernel_shape = [1, 1]> (x, w)
        c2 = Conv <kernel_shape = [1, 1]> (c1, wa)
        y = Relu (c2)
    }
    """
    graph = onnx_io.load(write_model(text))
    lay = build_layers(graph)
    convs = [u for u in lay.units() if u.weighted]
    assert len(convs) == 2 and all(u.params == 16 for u in convs)
    assert depth(lay) == 2
    from graphpath.model.summary import summarize_model

    summary = summarize_model(graph)
    assert summary.shared_parameters == (("w", 2),)
    assert summary.parameter_count == 16  # counted once


def test_concat_of_one_data_tensor_and_a_constant_is_folded(write_model):
    text = """
    cat (float[1,4,8,8] x) => (float[1,8,8,8] y)
    <float[4,4,1,1] w, float[1,4,8,8] tok>
    {
        c = Conv <kernel_shape = [1, 1]> (x, w)
        y = Concat <axis = 1> (c, tok)
    }
    """
    assert kinds(layers_of(write_model, text)) == {"input": 1, "output": 1, "weighted": 1}


def test_attention_matmul_of_two_data_tensors_is_a_merge_and_weight_matmul_is_weighted(write_model):
    text = """
    attn (float[1,16,8] x) => (float[1,16,8] y)
    <float[8,8] wq, float[8,8] wk, float[8,8] wv>
    {
        q = MatMul (x, wq)
        k = MatMul (x, wk)
        v = MatMul (x, wv)
        kt = Transpose <perm = [0, 2, 1]> (k)
        s = MatMul (q, kt)
        p = Softmax <axis = -1> (s)
        y = MatMul (p, v)
    }
    """
    lay = layers_of(write_model, text)
    assert kinds(lay) == {"input": 1, "output": 1, "weighted": 3, "merge": 2}
    scores = next(u for u in lay.units() if u.kind == "merge" and u.activation == "softmax")
    assert scores.op_type == "MatMul"


def test_parallel_edges_are_counted(write_model):
    text = """
    twice (float[1,4,8,8] x) => (float[1,8,8,8] y)
    <float[4,4,1,1] w>
    {
        c = Conv <kernel_shape = [1, 1]> (x, w)
        y = Concat <axis = 1> (c, c)
    }
    """
    lay = layers_of(write_model, text)
    cat = next(u for u in lay.units() if u.kind == "merge")
    conv = next(u for u in lay.units() if u.weighted)
    assert lay.edge_count(conv.id, cat.id) == 2
