"""``edge-fer doctor``: what this device has, what loads, what runs fastest.

One report a user asks for first on a new device: Python and package versions, the runtimes,
ONNX Runtime providers and LiteRT delegates that load, OpenCV's build (CUDA, threads, GUI,
Haar data, video I/O), the cameras that open, CPU model and SIMD features, and a measured
recommendation (detector, model file, threads) from a few seconds of timing on the built-in
image. Never imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .doctor_text import format_report  # noqa: F401 (the command imports it from here)
from .errors import EdgeFerError, OptionsError, first_line
from .sources.images import DEMO_IMAGE

MODELS_DIR = Path(__file__).parent / "models"
#: Packages whose versions the report lists (distribution names; absent ones are left out).
PACKAGES = ("edge-fer", "numpy", "opencv-python-headless", "opencv-python", "opencv-contrib-python",
            "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu", "click", "psutil",
            "flatbuffers", "mediapipe", "tensorflow")
THREADS = (1, 2)
#: Two threads must beat one by this fraction to be recommended (one leaves a core free).
THREADS_MARGIN = 0.10


@dataclass(frozen=True)
class DoctorOptions:
    """``cameras``: probe indexes 0..cameras-1 (0: none), each given ``camera_timeout_s``.
    ``bench``: time detectors and models (``budget_s`` seconds at most, roughly)."""

    models_dir: str | Path = MODELS_DIR
    image: str | Path = DEMO_IMAGE
    cameras: int = 4
    camera_timeout_s: float = 2.0
    bench: bool = True
    budget_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.cameras <= 16:
            raise OptionsError(f"DoctorOptions.cameras={self.cameras!r}: expected 0..16 (indexes to probe)")
        if self.camera_timeout_s <= 0:
            raise OptionsError(f"DoctorOptions.camera_timeout_s={self.camera_timeout_s!r}: expected > 0")
        if self.budget_s <= 0:
            raise OptionsError(f"DoctorOptions.budget_s={self.budget_s!r}: expected > 0")
        if not Path(self.models_dir).is_dir():
            raise OptionsError(f"DoctorOptions.models_dir={str(self.models_dir)!r}: expected an existing folder "
                               "of models")


def diagnose(options: DoctorOptions = DoctorOptions()) -> dict:
    """The whole report as a JSON-ready dict (see :func:`format_report` for the text form)."""
    start = time.perf_counter()
    models = sorted(p for p in Path(options.models_dir).iterdir() if p.suffix in (".tflite", ".onnx"))
    report = {
        "edge_fer": _version("edge-fer"),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": _platform(),
        "cpu": _cpu(),
        "packages": {name: v for name in PACKAGES if (v := _version(name))},
        "runtimes": {"litert": _litert(models), "tflite_runtime": _tflite_runtime(),
                     "onnxruntime": _onnxruntime()},
        "opencv": _opencv(),
        "cameras": _cameras(options.cameras, options.camera_timeout_s),
    }
    if options.bench:
        report["benchmark"] = _benchmark(models, Path(options.image), options.budget_s)
        report["recommendation"] = recommend(report["benchmark"])
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


# facts -------------------------------------------------------------------------------------------
def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _platform() -> dict:
    board = None
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            board = Path(path).read_text(errors="replace").strip("\x00\n ")
            break
        except OSError:
            continue
    jetson = None
    try:  # e.g. "# R36 (release), REVISION: 4.0, ..." on JetPack 6
        jetson = Path("/etc/nv_tegra_release").read_text(errors="replace").splitlines()[0].lstrip("# ").strip()
    except (OSError, IndexError):
        pass
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "board": board, "jetson_l4t": jetson}


def _cpu() -> dict:
    import psutil

    from .bench.machine import cpu_model_and_flags, hidden_cpu_flags

    model, flags = cpu_model_and_flags()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"model": model, "features": flags, "hidden_features": hidden_cpu_flags(),
            "cores_logical": psutil.cpu_count(logical=True), "cores_physical": psutil.cpu_count(logical=False),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_1m": round(load[0], 2) if load else None}


def _litert(models: list[Path]) -> dict:
    """LiteRT's version and whether XNNPACK attaches: its default delegate shows up as a
    ``DELEGATE`` node in the execution plan of a loaded model."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        return {"available": False, "error": first_line(exc)}
    info = {"available": True, "version": _version("ai-edge-litert"), "xnnpack": None}
    probe = next((p for p in models if p.suffix == ".tflite"), None)
    if probe is None:
        info["xnnpack_note"] = "no .tflite model to load"
        return info
    from .backends import quiet_native_stderr

    try:
        with quiet_native_stderr():
            interpreter = Interpreter(model_path=str(probe), num_threads=1)
            interpreter.allocate_tensors()
        ops = [op["op_name"] for op in interpreter._get_ops_details()]  # no public API for the plan
    except Exception as exc:  # LiteRT's errors are untyped
        info["xnnpack_note"] = f"{probe.name} did not load: {first_line(exc, 160)}"
        return info
    info["xnnpack"] = "DELEGATE" in ops
    info["xnnpack_note"] = f"checked by loading {probe.name}"
    return info


