"""scripts/netron_screenshot.py end to end: Netron shows graphpath's findings in a node's
properties panel (skipped without chromium or the ``view`` extra)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                       reason="no chromium on PATH (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("netron") is None or importlib.util.find_spec("websocket") is None,
                       reason="the view extra is not installed (pip install 'graphpath[view]')"),
]


def test_the_properties_panel_shows_the_block_and_the_paths(tmp_path):
    png = tmp_path / "node.png"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "netron_screenshot.py"), "-o", str(png),
                           "--node", "/model.2/m.0/cv1/conv/Conv"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    panel = done.stdout
    assert "NODE PROPERTIES" in panel.upper() and "/model.2/m.0/cv1/conv/Conv" in panel
    assert "block: c2f model.2 › residual model.2.m.0" in panel  # the doc_string (description)
    assert "METADATA" in panel.upper() and "c2f model.2 › residual model.2.m.0\n" in panel  # metadata_props
    assert "ERROR" not in panel
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
