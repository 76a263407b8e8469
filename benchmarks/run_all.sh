#!/usr/bin/env bash
# Re-run every measurement behind benchmarks/RESULTS.md into benchmarks/results/.
#   bash benchmarks/run_all.sh            (from the repository root; about 5 min on a quiet 2-core box)
# Needs .venv (the project, editable) and, for compare_fer.py, benchmarks/.venv-fer:
#   python3.11 -m venv benchmarks/.venv-fer && benchmarks/.venv-fer/bin/pip install -r benchmarks/requirements-fer.txt
# EDGE_FER overrides the CLI used (default .venv/bin/edge-fer); SHARED the data folder.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
PY=.venv/bin/python
EDGE_FER=${EDGE_FER:-.venv/bin/edge-fer}
SHARED=${SHARED:-../shared/data}
R=benchmarks/results
mkdir -p "$R"
VIDEO="$SHARED/media/woman2.mp4"
DET=(--detector-model "$SHARED/detectors")
MODEL=()
if [ ! -f edge_fer/models/edgenet_fer2013_int8.tflite ]; then  # the peer's TFLite stands in
  MODEL=(--model "$SHARED/peers/fer/emotion_model_quantized.tflite" --labels fer2013
         --input-scale 0.00784313725 --input-offset -1)
fi
MODELS=()  # every packaged model file, for the classifier-only table
for f in edge_fer/models/*.tflite edge_fer/models/*.onnx; do [ -f "$f" ] && MODELS+=(--model "$f"); done
[ ${#MODELS[@]} -eq 0 ] && MODELS=("${MODEL[@]}")

run() { echo "+ $*" >&2; "$@" || [ $? -eq 1 ]; }  # exit 1 = a row missed its target: keep going

# 1. default configuration end to end (3 fresh processes per row)
run "$EDGE_FER" bench --video "$VIDEO" "${MODEL[@]}" --repeat 3 \
  --json "$R/bench_default_woman2.json" --plot "$R/bench_default_woman2.png"
# 2. every detector x runtime threads 1,2 (default model)
run "$EDGE_FER" bench --video "$VIDEO" "${MODEL[@]}" "${DET[@]}" \
  --detector haar,ssd,yunet,blazeface,rfb --threads 1,2 \
  --json "$R/bench_detectors_woman2.json" --plot "$R/bench_detectors_woman2.png"
# 3. paced at a camera's 30 fps: deadline misses
run "$EDGE_FER" bench --video "$VIDEO" "${MODEL[@]}" --fps 30 \
  --json "$R/bench_paced30_woman2.json"
# 4. classifier alone per model file, with accuracy on FER2013 val
run "$EDGE_FER" bench --classifier-only --video "$VIDEO" "${MODELS[@]}" --threads 1,2 \
  --data "$SHARED/fer2013/val" --json "$R/bench_classifier_only.json"
# 5. against the fer package, same frames, alternating processes
run $PY benchmarks/compare_fer.py --rounds 3 --out "$R/compare_fer.json"
# 6. 10,000-frame soak: RSS growth and latency drift
run $PY benchmarks/soak.py --out "$R/soak.json"
