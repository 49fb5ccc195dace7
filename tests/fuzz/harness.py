"""Run a hostile :class:`~tests.fuzz.cases.Case` through ``python -m graphpath COMMAND`` in a
subprocess and classify what happened.

Folder layout of one run (``work`` is a fresh temporary folder, the working directory)::

    work/weights.bin        canary: CANARY_MARK + floats; never to be opened
    work/outside.bin        canary
    work/m/model.onnx       the case's model
    work/m/...              the case's extras (weights, symlinks, a FIFO, a folder)
    work/out/               where ``-o`` writes; must be empty after a failed run

The model is passed as ``m/model.onnx``: a reader that resolves a location against the working
directory instead of the model's folder opens the canary. Canary opens are seen by inotify
(``IN_OPEN``, any process); off Linux, only the canary's bytes showing up in an output count.

An outcome is *bad* when the run exits 3 (or any code but 0, 1, 2), dies on a signal, hangs past
its timeout, leaves a file in ``out/`` after failing (or a temporary file after anything),
opens or prints a canary, accepts a hostile reference (exit 0/1), or fails without exactly one
``graphpath: error:`` line on stderr (or prints a traceback at all).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.cases import CANARY_MARK, CANARY_NAME, REPO, Case

#: Command → arguments after the model (``{out}`` is the output folder).
COMMANDS: dict[str, list[str]] = {
    "analyze": ["--format", "json", "-o", "{out}/analyze.json"],
    "blocks": ["-o", "{out}/blocks.txt"],
    "paths": ["--format", "json", "-o", "{out}/paths.json"],
    "audit": ["--format", "json", "-q", "--no-numeric", "-o", "{out}/audit.json"],
    "report": ["-q", "-o", "{out}/table.md"],
    "backward": ["--probes", "1", "--power-iters", "2", "--max-blocks", "2", "-q", "-o", "{out}/backward.txt"],
}

#: Seconds a run may take before it counts as a hang (heavy cases and ``backward`` get more).
TIMEOUT = 60.0
#: Address-space limit of a run: an allocation past it is a MemoryError graphpath must turn into
#: exit 2, the way a small machine would, instead of an out-of-memory kill of the whole box.
MEMORY_LIMIT = 6 << 30

_ABSOLUTE_CANARY = "@CANARY_ABS@"


@dataclass(frozen=True)
class Outcome:
    """What one run did."""

    command: str
    klass: str
    label: str
    rc: int | None  # None: hang
    seconds: float
    signal: bool
    hang: bool
    partial: bool
    escape: bool
    accepted: bool  # a hostile reference went through (exit 0/1)
    bad_stderr: bool
    stderr_tail: str

    @property
    def exit3(self) -> bool:
        return self.rc is not None and self.rc not in (0, 1, 2) and not self.signal

    @property
    def bad(self) -> bool:
        return self.exit3 or self.signal or self.hang or self.partial or self.escape or self.accepted \
            or self.bad_stderr

    def describe(self) -> str:
        flags = [k for k in ("exit3", "signal", "hang", "partial", "escape", "accepted", "bad_stderr")
                 if getattr(self, k)]
        return f"{self.command} [{self.klass}] {self.label}: rc={self.rc} {','.join(flags)} :: {self.stderr_tail}"


def _watch(paths: Sequence[Path]) -> Callable[[], bool]:
    """Whether any process opens one of ``paths`` from now on (Linux inotify)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return lambda: False
    if fd < 0:
        return lambda: False
    for p in paths:
        libc.inotify_add_watch(fd, os.fsencode(p), 0x20)  # IN_OPEN

    def opened() -> bool:
        try:
            return bool(os.read(fd, 65536))
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    return opened


def _absolute_canaries(data: bytes, canary: Path) -> bytes:
    """Point external-data locations written as ``@CANARY_ABS@`` at the canary's absolute path."""
    if _ABSOLUTE_CANARY.encode() not in data:
        return data
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)

    def walk(msg: object) -> None:
        for fd, value in msg.ListFields():  # type: ignore[attr-defined]
            if fd.type != fd.TYPE_MESSAGE:
                continue
            for item in value if fd.is_repeated else [value]:
                if isinstance(item, onnx.StringStringEntryProto) and item.value == _ABSOLUTE_CANARY:
                    item.value = str(canary)
                else:
                    walk(item)

    walk(model)
    return bytes(model.SerializeToString())


def materialize(case: Case, work: Path) -> Path:
    """Lay out ``work`` for ``case`` (see the module docstring); returns the model's path."""
    canary = work / CANARY_NAME
    canary.write_bytes(CANARY_MARK + b"\0" * 8 + bytes(range(256)) * 4)
    (work / "outside.bin").write_bytes(CANARY_MARK + b"\1" * 64)
    (work / "out").mkdir()
    folder = work / "m"
    folder.mkdir()
    for extra in case.extras:
        target = folder / extra.name
        if extra.kind == "file":
            target.write_bytes(extra.data)
        elif extra.kind == "sparse":
            with open(target, "wb") as fh:
                fh.truncate(extra.size)
        elif extra.kind == "symlink":
            os.symlink(extra.target, target)
        elif extra.kind == "fifo":
            os.mkfifo(target)
        elif extra.kind == "dir":
            target.mkdir()
    model = folder / "model.onnx"
    model.write_bytes(_absolute_canaries(case.model, canary))
    return model


