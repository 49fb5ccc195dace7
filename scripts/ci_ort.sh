#!/usr/bin/env bash
# CI step: the onnxruntime-training backend in its own environment.
#
# Builds .venv-ort (scripts/make_ort_venv.sh; reuses an existing one) and runs the cross-check
# of onnxruntime-training against the torch evaluator there. pytest's exit 5 (no test ran)
# counts as a failure: in .venv-ort the tests must run, not skip on a missing import.
#
# Usage: scripts/ci_ort.sh [extra pytest args]
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${ORT_VENV:-$root/.venv-ort}"

start=$(date +%s)
if ! bash scripts/make_ort_venv.sh "$venv"; then
    echo "ci_ort: building $venv failed" >&2
    exit 1
fi
echo "ci_ort: environment ready in $(( $(date +%s) - start ))s" >&2

# pyproject's addopts already say -q: another -q would drop pytest's closing "N passed" line,
# which CI reads. -rs lists each skipped model with its reason; no cache dir in the tree.
"$venv/bin/python" -m pytest tests/ort_training -rs -p no:cacheprovider "$@"
rc=$?
echo "ci_ort: finished in $(( $(date +%s) - start ))s (pytest exit $rc)" >&2
if [ "$rc" -eq 5 ]; then
    echo "ci_ort: no test ran in $venv (onnxruntime.training not importable?)" >&2
    exit 1
fi
exit "$rc"
