"""The torch evaluator: forward against onnxruntime, gradients against finite differences.

Every op case is one tiny graph written as ONNX text. Each is checked (a) forward against
onnxruntime in float32 and (b), for differentiable cases, with ``torch.autograd.gradcheck``
(central finite differences in float64) w.r.t. every float input and every parameter.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphpath.errors import GraphpathError
from tests.conftest import RESIDUAL, parse

torch = pytest.importorskip("torch")

from graphpath.numeric import Evaluator, check_parity, require_parity  # noqa: E402

X = "float[1,2,4,4] x"


def text(body: str, *, inputs: str = X, init: str = "", outputs: str = "float y", opset: int = 17) -> str:
    init_part = f"<{init}>" if init else ""
    return (f'<ir_version: 8, opset_import: ["" : {opset}]>\n'
            f"g ({inputs}) => ({outputs}) {init_part} {{\n{body}\n}}")


def model(src: str) -> onnx.ModelProto:
    proto = parse(src)
    for o in proto.graph.output:  # ONNX text "float y" declares rank 0; leave outputs unshaped
        o.type.tensor_type.ClearField("shape")
    return proto


# (id, ONNX text, input kind, differentiable) — input kind: "normal", "pos" (in [0.5, 1.5]).
CASES: list[tuple[str, str, str, bool]] = [
    # convolution and linear layers
    ("conv_asym_pads", text("y = Conv <kernel_shape=[3,3], pads=[1,0,0,1], strides=[2,1]> (x, w, b)",
                            inputs="float[1,2,5,5] x", init="float[3,2,3,3] w, float[3] b"), "normal", True),
    ("conv_group_dilation", text("y = Conv <group=2, dilations=[2,2], pads=[2,2,2,2]> (x, w)",
                                 inputs="float[1,4,5,5] x", init="float[4,2,3,3] w"), "normal", True),
    ("conv_same_upper", text('y = Conv <auto_pad="SAME_UPPER", strides=[2,2]> (x, w)',
                             inputs="float[1,2,5,5] x", init="float[3,2,3,3] w"), "normal", True),
    ("conv1d", text("y = Conv <pads=[1,1]> (x, w)", inputs="float[1,2,6] x", init="float[3,2,3] w"),
     "normal", True),
    ("conv_transpose", text("y = ConvTranspose <strides=[2,2], pads=[1,1,0,0], output_padding=[1,0]> (x, w, b)",
                            inputs="float[1,2,2,3] x", init="float[2,2,3,3] w, float[2] b"), "normal", True),
    ("conv_transpose_group", text("y = ConvTranspose <strides=[2,2], group=2> (x, w)",
                                  inputs="float[1,4,2,2] x", init="float[4,1,2,2] w"), "normal", True),
    ("conv_transpose_output_shape",
     text("y = ConvTranspose <strides=[2,2], output_shape=[4,5], kernel_shape=[3,3]> (x, w, b)",
          inputs="float[1,2,2,2] x", init="float[2,1,3,3] w, float[1] b"), "normal", True),
    ("gemm", text("y = Gemm <transB=1, alpha=0.5, beta=2.0> (x, w, c)", inputs="float[2,3] x",
                  init="float[4,3] w, float[4] c"), "normal", True),
    ("gemm_transA", text("y = Gemm <transA=1> (x, w)", inputs="float[3,2] x", init="float[3,4] w"), "normal", True),
    ("matmul", text("y = MatMul (x, w)", inputs="float[1,2,3,4] x", init="float[4,5] w"), "normal", True),
    ("matmul_data", text("t = Transpose <perm=[0,1,3,2]> (x)\ny = MatMul (x, t)"), "normal", True),
    ("batchnorm", text("y = BatchNormalization <epsilon=0.001> (x, s, b, m, v)",
                       init="float[2] s, float[2] b, float[2] m, float[2] v = {0.5, 1.5}"), "normal", True),
    ("instancenorm", text("y = InstanceNormalization (x, s, b)", init="float[2] s, float[2] b"), "normal", True),
    ("layernorm", text("y = LayerNormalization (x, s, b)", init="float[4] s, float[4] b"), "normal", True),
    ("layernorm_axis1", text("y = LayerNormalization <axis=1> (x, s)", init="float[2,4,4] s"), "normal", True),
    ("einsum", text('y = Einsum <equation="bchw,dc->bdhw"> (x, w)', init="float[3,2] w"), "normal", True),
    # activations and unary math
    *[(op.lower(), text(f"y = {op} (x)"), "normal", True)
      for op in ("Relu", "Sigmoid", "Tanh", "Softplus", "Softsign", "HardSwish", "Erf", "Exp", "Neg",
                 "Abs", "Sin", "Cos")],
    ("mish", text("y = Mish (x)", opset=18), "normal", True),
    ("gelu", text("y = Gelu (x)", opset=20), "normal", True),
    ("gelu_tanh", text('y = Gelu <approximate="tanh"> (x)', opset=20), "normal", True),
    ("hardsigmoid", text("y = HardSigmoid <alpha=0.3, beta=0.4> (x)"), "normal", True),
    ("leakyrelu", text("y = LeakyRelu <alpha=0.1> (x)"), "normal", True),
    ("elu", text("y = Elu <alpha=0.7> (x)"), "normal", True),
    ("prelu", text("y = PRelu (x, w)", init="float[2,1,1] w"), "normal", True),
    *[(op.lower(), text(f"y = {op} (x)"), "pos", True) for op in ("Log", "Sqrt", "Reciprocal")],
    *[(op.lower(), text(f"y = {op} (x)"), "normal", False) for op in ("Floor", "Ceil", "Round", "Sign")],
    ("clip_inputs", text("y = Clip (x, lo, hi)", init="float lo = {-0.3}, float hi = {0.4}"), "normal", True),
    ("clip_min_only", text("y = Clip (x, lo)", init="float lo = {-0.3}"), "normal", True),
    ("clip_attrs_opset6", text("y = Clip <min=-0.3, max=0.4> (x)", opset=6), "normal", True),
    ("softmax", text("y = Softmax <axis=1> (x)"), "normal", True),
    ("softmax_opset11_coerced", text("y = Softmax (x)", opset=11), "normal", True),
    ("logsoftmax", text("y = LogSoftmax <axis=-1> (x)"), "normal", True),
    # binary and variadic with broadcasting
    *[(op.lower(), text(f"y = {op} (x, w)", init="float[2,1,1] w"), "normal", True) for op in ("Add", "Sub", "Mul")],
    ("div", text("y = Div (w, x)", init="float[2,1,1] w"), "pos", True),
    ("pow", text("y = Pow (x, w)", init="float[2,1,1] w"), "pos", True),
    ("pow_int_exponent", text("y = Pow (x, e)", init="int64 e = {3}"), "normal", True),
    ("min", text("y = Min (x, w, z)", init="float[2,1,1] w, float[4] z"), "normal", True),
    ("max", text("y = Max (x, w)", init="float[2,1,1] w"), "normal", True),
    ("sum", text("y = Sum (x, w, x)", init="float[2,1,1] w"), "normal", True),
    ("mean", text("y = Mean (x, w)", init="float[2,1,1] w"), "normal", True),
    ("where_compare", text("c1 = Less (x, lo)\nc2 = Not (c1)\nc3 = Greater (x, hi)\nc4 = And (c2, c3)\n"
                           "y = Where (c4, x, w)", init="float lo = {-0.2}, float hi = {0.1}, float[4] w"),
     "normal", True),
    ("equal_cast", text("r = Round (x)\ne = Equal (r, z)\nf = Cast <to=1> (e)\ny = Mul (f, x)",
                        init="float z = {0.0}"), "normal", True),
    ("cast_identity_dropout", text("c = Cast <to=1> (x)\ni = Identity (c)\ny = Dropout (i)"), "normal", True),
    # layout
    ("concat", text("y = Concat <axis=1> (x, w, x)", init="float[1,1,4,4] w"), "normal", True),
    ("split_attr", text("a, b = Split <axis=1, split=[1,3]> (x)", inputs="float[1,4,2,2] x",
                        outputs="float a, float b", opset=11), "normal", True),
    ("split_input", text("a, b = Split <axis=1> (x, s)", inputs="float[1,4,2,2] x", init="int64[2] s = {3, 1}",
                         outputs="float a, float b"), "normal", True),
    ("split_equal", text("a, b = Split <axis=-1> (x)", outputs="float a, float b"), "normal", True),
    ("split_num_outputs", text("a, b = Split <axis=1, num_outputs=2> (x)", inputs="float[1,5,2,2] x",
                               outputs="float a, float b", opset=18), "normal", True),
    ("slice_steps", text("y = Slice (x, st, en, ax, sp)", inputs="float[1,2,5,6] x",
                         init="int64[2] st = {-1, 1}, int64[2] en = {-100, 100}, int64[2] ax = {2, -1}, "
                              "int64[2] sp = {-2, 2}"), "normal", True),
    ("slice_basic", text("y = Slice (x, st, en)", init="int64[2] st = {0, 1}, int64[2] en = {1, 3}"),
     "normal", True),
    ("gather", text("y = Gather <axis=1> (x, i)", inputs="float[2,3,4] x", init="int64[2] i = {2, -3}"),
     "normal", True),
    ("gather_scalar", text("y = Gather <axis=-1> (x, i)", init="int64 i = {1}"), "normal", True),
    ("gather_elements", text("y = GatherElements <axis=2> (x, i)", inputs="float[1,2,3] x",
                             init="int64[1,2,2] i = {0, 2, -1, 1}"), "normal", True),
    ("gather_nd", text("y = GatherND (x, i)", inputs="float[3,4] x", init="int64[2,1] i = {2, 0}"),
     "normal", True),
    ("scatter_nd", text("y = ScatterND (x, i, u)", inputs="float[4,3] x",
                        init="int64[2,1] i = {1, 3}, float[2,3] u"), "normal", True),
    ("scatter_elements", text("y = ScatterElements <axis=1> (x, i, u)", inputs="float[2,3] x",
                              init="int64[2,1] i = {2, 0}, float[2,1] u"), "normal", True),
    ("reshape", text("y = Reshape (x, s)", init="int64[3] s = {0, -1, 2}"), "normal", True),
    ("transpose", text("y = Transpose <perm=[0,2,3,1]> (x)"), "normal", True),
    ("flatten", text("y = Flatten <axis=2> (x)"), "normal", True),
    ("squeeze_unsqueeze", text("s = Squeeze (x, a)\ny = Unsqueeze (s, b)", inputs="float[1,2,1,4] x",
                               init="int64[2] a = {0, 2}, int64[2] b = {-1, 1}"), "normal", True),
    ("squeeze_unsqueeze_attrs", text("s = Squeeze <axes=[0,2]> (x)\ny = Unsqueeze <axes=[0]> (s)",
                                     inputs="float[1,2,1,4] x", opset=11), "normal", True),
    ("expand", text("y = Expand (x, s)", inputs="float[1,2,1,4] x", init="int64[4] s = {2, 1, 3, 1}"),
     "normal", True),
    ("tile", text("y = Tile (x, r)", init="int64[4] r = {1, 2, 1, 2}"), "normal", True),
    ("pad_constant", text("y = Pad (x, p, v)", init="int64[8] p = {0, 0, 1, -1, 0, 0, 2, 1}, float v = {0.5}"),
     "normal", True),
    ("pad_reflect", text('y = Pad <mode="reflect"> (x, p)', init="int64[8] p = {0, 0, 2, 3, 0, 0, 1, 3}"),
     "normal", True),
    ("pad_edge", text('y = Pad <mode="edge"> (x, p)', init="int64[8] p = {0, 0, 1, 0, 0, 0, 0, 2}"),
     "normal", True),
    ("space_to_depth", text("y = SpaceToDepth <blocksize=2> (x)"), "normal", True),
    ("depth_to_space_dcr", text("y = DepthToSpace <blocksize=2> (x)", inputs="float[1,8,2,3] x"), "normal", True),
    ("depth_to_space_crd", text('y = DepthToSpace <blocksize=2, mode="CRD"> (x)', inputs="float[1,8,2,3] x"),
     "normal", True),
    # resampling
    ("resize_nearest_asymmetric_floor",
     text('y = Resize <mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"> '
          "(x, , s)", init="float[4] s = {1.0, 1.0, 2.0, 2.0}"), "normal", True),
    ("resize_nearest_half_pixel_sizes",
     text('y = Resize <mode="nearest"> (x, , , s)', init="int64[4] s = {1, 2, 6, 7}"), "normal", True),
    ("resize_linear_align_corners",
     text('y = Resize <mode="linear", coordinate_transformation_mode="align_corners"> (x, , s)',
          init="float[4] s = {1.0, 1.0, 2.0, 2.0}"), "normal", True),
    ("resize_linear_half_pixel_up",
     text('y = Resize <mode="linear"> (x, , , s)', init="int64[4] s = {1, 2, 7, 6}"), "normal", True),
    ("resize_linear_half_pixel_down",
     text('y = Resize <mode="linear"> (x, , , s)', inputs="float[1,2,7,6] x", init="int64[4] s = {1, 2, 3, 4}"),
     "normal", True),
    ("resize_linear_pytorch_half_pixel",
     text('y = Resize <mode="linear", coordinate_transformation_mode="pytorch_half_pixel"> (x, , s)',
          init="float[4] s = {1.0, 1.0, 1.5, 2.0}"), "normal", True),
    ("resize_linear_asymmetric",
     text('y = Resize <mode="linear", coordinate_transformation_mode="asymmetric"> (x, , s)',
          init="float[4] s = {1.0, 1.0, 2.0, 3.0}"), "normal", True),
    ("resize_opset10", text('y = Resize <mode="nearest"> (x, s)', init="float[4] s = {1.0, 1.0, 2.0, 2.0}",
                            opset=10), "normal", True),
    ("upsample_nearest", text('y = Upsample <mode="nearest"> (x, s)', init="float[4] s = {1.0, 1.0, 2.0, 2.0}",
                              opset=9), "normal", True),
    ("upsample_linear", text('y = Upsample <mode="linear"> (x, s)', init="float[4] s = {1.0, 1.0, 2.0, 2.0}",
                             opset=9), "normal", True),
    ("grid_sample", text("y = GridSample (x, g)", inputs="float[1,2,4,4] x, float[1,3,3,2] g", opset=16),
     "normal", True),
    ("grid_sample_border_aligned",
     text('y = GridSample <padding_mode="border", align_corners=1> (x, g)',
          inputs="float[1,2,4,4] x, float[1,3,3,2] g", opset=16), "normal", True),
    # pooling
    ("maxpool_sppf", text("y = MaxPool <kernel_shape=[5,5], pads=[2,2,2,2]> (x)", inputs="float[1,2,6,6] x"),
     "normal", True),
    ("maxpool_ceil", text("y = MaxPool <kernel_shape=[2,2], strides=[2,2], ceil_mode=1> (x)",
                          inputs="float[1,2,5,5] x"), "normal", True),
    ("maxpool_asym_pads", text("y = MaxPool <kernel_shape=[2,2], pads=[0,0,1,1]> (x)"), "normal", True),
    ("maxpool_dilated", text("y = MaxPool <kernel_shape=[2,2], dilations=[2,2]> (x)", inputs="float[1,2,5,5] x"),
     "normal", True),
    ("maxpool_same_upper", text('y = MaxPool <kernel_shape=[3,3], strides=[2,2], auto_pad="SAME_UPPER"> (x)',
                                inputs="float[1,2,5,5] x"), "normal", True),
    ("avgpool", text("y = AveragePool <kernel_shape=[2,2], strides=[2,2]> (x)"), "normal", True),
    ("avgpool_pads_exclude", text("y = AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]> (x)",
                                  inputs="float[1,2,5,5] x"), "normal", True),
    ("avgpool_pads_include",
     text("y = AveragePool <kernel_shape=[3,3], strides=[2,2], pads=[1,0,1,0], count_include_pad=1> (x)",
          inputs="float[1,2,5,5] x"), "normal", True),
    ("avgpool_ceil", text("y = AveragePool <kernel_shape=[2,2], strides=[2,2], ceil_mode=1> (x)",
                          inputs="float[1,2,5,5] x"), "normal", True),
    ("global_avgpool", text("y = GlobalAveragePool (x)"), "normal", True),
    ("global_maxpool", text("y = GlobalMaxPool (x)"), "normal", True),
    # reductions and search
    ("reducesum_input_axes", text("y = ReduceSum <keepdims=0> (x, a)", init="int64[2] a = {1, -1}"),
     "normal", True),
    ("reducemean_attr_axes", text("y = ReduceMean <axes=[2,3]> (x)"), "normal", True),
    ("reducemean_opset18", text("y = ReduceMean <keepdims=0> (x, a)", init="int64[1] a = {1}", opset=18),
     "normal", True),
    ("reducemax", text("y = ReduceMax <axes=[1], keepdims=1> (x)"), "normal", True),
    ("reducemin_all", text("y = ReduceMin (x)"), "normal", True),
    ("reduceprod", text("y = ReduceProd <axes=[1,3]> (x)"), "normal", True),
    ("reducel2", text("y = ReduceL2 <axes=[3]> (x)"), "normal", True),
    ("reducesumsquare", text("y = ReduceSumSquare <axes=[1]> (x)"), "normal", True),
    ("reducelogsumexp", text("y = ReduceLogSumExp <axes=[2]> (x)"), "normal", True),
    ("topk", text("v, i = TopK <axis=-1> (x, k)", init="int64[1] k = {2}", outputs="float v, int64 i"),
     "normal", True),
    ("topk_gather_elements",
     text("v, i = TopK <axis=1> (x, k)\ny = GatherElements <axis=1> (x, i)", inputs="float[2,6] x",
          init="int64[1] k = {3}"), "normal", True),
    ("argmax", text("y = ArgMax <axis=1, keepdims=0> (x)", outputs="int64 y"), "normal", False),
    ("argmin_last", text("y = ArgMin <axis=-1, select_last_index=1> (x)", outputs="int64 y"), "normal", False),
    ("cumsum", text("y = CumSum <exclusive=1, reverse=1> (x, a)", init="int64 a = {2}"), "normal", True),
    # folded constants on the data path
    ("constant_of_shape", text("s = Shape (x)\nc = ConstantOfShape <value = float[1] {1.5}> (s)\ny = Mul (x, c)"),
     "normal", True),
    ("range", text("s = Shape (x)\nn = Gather (s, i)\nr = Range (z, n, o)\nf = Cast <to=1> (r)\ny = Mul (x, f)",
                   init="int64 i = {3}, int64 z = {0}, int64 o = {1}"), "normal", True),
    ("constant_node", text("c = Constant <value = float[4] {1.0, 2.0, 3.0, 4.0}> ()\ny = Add (x, c)"),
     "normal", True),
]


def _inputs(ev: Evaluator, kind: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = (0.5, 1.5) if kind == "pos" else (-1.0, 1.0)
    return {name: rng.uniform(lo, hi, shape).astype(np.float32) for name, shape in ev.input_shapes.items()}


@pytest.fixture
def build(write_model: Callable[..., Path]) -> Callable[..., tuple[Path, Evaluator]]:
    def _build(src: str | onnx.ModelProto, **kwargs: object) -> tuple[Path, Evaluator]:
        path = write_model(model(src) if isinstance(src, str) else src)
        return path, Evaluator.from_model(path, device="cpu", **kwargs)  # type: ignore[arg-type]

    return _build


@pytest.mark.parametrize(("src", "kind", "differentiable"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_forward_and_gradient(build, src, kind, differentiable):
    path, ev = build(src)
    feed = _inputs(ev, kind)
    require_parity(ev, None, feed, rtol=1e-4, atol=1e-5)
    if not differentiable:
        return
    ev64 = Evaluator.from_model(path, device="cpu", dtype=torch.float64)
    names = list(ev64.input_shapes)
    params = ev64.named_onnx_parameters()
    leaves = [torch.tensor(feed[n], dtype=torch.float64, requires_grad=True) for n in names]
    leaves += [p.detach().clone().requires_grad_(True) for p in params.values()]

    def f(*args):
        out = ev64(dict(zip(names, args[: len(names)], strict=True)),
                   params=dict(zip(params, args[len(names):], strict=True)))
        return tuple(v for v in out.values() if v.is_floating_point())

    # Full Jacobians on the smallest graphs; random projections (still central differences)
    # where the Jacobian is big, to keep the suite fast on two cores.
    fast = sum(t.numel() for t in leaves) * sum(o.numel() for o in f(*leaves)) > 4000
    assert torch.autograd.gradcheck(f, tuple(leaves), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)


def test_every_table_op_is_tested_or_folded_only():
    from graphpath.numeric.evaluator.ops_torch import OPS
    from tests.numeric.test_quantized import QUANT_CASES

    used = set()
    for _, src, _, _ in CASES:
        used |= {n.op_type for n in model(src).graph.node}
    for _, src in QUANT_CASES:
        used |= {n.op_type for n in parse(src).graph.node}
    untested = set(OPS) - used - {"NonZero", "Size", "CastLike", "Xor", "Or", "LessOrEqual", "GreaterOrEqual",
                                  "Mod", "Div"}
    assert untested == set()


# --------------------------------------------------------------------------- shape arithmetic

CHUNK = """
chunk (float[1,4,H,W] x) => (float y) <int64 one = {1}, int64 two = {2}, int64 zero = {0}, int64 big = {1000},
                                      float[2,2,1,1] w>
{
    s = Shape (x)
    c = Gather (s, one)
    h = Div (c, two)
    hu = Unsqueeze (h, zero)
    zu = Unsqueeze (zero, zero)
    bu = Unsqueeze (big, zero)
    ou = Unsqueeze (one, zero)
    a = Slice (x, zu, hu, ou)
    b = Slice (x, hu, bu, ou)
    bc = Conv (b, w)
    sa = Sigmoid (a)
    y = Add (sa, bc)
}
"""


def test_shape_arithmetic_is_folded_and_torch_func_runs(build):
    path, ev = build(CHUNK, imgsz=(6, 8))
    assert ev.input_shapes == {"x": (1, 4, 6, 8)}
    assert {"s", "c", "h", "hu", "zu", "bu", "ou"} <= ev.folded
    run_ops = {s.node.op_type for s in ev._steps}
    assert run_ops == {"Slice", "Conv", "Sigmoid", "Add"}
    assert ev.shapes["y"] == (1, 2, 6, 8)
    require_parity(ev)
    x = torch.rand(1, 4, 6, 8)
    out, pull = torch.func.vjp(lambda t: ev(t)["y"], x)
    (gx,) = pull(torch.ones_like(out))
    assert gx.shape == x.shape and torch.all(gx[:, :2] > 0)
    with pytest.raises(GraphpathError, match="folded its shape arithmetic"):
        ev(torch.rand(1, 4, 8, 8))


def test_static_weight_path_stays_differentiable(build):
    # An initializer reached through Identity/Transpose is static but carries gradient: it must
    # be recomputed from the parameter, not folded into a constant.
    src = text("wi = Identity (w)\nwt = Transpose <perm=[1,0]> (wi)\ny = MatMul (x, wt)",
               inputs="float[2,3] x", init="float[4,3] w")
    _, ev = build(src)
    assert ev.folded == frozenset() and set(ev.param_keys) == {"w"}
    x = torch.rand(2, 3)
    p = {k: v.detach() for k, v in ev.named_onnx_parameters().items()}
    _, pull = torch.func.vjp(lambda q: ev(x, q)["y"], p)
    (g,) = pull(torch.ones(2, 4))
    assert torch.allclose(g["w"], torch.ones(4, 2) @ x)


# --------------------------------------------------------------------------- API behaviour


def test_residual_vjp_matches_autograd_and_activation_gradients(build):
    path, ev = build(RESIDUAL)
    x = torch.rand(1, 4, 8, 8)
    params = {k: v.detach() for k, v in ev.named_onnx_parameters().items()}
    out, pull = torch.func.vjp(lambda t, p: ev(t, p)["y"], x, params)
    ct = torch.randn_like(out)
    gx, gp = pull(ct)
    xa = x.clone().requires_grad_(True)
    (ev(xa)["y"] * ct).sum().backward()
    assert torch.allclose(gx, xa.grad, atol=1e-6)
    assert torch.allclose(gp["w2"], ev.named_onnx_parameters()["w2"].grad, atol=1e-6)
    # gradient at an intermediate activation through a zero perturbation
    delta = torch.zeros(ev.shapes["a1"])
    _, pull_a = torch.func.vjp(lambda d: ev(x, perturb={"a1": d})["y"], delta)
    (ga,) = pull_a(ct)
    a1 = ev(x, capture={"a1"})["a1"].detach().requires_grad_(True)
    (ev(x, replace={"a1": a1})["y"] * ct).sum().backward()
    assert torch.allclose(ga, a1.grad, atol=1e-6)
    # forward mode, and forward-over-reverse (Hessian-vector products for Lanczos)
    _, tangent = torch.func.jvp(lambda t: ev(t)["y"], (x,), (torch.ones_like(x),))
    assert tangent.shape == out.shape
    v = {k: torch.randn_like(t) for k, t in params.items()}
    _, hv = torch.func.jvp(torch.func.grad(lambda p: (ev(x, p)["y"] * ct).sum()), (params,), (v,))
    assert set(hv) == {"w1", "w2"} and all(torch.isfinite(h).all() for h in hv.values())


def test_outputs_capture_and_scope(build):
    path, ev = build(RESIDUAL)
    x = torch.rand(1, 4, 8, 8)
    res = ev(x, outputs=["c2"], capture={"a1"})
    assert set(res) == {"c2", "a1"}
    assert check_parity(Evaluator.from_model(path, device="cpu", outputs=["c2", "a1"])).ok
    cut = Evaluator.from_model(path, device="cpu", outputs=["a1"])
    assert set(cut.param_keys) == {"w1"}
    with pytest.raises(GraphpathError, match="outside this evaluator's scope"):
        cut(x, outputs=["y"])
    with pytest.raises(GraphpathError, match="no tensor named"):
        ev(x, outputs=["nope"])


def test_unsupported_ops_listed_in_one_error(build):
    src = text("a = Relu (x)\nb = Hardmax (a)\nc = Hardmax (b)\nd = Det (c)\ny = Add (d, d)",
               inputs="float[2,3,3] x")
    with pytest.raises(GraphpathError, match=r"unsupported ops: Hardmax \(2 nodes\), Det \(1 node\)"):
        build(src)
    _, ev = build(src, outputs=["a"])  # cutting before them works
    assert ev(torch.rand(2, 3, 3))["a"].shape == (2, 3, 3)


def test_fp16_model_is_evaluated_in_fp32(build):
    src = text("c = Conv <pads=[1,1,1,1]> (x, w, b)\ny = Sigmoid (c)", inputs="float16[1,2,4,4] x",
               init="float16[3,2,3,3] w, float16[3] b", outputs="float16 y")
    path, ev = build(src)
    assert ev.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in ev.parameters())
    out = ev(torch.rand(1, 2, 4, 4, dtype=torch.float16))["y"]
    assert out.dtype == torch.float32
    assert check_parity(ev, rtol=1e-2, atol=2e-3).ok


def test_parity_refuses_a_wrong_evaluator(build):
    path, ev = build(RESIDUAL)
    assert require_parity(ev).max_abs < 1e-5
    with torch.no_grad():
        ev.named_onnx_parameters()["w1"].add_(0.5)
    result = check_parity(ev)
    assert not result.ok and result.max_abs > 1e-2
    with pytest.raises(GraphpathError, match="disagrees with onnxruntime.*refusing"):
        require_parity(ev)


def test_dynamic_input_needs_a_shape(build):
    src = text("y = Relu (x)", inputs="float[N,C,T] x")
    with pytest.raises(GraphpathError, match="input_shapes"):
        build(src)
    _, ev = build(src, input_shapes={"x": (1, 2, 3)})
    assert ev.input_shapes == {"x": (1, 2, 3)}


def test_perturb_rejects_constants(build):
    _, ev = build(RESIDUAL)
    with pytest.raises(GraphpathError, match="cannot perturb 'w1'"):
        ev(torch.rand(1, 4, 8, 8), perturb={"w1": torch.zeros(4, 4, 1, 1)})


def test_numeric_package_is_light_and_missing_torch_has_a_hint():
    code = (
        "import sys\n"
        "import graphpath.numeric\n"
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "sys.modules['torch'] = None\n"
        "from graphpath.errors import MissingExtraError\n"
        "try:\n"
        "    graphpath.numeric.Evaluator\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'graphpath[torch]'" in out.stdout


def test_outputs_downstream_of_topk_match_up_to_the_order_of_ties() -> None:
    """RT-DETR's query selection: tied candidates in another order are the same queries."""
    from graphpath.numeric.evaluator.core import _compare_up_to_order

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((1, 6, 3))
    perm = np.array([0, 2, 1, 3, 5, 4])
    ours = ref[:, perm] + 1e-9
    res = _compare_up_to_order("q", ours, ref, 1e-3, 1e-4, {6})
    assert res is not None and res.ok and "4 of 6" in res.note  # positions 1, 2, 4, 5 moved
    assert _compare_up_to_order("q", ours, ref, 1e-3, 1e-4, {5}) is None  # no axis of a TopK's length
    assert _compare_up_to_order("q", ours + 0.5, ref, 1e-3, 1e-4, {6}) is None  # not the same values


