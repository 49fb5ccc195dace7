"""Rebuild the foreign-exporter forms of graphpath's reference detectors and check graphpath on them.

Steps, each run with the Python that has its tools (nothing is downloaded at run time; the
float models are ``models/*.onnx``, built from graphpath's own reference code, whose manifest
holds the block counts and generation that code defines):

    # 1. build: onnxruntime.quantization, onnxconverter-common, onnxsim, onnxoptimizer
    /work/venvs/foreign/bin/python scripts/foreign_exports.py build --out /tmp/foreign
    # optional, first: PP-YOLOE+ s from PaddleDetection's code (a snapshot's ppdet/ and configs/)
    /work/venvs/paddle/bin/python scripts/foreign_exports.py paddle --out /tmp/foreign --detection PaddleDetection
    # optional, first: keras-cv YOLOV8Detector (tf2onnx and the Keras torch backend) and YOLO-NAS S
    /work/venvs/keras/bin/python scripts/foreign_exports.py keras --out /tmp/foreign
    /work/venvs/sg/bin/python scripts/foreign_exports.py yolonas --out /tmp/foreign
    # 2. check: graphpath on every form (graphpath's own environment)
    python scripts/foreign_exports.py check --out /tmp/foreign [--backward yolov8n,yolov5s | --backward all]

Routes (``build``), each written as ``OUT/<model>.<route>.onnx``:

=============  ==============================================================================
``qdq``        ``quantize_static`` QDQ, int8 weights per-channel, uint8 activations, 2 seeded
               random calibration batches
``qop``        ``quantize_static`` QOperator (QLinearConv + com.microsoft QLinear*), per-tensor;
               initializers that the export aliases through Identity nodes are copied back first
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

#: Written by ``ultralytics`` and ``damo`` into OUT, with what each model's code defines:
#:
#: * YOLO26 n (ultralytics 8.4.190 ``cfg/models/26/yolo26.yaml``, scale n: depth 0.50 → every
#:   ``C3k2`` repeat 2 → 1): 8 C3k2 (4 backbone, 4 head); 5 of them with ``c3k=True`` hold a C3k
#:   (a C3 of 2 bottlenecks: ``csp``), the last (``attn=True``) a Bottleneck + PSABlock; C2PSA
#:   with 1 PSABlock; SPPF(k=5, n=3, shortcut=True) whose input and output widths match, so it
#:   adds its input (an identity shortcut). Residual adds: 2 (plain-bottleneck C3k2) + 5 × 2
#:   (C3k) + 3 (attn C3k2: bottleneck + PSABlock's two) + 2 (C2PSA's PSABlock) + 1 (SPPF) = 18;
#:   attention: 2 PSABlocks. Detect with ``reg_max: 1``: box convs of 4 channels and
#:   ``nn.Identity`` for the DFL (no DFL), 3 levels; FPN 2 + PAN 2. The exporter's default
#:   keeps the one-to-many head (``fuse`` drops the one-to-one copy); ``nms=False`` keeps the
#:   one-to-one head and selects with TopK (no NMS op): ``one2one_head`` 1.
#: * YOLOv8s-worldv2 (``cfg/models/v8/yolov8-worldv2.yaml``, scale s: depth 0.33): backbone
#:   C2f repeats 3, 6, 6, 3 → 1, 2, 2, 1 bottlenecks with shortcut (6 residual adds), 4 C2f;
#:   SPPF; neck of 4 C2fAttn (one bottleneck each, ``shortcut=False``, plus a max-sigmoid text
#:   attention branch: no softmax attention and no graphpath block id, so they count in none of
#:   these); WorldDetect: 3 levels of box branch (64 = 4 × 16 bins, DFL) beside an embedding
#:   branch whose 512 channels are multiplied by the normalised text embeddings (BNContrastiveHead).
#: * DAMO-YOLO T (``configs/damoyolo_tinynasL20_T.py``): TinyNAS_res backbone (Focus stem;
#:   ResConvBlocks L = 2, 2, 2, 2, 1 whose stride-1 blocks add their input: 1 + 1 + 1 + 2 + 0 = 5
#:   residual adds; SPPBottleneck 5 ‖ 9 ‖ 13 after the last stage: ``spp``), GiraffeNeckV2 (5
#:   CSPStages of round(3 × depth 1.0) = 3 BasicBlock_3x3_Reverse with shortcut: 5 ``csp``, 15
#:   residual adds; 2 three-input fusions), ZeroHead (``stacked_convs 0``: per level a 3×3 class
#:   conv of 80 and a 3×3 box conv of 4 × 17 from the same feature: 3 decoupled levels; one
#:   softmax-over-17-bins ``Integral`` projection: DFL 1). Residual: 5 + 15 = 20.
EXTRA_FAMILIES = [
    {"name": "yolo26n", "file": "yolo26n.onnx", "generation": "v26",
     "block_counts": {"c3k2": 8, "csp": 5, "c2psa": 1, "sppf": 1, "residual": 18, "attention": 2,
                      "decoupled_head": 3, "dfl": 0, "one2one_head": 0, "fpn": 2, "pan": 2}},
    {"name": "yolo26n-e2e", "file": "yolo26n-e2e.onnx", "generation": "v26",
     "block_counts": {"c3k2": 8, "csp": 5, "c2psa": 1, "sppf": 1, "residual": 18, "attention": 2,
                      "decoupled_head": 3, "dfl": 0, "one2one_head": 1, "fpn": 2, "pan": 2}},
    {"name": "yolov8s-worldv2", "file": "yolov8s-worldv2.onnx", "generation": "yoloworld",
     "block_counts": {"c2f": 4, "residual": 6, "sppf": 1, "attention": 0, "decoupled_head": 3, "dfl": 1,
                      "fpn": 2, "pan": 2}},
    {"name": "damoyolo_t", "file": "damoyolo_tinynasL20_T.onnx", "generation": "damoyolo",
     "block_counts": {"residual": 20, "csp": 5, "spp": 1, "sppcspc": 0, "decoupled_head": 3, "dfl": 1}},
]
EXTRA += EXTRA_FAMILIES

#: Written by ``keras`` and ``yolonas`` (the functions near the end of this file), with what
#: that code defines:
#:
#: * keras-cv 0.9 ``YOLOV8Detector`` on ``YOLOV8Backbone(stackwise_channels=[32, 64, 128, 256],
#:   stackwise_depth=[1, 2, 2, 1])`` (the yolo_v8_xs stack) with ``fpn_depth=1``: 4 backbone
#:   ``apply_csp_block`` (a C2f: split in two, each bottleneck's output appended, one concat) + 4
#:   in ``apply_path_aggregation_fpn`` = 8 C2f; residual adds only in the backbone blocks
#:   (``shortcut=True``; the FPN's are ``shortcut=False``): 1 + 2 + 2 + 1 = 6; one
#:   ``apply_spatial_pyramid_pooling_fast`` = 1 SPPF; 2 top-down (upsample + concat) and 2
#:   bottom-up (stride-2 conv + concat) merges; 3 head levels with separate box (64 = 4 × 16
#:   bins) and class convs. The DFL decode is in ``decode_predictions``, outside the model's
#:   graph: 0 DFL in the export.
#: * super-gradients 3.7.1 YOLO-NAS S (``yolo_nas_s_arch_params.yaml``): YoloNASCSPLayer in the
#:   4 backbone stages + 2 YoloNASUpStage + 2 YoloNASDownStage = 8 CSP; bottlenecks 2 + 3 + 5 +
#:   2 (backbone) + 2 × 4 (neck), each with a residual (``shortcut=True``, equal channels, the
#:   alpha scale) = 20; SPP (k 5, 9, 13) = 1; 2 up-stages (ConvTranspose upsample + concat) = 2
#:   top-down, 2 down-stages (stride-2 conv + concat) = 2 bottom-up merges; NDFLHeads on 3 levels
#:   with reg_max 16 = one DFL decode over 17 bins. Its 37 QARepVGG blocks (stem 1, stage
#:   downsamples 4, backbone bottlenecks 24, up-stage bottlenecks 8) are fused into single 3×3
#:   convs by ``prep_model_for_conversion`` before export, so no RepVGG branch is in the graph.
_KERAS_V8 = {"c2f": 8, "residual": 6, "sppf": 1, "fpn": 2, "pan": 2, "decoupled_head": 3, "dfl": 0}
EXTRA_KERAS_NAS = [
    {"name": "kerascv_yolov8_xs_tf2onnx", "file": "kerascv_yolov8_xs_tf2onnx.onnx", "generation": "v8",
     "block_counts": _KERAS_V8},
    {"name": "kerascv_yolov8_xs_torch", "file": "kerascv_yolov8_xs_torch.onnx", "generation": "v8",
     "block_counts": _KERAS_V8},
    {"name": "yolonas_s", "file": "yolonas_s.onnx", "generation": "yolonas",
     "block_counts": {"csp": 8, "residual": 20, "spp": 1, "fpn": 2, "pan": 2, "decoupled_head": 3, "dfl": 1}},
]
EXTRA += EXTRA_KERAS_NAS


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


def _unalias(model: Any) -> Any:
    """``model`` with every ``Identity`` of an initializer replaced by a copy of that
    initializer under the Identity's output name (``None`` when there is none)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    aliases = [n for n in g.node if n.op_type == "Identity" and n.input and n.input[0] in inits]
    if not aliases:
        return None
    for n in aliases:
        copy = type(inits[n.input[0]])()
        copy.CopyFrom(inits[n.input[0]])
        copy.name = n.output[0]
        g.initializer.append(copy)
        g.node.remove(n)
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
        elif route == "qop" and _unalias(onnx.load(str(src))) is not None:
            # onnxruntime's QOperator quantizer reads conv biases as initializers; TorchScript
            # exports share equal tensors through Identity nodes: copy them back first
            aliased = dst.with_suffix(".unaliased.onnx")
            onnx.save(_unalias(onnx.load(str(src))), str(aliased))
            try:
                quantize_static(str(aliased), str(dst), _calibration(onnx.load(str(aliased))),
                                quant_format=QuantFormat.QOperator, per_channel=False,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
            finally:
                aliased.unlink(missing_ok=True)
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
    half += " [op by op]" if any("op by op on onnxruntime's inputs" in n for n in notes) else ""
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


def ultralytics(out: Path, imgsz: int = 320) -> list[Path]:
    """YOLO26 n and YOLOv8s-worldv2 from Ultralytics' own model code (the package's
    ``cfg/models`` YAMLs), random init (``torch.manual_seed(0)``), exported by Ultralytics'
    exporter (ONNX, opset 17, static 320², no onnxslim). Nothing is downloaded
    (``YOLO_OFFLINE=1``; a YAML builds without weights). Run with a Python that has ultralytics.

    Three files: ``yolo26n`` (the exporter's default, the one-to-many head decoded without
    TopK), ``yolo26n-e2e`` (``nms=False``: the end-to-end one-to-one head with TopK selection)
    and ``yolov8s-worldv2`` (the text embeddings are the model's ``txt_feats`` placeholder,
    ``torch.randn(1, 80, 512)`` at construction, baked into the graph as a constant; ``set_classes``
    would need the CLIP weights, a download, so it is not called)."""
    import os
    import shutil
    import tempfile

    os.environ["YOLO_OFFLINE"] = "1"
    import torch
    from ultralytics import YOLO

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for cfg, name, extra in (("yolo26n.yaml", "yolo26n", {}), ("yolo26n.yaml", "yolo26n-e2e", {"nms": False}),
                             ("yolov8s-worldv2.yaml", "yolov8s-worldv2", {})):
        torch.manual_seed(0)
        here = Path.cwd()
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)  # the exporter writes next to the YAML's name
            try:
                exported = YOLO(cfg).export(format="onnx", imgsz=imgsz, simplify=False, opset=17, dynamic=False,
                                            **extra)
            finally:
                os.chdir(here)
            dst = out / f"{name}.onnx"
            shutil.move(str(Path(tmp) / exported), dst)
        written.append(dst)
    return written


