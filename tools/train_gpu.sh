#!/usr/bin/env bash
# The model campaign on a GPU machine (docs/train_gpu.md): teachers, their ensemble and the
# distilled student in one device call, on Keras 3 over PyTorch (the device image has no TensorFlow).
#
#   bash tools/train_gpu.sh prepare            # here: the data pack (.gpudata/) and Keras's wheels (.whl/)
#   bash tools/train_gpu.sh run [ARGS...]      # there: tools/train_gpu.py --pack .gpudata --out $OUT ARGS
#
# Both folders are git-ignored and travel with the device tool's `carry`. The pack is split so
# that each call stays under the tool's 64 MiB: carry the training parts other than the last in a
# first call, then the last part, eval.npz and .whl with `run` (docs/train_gpu.md gives the calls).
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-.gpudata}

case "${1:-}" in
prepare)
    python=${PYTHON:-.venv/bin/python}
    "$python" tools/gpu_pack.py --out "$PACK"
    rm -rf .whl && mkdir -p .whl
    # Keras (the version the suite was green with) and the two of its needs the device image lacks.
    pins=$(grep -E '^(keras|namex|optree)==' constraints.txt)
    # shellcheck disable=SC2086
    "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl $pins
    ls -l "$PACK" .whl
    ;;
run)
    shift
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export KERAS_BACKEND=${KERAS_BACKEND:-torch} PYTHONUNBUFFERED=1
    out=${OUT:?set OUT to the folder that comes back}
    python3 tools/train_gpu.py --pack "$PACK" --out "$out" "$@" 2>&1 | tee "$out/log.txt"
    ;;
*)
    echo "usage: bash tools/train_gpu.sh prepare | run [tools/train_gpu.py options]" >&2
    exit 2
    ;;
esac
