"""res10 SSD: the Caffe net (cv2.dnn) against its ONNX conversions (float32, int8), side by side
(issue 9, item 7).

1. Converts the shared Caffe files the way a user would (tools/ssd_to_onnx.py's defaults: int8
   calibrated on the built-in sample image; and float32) into a temp folder.
2. Boxes: every frame of woman2.mp4 and test.mp4, justin.jpg and no-faces.jpg, each ONNX file's
   faces against the Caffe net's (same count? box IoU), at the pipeline's detect_width and at 0.
3. Speed: ``edge-fer bench --detector ssd`` on woman2.mp4, one fresh process per configuration
   (Caffe at 1 and 2 OpenCV threads, each ONNX file at 1 and 2 runtime threads), alternating,
   ``--rounds`` times; medians of the rounds.

    python benchmarks/ssd_onnx.py [--rounds 3] [--frames 300] [--json benchmarks/results/ssd_onnx.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from _common import DETECTOR_DIR, MEDIA, RESULTS, markdown_table, provenance

from edge_fer import defaults
from edge_fer.bench.machine import machine_info
from edge_fer.detectors import DetectorOptions, create_detector
from converters.ssd_convert import MATCH_IOU, SsdConvertOptions, corners_xyxy, convert_ssd, match_report
from edge_fer.fileio import write_json_atomic

CAFFEMODEL = DETECTOR_DIR / "res10_300x300_ssd_iter_140000.caffemodel"
EDGE_FER = Path(sys.executable).with_name("edge-fer")


def media_frames() -> dict[str, list[np.ndarray]]:
    out = {}
    for name in ("woman2.mp4", "test.mp4"):
        capture, frames = cv2.VideoCapture(str(MEDIA / name)), []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        out[name] = frames
    for name in ("justin.jpg", "no-faces.jpg"):
        out[name] = [cv2.imread(str(MEDIA / name))]
    return out


def compare_boxes(files: dict[str, Path], frames: dict[str, list[np.ndarray]], detect_width: int) -> dict:
    def boxes(path: Path) -> dict[str, list]:
        with create_detector(DetectorOptions("ssd", model_path=str(path), detect_width=detect_width)) as detector:
            return {k: [[corners_xyxy(f.box_xywh) for f in detector.detect(x)] for x in v] for k, v in frames.items()}

    caffe = boxes(CAFFEMODEL)
    report = {}
    for label, path in files.items():
        ours = boxes(path)
        report[label] = {}
        for name in frames:
            ious = np.array([match_report(a, b) for a, b in zip(caffe[name], ours[name])])
            report[label][name] = {
                "frames": len(ious), "caffe_faces": sum(map(len, caffe[name])), "faces": sum(map(len, ours[name])),
                "count_mismatches": int(sum(len(a) != len(b) for a, b in zip(caffe[name], ours[name]))),
                "frames_below_iou": int((ious < MATCH_IOU).sum()), "min_iou": round(float(ious.min()), 3),
                "mean_iou": round(float(ious.mean()), 4)}
    return report


def bench_once(label: str, model: Path, threads: int, cv_threads: int, frames: int, out: Path) -> dict:
    command = [str(EDGE_FER), "-q", "bench", "--detector", "ssd", "--detector-model", str(model),
               "--video", str(MEDIA / "woman2.mp4"), "--frames", str(frames), "--threads", str(threads),
               "--cv-threads", str(cv_threads), "--json", str(out)]
    subprocess.run(command, check=False, capture_output=True, timeout=900)  # exit 1 = over the budget
    row = json.loads(out.read_text())["rows"][0]
    latency = row["latency_ms"]
    return {"label": label, "threads": threads, "cv_threads": cv_threads,
            "total_p50": latency["total"]["p50"], "total_p95": latency["total"]["p95"],
            "total_p99": latency["total"]["p99"], "total_mean": latency["total"]["mean"],
            "detect_p95": latency["detect"]["p95"], "cpu_mean": latency["cpu"]["mean"], "fps": row["fps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--skip-boxes", action="store_true", help="Only the timing.")
    parser.add_argument("--json", default=str(RESULTS / "ssd_onnx.json"))
    args = parser.parse_args()
    machine = machine_info()
    record = {"provenance": provenance(machine), "machine": machine}
    with tempfile.TemporaryDirectory(prefix="ssd-onnx-") as work:
        files = {q: convert_ssd(SsdConvertOptions(model_path=str(DETECTOR_DIR), out_dir=work, quantize=q)).path
                 for q in ("int8", "none")}
        labels = {"int8": "ONNX int8", "none": "ONNX float32"}
        if not args.skip_boxes:
            frames = media_frames()
            record["boxes"] = {str(w): compare_boxes({labels[q]: p for q, p in files.items()}, frames, w)
                               for w in (defaults.DETECT_WIDTH, 0)}
            print(json.dumps(record["boxes"], indent=1), file=sys.stderr)
        configs = [("Caffe (cv2.dnn)", CAFFEMODEL, 1, 1), ("Caffe (cv2.dnn)", CAFFEMODEL, 1, 2),
                   (labels["none"], files["none"], 1, 1), (labels["int8"], files["int8"], 1, 1),
                   (labels["int8"], files["int8"], 2, 1)]
        runs = []
        for round_index in range(args.rounds):
            order = configs if round_index % 2 == 0 else configs[::-1]
            for label, model, threads, cv_threads in order:
                run = bench_once(label, model, threads, cv_threads, args.frames, Path(work) / "bench.json")
                runs.append({**run, "round": round_index})
                print(run, file=sys.stderr)
    record["runs"] = runs
    rows, summary = [], []
    for label, _, threads, cv_threads in configs:
        mine = [r for r in runs if (r["label"], r["threads"], r["cv_threads"]) == (label, threads, cv_threads)]
        median = {k: statistics.median(r[k] for r in mine) for k in
                  ("total_mean", "total_p50", "total_p95", "total_p99", "detect_p95", "cpu_mean", "fps")}
        summary.append({"label": label, "threads": threads, "cv_threads": cv_threads, **median})
        rows.append([label, str(threads), str(cv_threads)] + [f"{median[k]:.2f}" for k in
                    ("total_mean", "total_p95", "total_p99", "detect_p95", "cpu_mean")] + [f"{median['fps']:.0f}"])
    record["summary"] = summary
    write_json_atomic(args.json, record)
    print(markdown_table(["SSD", "threads", "cv threads", "mean ms", "p95 ms", "p99 ms", "detect p95 ms",
                          "CPU ms/frame", "FPS"], rows))
    print(f"\n`{record['provenance']['command']}` ({record['provenance']['load_note']}; "
          f"median of {args.rounds} alternating fresh processes)")


if __name__ == "__main__":
    main()
