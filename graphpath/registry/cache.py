"""The content-addressed result cache.

An entry's key is the SHA-256 of: the model's bytes, the bytes of each of its external-data
files (with their locations), the model's file name (reports state it), graphpath's version and
the digest of its own source (:func:`code_digest`: a checkout between releases is its own
code), :data:`CACHE_FORMAT`, and the job's result-changing options
(:meth:`~graphpath.registry.jobs.Job.key_material`). A changed model, option or graphpath
therefore misses; nothing needs invalidating by hand. A record that is whole but does not read
back under the job (:func:`~graphpath.registry.jobs.readable`) is recomputed too.

Layout: ``<dir>/v<CACHE_FORMAT>/<key[:2]>/<key>.json``; each entry holds its key, the record's
JSON and the SHA-256 of that JSON. Writes go to a temporary file in the same folder and are
renamed over the entry (:func:`os.replace`), so a reader sees a whole entry or none, and two
processes writing one key both leave a whole entry (the same one: equal inputs give equal
records). An entry that does not parse, names another key or fails its checksum is a miss: it is
recomputed and rewritten, never trusted.

The folder: ``--cache-dir``, else ``$GRAPHPATH_CACHE_DIR``, else ``$XDG_CACHE_HOME/graphpath``,
else ``~/.cache/graphpath``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphpath.registry.jobs import Job, file_digest

#: Bump when the stored form of a record changes.
CACHE_FORMAT = 1

ENV_CACHE_DIR = "GRAPHPATH_CACHE_DIR"

#: The bytes every external-data reference carries (the key of its ``external_data`` entry): a
#: model whose bytes lack them has no external data, and is not parsed to find out.
_EXTERNAL_MARK = b"location"


def default_cache_dir() -> Path:
    """``$GRAPHPATH_CACHE_DIR``, else ``$XDG_CACHE_HOME/graphpath``, else ``~/.cache/graphpath``."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "graphpath"


def _digest_and_files(path: str | os.PathLike[str]) -> tuple[str, tuple[Path, ...]]:
    p = Path(path)
    h = hashlib.sha256()
    mark = False
    tail = b""
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            if not mark:  # the mark inside this chunk, or across its start
                mark = _EXTERNAL_MARK in chunk or _EXTERNAL_MARK in tail + chunk[:len(_EXTERNAL_MARK)]
                tail = chunk[-len(_EXTERNAL_MARK):]
    parts = ["model:" + h.hexdigest()]
    files: tuple[Path, ...] = ()
    if mark:
        from graphpath.onnx_io import external_data_files

        files = external_data_files(p)
        base = p.resolve().parent
        parts += [f"external:{Path(os.path.relpath(f, base)).as_posix()}:{file_digest(f)}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest(), files


def model_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 over a model's bytes and its external-data files (location and bytes of each).

    Raises:
        OSError: the model cannot be read.
        GraphpathError: the model has external-data references and cannot be parsed, or a
            reference is unsafe.
    """
    return _digest_and_files(path)[0]


def _stat_sig(path: str | os.PathLike[str]) -> list[int]:
    """What changes when a file's bytes do: device, inode, size, mtime and ctime in ns (ctime
    cannot be set back by ``touch`` or ``os.utime``)."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


#: A file modified less than this long before it was hashed is not memoised (its mtime and
#: ctime could still change within the file system's timestamp granularity unnoticed).
_SETTLED_NS = 2_000_000_000


