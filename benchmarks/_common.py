"""Shared by the benchmark scripts: paths, the model to use, the record of how a result was made."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_fer.classifier import DEFAULT_MODEL  # noqa: E402
from edge_fer.metadata import FER2013_LABELS, read_model_meta  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MEDIA = DATA / "media"
DETECTOR_DIR = DATA / "detectors"
PEER_TFLITE = DATA / "peers" / "fer" / "emotion_model_quantized.tflite"
RESULTS = Path(__file__).resolve().parent / "results"
#: How the peer's (metadata-less) model is fed: 64x64 gray in [-1, 1], FER2013 label order.
PEER_OVERRIDES = {"labels": FER2013_LABELS, "scale": 2.0 / 255.0, "offset": -1.0}


def default_model() -> Path:
    """The packaged default model; the peer's TFLite stands in where that file is missing."""
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else PEER_TFLITE


def overrides_for(model: Path) -> dict:
    """BenchOptions fields a model without edge-fer metadata needs (labels, scale, offset)."""
    return {} if read_model_meta(model) is not None else dict(PEER_OVERRIDES)


def available_models() -> list[Path]:
    """The default model, every other packaged model file, and the peer's TFLite."""
    packaged = sorted(p for p in DEFAULT_MODEL.parent.glob("*") if p.suffix in (".tflite", ".onnx"))
    models = [default_model(), *packaged, PEER_TFLITE]
    return list(dict.fromkeys(p.resolve() for p in models if p.is_file()))


def provenance(machine: dict) -> dict:
    """The exact command, when, and a note when the CPU was busy before the run started."""
    busy = machine.get("cpu_busy_percent") or 0.0
    load = (machine.get("load_average_1_5_15") or [0.0])[0]
    under_load = busy > 25.0  # measured just before the start; the load average lags a minute behind
    masked = ["bash", "tools/as_avx2.sh"] if machine.get("cpu_flags_hidden") else []  # its CPUID hides AVX-512
    return {
        "command": shlex.join([*masked, Path(sys.executable).name, *sys.argv]),
        "cwd": os.path.relpath(Path.cwd(), ROOT),  # relative to the repo: no machine's folders
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "under_load": under_load,
        "load_note": (f"UNDER LOAD: CPU {busy:.0f}% busy and load average {load} before the start "
                      "(other work shares the cores); figures are pessimistic") if under_load else
                     f"quiet machine: CPU {busy:.0f}% busy, load average {load} before the start",
    }


#: The sample videos the per-stage scripts run by default (both 596 px wide).
SAMPLE_VIDEOS = ("woman2.mp4", "test.mp4")


def sample_videos(chosen: list[Path] | None) -> list[Path]:
    """The ``--video`` files given, else the sample videos."""
    return chosen or [MEDIA / name for name in SAMPLE_VIDEOS]


def rounds_parser(doc: str) -> argparse.ArgumentParser:
    """A script's options for alternating rounds over videos: --video, --rounds, --json."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--video", action="append", type=Path, help="default: " + ", ".join(SAMPLE_VIDEOS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    return parser


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