def test_fp16_parity_allows_the_float16_grid(build):
    """A float16 graph whose outputs are small (here ~1e-5, float16's subnormal range, where one
    step is 6e-8 whatever the value): onnxruntime rounds every layer's output to that grid, the
    evaluator computes in float32, so they differ by a step or so (a relative 0.23 on the
    smallest elements, refused before); parity at the default tolerance allows two steps of the grid at
    the output's largest magnitude and says so, and still refuses a wrong weight."""
    rng = np.random.default_rng(0)
    w = [onnx.numpy_helper.from_array((rng.standard_normal((4, 4 if i else 2, 3, 3)) * 0.005).astype(np.float16),
                                      f"w{i}") for i in range(3)]
    nodes = [onnx.helper.make_node("Conv", [src, f"w{i}"], [dst], pads=[1, 1, 1, 1])
             for i, (src, dst) in enumerate([("x", "a"), ("a", "b"), ("b", "y")])]
    graph = onnx.helper.make_graph(nodes, "fp16", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, [1, 2, 8, 8])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, [1, 4, 8, 8])], w)
    _, ev = build(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8))
    result = check_parity(ev)
    assert result.ok and "float16 grid" in result.outputs[0].note
    with torch.no_grad():
        ev.named_onnx_parameters()["w2"].mul_(1.5)
    assert not check_parity(ev).ok