def _tflite_runtime() -> dict:
    if importlib.util.find_spec("tflite_runtime") is None:
        return {"available": False}
    return {"available": True, "version": _version("tflite-runtime")}


def _onnxruntime() -> dict:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return {"available": False, "error": first_line(exc)}
    from .backends.onnx import choose_providers

    available = ort.get_available_providers()
    return {"available": True, "version": ort.__version__, "device": ort.get_device(),
            "providers": available, "auto_order": choose_providers("auto", available)}


def _opencv() -> dict:
    import cv2

    build = cv2.getBuildInformation()

    def build_field(name: str) -> str | None:
        match = re.search(rf"^\s*{re.escape(name)}:\s*(.+?)\s*$", build, re.MULTILINE)
        return match.group(1) if match else None

    haar = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / "haarcascade_frontalface_default.xml"
    cuda_devices = 0
    if hasattr(cv2, "cuda"):
        try:
            cuda_devices = int(cv2.cuda.getCudaEnabledDeviceCount())
        except cv2.error:
            cuda_devices = 0
    gui = build_field("GUI") or "NONE"
    return {"version": cv2.__version__, "cuda_devices": cuda_devices,
            "dnn_cuda": (build_field("NVIDIA CUDA") or "NO").upper().startswith("YES"),
            "threads": cv2.getNumThreads(), "parallel_framework": build_field("Parallel framework"),
            "gui": gui, "highgui": gui.upper() != "NONE", "haar_data": haar.is_file(),
            "video_backends": list(dict.fromkeys(cv2.videoio_registry.getBackendName(b)
                                                 for b in cv2.videoio_registry.getBackends()
                                                 if cv2.videoio_registry.hasBackend(b)))}  # not unloaded plugins


