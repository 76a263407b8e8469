#!/usr/bin/env bash
# Scheduled-style check: install edge-fer[all] with the newest releases (no constraints) in a
# throwaway clone, list every package whose version differs from constraints.txt, and run the
# README's test suite against them. Exit 0 when the suite passes on the newest releases.
#   tools/check_latest.sh [WORKDIR]      (default: a new temp folder; needs ../shared beside the repo
#                                         or EDGE_FER_SHARED)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
export EDGE_FER_SHARED=${EDGE_FER_SHARED:-$repo/../shared}
git clone -q "$repo" "$work/edge-fer" || exit 2
cd "$work/edge-fer" || exit 2
python3 -m venv .venv && .venv/bin/pip install -q -U pip && .venv/bin/pip install -q -U -e ".[all]" || {
    echo "check_latest: the newest releases do not install together" >&2; exit 2; }
python3 -m venv .venv-mp && .venv-mp/bin/pip install -q -U "mediapipe==1.2.2" || {
    echo "check_latest: mediapipe does not install" >&2; exit 2; }
{ .venv/bin/pip freeze --exclude-editable; .venv-mp/bin/pip freeze; } | sort -u > latest.txt
echo "packages whose newest release differs from constraints.txt (pinned -> newest):"
python3 - constraints.txt latest.txt <<'PY'
import sys
def pins(path):
    out = {}
    for line in open(path):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.lower()] = version
    return out
pinned, latest = pins(sys.argv[1]), pins(sys.argv[2])
changed = [f"  {n}: {pinned.get(n, '(new)')} -> {latest.get(n, '(gone)')}"
           for n in sorted(pinned.keys() | latest.keys()) if pinned.get(n) != latest.get(n)]
print("\n".join(changed) or "  none")
PY
.venv/bin/python -m pytest -m "not slow" -q -p no:cacheprovider 2>&1 | tail -40
status=${PIPESTATUS[0]}
echo "check_latest: suite exit $status with the newest releases (clone in $work/edge-fer)"
exit "$status"
