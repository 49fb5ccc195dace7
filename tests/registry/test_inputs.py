"""Input expansion: files, folders (recursive *.onnx), globs, --exclude."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from graphpath.errors import GraphpathError
from graphpath.registry.inputs import expand_inputs


def test_folders_globs_files_and_exclude(tiny: Callable[..., Path], tmp_path: Path) -> None:
    a = tiny("reg/a.onnx")
    b = tiny("reg/run1/b.onnx")
    c = tiny("reg/run2/c-train.onnx")
    (tmp_path / "reg" / "notes.txt").write_text("not a model")
    tiny("reg/.hidden/h.onnx")
    reg = str(tmp_path / "reg")
    assert expand_inputs([reg]) == [str(a), str(b), str(c)]
    assert expand_inputs([reg], exclude=["*-train.onnx"]) == [str(a), str(b)]
    assert expand_inputs([reg], exclude=["run1/*"]) == [str(a), str(c)]
    assert expand_inputs([f"{reg}/**/*.onnx"]) == [str(a), str(b), str(c)]
    # a file given twice (directly and through its folder) runs once, in its first place
    assert expand_inputs([str(c), reg]) == [str(c), str(a), str(b)]


@pytest.mark.parametrize("spec, message", [("missing.onnx", "no such file"), ("*.nothing", "no file matches"),
                                           ("empty", "holds no .onnx file")])
def test_inputs_that_name_nothing_are_errors(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphpathError, match=message):
        expand_inputs([str(tmp_path / spec)])


def test_excluding_everything_is_an_error(tiny: Callable[..., Path]) -> None:
    with pytest.raises(GraphpathError, match="no model left"):
        expand_inputs([str(tiny())], exclude=["*.onnx"])
