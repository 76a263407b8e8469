#!/usr/bin/env bash
# How the shipped default model was made, end to end (run from the repo root, README's venv).
# FER2013 from ../shared/data/fer2013 (train = 28,709 Training images; val = 3,589 PublicTest).
set -euo pipefail
DATA=${EDGE_FER_SHARED:-../shared}/data/fer2013
BIN=.venv/bin
OUT=${OUT:-runs/edgenet}
MODELS=edge_fer/models

# 1. Train (resumable: re-running continues from $OUT's checkpoints; a finished run only exports).
#    The best epoch on val/ is exported, wrapped in horizontal-flip averaging (--flip-tta).
$BIN/edge-fer train --data "$DATA/train" --val "$DATA/val" --arch edgenet --epochs 50 --seed 0 \
    --out "$OUT" --flip-tta

# 2. Convert, verified against the Keras model on every val face.
$BIN/edge-fer convert "$OUT/model.keras" --to tflite --quantize int8 --calibration "$DATA/train" \
    --verify "$DATA/val" --verify-count 0 --out "$MODELS/edgenet_fer2013_int8.tflite"
$BIN/edge-fer convert "$OUT/model.keras" --to onnx --quantize none --calibration "$DATA/train" \
    --verify "$DATA/val" --verify-count 0 --out "$MODELS/edgenet_fer2013.onnx"
# Phone variant: RGB input, grayscale inside the graph, standard metadata for MediaPipe Tasks.
$BIN/edge-fer convert "$OUT/model.keras" --to phone --verify "$DATA/val" --verify-count 0 \
    --out "$MODELS/edgenet_fer2013_phone.tflite"
$BIN/edge-fer check-phone "$MODELS/edgenet_fer2013_phone.tflite" "$DATA/val" --count 500 \
    --against "$MODELS/edgenet_fer2013_int8.tflite"

# 3. Evaluate each shipped file on val/ (the model card's figures).
for model in "$OUT/model.keras" "$MODELS"/edgenet_fer2013_int8.tflite "$MODELS"/edgenet_fer2013.onnx; do
    $BIN/edge-fer eval --model "$model" --data "$DATA/val" --dedup-against "$DATA/train" --json
done
$BIN/edge-fer eval --model "$MODELS/edgenet_fer2013_int8.tflite" --data "$DATA/val" --out docs/model_card