def damo(out: Path, repo: Path, config: str = "damoyolo_tinynasL20_T", imgsz: int = 320) -> Path:
    """DAMO-YOLO from its own code (a repository snapshot's ``damo/`` and ``configs/``; the
    package ``__init__`` files, which import the trainer and data pipeline, are not run):
    ``configs/<config>.py`` built by ``damo.detectors.detector.build_local_model`` (TinyNAS_res
    backbone + GiraffeNeckV2 + ZeroHead), random init (``torch.manual_seed(0)``), then what
    ``tools/converter.py`` does before its export (SiLU swapped for its export form, RepConv
    branches re-parameterised, ``head.nms = False``), TorchScript ONNX export (opset 13,
    ``imgsz``²; the converter's optional onnxsim step is the ``onnxsim`` route here). Run with a
    Python that has torch, plus easydict, loguru and tabulate for the config module.
    ``damo.utils.boxes`` (NMS post-processing, torchvision ops) is not imported: the export
    never runs it."""
    import importlib
    import importlib.util
    import os
    import types

    import torch

    sys.path.insert(0, str(repo))
    for pkg in ("damo", "damo.base_models", "damo.utils"):
        stub = types.ModuleType(pkg)
        stub.__path__ = [str(repo / pkg.replace(".", "/"))]
        sys.modules[pkg] = stub
    utils = sys.modules["damo.utils"]
    model_utils = importlib.import_module("damo.utils.model_utils")
    utils.make_divisible = model_utils.make_divisible  # type: ignore[attr-defined]
    # damo.utils.boxes (the NMS post-processing) needs torchvision's compiled ops; the export
    # sets head.nms = False as tools/converter.py does, so it is never called
    def postprocess(*_: Any, **__: Any) -> Any:
        raise RuntimeError("NMS post-processing is not part of the export")

    utils.postprocess = postprocess  # type: ignore[attr-defined]
    here = Path.cwd()
    os.chdir(repo)  # the configs read their TinyNAS structure file relative to the checkout
    try:
        spec = importlib.util.spec_from_file_location("damo_config", repo / "configs" / f"{config}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cfg = module.Config()
    finally:
        os.chdir(here)
    ops = importlib.import_module("damo.base_models.core.ops")
    detector = importlib.import_module("damo.detectors.detector")
    torch.manual_seed(0)
    model = detector.build_local_model(cfg, "cpu")
    model.eval()
    model = model_utils.replace_module(model, torch.nn.SiLU, ops.SiLU)
    for layer in model.modules():
        if isinstance(layer, ops.RepConv):
            layer.switch_to_deploy()
    model.head.nms = False
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{config}.onnx"
    x = torch.rand(1, 3, imgsz, imgsz)
    model(x)
    torch.onnx.export(model, (x,), str(dst), input_names=["images"], opset_version=13, dynamo=False)
    return dst


KERAS_BACKENDS = ("tensorflow", "torch")


def keras(out: Path, backend: str, size: int = 320, seed: int = 0) -> Path:
    """keras-cv's YOLOV8Detector (random init, seed ``seed``; the yolo_v8_xs backbone stack
    built from its arguments, ``fpn_depth=1``, 80 classes, ``bounding_box_format="xywh"``, no
    preset, nothing downloaded), exported with ``backend``:

    * ``tensorflow``: ``tf2onnx.convert.from_function`` of a ``tf.function`` calling the model
      (opset 17, input NHWC ``[1, size, size, 3]``);
    * ``torch``: ``KERAS_BACKEND=torch`` and Keras' own ``model.export(format="onnx")``.

    The export is the model's graph: raw box distributions (64 = 4 × 16 bins) and class
    scores; the DFL decode and NMS of ``predict`` are not part of it. Checked against the Keras
    model with onnxruntime (max abs difference printed). Run once per backend (the backend is
    fixed at import)."""
    import os

    os.environ["KERAS_BACKEND"] = backend
    import keras as k
    import keras_cv
    import numpy as np
    import onnxruntime as ort

    k.utils.set_random_seed(seed)
    backbone = keras_cv.models.YOLOV8Backbone(stackwise_channels=[32, 64, 128, 256], stackwise_depth=[1, 2, 2, 1],
                                              include_rescaling=False, input_shape=(size, size, 3))
    det = keras_cv.models.YOLOV8Detector(num_classes=80, bounding_box_format="xywh", backbone=backbone, fpn_depth=1)
    x = np.random.default_rng(seed).random((1, size, size, 3), dtype=np.float32)
    ref = det(x, training=False)
    ref = [np.asarray(ref[key].detach().cpu() if backend == "torch" else ref[key]) for key in ("boxes", "classes")]
    out.mkdir(parents=True, exist_ok=True)
    dst = out / ("kerascv_yolov8_xs_tf2onnx.onnx" if backend == "tensorflow" else "kerascv_yolov8_xs_torch.onnx")
    if backend == "tensorflow":
        import tensorflow as tf
        import tf2onnx

        @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="images")])  # type: ignore[misc]
        def forward(images: Any) -> Any:
            y = det(images, training=False)
            return {"boxes": y["boxes"], "classes": y["classes"]}

        tf2onnx.convert.from_function(forward, input_signature=forward.input_signature, opset=17,
                                      output_path=str(dst))
        versions = {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__}
    else:
        import torch

        det.export(str(dst), format="onnx")
        versions = {"torch": torch.__version__}
    session = ort.InferenceSession(str(dst))
    got = session.run(None, {session.get_inputs()[0].name: x})
    diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref, strict=True))
    print(json.dumps({"file": dst.name, "params": det.count_params(), "max_abs_vs_keras": diff, "keras": k.__version__,
                      "keras_cv": keras_cv.__version__, **versions}), file=sys.stderr)
    return dst


