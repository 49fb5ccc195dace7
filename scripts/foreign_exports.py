"""Rebuild the foreign-exporter forms of graphpath's reference detectors and check graphpath on them.

Steps, each run with the Python that has its tools (nothing is downloaded at run time; the
float models are ``models/*.onnx``, built from graphpath's own reference code, whose manifest
holds the block counts and generation that code defines):

    # 1. build: onnxruntime.quantization, onnxconverter-common, onnxsim, onnxoptimizer
    /work/venvs/foreign/bin/python scripts/foreign_exports.py build --out /tmp/foreign
    # optional, first: PP-YOLOE+ s from PaddleDetection's code (a snapshot's ppdet/ and configs/)
    /work/venvs/paddle/bin/python scripts/foreign_exports.py paddle --out /tmp/foreign --detection PaddleDetection
    # 2. check: graphpath on every form (graphpath's own environment)
    python scripts/foreign_exports.py check --out /tmp/foreign [--backward yolov8n,yolov5s | --backward all]

Routes (``build``), each written as ``OUT/<model>.<route>.onnx``:

=============  ==============================================================================
``qdq``        ``quantize_static`` QDQ, int8 weights per-channel, uint8 activations, 2 seeded
               random calibration batches
``qop``        ``quantize_static`` QOperator (QLinearConv + com.microsoft QLinear*), per-tensor
``dynamic``    ``quantize_dynamic`` (ConvInteger/MatMulInteger + DynamicQuantizeLinear), uint8
``fp16``       ``onnxconverter_common.float16.convert_float_to_float16`` (float16 inputs/outputs)
``onnxsim``    ``onnxsim.simplify``
``onnxopt``    ``onnxoptimizer.optimize`` with its default passes
``stripped``   every node name cleared, every tensor and initializer renamed ``t<i>``/``w<i>``
=============  ==============================================================================

``check`` writes ``OUT/results.json`` and prints the Markdown tables of docs/validation.md
("Foreign exporters"): per form, generation and confidence against the manifest's generation,
block counts against the manifest's (written from the model code), units, depth and path count
against the float model, the quantization note, and (``--backward``) the numeric pass's verdict
or its one-line refusal; then the calibration table (confidence bin → fraction right).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
ROUTES = ("qdq", "qop", "dynamic", "fp16", "onnxsim", "onnxopt", "stripped")
BINS = ((0.0, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01))


#: Exports of other projects' model code, written by ``paddle`` into OUT, with what that code
#: defines (PaddleDetection ppyoloe_plus_crn_s: CSPResNet [3, 6, 6, 3] × depth 0.33 → 1, 2, 2, 1
#: BasicBlocks with a shortcut = 6 residual blocks; 4 CSPResStages + 5 CustomCSPPAN CSPStages =
#: 9 CSP stages, of which the first FPN stage (``spp=True``) holds an SPP (pools 5, 9, 13) inside
#: its split: graphpath's ``sppcspc`` (a CSP split holding parallel pools, as v7's SPPCSPC), so 8
#: ``csp`` + 1 ``sppcspc``; 4 EffectiveSE + 3 levels × 2 ESEAttn = 10 channel-attention gates;
#: PPYOLOEHead: 3 decoupled levels (cls 80 ‖ reg 4 × 17), DFL over 17 bins, no auxiliary head in
#: the eval graph).
EXTRA = [{"name": "ppyoloe_plus_s", "file": "ppyoloe_plus_s.onnx", "generation": "ppyoloe",
          "block_counts": {"residual": 6, "csp": 8, "sppcspc": 1, "decoupled_head": 3, "dfl": 1,
                           "aux_head": 0}}]


def _manifest(out: Path | None = None) -> list[dict[str, Any]]:
    entries = list(json.loads((MODELS / "manifest.json").read_text())["models"])
    for extra in EXTRA:
        if out is not None and (out / extra["file"]).exists():
            entries.append({**extra, "path": str(out / extra["file"])})
    return entries


def _source(entry: dict[str, Any]) -> Path:
    return Path(entry["path"]) if "path" in entry else MODELS / entry["file"]


# --------------------------------------------------------------------------- build


def _calibration(model: Any) -> Any:
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader

    inp = model.graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{inp.name: rng.random(shape, dtype=np.float32)} for _ in range(2)])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    return Reader()


def _strip(model: Any) -> Any:
    """Every node name cleared; tensors and initializers renamed (graph inputs/outputs too)."""
    g = model.graph
    names: dict[str, str] = {}
    for i, t in enumerate(g.initializer):
        names[t.name] = f"w{i}"
    for vi in list(g.input) + list(g.output):
        names.setdefault(vi.name, f"t{len(names)}")
    for n in g.node:
        for o in n.output:
            if o:
                names.setdefault(o, f"t{len(names)}")
    for t in g.initializer:
        t.name = names[t.name]
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = names.get(vi.name, vi.name)
    for n in g.node:
        n.name = ""
        n.input[:] = [names.get(x, x) for x in n.input]
        n.output[:] = [names.get(x, x) for x in n.output]
        del n.metadata_props[:]
    del g.value_info[:]
    return model


def build(out: Path, models: list[str]) -> dict[str, str]:
    """Write every route of every model; returns ``{file: "ok" | error line}``."""
    import onnx  # noqa: TID251 -- the build step runs in the tools' own venv, without graphpath

    out.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    versions = {"onnx": onnx.__version__}
    for entry in _manifest(out):
        if models and entry["name"] not in models:
            continue
        src = _source(entry)
        for route in ROUTES:
            dst = out / f"{entry['name']}.{route}.onnx"
            try:
                _route(route, src, dst, versions)
                status[dst.name] = "ok"
            except Exception as exc:  # a tool's failure is a result to record, not a crash
                status[dst.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            print(f"{dst.name}: {status[dst.name]}", file=sys.stderr)
    (out / "build.json").write_text(json.dumps({"status": status, "versions": versions}, indent=1, sort_keys=True))
    return status


def _route(route: str, src: Path, dst: Path, versions: dict[str, str]) -> None:
    import onnx  # noqa: TID251 -- the build step runs in the tools' own venv, without graphpath

    if route in ("qdq", "qop", "dynamic"):
        import onnxruntime
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

        versions["onnxruntime"] = onnxruntime.__version__
        if route == "dynamic":
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)
        else:
            quantize_static(str(src), str(dst), _calibration(onnx.load(str(src))),
                            quant_format=QuantFormat.QDQ if route == "qdq" else QuantFormat.QOperator,
                            per_channel=route == "qdq", weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8)
        return
    model = onnx.load(str(src))
    if route == "fp16":
        import onnxconverter_common
        from onnxconverter_common import float16

        versions["onnxconverter-common"] = onnxconverter_common.__version__
        model = float16.convert_float_to_float16(model, keep_io_types=False)
    elif route == "onnxsim":
        import onnxsim

        versions["onnxsim"] = onnxsim.__version__
        model, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified model")
    elif route == "onnxopt":
        import onnxoptimizer

        versions["onnxoptimizer"] = onnxoptimizer.__version__
        model = onnxoptimizer.optimize(model)
    elif route == "stripped":
        model = _strip(model)
    onnx.save(model, str(dst))


# --------------------------------------------------------------------------- check


def _facts(path: Path) -> dict[str, Any]:
    from graphpath.analysis import analyze

    d = analyze(path).to_dict()
    fp = d["fingerprint"]
    notes = {n["code"]: n for n in d.get("export_notes", [])}
    return {
        "generation": fp["generation"], "confidence": fp["confidence"], "variant": fp["variant"],
        "blocks": d["block_counts"], "units": d["layers"]["units"], "depth": d["layers"]["depth"],
        "paths": d["paths"]["by_role"]["main"]["count"],
        "quantized": notes.get("quantized", {}).get("evidence", ""),
    }


def _backward(path: Path, timeout: int) -> str:
    cmd = [sys.executable, "-m", "graphpath", "backward", "--probes", "1", "--max-blocks", "0",
           "--power-iters", "1", "--device", "cpu", "--format", "json", str(path)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout} s"
    if run.returncode != 0:
        lines = [x for x in run.stderr.splitlines() if x.startswith("graphpath")]
        return f"refused (exit {run.returncode}): {(lines or ['?'])[-1][:400]}"
    d = json.loads(run.stdout)
    par = d.get("parity", {})
    notes = par.get("notes", [])
    quant = " [dequantized weights, STE]" if any("straight-through" in n for n in notes) else ""
    ref = " [reference: uint8-weight copy]" if any("re-encoded as uint8" in n for n in notes) else ""
    half = " [float16 tolerance]" if any("float16 graph" in n for n in notes) else ""
    return (f"{d['verdict']['value']} (ratio {d['ratio']['value']:.3g}; parity max abs {par.get('max_abs', float('nan')):.3g}"
            f"){quant}{ref}{half}")


def check(out: Path, backward: list[str], timeout: int, models: list[str] | None = None,
          results: str = "results.json", routes: list[str] | None = None) -> dict[str, Any]:
    build_info = json.loads((out / "build.json").read_text()) if (out / "build.json").exists() else {}
    rows: list[dict[str, Any]] = []
    for entry in _manifest(out):
        if models and entry["name"] not in models:
            continue
        ref_path = _source(entry)
        ref = _facts(ref_path)
        for route in ("float", *ROUTES):
            if routes and route not in routes:
                continue
            path = ref_path if route == "float" else out / f"{entry['name']}.{route}.onnx"
            if not path.exists():
                status = build_info.get("status", {}).get(path.name, "not built")
                rows.append({"model": entry["name"], "route": route, "built": status})
                continue
            got = _facts(path)
            expected = {k: v for k, v in entry["block_counts"].items()}
            row = {
                "model": entry["name"], "route": route, "built": "ok", "expected_generation": entry["generation"],
                **got, "right": got["generation"] == entry["generation"],
                "blocks_as_code": all(got["blocks"].get(k, 0) == v for k, v in expected.items()),
                "same_structure": all(got[k] == ref[k] for k in ("units", "depth", "paths")),
            }
            if entry["name"] in backward or "all" in backward:
                t0 = time.perf_counter()
                row["backward"] = _backward(path, timeout)
                row["backward_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            # written after every row: a long --backward sweep leaves what it finished
            (out / results).write_text(json.dumps({"rows": rows}, indent=1, sort_keys=True))
            print(f"{entry['name']}.{route}: {row.get('generation')} {row.get('confidence')} "
                  f"blocks_as_code={row.get('blocks_as_code')} same={row.get('same_structure')} "
                  f"{row.get('backward', '')}", file=sys.stderr)
    result = {"rows": rows, "versions": build_info.get("versions", {}), "calibration": calibration(rows)}
    (out / results).write_text(json.dumps(result, indent=1, sort_keys=True))
    return result


def calibration(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Confidence bin → answers in it and the fraction that named the right generation."""
    table = []
    for lo, hi in BINS:
        inside = [r for r in rows if "confidence" in r and lo <= r["confidence"] < hi]
        right = sum(1 for r in inside if r["right"])
        table.append({"bin": f"[{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}", "answers": len(inside),
                      "right": right, "fraction": round(right / len(inside), 3) if inside else None})
    return table


