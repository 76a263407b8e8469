"""Run every row in fresh worker processes, alternating rows across repeats, and gather a report.

The report is one JSON-ready dict: the machine, the method, and one entry per row holding the
median (over ``--repeat`` processes) of each stage's percentiles, FPS, CPU, peak RSS, cold
start, model size and sha256, accuracy on ``--data``, pass/fail and the raw per-frame totals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .. import errors
from ..errors import EdgeFerError, InputError
from ..sources.images import list_images, read_image
from .harness import BenchOptions, RowConfig, classifier_options
from ..fileio import file_sha256, portable_path
from .machine import machine_info
from .stats import median, median_of_summaries

SCHEMA = "edge-fer-bench/1"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def run_bench(options: BenchOptions, command: dict | None = None,
              progress: Callable[[str], None] = lambda message: None) -> dict:
    """Measure every row ``options.repeat`` times, each in its own process; the report dict."""
    from ..backends import check_model_file

    for model in options.models:
        check_model_file(model)
    accuracy = {}
    if options.data:  # first: a bad --data fails before the long part
        for model in options.models:
            progress(f"accuracy of {Path(model).name} on {options.data}")
            accuracy[model] = folder_accuracy(options, model)
    machine = machine_info()
    rows = options.rows()
    results: list[list[dict]] = [[] for _ in rows]
    with tempfile.TemporaryDirectory(prefix="edge-fer-bench-") as workdir:
        for repeat in range(options.repeat):
            for i, row in enumerate(rows):  # rows alternate, so drift in the machine hits them all
                progress(f"[{repeat * len(rows) + i + 1}/{options.repeat * len(rows)}] {row_label(row)}"
                         f"{f' (repeat {repeat + 1})' if options.repeat > 1 else ''}")
                results[i].append(run_worker(options, row, Path(workdir) / f"row{i}-rep{repeat}"))
    machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    report_rows = [build_row(options, row, res, accuracy.get(row.model_path)) for row, res in zip(rows, results)]
    return {
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or {},
        "machine": machine,
        "method": {
            "mode": "classifier-only" if options.classifier_only else "pipeline",
            "pacing": f"paced at {options.fps:g} fps" if options.fps else "back-to-back",
            "input": options.source.describe(),
            "warmup_frames": options.warmup,
            "frames": options.frames,
            "min_seconds": options.min_seconds,
            "repeat": options.repeat,
            "percentiles": "nearest-rank, per stage; with repeats, the median over processes",
            "fps": "(N-1) / (end of last frame - end of first frame)",
            "cold_start": "from before the worker interpreter starts to its first result",
            "target": f"p95 of total <= {options.target_ms:g} ms",
        },
        "options": options.to_dict(),
        "warnings": options.warnings(),
        "rows": report_rows,
        "all_pass": all(r["pass"] for r in report_rows),
    }


def row_label(row: RowConfig) -> str:
    return f"{Path(row.model_path).name} + {row.detector}, threads {row.threads}, cv-threads {row.cv_threads}"


def run_worker(options: BenchOptions, row: RowConfig, stem: Path) -> dict:
    """One fresh ``python -m edge_fer.bench.worker`` process; its result dict."""
    job, out = stem.with_suffix(".job.json"), stem.with_suffix(".out.json")
    job.write_text(json.dumps({"options": options.to_dict(), "row": asdict(row)}), encoding="utf-8")
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    launched = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "edge_fer.bench.worker", str(job), str(out), repr(launched)],
                          env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace")
    result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
    if result is not None and "error" in result:
        raise getattr(errors, result.get("error_type", ""), EdgeFerError)(result["error"])
    if proc.returncode != 0 or result is None:
        lines = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
        raise EdgeFerError(f"benchmark process for {row_label(row)} failed (exit {proc.returncode}): "
                           f"{lines[-1][:300] if lines else 'no message'}")
    return result


def model_format(path: str | Path) -> str:
    """``tflite int8``, ``onnx fp32``...; only the suffix for a file without edge-fer metadata."""
    from ..metadata import read_model_meta

    suffix = Path(path).suffix.lstrip(".").lower()
    try:
        meta = read_model_meta(path)
    except EdgeFerError:
        meta = None
    if meta is None:
        return suffix
    return f"{suffix} {'fp32' if meta.quantization == 'none' else meta.quantization}"


def detector_bytes(options: BenchOptions, name: str) -> int | None:
    from ..detectors import find_detector_files

    try:
        if name == "haar":
            model = options.detector_model
            paths = [Path(model)] if model and Path(model).is_file() else \
                [Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"]
        else:
            paths = find_detector_files(name, options.detector_model)
        return sum(p.stat().st_size for p in paths)
    except (EdgeFerError, OSError, AttributeError):
        return None


def build_row(options: BenchOptions, row: RowConfig, results: list[dict], accuracy: dict | None) -> dict:
    """Median over repeats of every figure; raw per-frame totals of each repeat kept."""
    latency = median_of_summaries([r["latency_ms"] for r in results])

    def med(key: str):
        values = [r[key] for r in results if r.get(key) is not None]
        return median(values) if values else None

    colds = [r["cold_start"]["cold_start_s"] for r in results if r["cold_start"].get("cold_start_s") is not None]
    misses = None
    if results[0].get("deadline_misses"):
        misses = {k: median([r["deadline_misses"][k] for r in results]) for k in results[0]["deadline_misses"]}
    path = Path(row.model_path)
    return {
        "model": path.name,
        "model_path": portable_path(path),
        "format": model_format(path),
        "model_bytes": path.stat().st_size,
        "model_sha256": file_sha256(str(path.resolve())),
        "detector": row.detector,
        "detector_bytes": detector_bytes(options, row.detector),
        "threads": row.threads,
        "cv_threads": row.cv_threads,
        "mode": "classifier-only" if options.classifier_only else "pipeline",
        "backend": results[0]["backend"],
        "frames": int(med("frames")),
        "seconds": med("seconds"),
        "latency_ms": latency,
        "fps": med("fps"),
        "cpu_percent": med("cpu_percent"),
        "peak_rss_mb": med("peak_rss_mb"),
        "cold_start_s": median(colds) if colds else None,
        "faces_per_frame": med("faces_per_frame"),
        "frames_without_face": int(med("frames_without_face")),
        "deadline_misses": misses,
        "accuracy": accuracy,
        "target_ms": options.target_ms,
        "pass": bool(latency["total"]["p95"] <= options.target_ms),
        "repeats": [{k: v for k, v in r.items() if k != "raw_total_ms"} for r in results],
        "raw_total_ms": [r["raw_total_ms"] for r in results],
    }


def folder_accuracy(options: BenchOptions, model_path: str, batch: int = 64) -> dict:
    """Top-1 accuracy of the classifier on a folder-per-class set of face crops (``--data``)."""
    from ..classifier import ExpressionClassifier

    root = Path(options.data)
    with ExpressionClassifier.create_from_options(classifier_options(options, model_path, max(options.threads))) as clf:
        labels = [label.lower() for label in clf.meta.labels]
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        unknown = [p.name for p in folders if p.name.lower() not in labels]
        if not folders or unknown:
            raise InputError(f"BenchOptions.data={str(root)!r}: class folders {unknown or '(none)'} are not labels of "
                             f"{Path(model_path).name} (expected some of {', '.join(labels)})")
        flag = cv2.IMREAD_GRAYSCALE if clf.meta.color == "gray" else cv2.IMREAD_COLOR
        correct = total = skipped = 0
        for folder in folders:
            files = list_images(folder)
            for start in range(0, len(files), batch):
                images = [read_image(p, flag) for p in files[start:start + batch]]
                good = [im for im in images if im is not None]
                skipped += len(images) - len(good)
                if good:
                    predicted = np.argmax(clf.predict_proba(good), axis=1)
                    correct += int((predicted == labels.index(folder.name.lower())).sum())
                    total += len(good)
    if not total:
        raise InputError(f"BenchOptions.data={str(root)!r}: expected readable images, found none")
    return {"top1": correct / total, "images": total, "skipped": skipped, "classes": len(folders), "data": portable_path(root)}