def yolonas(out: Path, size: int = 320) -> Path:
    """YOLO-NAS S from super-gradients (``models.get("yolo_nas_s", num_classes=80,
    pretrained_weights=None)``: random init, nothing downloaded), ``prep_model_for_conversion``
    (QARepVGG fusion, the head's anchors for ``size``), exported by ``torch.onnx.export``
    (TorchScript exporter, opset 17, ``[1, 3, size, size]``); outputs are the decoded boxes and
    class scores (NDFLHeads' traced branch), no NMS.

    super-gradients 3.7.1 is installed without its pinned dependencies (numpy<=1.23, onnx
    1.15, torch CPU 2.13 from a local wheel) and torchvision 0.28's PyPI build, whose compiled
    ops do not load against the CPU torch: registering their fake kernels raises, so that
    registration is made tolerant here (the export never calls a torchvision op)."""
    import torch
    import torch.library

    register_fake = torch.library.register_fake

    def tolerant(op: Any, *args: Any, **kwargs: Any) -> Any:
        decorate = register_fake(op, *args, **kwargs)

        def wrap(fn: Any) -> Any:
            try:
                return decorate(fn)
            except RuntimeError:  # "operator torchvision::nms does not exist"
                return fn

        return wrap if callable(decorate) else decorate

    torch.library.register_fake = tolerant  # type: ignore[assignment]
    import super_gradients
    from super_gradients.training import models

    torch.manual_seed(0)
    net = models.get("yolo_nas_s", num_classes=80, pretrained_weights=None)
    net.eval()
    net.prep_model_for_conversion(input_size=(1, 3, size, size))
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "yolonas_s.onnx"
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(net, (x,), str(dst), opset_version=17, dynamo=False, input_names=["images"],
                          output_names=["boxes", "scores"])
    print(json.dumps({"file": dst.name, "params_fused": sum(p.numel() for p in net.parameters()),
                      "super_gradients": super_gradients.__version__, "torch": torch.__version__}), file=sys.stderr)
    return dst


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
    u = sub.add_parser("ultralytics", help="YOLO26 n and YOLOv8s-worldv2 from Ultralytics' YAMLs (its Python)")
    u.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("damo", help="DAMO-YOLO from a DAMO-YOLO snapshot (a Python with torch)")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--repo", type=Path, required=True, help="DAMO-YOLO checkout (damo/, configs/)")
    d.add_argument("--config", default="damoyolo_tinynasL20_T", help="configs/<name>.py")
    k = sub.add_parser("keras", help="keras-cv YOLOV8Detector via tf2onnx and the Keras torch backend "
                                     "(run with the keras venv's Python)")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--backend", choices=(*KERAS_BACKENDS, "both"), default="both")
    n = sub.add_parser("yolonas", help="YOLO-NAS S from super-gradients (run with its venv's Python)")
    n.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.step == "ultralytics":
        print("\n".join(str(p) for p in ultralytics(args.out)))
        return 0
    if args.step == "damo":
        print(damo(args.out, args.repo.resolve(), args.config))
        return 0
    if args.step == "keras":
        if args.backend != "both":
            print(keras(args.out, args.backend))
            return 0
        for backend in KERAS_BACKENDS:  # one process per backend: Keras fixes it at import
            subprocess.run([sys.executable, __file__, "keras", "--out", str(args.out), "--backend", backend], check=True)
        return 0
    if args.step == "yolonas":
        print(yolonas(args.out))
        return 0
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