@functools.cache
def code_digest() -> str:
    """SHA-256 over graphpath's own source files (``*.py`` and the shipped ``*.json`` schemas,
    by relative path and bytes), read once per process: results computed by other code, such
    as an older checkout with the same version number, are other entries."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json") and p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def cache_key(path: str | os.PathLike[str], job: Job, cache: ResultCache | None = None) -> str | None:
    """The entry key of ``path`` under ``job``; ``None`` when it cannot be keyed (unreadable
    model or options: the model then runs uncached and fails, if it does, with the loader's
    message). With ``cache``, the model's digest comes from its memo when the files are
    unchanged (:meth:`ResultCache.digest`)."""
    from graphpath import __version__
    from graphpath.errors import GraphpathError

    material = job.key_material()
    if material is None:
        return None
    try:
        digest = cache.digest(path) if cache is not None else model_digest(path)
    except (OSError, GraphpathError):
        return None
    # the file name too: reports state it, so a copy under another name is its own entry
    text = json.dumps({"graphpath": __version__, "code": code_digest(), "format": CACHE_FORMAT, "job": material,
                       "model": digest,
                       "name": Path(path).name}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _write_atomic(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file in its folder and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:16]}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class CacheInfo:
    """What ``graphpath cache info`` prints."""

    path: str
    entries: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "entries": self.entries, "bytes": self.bytes}


class ResultCache:
    """Records by key under ``root`` (see the module docstring for the layout and guarantees).

    >>> import tempfile
    >>> cache = ResultCache(Path(tempfile.mkdtemp()))
    >>> cache.get("ab" * 32) is None
    True
    >>> cache.put("ab" * 32, '{"row": 1}'); cache.get("ab" * 32)
    {'row': 1}
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.entries = self.root / f"v{CACHE_FORMAT}"
        self.digests = self.root / f"digests-v{CACHE_FORMAT}"

    def _path(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The record stored under ``key``; ``None`` when absent or not whole and correct."""
        try:
            raw = self._path(key).read_bytes()
            entry = json.loads(raw)
            record = entry["record"]
            if entry.get("key") != key or hashlib.sha256(record.encode()).hexdigest() != entry.get("sha256"):
                return None
            value = json.loads(record)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, record: str) -> None:
        """Store the record JSON ``record`` under ``key`` atomically. A cache that cannot be
        written (read-only, full disk) costs the next run time, never this run its result."""
        entry = json.dumps({"key": key, "sha256": hashlib.sha256(record.encode()).hexdigest(),
                            "record": record})
        try:
            _write_atomic(self._path(key), entry)
        except OSError:
            return

    def digest(self, path: str | os.PathLike[str]) -> str:
        """:func:`model_digest` of ``path``, memoised by the file's identity: a model (and its
        external-data files) whose device, inode, size, mtime and ctime are those recorded when
        it was hashed is not read again, so a warm run over a large registry costs a ``stat``
        per file. Files modified in the last two seconds are hashed and not memoised."""
        ident = os.path.realpath(path)
        name = hashlib.sha256(ident.encode()).hexdigest()
        memo = self.digests / name[:2] / f"{name}.json"
        sig = _stat_sig(path)
        try:
            known = json.loads(memo.read_bytes())
            if known["path"] == ident and known["stat"] == sig and all(
                    _stat_sig(f) == s for f, s in known["externals"]):
                return str(known["digest"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        import time

        started = time.time_ns()
        digest, files = _digest_and_files(path)
        ext_sigs = [_stat_sig(f) for f in files]
        if all(started - s[3] > _SETTLED_NS and started - s[4] > _SETTLED_NS for s in [sig, *ext_sigs]) \
                and _stat_sig(path) == sig:
            sigs = [[str(f), s] for f, s in zip(files, ext_sigs, strict=True)]
            try:
                _write_atomic(memo, json.dumps({"path": ident, "stat": sig, "externals": sigs, "digest": digest}))
            except OSError:
                pass
        return digest

    def _files(self) -> list[Path]:
        if not self.entries.is_dir():
            return []
        return [p for p in self.entries.glob("*/*") if p.is_file()]

    def info(self) -> CacheInfo:
        files = self._files()
        return CacheInfo(path=str(self.root), entries=sum(p.suffix == ".json" for p in files),
                         bytes=sum(p.stat().st_size for p in files))

    def clear(self) -> int:
        """Remove every entry, digest memo and left-over temporary file; the number of entries
        removed."""
        removed = 0
        for folder in (self.entries, self.digests):
            if not folder.is_dir():
                continue
            for p in folder.glob("*/*"):
                if p.is_file():
                    removed += folder == self.entries and p.suffix == ".json"
                    p.unlink(missing_ok=True)
            for sub in folder.iterdir():
                if sub.is_dir():
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
        return removed


def record_text(record: Mapping[str, Any]) -> str:
    """The JSON a record is stored and sent as (insertion order kept: renderers see the same
    order whichever way a record came)."""
    return json.dumps(record, allow_nan=True)
