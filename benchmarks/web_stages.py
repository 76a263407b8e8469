"""Where the phone page's time goes, step by step, in headless Chromium on this machine.

    .venv/bin/python benchmarks/web_stages.py [--frames 8] [--reps 5] [--json out.json]

Exports the page (``edge-fer export-web``), then times each of its steps on woman2.mp4's first
frames with the page's own code (``fer.js`` and the vendored MediaPipe): reading the canvas,
the letterbox (JavaScript area resizes), BlazeFace in ImageEmbedder, unpacking its outputs, the
decode and NMS, the aligned crop, ImageClassifier. Prints the median of each, in ms.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _web_harness import chromium, command_line, emit, page_result, serve, write_frames

PAGE = """<!doctype html><html><body><pre id="out">running</pre><script type="module">
import {ImageEmbedder, ImageClassifier} from './vendor/mediapipe-tasks-vision/vision_bundle.mjs';
import {letterbox, decodeBlazeFace, ssdAnchors, faceCrop} from './fer.js';
const reps = Number(new URL(location).searchParams.get('reps'));
const config = await (await fetch('edge-fer.json')).json(), d = config.detector;
const v = new URL('vendor/mediapipe-tasks-vision/', location.href);
const fs = {wasmLoaderPath: new URL('vision_wasm_internal.js', v).href, wasmBinaryPath: new URL('vision_wasm_internal.wasm', v).href};
const det = await ImageEmbedder.createFromOptions(fs, {baseOptions: {modelAssetPath: d.file}, runningMode: 'IMAGE',
  l2Normalize: false, quantize: false});
const cls = await ImageClassifier.createFromOptions(fs, {baseOptions: {modelAssetPath: config.model.file},
  runningMode: 'IMAGE', maxResults: -1});
const anchors = ssdAnchors(d.input_size, d.anchor_strides, d.anchor_offset);
const names = await (await fetch('frames/list.json')).json(), bitmaps = [];
for (const n of names) bitmaps.push(await createImageBitmap(await (await fetch('frames/' + n)).blob()));
const c = document.createElement('canvas'); c.width = bitmaps[0].width; c.height = bitmaps[0].height;
const ctx = c.getContext('2d', {willReadFrequently: true});
const T = {read_canvas: [], letterbox: [], blazeface: [], unpack: [], decode_nms: [], align_crop: [], classify: []};
const time = (k, f) => { const t = performance.now(); const r = f(); T[k].push(performance.now() - t); return r; };
for (let r = 0; r < reps; r++) for (const b of bitmaps) {
  ctx.drawImage(b, 0, 0);
  const frame = time('read_canvas', () => ctx.getImageData(0, 0, c.width, c.height));
  const box = time('letterbox', () => letterbox(frame, d.detect_width, d.input_size));
  const res = time('blazeface', () => det.embed(new ImageData(box.image.data, box.size, box.size)));
  const heads = time('unpack', () => res.embeddings.map(e => Float32Array.from(e.floatEmbedding)).sort((a, b) => b.length - a.length));
  const faces = time('decode_nms', () => decodeBlazeFace(heads[0], heads[1], anchors, box, c.width, c.height, d));
  if (!faces.length) continue;
  const crop = time('align_crop', () => faceCrop(frame, faces[0], config.model));
  time('classify', () => cls.classify(new ImageData(crop.data, crop.width, crop.height)));
}
const med = a => { const s = [...a].sort((x, y) => x - y); return Math.round(s[s.length >> 1] * 100) / 100; };
document.getElementById('out').textContent = JSON.stringify(Object.fromEntries(Object.entries(T).map(([k, v]) => [k, med(v)])));
</script></body></html>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()

    from edge_fer.web import export_web

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        export_web(site)
        (site / "stages.html").write_text(PAGE)
        names = write_frames(site / "frames", args.frames)
        with serve(site) as base, chromium() as browser:
            stages = page_result(browser, f"{base}stages.html?reps={args.reps}")
    report = {"command": command_line("web_stages.py"),
              "frames": len(names), "reps": args.reps, "median_ms": stages}
    emit(report, args.json_path)


if __name__ == "__main__":
    main()