def markdown(result: dict[str, Any]) -> str:
    lines = ["| model | form | generation (conf.) | blocks as the code | units/depth/paths as float | quantization | backward |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if r["built"] != "ok":
            lines.append(f"| {r['model']} | {r['route']} | not built: {r['built']} | | | | |")
            continue
        mark = "" if r["right"] else " ✗"
        lines.append(f"| {r['model']} | {r['route']} | {r['generation']} ({r['confidence']:.2f}){mark} | "
                     f"{'yes' if r['blocks_as_code'] else 'no'} | {'yes' if r['same_structure'] else 'no'} | "
                     f"{r['quantized'] or '—'} | {r.get('backward', '—')} |")
    lines += ["", "| confidence | answers | right | fraction right |", "| --- | --- | --- | --- |"]
    for b in result["calibration"]:
        frac = "—" if b["fraction"] is None else f"{b['fraction']:.3f}"
        lines.append(f"| {b['bin']} | {b['answers']} | {b['right']} | {frac} |")
    return "\n".join(lines)


def paddle(out: Path, detection: Path) -> Path:
    """PP-YOLOE+ s from PaddleDetection's own modules (``ppdet/modeling``, a repository snapshot
    at ``detection``; the package's ``__init__`` files, which import its data pipeline, are not
    run), random init, RepVGG branches re-parameterised as PaddleDetection's export does, exported
    by paddle2onnx (opset 13, 320²). Run with a Python that has paddlepaddle and paddle2onnx.

    One change to the code as published: ``F.interpolate(scale_factor=2.)`` in CustomCSPPAN is
    called with the equivalent ``size=`` because paddle2onnx 2.1's PIR parser rejects the float
    scale list (same nearest 2× Resize in the graph)."""
    import importlib
    import types

    for pkg in ("ppdet", "ppdet.modeling", "ppdet.modeling.backbones", "ppdet.modeling.necks",
                "ppdet.modeling.heads", "ppdet.modeling.losses", "ppdet.modeling.assigners", "ppdet.core",
                "ppdet.utils"):
        stub = types.ModuleType(pkg)
        stub.__path__ = [str(detection / pkg.replace(".", "/"))]
        sys.modules[pkg] = stub
    import paddle as pd
    import paddle.nn.functional as pf

    losses = sys.modules["ppdet.modeling.losses"]
    losses.GIoULoss = importlib.import_module("ppdet.modeling.losses.iou_loss").GIoULoss  # type: ignore[attr-defined]
    backbones = importlib.import_module("ppdet.modeling.backbones.cspresnet")
    pan = importlib.import_module("ppdet.modeling.necks.custom_pan")
    heads = importlib.import_module("ppdet.modeling.heads.ppyoloe_head")

    class _Functional:
        def __getattr__(self, key: str) -> Any:
            return getattr(pf, key)

        @staticmethod
        def interpolate(x: Any, scale_factor: float = 2.0, data_format: str = "NCHW", **_: Any) -> Any:
            size = [int(x.shape[2] * scale_factor), int(x.shape[3] * scale_factor)]
            return pf.interpolate(x, size=size, mode="nearest", data_format=data_format)

    pan.F = _Functional()
    # configs/ppyoloe/_base_/ppyoloe_plus_crn.yml with ppyoloe_plus_crn_s_80e_coco.yml's multipliers
    bb = backbones.CSPResNet(layers=[3, 6, 6, 3], channels=[64, 128, 256, 512, 1024], return_idx=[1, 2, 3],
                             use_large_stem=True, use_alpha=True, depth_mult=0.33, width_mult=0.50)
    neck = pan.CustomCSPPAN(in_channels=[c.channels for c in bb.out_shape], out_channels=[768, 384, 192],
                            stage_num=1, block_num=3, act="swish", spp=True, depth_mult=0.33, width_mult=0.50)
    head = heads.PPYOLOEHead(in_channels=[c.channels for c in neck.out_shape], fpn_strides=[32, 16, 8],
                             grid_cell_scale=5.0, grid_cell_offset=0.5, static_assigner_epoch=-1,
                             use_varifocal_loss=True, num_classes=80, static_assigner=None, assigner=None,
                             nms=None, reg_max=16, loss_weight={"class": 1.0, "iou": 2.5, "dfl": 0.5})

    class Net(pd.nn.Layer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.neck, self.head = bb, neck, head

        def forward(self, x: Any) -> Any:
            return self.head(self.neck(self.backbone({"image": x})))

    net = Net()
    net.eval()
    for layer in net.sublayers():
        if hasattr(layer, "convert_to_deploy"):
            layer.convert_to_deploy()
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "ppyoloe_plus_s"
    pd.onnx.export(net, str(dst), input_spec=[pd.static.InputSpec([1, 3, 320, 320], "float32", "image")],
                   opset_version=13)
    return dst.with_suffix(".onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    b = sub.add_parser("build", help="write the foreign forms (run with the tools' Python)")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--models", default="", help="comma-separated manifest names (default: all)")
    c = sub.add_parser("check", help="graphpath on every form (run with graphpath's Python)")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--backward", default="",
                   help="comma-separated models whose forms get the numeric pass, or 'all'")
    c.add_argument("--timeout", type=int, default=300, help="seconds per backward run")
    c.add_argument("--models", default="", help="comma-separated names (default: all)")
    c.add_argument("--results", default="results.json", help="file name of the JSON written into OUT")
    c.add_argument("--routes", default="", help="comma-separated forms (float and the build routes; default: all)")
    p = sub.add_parser("paddle", help="PP-YOLOE+ s from a PaddleDetection snapshot (run with paddle's Python)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--detection", type=Path, required=True, help="PaddleDetection checkout (ppdet/, configs/)")
    args = parser.parse_args(argv)
    if args.step == "paddle":
        print(paddle(args.out, args.detection))
        return 0
    if args.step == "build":
        build(args.out, [m for m in args.models.split(",") if m])
        return 0
    print(markdown(check(args.out, [m for m in args.backward.split(",") if m], args.timeout,
                         [m for m in args.models.split(",") if m], args.results,
                         [r for r in args.routes.split(",") if r])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