def _cameras(count: int, timeout_s: float) -> list[dict]:
    """Open indexes 0..count-1 and read one frame, each in a thread given ``timeout_s``."""
    from .sources.capture import open_capture

    results = []
    for index in range(count):
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            results.append({"index": index, "opened": False, "note": f"no /dev/video{index}"})
            continue
        outcome: dict = {"index": index, "opened": False}

        def probe(outcome=outcome, index=index) -> None:
            capture = open_capture(index)
            try:
                outcome["opened"] = bool(capture.isOpened())
                ok, frame = capture.read() if outcome["opened"] else (False, None)
                if ok and frame is not None:
                    outcome["frame_wh"] = [int(frame.shape[1]), int(frame.shape[0])]
                    outcome["backend"] = capture.getBackendName()
            finally:
                capture.release()

        worker = threading.Thread(target=probe, daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            outcome["note"] = f"no answer within {timeout_s:g} s"
        results.append(outcome)
    return results


# measurements -------------------------------------------------------------------------------------
def _time_ms(fn, budget_s: float, min_runs: int = 3, max_runs: int = 200) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call, within ``budget_s``."""
    fn()
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return round(times[len(times) // 2], 3)


def _benchmark(models: list[Path], image_path: Path, budget_s: float) -> dict:
    import cv2

    from .detectors import DETECTORS, DetectorOptions, create_detector

    frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if frame is None:
        raise OptionsError(f"cannot read the benchmark image {image_path}")
    slots = len(DETECTORS) * len(THREADS) + max(1, len(models) * len(THREADS))
    per_item_s = budget_s / slots
    saved_threads = cv2.getNumThreads()
    detectors, face = [], None
    try:
        for name in DETECTORS:
            for threads in THREADS:
                row = {"detector": name, "threads": threads}
                cv2.setNumThreads(threads)
                try:
                    with _closing(create_detector(DetectorOptions(name=name, num_threads=threads))) as detector:
                        faces = detector.detect(frame)
                        row["faces"] = len(faces)
                        row["latency_ms"] = _time_ms(lambda: detector.detect(frame), per_item_s)
                        face = face or (faces[0] if faces else None)
                except EdgeFerError as exc:
                    row["error"] = str(exc)
                    detectors.append(row)
                    break  # missing files: the same at every thread count
                detectors.append(row)
    finally:
        cv2.setNumThreads(saved_threads)
    return {"image": image_path.name, "image_wh": [frame.shape[1], frame.shape[0]],
            "detectors": detectors, "models": _time_models(models, frame, face, per_item_s)}


def _time_models(models: list[Path], frame, face, per_item_s: float) -> list[dict]:
    from .classifier import ClassifierOptions, ExpressionClassifier

    rows = []
    for path in models:
        for threads in THREADS:
            row = {"model": path.name, "threads": threads}
            try:
                with ExpressionClassifier.create_from_options(ClassifierOptions(path, num_threads=threads)) as clf:
                    h, w = frame.shape[:2]
                    crop = clf.crop(frame, face) if face else frame[h // 4:3 * h // 4, w // 4:3 * w // 4]
                    row["runtime"] = clf.backend_name
                    row["provider"] = clf.providers[0]
                    row["latency_ms"] = _time_ms(lambda: clf.predict_proba([crop]), per_item_s)
            except EdgeFerError as exc:
                row["error"] = str(exc)
                rows.append(row)
                break
            rows.append(row)
    return rows


@contextmanager
def _closing(thing):
    try:
        yield thing
    finally:
        thing.close()


def _best(rows: list[dict], key: str, usable=lambda r: True) -> dict | None:
    """The fastest name at its better thread count (1 unless 2 is clearly faster)."""
    by_name: dict[str, dict[int, dict]] = {}
    for row in rows:
        if "latency_ms" in row and usable(row):
            by_name.setdefault(row[key], {})[row["threads"]] = row
    picks = []
    for runs in by_name.values():
        one, two = runs.get(1), runs.get(2)
        pick = two if (one is None or (two and two["latency_ms"] < one["latency_ms"] * (1 - THREADS_MARGIN))) else one
        picks.append(pick)
    return min(picks, key=lambda r: r["latency_ms"]) if picks else None


def through_detector_words(name: str) -> str:
    """What the shipped table measured for ``name``, each figure with the faces it counts."""
    from .defaults import through_detector_rows

    row = through_detector_rows().get(name)
    if not row:
        return ""
    return (f"on FER2013 val it finds {100 * row['found_share']:.1f}% of the faces and the shipped model "
            f"reads {100 * row['accuracy_through']:.1f}% of those right through its crops, "
            f"{100 * row['found_share'] * row['accuracy_through']:.1f}% of all faces; ")


def recommend(bench: dict) -> dict:
    """The detector with the best measured accuracy through its crops (the same table that
    chose the default, :func:`edge_fer.defaults.detector_accuracy`) among those that found the
    face here, fastest first among equals; the fastest model file; their thread counts."""
    from .defaults import ACCURACY_TIE_POINTS, detector_accuracy

    accuracy = detector_accuracy()
    found = [r for r in bench["detectors"] if r.get("faces", 0) > 0 and "latency_ms" in r]
    if accuracy and any(r["detector"] in accuracy for r in found):
        best = max(accuracy[r["detector"]] for r in found if r["detector"] in accuracy)
        found = [r for r in found if accuracy.get(r["detector"], -1.0) >= best - ACCURACY_TIE_POINTS / 100]
    detector = _best(found, "detector")
    model = _best(bench["models"], "model")
    rec = {"detector": detector["detector"] if detector else None,
           "detector_threads": detector["threads"] if detector else None,
           "detector_ms": detector["latency_ms"] if detector else None,
           "model": model["model"] if model else None,
           "model_threads": model["threads"] if model else None,
           "model_ms": model["latency_ms"] if model else None}
    parts = []
    if detector:
        parts.append(f"detector {detector['detector']} ({through_detector_words(detector['detector'])}"
                     f"{detector['latency_ms']:.1f} ms, "
                     f"{detector['threads']} thread{'s' if detector['threads'] > 1 else ''})")
    else:
        parts.append("no detector found the face in the test image")
    if model:
        parts.append(f"model {model['model']} ({model['latency_ms']:.2f} ms per face, "
                     f"{model['threads']} thread{'s' if model['threads'] > 1 else ''})")
    else:
        parts.append("no loadable model in the models folder")
    rec["summary"] = "; ".join(parts)
    return rec
