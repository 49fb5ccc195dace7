"""Which model files a run covers: files as given, folders searched recursively for
``*.onnx``, glob patterns (``**`` included), minus ``--exclude`` patterns.

External data needs no listing here: a model's external-data files sit beside it and are found
through the model (:func:`graphpath.onnx_io.external_data_files`) when its cache key is taken.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from fnmatch import fnmatch
from pathlib import Path, PurePath

from graphpath.errors import GraphpathError

_GLOB_CHARS = frozenset("*?[")


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in _GLOB_CHARS)


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    """Whether ``path`` matches a pattern: the whole path (``models/old/*``), or any trailing
    part of it (``*-train.onnx``, ``old/*``).

    >>> _excluded("models/old/a.onnx", ["old/*"]), _excluded("models/a.onnx", ["old/*"])
    (True, False)
    >>> _excluded("m/yolov9c-train.onnx", ["*-train.onnx"])
    True
    """
    posix = PurePath(path).as_posix()
    parts = PurePath(posix).parts
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    return any(fnmatch(t, pat) for pat in patterns for t in [posix, *tails])


def _folder_models(folder: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(".onnx")]
    return found


def expand_inputs(specs: Iterable[str | os.PathLike[str]], exclude: Sequence[str] = ()) -> list[str]:
    """The model files of ``specs``, in the order given (a folder's and a glob's files sorted),
    each once, minus those matching an ``exclude`` pattern.

    Raises:
        GraphpathError: a file or folder that does not exist, a folder or glob without any
            ``.onnx`` file, or nothing left after the exclusions.
    """
    out: list[str] = []
    seen: set[str] = set()
    for raw in specs:
        spec = os.fspath(raw)
        if _is_glob(spec) and not os.path.exists(spec):
            found = [p for p in sorted(glob.glob(spec, recursive=True)) if os.path.isfile(p)]
            if not found:
                raise GraphpathError(f"{spec}: no file matches this pattern")
        elif os.path.isdir(spec):
            found = _folder_models(Path(spec))
            if not found:
                raise GraphpathError(f"{spec}: folder holds no .onnx file")
        elif os.path.exists(spec):
            found = [spec]
        else:
            raise GraphpathError(f"{spec}: no such file")
        for path in found:
            ident = os.path.realpath(path)
            if ident in seen or _excluded(path, exclude):
                continue
            seen.add(ident)
            out.append(path)
    if not out:
        raise GraphpathError("no model left to analyse after --exclude")
    return out
