"""Detection rate against face size, per detector, on real frames (issue 9, item 6).

Frames: every 16th of woman2.mp4, every 8th of test.mp4 (both 596x336) and justin.jpg (381x384).
The reference face in each frame is YuNet's box at full size (frames where it finds not exactly
one face are left out). Each frame is downscaled so the reference face is W px wide (W from
128 down to 12; never upscaled) and pasted at the centre of a black canvas of the original frame
size, so the frame the detector sees keeps its size and only the face shrinks. A face counts as
found when a detected box's centre lies inside the (scaled) reference box and its width is within
0.5x-2x of it. Every detector runs with ``min_face_px=1`` (what it can find; the pipeline's
default ``--min-face`` of 48 px drops smaller faces on top of this), at ``detect_width`` 0 (the
whole canvas) and at the pipeline default.

    python benchmarks/face_size.py [--json benchmarks/results/face_size.json]
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from _common import DETECTOR_DIR, MEDIA, RESULTS, markdown_table, provenance

from edge_fer import defaults
from edge_fer.bench.machine import machine_info
from edge_fer.sources.capture import VideoSource
from edge_fer.detectors import DETECTORS, DetectorOptions, create_detector
from edge_fer.detectors.shipped import shipped_detectors
from edge_fer.fileio import write_json_atomic

FACE_WIDTHS_PX = (128, 96, 80, 72, 64, 56, 48, 40, 32, 24, 20, 16, 12)
VIDEO_STEPS = {"woman2.mp4": 16, "test.mp4": 8}
REFERENCE = "yunet"


def load_frames() -> list[tuple[str, np.ndarray]]:
    frames = [("justin.jpg", cv2.imread(str(MEDIA / "justin.jpg")))]
    for name, step in VIDEO_STEPS.items():
        with VideoSource(MEDIA / name) as video:
            frames += [(f"{name}#{f.index}", f.frame_bgr) for f in video if f.index % step == 0]
    return frames


def detector_options(name: str, **kwargs) -> DetectorOptions:
    files = {"ssd": DETECTOR_DIR / "res10_300x300_ssd_iter_140000.caffemodel"}  # the seeds' Caffe net
    path = None if name == "haar" or name in shipped_detectors() else files.get(name, DETECTOR_DIR)
    return DetectorOptions(name, model_path=None if path is None else str(path), min_face_px=1, **kwargs)


def shrink(frame_bgr: np.ndarray, scale: float, box_xywh) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The frame scaled by ``scale`` at the centre of a black canvas of its own size, and the box
    mapped into it."""
    height, width = frame_bgr.shape[:2]
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    dx, dy = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.zeros_like(frame_bgr)
    canvas[dy:dy + new_h, dx:dx + new_w] = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    x, y, w, h = box_xywh
    sx, sy = new_w / width, new_h / height
    return canvas, (x * sx + dx, y * sy + dy, w * sx, h * sy)


def found(faces, box) -> bool:
    x, y, w, h = box
    for face in faces:
        fx, fy, fw, fh = face.box_xywh
        cx, cy = fx + fw / 2, fy + fh / 2
        if x <= cx <= x + w and y <= cy <= y + h and 0.5 * w <= fw <= 2.0 * w:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=str(RESULTS / "face_size.json"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    machine = machine_info()
    record = {"provenance": provenance(machine), "machine": machine, "face_widths_px": list(FACE_WIDTHS_PX),
              "reference": REFERENCE}

    with create_detector(detector_options(REFERENCE, detect_width=0)) as reference:
        cases = []
        for name, frame in load_frames():
            faces = reference.detect(frame)
            if len(faces) == 1:
                cases.append((name, frame, faces[0].box_xywh))
    record["frames"] = [name for name, _, _ in cases]
    print(f"{len(cases)} frames with one reference face", file=sys.stderr)

    widths = (0, defaults.DETECT_WIDTH)
    results = {}
    for detector in DETECTORS:
        for detect_width in widths:
            hits = {w: [] for w in FACE_WIDTHS_PX}
            with create_detector(detector_options(detector, detect_width=detect_width)) as det:
                for _, frame, box in cases:
                    for target in FACE_WIDTHS_PX:
                        scale = target / box[2]
                        if scale > 1.0:
                            continue
                        canvas, scaled = shrink(frame, scale, box)
                        hits[target].append(found(det.detect(canvas), scaled))
            key = f"{detector}@{detect_width}"
            results[key] = {str(w): {"frames": len(v), "found": int(sum(v)),
                                     "rate": round(sum(v) / len(v), 3) if v else None} for w, v in hits.items()}
            print(key, " ".join(f"{w}:{r['rate']}" for w, r in results[key].items()), file=sys.stderr)
    record["results"] = results
    write_json_atomic(args.json, record)

    headers = ["detector", "detect_width"] + [f"{w} px" for w in FACE_WIDTHS_PX]
    rows = []
    for key, by_width in results.items():
        detector, detect_width = key.split("@")
        rows.append([detector, "full" if detect_width == "0" else detect_width]
                    + [("-" if r["rate"] is None else f"{100 * r['rate']:.0f}%") for r in by_width.values()])
    frames_per_width = [str(results[next(iter(results))][str(w)]["frames"]) for w in FACE_WIDTHS_PX]
    print(markdown_table(headers, rows + [["frames", ""] + frames_per_width]))
    print(f"\n`{record['provenance']['command']}` ({record['provenance']['load_note']})")


if __name__ == "__main__":
    main()
