#!/usr/bin/env bash
# Build .venv-ort: a separate environment for graphpath's onnxruntime-training backend.
#
# onnxruntime-training-cpu (last release 1.19.2) installs under the import name `onnxruntime`,
# overwriting plain onnxruntime, so it can never share the main .venv. graphpath goes in with
# --no-deps so that its own `onnxruntime>=...` requirement cannot pull the plain wheel back over
# the training build; constraints-ort.txt pins what the training build works with.
#
# Usage: scripts/make_ort_venv.sh [VENV_DIR]   (default: .venv-ort in the repository root)
# Set PYTHON to choose the interpreter (onnxruntime-training-cpu 1.19.2 has wheels for 3.8-3.12).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv-ort}"
python="${PYTHON:-python3}"

"$python" - <<'PY'
import sys
if not ((3, 8) <= sys.version_info[:2] <= (3, 12)):
    sys.exit(f"onnxruntime-training-cpu 1.19.2 ships wheels for Python 3.8-3.12, not {sys.version.split()[0]}; "
             "set PYTHON to a supported interpreter")
PY

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip
# One resolve for everything, so that the constraints hold across the set.
"${pip[@]}" install --quiet -c "$root/constraints-ort.txt" \
    onnxruntime-training-cpu torch onnx numpy protobuf networkx click rich pytest
"${pip[@]}" install --quiet --no-deps -e "$root"
# A plain onnxruntime wheel installed later would silently replace the training build.
"$venv/bin/python" - <<'PY'
import importlib.util, sys
if importlib.util.find_spec("onnxruntime.training") is None:
    sys.exit("onnxruntime.training is not importable in this venv (plain onnxruntime installed over it?)")
import onnxruntime
print(f".venv-ort ready: onnxruntime {onnxruntime.__version__} (training build)")
PY
