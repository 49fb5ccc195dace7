"""Screenshot of Netron's properties panel for one node of an annotated model.

    python scripts/netron_screenshot.py [--model models/yolov8n.onnx]
        [--node /model.2/m.0/cv1/conv/Conv] [-o netron-node.png] [--numeric]

Annotates MODEL with ``graphpath annotate`` into a temporary folder, serves the copy with the
``netron`` package (``pip install 'graphpath[view]' -c constraints.txt``) on 127.0.0.1, opens it
in headless Chromium (the Debian ``chromium`` package; ``--chromium PATH`` for another binary)
through the DevTools protocol (``websocket-client``), clicks the node, and saves a screenshot
of the properties panel. The panel's text is printed too, so a run without a display still
says what Netron shows. Nothing is fetched from the network: Netron's page is served locally.
Exit 0 when the panel shows graphpath's findings, 1 otherwise, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevTools:
    """A minimal DevTools-protocol client on one page target."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client

        self._ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 60.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def close(self) -> None:
        self._ws.close()


def _start_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen[str], str]:
    """Headless Chromium with remote debugging on a free port; returns it and a page's ws URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         # nothing leaves the machine: every host name but the local server fails to resolve
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "--window-size=1600,1400",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return proc, str(pages[0]["webSocketDebuggerUrl"])
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"{binary} did not open its DevTools port")


_PANEL_TEXT = """(() => { const s = document.getElementById('sidebar');
  return s && getComputedStyle(s).opacity === '1' ? s.innerText : ''; })()"""

_PANEL_RECT = """(() => { const r = document.getElementById('sidebar').getBoundingClientRect();
  return [r.x, r.y, r.width, r.height]; })()"""


def _node_centre(node: str) -> str:
    """The centre of the node's title box, scrolled into view (``null`` until it is drawn)."""
    ident = json.dumps(f"node-name-{node}")
    return f"""(() => {{ const g = document.getElementById({ident});
  if (!g) return null;
  const item = g.querySelector('.node-item-type') || g.querySelector('.node-item') || g;
  item.scrollIntoView({{block: 'center', inline: 'center'}});
  const r = item.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2]; }})()"""


def _click(page: DevTools, x: float, y: float) -> None:
    """A real mouse click (Netron's handlers see what a user's click gives them)."""
    page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    for kind in ("mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def screenshot(annotated: Path, node: str, output: Path, chromium: str) -> str:
    """Serve ``annotated`` with Netron, click ``node``, save the panel to ``output``; returns
    the panel's text."""
    import netron

    port = _free_port()
    netron.serve(str(annotated), address=("127.0.0.1", port), browse=False)
    with tempfile.TemporaryDirectory(prefix="graphpath-chromium-") as profile:
        proc, ws_url = _start_chromium(chromium, Path(profile))
        try:
            page = DevTools(ws_url)
            page.call("Page.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=1600, height=1400, deviceScaleFactor=1,
                      mobile=False)
            url = f"http://127.0.0.1:{port}/"
            # Netron asks for cookie consent (after looking up the country online) unless a
            # consent cookie is set; set it so that the page opens the model straight away.
            page.call("Network.setCookie", name="consent", value=str(int(time.time() * 1000)), url=url)
            page.call("Page.navigate", url=url)
            page.wait_for(f"!!document.getElementById({json.dumps('node-name-' + node)})",
                          f"Netron to draw node {node!r}", timeout=120)
            text = ""
            end = time.monotonic() + 90
            while not text and time.monotonic() < end:
                # click again until the panel opens: under load the first click can land while
                # Netron is still laying the graph out
                x, y = page.evaluate(_node_centre(node))
                _click(page, x, y)
                try:
                    text = str(page.wait_for(_PANEL_TEXT, "the properties panel", timeout=5))
                except TimeoutError:
                    continue
            if not text:
                raise TimeoutError("the properties panel did not open after 90 s of clicks")
            time.sleep(0.5)  # the panel slides in (0.1 s transition)
            x, y, w, h = page.evaluate(_PANEL_RECT)
            shot = page.call("Page.captureScreenshot", format="png",
                             clip={"x": x, "y": y, "width": w, "height": h, "scale": 1})
            output.write_bytes(base64.b64decode(shot["data"]))
            page.close()
            return text
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            netron.stop(("127.0.0.1", port))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "yolov8n.onnx")
    ap.add_argument("--node", default="/model.2/m.0/cv1/conv/Conv", help="the node to click (its ONNX name)")
    ap.add_argument("-o", "--output", type=Path, default=Path("netron-node.png"))
    ap.add_argument("--numeric", action="store_true", help="annotate with --numeric (torch extra; slow)")
    ap.add_argument("--chromium", default=None, help="the browser binary (default: chromium on PATH)")
    args = ap.parse_args(argv)
    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("netron_screenshot: no chromium on PATH (apt-get install -y chromium)", file=sys.stderr)
        return 2
    try:
        import netron  # noqa: F401
        import websocket  # noqa: F401
    except ImportError as exc:
        print(f"netron_screenshot: {exc.name} is missing: pip install 'graphpath[view]' -c constraints.txt",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="graphpath-annotate-") as tmp:
        annotated = Path(tmp) / f"{args.model.stem}.annotated.onnx"
        cmd = [sys.executable, "-m", "graphpath", "annotate", str(args.model), "-o", str(annotated), "-q",
               *(["--numeric"] if args.numeric else []), "--copy-external-data"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr, end="")
            return done.returncode
        text = screenshot(annotated, args.node, args.output, chromium)
    print(text)
    print(f"netron_screenshot: saved {args.output}", file=sys.stderr)
    return 0 if re.search(r"graphpath", text) else 1


if __name__ == "__main__":
    sys.exit(main())
