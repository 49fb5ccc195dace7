"""The HTML report in a real browser (headless Chromium, the Debian ``chromium`` package;
skipped with a reason when it is not installed): the table, every model's section and plots
that the browser lays out with a size; with ``websocket-client`` (the ``view`` extra) the
columns sort on a click, nothing is fetched and the print stylesheet applies."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from graphpath.stability.table import StabilityTable

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="no matplotlib (report extra)"),
]

_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
          "--host-resolver-rules=MAP * ~NOTFOUND"]


@pytest.fixture(scope="module")
def page(sample_html: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(sample_html, encoding="utf-8")
    return path


class _Dom(HTMLParser):
    """Sections, table rows and SVG paths of the DOM Chromium dumps."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.body_rows = 0
        self.header_buttons = 0
        self.svgs: list[int] = []  # drawn paths per svg
        self._in = {"stability": False, "tbody": False, "th": False}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("class") == "model":
            self.sections.append(a.get("id") or "")
        elif tag == "table":
            self._in["stability"] = a.get("id") == "stability"
        elif tag == "tbody" and self._in["stability"]:
            self._in["tbody"] = True
        elif tag == "tr" and self._in["tbody"]:
            self.body_rows += 1
        elif tag == "th" and self._in["stability"]:
            self._in["th"] = True
        elif tag == "button" and self._in["th"]:
            self.header_buttons += 1
        elif tag == "svg":
            self.svgs.append(0)
        elif tag == "path" and self.svgs and a.get("d"):
            self.svgs[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in["stability"] = self._in["tbody"] = False
        elif tag == "th":
            self._in["th"] = False


def test_chromium_renders_the_table_every_section_and_the_plots(page: Path, sample_table: StabilityTable) -> None:
    with tempfile.TemporaryDirectory(prefix="graphpath-chromium-") as profile:
        done = subprocess.run([str(CHROMIUM), *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)
    n = len(sample_table.rows)
    assert dom.body_rows == n
    assert dom.header_buttons == len(sample_table.columns())  # the sorting script ran
    assert dom.sections == [f"m{i}" for i in range(n)]
    assert len(dom.svgs) == 4 * n and all(paths > 0 for paths in dom.svgs)
    for r in sample_table.rows:
        assert re.search(rf"<h2>{re.escape(r.model)} <span class=\"badge", done.stdout)


def _devtools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("netron_screenshot", ROOT / "scripts" / "netron_screenshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chromium_sorts_fetches_nothing_and_prints(page: Path, sample_table: StabilityTable) -> None:
    pytest.importorskip("websocket", reason="websocket-client (view extra) drives Chromium")
    tools = _devtools()
    with tempfile.TemporaryDirectory(prefix="graphpath-chromium-") as profile:
        proc, ws = tools._start_chromium(str(CHROMIUM), Path(profile))
        try:
            tab: Any = tools.DevTools(ws)
            tab.call("Page.enable")
            tab.call("Page.navigate", url=page.as_uri())
            tab.wait_for("document.readyState === 'complete' && !!document.querySelector('#stability th button')",
                         "the report to load")
            # every plot is laid out with a size
            sizes = tab.evaluate("Array.from(document.querySelectorAll('svg')).map(s => "
                                 "[s.getBoundingClientRect().width, s.getBoundingClientRect().height])")
            assert len(sizes) == 4 * len(sample_table.rows) and all(w > 50 and h > 30 for w, h in sizes)
            assert tab.evaluate("performance.getEntriesByType('resource').length") == 0
            col = [k for k, _ in sample_table.columns()].index("depth")
            read = (f"Array.from(document.querySelectorAll('#stability tbody tr')).map(r => "
                    f"parseFloat(r.cells[{col}].getAttribute('data-sort')))")
            click = f"document.querySelectorAll('#stability th button')[{col}].click()"
            tab.evaluate(click)
            up = tab.evaluate(read)
            tab.evaluate(click)
            down = tab.evaluate(read)
            depths = sorted(float(r.depth) for r in sample_table.rows if r.depth is not None)
            assert up == depths and down == depths[::-1]
            tab.call("Emulation.setEmulatedMedia", media="print")
            style = tab.evaluate("(() => { const b = document.querySelector('.badge.b-unstable, .badge.b-stable');"
                                 " const s = getComputedStyle(b); return [s.backgroundColor, s.color]; })()")
            assert style == ["rgba(0, 0, 0, 0)", "rgb(0, 0, 0)"]
            breaks = tab.evaluate("getComputedStyle(document.querySelector('section.model')).breakBefore")
            assert breaks == "page"
            tab.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
