#!/usr/bin/env bash
# The test suite on a fresh machine, exactly as CI runs it (.ci/run calls this script):
#   1. Debian's chromium for the browser tests, where it is missing (apt-get, as root or with sudo;
#      without it those tests skip and say why);
#   2. .venv with edge-fer[all] at the releases pinned in constraints.txt;
#   3. .venv-mp with MediaPipe (it needs opencv-contrib-python, which cannot share .venv with
#      opencv-python-headless);
#   4. pytest without the slow tests; -rs lists every skipped test with its reason.
# Extra arguments go to pytest (e.g. tools/test.sh -x tests/test_run_cli.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    sudo=""; if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium; } \
        || echo "note: could not install chromium; the browser tests will skip" >&2
fi
python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ".[all]"
python3 -m venv .venv-mp && .venv-mp/bin/pip install -c constraints.txt "mediapipe==1.2.2"
exec .venv/bin/python -m pytest -m "not slow" -rs "$@"
