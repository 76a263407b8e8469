#!/usr/bin/env bash
# Refresh the browser runtime that `edge-fer export-web` ships (edge_fer/web/vendor/) from npm.
#
#   tools/vendor_web.sh            # the pinned version below
#   tools/vendor_web.sh 1.2.0      # another version: review the diff, then update docs/phone.md
#
# Only what the page loads is kept: the ES module bundle and the SIMD WebAssembly build (every
# browser with getUserMedia on a phone today has WASM SIMD: Chrome 91+, Safari 16.4+), not the
# no-SIMD or module builds, the CommonJS bundle or the source maps. Needs npm and python3; writes
# vendor/MANIFEST.json with each file's size and sha256 and the npm tarball's integrity.
set -euo pipefail

PACKAGE="@mediapipe/tasks-vision"
VERSION="${1:-1.1.0}"
FILES=(vision_bundle.mjs wasm/vision_wasm_internal.js wasm/vision_wasm_internal.wasm)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/edge_fer/web/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent --json "$PACKAGE@$VERSION" > pack.json)
tar -xzf "$WORK"/*.tgz -C "$WORK"
OUT="$WORK/out/mediapipe-tasks-vision"
mkdir -p "$OUT"
for f in "${FILES[@]}"; do cp "$WORK/package/$f" "$OUT/$(basename "$f")"; done
cp "$WORK/package/package.json" "$OUT/package.json"
# The npm package states "license": "Apache-2.0" but carries no LICENSE file: ship the text.
if [ -f "$WORK/package/LICENSE" ]; then cp "$WORK/package/LICENSE" "$OUT/LICENSE";
else cp /usr/share/common-licenses/Apache-2.0 "$OUT/LICENSE"; fi

python3 - "$WORK" "$OUT" "$PACKAGE" "$VERSION" <<'PY'
import hashlib, json, pathlib, sys
work, out, package, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
pack = json.loads((work / "pack.json").read_text())[0]
meta = json.loads((work / "package" / "package.json").read_text())
files = {p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
         for p in sorted(out.iterdir())}
manifest = {"packages": [{
    "name": package, "version": version, "license": meta.get("license"),
    "npm_integrity": pack["integrity"], "npm_tarball": f"{package}@{version}",
    "folder": out.name, "files": files,
    "note": "MediaPipe Tasks sends usage metrics to Google unless blocked; the page's "
            "Content-Security-Policy (connect-src 'self') blocks them."}]}
(out.parent / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
PY

rm -rf "$DEST.new" && cp -r "$WORK/out" "$DEST.new"
rm -rf "$DEST" && mv "$DEST.new" "$DEST"
echo "vendored $PACKAGE@$VERSION into $DEST:"
du -ab "$DEST" | sort -n | tail -n 8
