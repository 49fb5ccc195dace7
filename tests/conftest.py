"""Shared fixtures: tiny models written as ONNX text (onnx.parser) and saved to tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import helper, numpy_helper


@pytest.fixture(autouse=True, scope="session")
def _private_result_cache(tmp_path_factory: pytest.TempPathFactory) -> object:
    """`report` and `audit` cache results (graphpath.registry): tests never touch the user's
    cache folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHPATH_CACHE_DIR", str(tmp_path_factory.mktemp("graphpath-cache")))
        yield


MODEL_HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def parse(text: str, seed: int = 0) -> onnx.ModelProto:
    """Parse ONNX text; ``text`` is the graph part, the header is added when missing.

    Initializers declared without a value (``<float[4,4,1,1] w>``) get seeded random values.
    """
    if not text.lstrip().startswith("<"):
        text = MODEL_HEADER + "\n" + text
    model = onnx.parser.parse_model(text)
    g = model.graph
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    rng = np.random.default_rng(seed)
    keep = []
    for vi in g.value_info:
        if vi.name in produced:
            keep.append(vi)
            continue
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.integer):
            value = rng.integers(-8, 8, size=dims).astype(dtype)
        else:
            value = (rng.standard_normal(dims) * 0.5).astype(dtype)
        g.initializer.append(numpy_helper.from_array(value, vi.name))
    del g.value_info[:]
    g.value_info.extend(keep)
    return model


@pytest.fixture
def write_model(tmp_path: Path) -> Callable[..., Path]:
    """Write a model (ONNX text or ModelProto) to ``tmp_path/name`` and return the path."""

    def _write(model: str | onnx.ModelProto, name: str = "model.onnx") -> Path:
        proto = parse(model) if isinstance(model, str) else model
        path = tmp_path / name
        onnx.save(proto, str(path))
        return path

    return _write


# A residual block: x → conv 1×1 → conv 3×3 → add(x, ·), convs SiLU-activated.
RESIDUAL = """
residual (float[1,4,8,8] x) => (float[1,4,8,8] y)
<float[4,4,1,1] w1, float[4,4,3,3] w2>
{
    c1 = Conv <kernel_shape = [1, 1]> (x, w1)
    s1 = Sigmoid (c1)
    a1 = Mul (c1, s1)
    c2 = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (a1, w2)
    s2 = Sigmoid (c2)
    a2 = Mul (c2, s2)
    y = Add (x, a2)
}
"""