def _limits() -> None:  # pragma: no cover - runs in the child
    os.setsid()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):
        pass


def preload(commands: Iterable[str] = ()) -> None:
    """Import what the commands need, so that :func:`run_case` with ``fork=True`` forks a warm
    interpreter (``backward`` in ``commands`` imports torch too)."""
    import graphpath.analysis
    import graphpath.cli.audit
    import graphpath.cli.main
    import graphpath.cli.report
    import graphpath.cli.static
    import graphpath.formats
    import graphpath.stability.table

    if "backward" in commands:
        try:
            import graphpath.cli.numeric
            import graphpath.numeric.backward  # noqa: F401
        except ImportError:
            pass


def _spawn(argv: list[str], work: Path, out_path: Path, err_path: Path, fork: bool) -> subprocess.Popen[bytes] | int:
    if not fork:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NO_COLOR": "1"}
        with open(out_path, "wb") as so, open(err_path, "wb") as se:
            return subprocess.Popen([sys.executable, "-m", "graphpath", *argv], cwd=work, env=env,
                                    stdin=subprocess.DEVNULL, stdout=so, stderr=se, preexec_fn=_limits)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:  # the child: what ``python -m graphpath ARGV`` would do, in a warm interpreter
        _limits()
        os.chdir(work)
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        # Fresh streams on the new fds (pytest's capture replaces sys.stdout/sys.stderr).
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        from graphpath.cli.main import main

        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _wait(child: subprocess.Popen[bytes] | int, timeout: float) -> int | None:
    """The child's exit code (negative: killed by that signal); ``None`` after killing a hang."""
    if isinstance(child, subprocess.Popen):
        try:
            return child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pid = child.pid
    else:
        pid = child
        deadline = time.monotonic() + timeout
        delay = 0.005
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if isinstance(child, subprocess.Popen):
        child.wait()
    else:
        os.waitpid(pid, 0)
    return None


def run_case(case: Case, command: str, timeout: float | None = None, *, fork: bool = False,
             keep: Path | None = None) -> Outcome:
    """Run ``case`` through ``command`` in a fresh folder and classify the outcome.

    ``fork=True`` forks this interpreter (call :func:`preload` first) instead of starting
    ``python -m graphpath``: the same code path after the imports, a second or so cheaper.
    """
    timeout = timeout or TIMEOUT * (3 if case.heavy else 1) * (2 if command == "backward" else 1)
    work = Path(tempfile.mkdtemp(prefix="gpfuzz-"))
    try:
        materialize(case, work)
        out = work / "out"
        args = [a.replace("{out}", str(out)) for a in COMMANDS[command]]
        opened = _watch([work / CANARY_NAME, work / "outside.bin"])
        out_path, err_path = work / "stdout", work / "stderr"
        t0 = time.monotonic()
        rc = _wait(_spawn([command, "m/model.onnx", *args], work, out_path, err_path, fork), timeout)
        seconds = time.monotonic() - t0
        hang = rc is None
        stdout, stderr = out_path.read_bytes(), err_path.read_bytes()
        leftovers = sorted(out.iterdir())
        ok = rc in (0, 1)
        partial = (not ok and bool(leftovers)) or any(p.name.startswith(".") for p in leftovers)
        blobs = [stdout, stderr] + [p.read_bytes() for p in leftovers if p.is_file()]
        escape = opened() or any(CANARY_MARK in b for b in blobs)
        err = stderr.decode("utf-8", "replace")
        lines = err.strip().splitlines()
        bad_stderr = "Traceback" in err or (rc == 2 and (len(lines) != 1 or not lines[0].startswith("graphpath: error:")))
        if keep is not None:
            shutil.copytree(work, keep, symlinks=True, dirs_exist_ok=True)
        return Outcome(command=command, klass=case.klass, label=case.label, rc=rc, seconds=seconds,
                       signal=rc is not None and rc < 0, hang=hang, partial=partial, escape=escape,
                       accepted=case.hostile and ok, bad_stderr=bad_stderr,
                       stderr_tail=" | ".join(lines[-3:])[:400])
    finally:
        shutil.rmtree(work, ignore_errors=True)


COLUMNS = ("cases", "exit0", "exit1", "exit2", "exit3", "signal", "hang", "partial", "escape", "accepted",
           "bad_stderr")


def tally(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], Counter[str]]:
    """Counts per (command, class) for :data:`COLUMNS`."""
    table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        row = table[(o.command, o.klass)]
        row["cases"] += 1
        if o.rc in (0, 1, 2):
            row[f"exit{o.rc}"] += 1
        for k in ("exit3", "signal", "hang", "partial", "escape", "accepted", "bad_stderr"):
            row[k] += int(getattr(o, k))
    return table


def render_table(outcomes: Sequence[Outcome]) -> str:
    """The command × mutation-class table, with a total row."""
    table = tally(outcomes)
    head = ["command", "class", *COLUMNS]
    rows = [[c, k, *(str(table[(c, k)][col]) for col in COLUMNS)] for c, k in sorted(table)]
    total: Counter[str] = Counter()
    for counts in table.values():
        total.update(counts)
    rows.append(["all", "all", *(str(total[col]) for col in COLUMNS)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)
