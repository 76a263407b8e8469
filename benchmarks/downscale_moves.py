"""What a cheaper detect-width downscale would change: time saved against boxes, labels, scores.

    python benchmarks/downscale_moves.py [--video woman2.mp4 --video test.mp4] [--rounds 5]
                                         [--json benchmarks/results/downscale_moves.json]

The detectors' first step, ``detectors.downscale`` (596 -> 256 px, ``cv2.resize`` INTER_AREA at
a non-integer factor), is most of every detector's overhead over its model (``stage_floor.py``).
Issue 27 asks for that overhead at <= 0.3 ms *and* for ``run --json`` unchanged (same boxes and
labels, scores within 1e-3). This runs the default pipeline (BlazeFace, the shipped int8 model,
every frame through the detector) over each video with the shipped downscale and with cheaper
ones, and reports, per way: the resize's median ms per frame, and against the shipped outputs the
frames whose faces are all identical, the largest box move (px, full frame), the labels that
changed and the largest score change.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, provenance, rounds_parser, sample_videos  # noqa: E402
from downscale_beside import decoded  # noqa: E402
from stage_floor import patched  # noqa: E402

from edge_fer import defaults  # noqa: E402
from edge_fer.bench.machine import machine_info  # noqa: E402
from edge_fer.detectors import blazeface, downscale  # noqa: E402
from edge_fer.fileio import write_json_atomic  # noqa: E402
from edge_fer.pipeline import FerPipeline, PipelineOptions  # noqa: E402
from edge_fer.sources.capture import SourceOptions, open_source  # noqa: E402


def _ways():
    """Name -> a downscale(frame_bgr, detect_width) -> (small, factor) replacement."""
    import cv2

    def shipped_size(frame_bgr, detect_width):
        """The shipped downscale's output size and factor (the videos here are wider than 256)."""
        factor = frame_bgr.shape[1] / detect_width
        return (detect_width, max(1, int(round(frame_bgr.shape[0] / factor)))), factor

    def linear(frame_bgr, detect_width):
        size, factor = shipped_size(frame_bgr, detect_width)
        return cv2.resize(frame_bgr, size, interpolation=cv2.INTER_LINEAR), factor

    def area_two_steps(frame_bgr, detect_width):
        size, factor = shipped_size(frame_bgr, detect_width)
        h, w = frame_bgr.shape[:2]
        half = cv2.resize(frame_bgr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # integer factor: fast
        return cv2.resize(half, size, interpolation=cv2.INTER_AREA), factor

    def area_to_input(frame_bgr, detect_width):
        """Straight to BlazeFace's 128-px input width: one resize instead of two."""
        return downscale(frame_bgr, blazeface.INPUT_SIZE)

    return {"area (shipped)": downscale, "linear": linear, "area at 2x, then area": area_two_steps,
            "area straight to 128 px": area_to_input}


def outputs(video: Path, way) -> list:
    """Every frame's faces as (box_xywh, label, score), every frame detected."""
    options = PipelineOptions(detect_every=1)
    rows = []
    with patched(blazeface, "downscale", way), open_source(SourceOptions(video=video)) as source, \
            FerPipeline.create_from_options(options) as pipeline:
        for index, time_ms, frame_bgr in source:
            result = pipeline.process_video(frame_bgr, index, time_ms)
            rows.append([(f.face.box_xywh, f.expression.label, f.expression.score) for f in result.faces])
    return rows


def compare(reference: list, other: list) -> dict:
    same = box_px = score = 0.0
    labels = faces = count_changed = 0
    for ref, got in zip(reference, other, strict=True):
        same += ref == got
        if len(ref) != len(got):
            count_changed += 1
            continue
        for (box_a, label_a, score_a), (box_b, label_b, score_b) in zip(ref, got):
            faces += 1
            box_px = max(box_px, max(abs(a - b) for a, b in zip(box_a, box_b)))
            labels += label_a != label_b
            score = max(score, abs(score_a - score_b))
    return {"frames": len(reference), "frames_identical": int(same), "faces": faces,
            "frames_face_count_changed": count_changed, "max_box_move_px": box_px,
            "labels_changed": labels, "max_score_change": score}


def resize_ms(video: Path, ways: dict, rounds: int) -> dict:
    frames = list(decoded(video).values())
    times = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            for frame in frames:
                way(frame, defaults.DETECT_WIDTH)
            times[name].append(1000.0 * (time.perf_counter() - start) / len(frames))
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    args = rounds_parser(__doc__).parse_args(argv)
    machine = machine_info()
    report = {"machine": machine, **provenance(machine), "rounds": args.rounds, "videos": {}}
    ways = _ways()
    for video in sample_videos(args.video):  # both wider than 512 px
        reference = outputs(video, downscale)
        ms = resize_ms(video, ways, args.rounds)
        rows = [{"way": name, "resize_ms": ms[name], **compare(reference, outputs(video, way))}
                for name, way in ways.items()]
        report["videos"][video.name] = rows
        print(f"\n{video.name}")
        print(markdown_table(
            ["downscale", "resize ms", "frames identical", "max box move px", "labels changed", "max score change"],
            [[r["way"], f"{r['resize_ms']:.3f}", f"{r['frames_identical']} / {r['frames']}",
              f"{r['max_box_move_px']:g}", f"{r['labels_changed']} / {r['faces']}",
              f"{r['max_score_change']:.4f}"] for r in rows]))
    if args.json:
        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
