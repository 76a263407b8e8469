"""Which browser runtime for the phone page: MediaPipe Tasks for Web vs ONNX Runtime Web, side
by side in one headless Chromium on this machine (the measurement behind edge_fer/web's choice).

    .venv/bin/python benchmarks/web_runtimes.py [--rounds 3] [--frames 40] [--json out.json]

Each round opens one fresh page per runtime (order alternating) and times, on woman2.mp4's first
frames, the detector's and the classifier's inference calls alone (single-threaded WASM, SIMD):

- MediaPipe Tasks for Web (the vendored edge_fer/web/vendor copy): BlazeFace short-range through
  ImageEmbedder on the 128x128 letterbox, edge-fer's phone TFLite through ImageClassifier (48x48);
- ONNX Runtime Web (``npm pack onnxruntime-web@1.30.0`` into a temp folder: needs npm here, never
  at run time): YuNet on the 256x144 frame padded to 256x160 (its input dims made dynamic with
  ``onnx``), edge-fer's float ONNX classifier (the same network as the phone TFLite).

Prints one JSON object: per runtime the median over rounds of each round's p50/p95 (ms), the
load time, and the bytes each runtime's page must ship (runtime files + models).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from _web_harness import REPO, SHARED, chromium, command_line, emit, page_result, serve, write_frames

ORT_VERSION = "1.30.0"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")

PAGE = """<!doctype html><html><body><pre id="out">running</pre><script type="module">
const params = new URL(location).searchParams, which = params.get('rt'), reps = 2;
const list = await (await fetch('frames/list.json')).json();
const frames = [];
for (const name of list) frames.push(await createImageBitmap(await (await fetch('frames/' + name)).blob()));
const pick = (a, q) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const t0 = performance.now(), det = [], cls = [];
const canvas = new OffscreenCanvas(256, 144), ctx = canvas.getContext('2d', {willReadFrequently: true});
const pixels = f => { ctx.drawImage(f, 0, 0, 256, 144); return ctx.getImageData(0, 0, 256, 144); };
let load;
if (which === 'mediapipe') {
  const mp = await import('./mp/vision_bundle.mjs');
  const fs = {wasmLoaderPath: new URL('mp/vision_wasm_internal.js', location).href,
              wasmBinaryPath: new URL('mp/vision_wasm_internal.wasm', location).href};
  const detector = await mp.ImageEmbedder.createFromOptions(fs, {baseOptions: {modelAssetPath: 'blazeface.tflite'},
    runningMode: 'IMAGE', l2Normalize: false, quantize: false});
  const classifier = await mp.ImageClassifier.createFromOptions(fs, {baseOptions: {modelAssetPath: 'phone.tflite'},
    runningMode: 'IMAGE', maxResults: -1});
  load = performance.now() - t0;
  const box = new ImageData(128, 128), face = new ImageData(48, 48);
  for (let r = 0; r < reps; r++) for (const f of frames) {
    const p = pixels(f).data;
    for (let y = 0; y < 72; y++) for (let x = 0; x < 128; x++) for (let c = 0; c < 4; c++)
      box.data[((y + 28) * 128 + x) * 4 + c] = p[((2 * y) * 256 + 2 * x) * 4 + c];
    for (let y = 0; y < 48; y++) for (let x = 0; x < 48; x++) for (let c = 0; c < 4; c++)
      face.data[(y * 48 + x) * 4 + c] = p[((40 + y) * 256 + 100 + x) * 4 + c];
    let t = performance.now(); detector.embed(box); det.push(performance.now() - t);
    t = performance.now(); classifier.classify(face); cls.push(performance.now() - t);
  }
} else {
  const ort = await import('./ort/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = 1; ort.env.wasm.wasmPaths = new URL('ort/', location).href;
  const detector = await ort.InferenceSession.create('yunet.onnx', {executionProviders: ['wasm']});
  const classifier = await ort.InferenceSession.create('classifier.onnx', {executionProviders: ['wasm']});
  load = performance.now() - t0;
  const x = new Float32Array(3 * 160 * 256), g = new Float32Array(48 * 48);
  for (let r = 0; r < reps; r++) for (const f of frames) {
    const p = pixels(f).data;
    for (let i = 0; i < 256 * 144; i++) { x[i] = p[4 * i + 2]; x[160 * 256 + i] = p[4 * i + 1]; x[2 * 160 * 256 + i] = p[4 * i]; }
    for (let y = 0; y < 48; y++) for (let k = 0; k < 48; k++) g[y * 48 + k] = p[((40 + y) * 256 + 100 + k) * 4];
    let t = performance.now(); await detector.run({input: new ort.Tensor('float32', x, [1, 3, 160, 256])}); det.push(performance.now() - t);
    t = performance.now(); await classifier.run({[classifier.inputNames[0]]: new ort.Tensor('float32', g, [1, 48, 48, 1])}); cls.push(performance.now() - t);
  }
}
document.getElementById('out').textContent = JSON.stringify({load_ms: load,
  detect_p50: pick(det, 0.5), detect_p95: pick(det, 0.95), classify_p50: pick(cls, 0.5), classify_p95: pick(cls, 0.95)});
</script></body></html>
"""


def prepare(folder: Path, frames: int) -> dict[str, int]:
    """The bench page, both runtimes and their models under ``folder``; bytes each must ship."""
    import onnx

    vendor = REPO / "edge_fer" / "web" / "vendor" / "mediapipe-tasks-vision"
    (folder / "mp").mkdir()
    for name in ("vision_bundle.mjs", "vision_wasm_internal.js", "vision_wasm_internal.wasm"):
        shutil.copy(vendor / name, folder / "mp" / name)
    subprocess.run(["npm", "pack", "--silent", f"onnxruntime-web@{ORT_VERSION}"], cwd=folder, check=True,
                   capture_output=True)
    subprocess.run(["tar", "-xzf", next(folder.glob("onnxruntime-web-*.tgz")).name], cwd=folder, check=True)
    (folder / "ort").mkdir()
    for name in ORT_FILES:
        shutil.copy(folder / "package" / "dist" / name, folder / "ort" / name)
    shutil.copy(SHARED / "detectors" / "blazeface_short_range.tflite", folder / "blazeface.tflite")
    shutil.copy(REPO / "edge_fer" / "models" / "edgenet_fer2013_phone.tflite", folder / "phone.tflite")
    shutil.copy(REPO / "edge_fer" / "models" / "edgenet_fer2013.onnx", folder / "classifier.onnx")
    yunet = onnx.load(str(SHARED / "detectors" / "face_detection_yunet_2023mar.onnx"))
    dims = yunet.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(yunet, str(folder / "yunet.onnx"))
    (folder / "index.html").write_text(PAGE)
    write_frames(folder / "frames", frames)
    size = lambda *paths: sum((folder / p).stat().st_size for p in paths)  # noqa: E731
    return {"mediapipe": size("mp/vision_bundle.mjs", "mp/vision_wasm_internal.js", "mp/vision_wasm_internal.wasm",
                              "blazeface.tflite", "phone.tflite"),
            "onnxruntime-web": size(*(f"ort/{n}" for n in ORT_FILES), "yunet.onnx", "classifier.onnx"),
            "onnxruntime-web with WebGPU (jsep build instead)": size("yunet.onnx", "classifier.onnx")
            + sum((folder / "package" / "dist" / n).stat().st_size
                  for n in ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
                  if (folder / "package" / "dist" / n).exists())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = prepare(folder, args.frames)
        rounds: dict[str, list[dict]] = {"mediapipe": [], "onnxruntime-web": []}
        with serve(folder) as base, chromium() as browser:
            for r in range(args.rounds):
                order = ["mediapipe", "onnxruntime-web"][:: 1 if r % 2 == 0 else -1]
                for runtime in order:
                    rt = "mediapipe" if runtime == "mediapipe" else "ort"
                    rounds[runtime].append(page_result(browser, f"{base}index.html?rt={rt}"))
            version = browser.version
    report = {"command": command_line("web_runtimes.py"), "chromium": version,
              "frames": args.frames, "rounds": args.rounds, "ship_bytes": sizes,
              "runtimes": {rt: {k: round(float(np.median([x[k] for x in xs])), 2) for k in xs[0]}
                           for rt, xs in rounds.items()}}
    emit(report, args.json_path)


if __name__ == "__main__":
    main()
