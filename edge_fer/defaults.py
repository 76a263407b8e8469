"""Default settings of the live pipeline, in one place: the options dataclasses
(DetectorOptions, ClassifierOptions, BackendOptions, PipelineOptions, IouTracker, bench's
BenchOptions) and the CLI options (run, bench, analyze, export-web) all read them from here.

The default detector (BlazeFace) is picked from the through-detector table: see DETECTOR below.
The other values were measured on a 2-core x86 box (benchmarks/RESULTS.md) while Haar was still
the default detector: Haar at 256 px wide with scale step 1.2 finds the face in 99.6% of
woman2.mp4's frames at ~9 ms CPU (23 ms at 320 px and step 1.1); detecting every 2nd frame with
tracked boxes carried between halves the mean. Threads: LIVE_THREADS below (a second thread
once cost ~4x the CPU per crop on an AVX-512 box; on today's AVX2-only box it costs nothing
measurable per frame and raises frames/s by a fifth).
"""

import os

#: The default detector: the best end-to-end accuracy through its crops (found share x accuracy on
#: the found faces, edge_fer/models/through_detector.json) at the lowest cost; see detector_accuracy().
DETECTOR = "blazeface"
#: Detectors within this many points of the best accuracy count as equally accurate (then: fastest).
ACCURACY_TIE_POINTS = 1.0
#: Measured by tools/measure_through_detector.py for the shipped model (eval --through-detector).
THROUGH_DETECTOR_TABLE = "models/through_detector.json"
DETECT_WIDTH = 256
MIN_FACE_PX = 48
DETECT_EVERY = 2
#: Frames of a file decoded ahead in a thread of their own (SourceOptions.read_ahead; 0: none).
READ_AHEAD = 1
#: FFmpeg's decoding threads for a file (SourceOptions.decode_threads; 0: FFmpeg's choice, one per
#: core). With the read-ahead thread already beside the models, a second decoding thread only
#: competes with them: 1 thread gave the same frames, 4-7% more frames/s and 4-14% less CPU per
#: frame on the sample videos, AVX-512 box with and without AVX-512 hidden (compare_fer.py
#: --choices --rounds 5; benchmarks/RESULTS.md, "One decoding thread").
DECODE_THREADS = 1
#: Model-runtime threads (the classifier's and the detector's) of a pipeline: `run`, `bench` and
#: the Python API use both cores of a 2-core box. Measured (benchmarks/compare_fer.py --choices,
#: AVX2-only 2-core EPYC, medians of 3 processes each): with the read-ahead thread, woman2.mp4
#: 200.7 -> 255.8 frames/s and test.mp4 184.7 -> 220.7 going from 1 thread to 2, p99 lower.
LIVE_THREADS = min(2, os.cpu_count() or 1)
#: ... and of each of analyze's workers, which fill the cores one each.
WORKER_THREADS = 1
OPENCV_THREADS = 1
SMOOTH = 0.5
#: Seconds a stream URL may take to open, and to deliver each read, before it counts as failed.
STREAM_TIMEOUT_S = 10.0
#: Workstation jobs (convert's verification, eval) batch hundreds of faces: two threads.
BATCH_THREADS = 2
#: Thread counts above this many per logical core are refused (a typo such as 100000 threads
#: otherwise crashes LiteRT and hangs ONNX Runtime).
MAX_THREADS_PER_CORE = 4


def max_threads() -> int:
    import os

    return MAX_THREADS_PER_CORE * (os.cpu_count() or 1)


def check_threads(field: str, value: int, minimum: int = 1) -> None:
    """OptionsError unless ``minimum <= value <= 4 x cores``; ``field`` names the option field
    (``"DetectorOptions.num_threads"``), which the CLI shows as its flag."""
    from .errors import OptionsError

    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= max_threads():
        raise OptionsError(f"{field}={value!r}: expected an integer from {minimum} to {max_threads()} "
                           f"({MAX_THREADS_PER_CORE} x {max_threads() // MAX_THREADS_PER_CORE} logical cores)")


def through_detector_rows() -> dict[str, dict]:
    """detector -> its row of the shipped through-detector table (``found_share``: faces found;
    ``accuracy_through``: right among those, through the detector's crops), measured on FER2013
    val; empty if the table is missing."""
    import json
    from pathlib import Path

    path = Path(__file__).parent / THROUGH_DETECTOR_TABLE
    try:
        return dict(json.loads(path.read_text())["detectors"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def detector_accuracy() -> dict[str, float]:
    """detector -> share of FER2013 val faces classified right through its crops (misses count
    as wrong), from the shipped table; empty if the table is missing."""
    return {name: row["found_share"] * row["accuracy_through"] for name, row in through_detector_rows().items()}
