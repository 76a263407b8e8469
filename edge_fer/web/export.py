"""The phone page as a static folder: ``edge-fer export-web DIR`` (and ``/device/`` of ``--serve``).

The folder holds the page (``index.html``, ``app.js``, ``fer.js``, ``sw.js``, and ``faces.css`` /
``faces.js``, the per-face panel the live page of ``run --serve`` shares), the vendored
MediaPipe Tasks for Web runtime (``vendor/``, see ``vendor/MANIFEST.json`` and
``tools/vendor_web.sh``), the BlazeFace detector and the classifier (``models/``), and
``edge-fer.json``: the labels, input size, colour, scaling and framing template read from the
classifier's own metadata (:func:`edge_fer.metadata.read_model_meta`) plus the pipeline's
defaults. The page fetches nothing from anywhere else; its service worker caches every file on
the first load so it also opens offline. Text files get a gzipped copy beside them
(``NAME.gz``, :data:`GZIP_SUFFIXES`) that ``edge-fer serve-web`` and ``run --serve``'s
``/device/`` send to browsers that take gzip.

Why MediaPipe Tasks for Web and not ONNX Runtime Web: measured side by side in headless
Chromium (benchmarks/web_runtimes.py, docs/phone.md), BlazeFace through MediaPipe detected 2.6x
faster than YuNet through ONNX Runtime Web's WASM backend and MediaPipe classified 1.5x faster
with the same network; one 13 MB WebAssembly file (ONNX Runtime Web: 14 MB for WASM alone, 28 MB
with WebGPU); and BlazeFace is the detector the Python runtime can match exactly. BlazeFace runs
in ImageEmbedder (raw outputs, decoded in fer.js like edge_fer/detectors/blazeface.py), not in
FaceDetector, whose boxes are rounded to whole pixels of its 128 px input.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__ as EDGE_FER_VERSION
from .. import defaults
from ..errors import ModelError, OptionsError, OutputError
from ..fileio import folder_atomic, sync_file
from ..metadata import read_model_meta
from ..metadata_read import tflite_metadata_entries
from .paths import PHONE_MODEL, STATIC_DIR, VENDOR_DIR, WEB_DIR

STATIC_FILES = ("index.html", "app.js", "fer.js", "faces.js", "faces.css")
SW_FILE = "sw.js"
CONFIG_FILE = "edge-fer.json"
DETECTOR = "blazeface"  # MediaPipe's FaceDetector runs BlazeFace short-range
DELEGATES = ("cpu", "gpu")
STANDARD_METADATA_KEY = "TFLITE_METADATA"  # what MediaPipe's ImageClassifier reads
#: Files written a second time gzipped (NAME.gz) for servers that send them to browsers taking
#: gzip (edge-fer serve-web, run --serve's /device/, nginx gzip_static, Caddy precompressed):
#: the WebAssembly goes from 13.0 to 3.8 MB. Model files barely compress and are left alone.
GZIP_SUFFIXES = (".wasm", ".js", ".mjs", ".html", ".css", ".json")
GZIP_LEVEL = 6  # level 9 saves 0.4% more of the WebAssembly at twice the time


@dataclass(frozen=True)
class WebExportOptions:
    """``model_path``: a TFLite classifier with RGB input, edge-fer metadata and the standard
    TFLite metadata (the shipped phone file has all three). ``detector_model``: BlazeFace
    short-range (None: the file edge-fer ships). ``delegate``: MediaPipe's default delegate in
    the page (``gpu``: WebGL2; the page falls back to ``cpu``, WASM, where it fails)."""

    model_path: str | Path = PHONE_MODEL
    detector_model: str | Path | None = None
    delegate: str = "cpu"
    detect_every: int = defaults.DETECT_EVERY
    smooth: float = defaults.SMOOTH

    def __post_init__(self) -> None:
        if self.delegate not in DELEGATES:
            raise OptionsError(f"WebExportOptions.delegate={self.delegate!r}: expected one of {', '.join(DELEGATES)}")
        if self.detect_every < 1:
            raise OptionsError(f"WebExportOptions.detect_every={self.detect_every!r}: expected >= 1")
        if not 0.0 <= self.smooth < 1.0:
            raise OptionsError(f"WebExportOptions.smooth={self.smooth!r}: expected 0 <= smooth < 1")


@dataclass(frozen=True)
class WebExport:
    """What :func:`export_web` wrote: the folder and each file's size in bytes."""

    folder: Path
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def gzip_bytes(self) -> int:
        """What a browser downloads once, from a server that sends the .gz files: each file's
        .gz where there is one, else the file."""
        return sum(self.sizes.get(name + ".gz", size) for name, size in self.sizes.items()
                   if not name.endswith(".gz"))


def check_web_model(path: str | Path):
    """The classifier's edge-fer metadata, after checking that MediaPipe's ImageClassifier can
    run the file as the Python runtime does; ModelError naming what is missing otherwise."""
    from ..backends import check_model_file

    path = check_model_file(path)
    if path.suffix.lower() != ".tflite":
        raise ModelError(f"the web page runs the classifier in MediaPipe's ImageClassifier, which reads "
                         f".tflite files; got {path.name!r} (the shipped one: {PHONE_MODEL.name})")
    meta = read_model_meta(path)
    if meta is None:
        raise ModelError(f"{path.name} carries no edge-fer metadata (labels, input size, framing): "
                         f"convert it with `edge-fer convert`, or use {PHONE_MODEL.name}")
    if meta.color != "rgb":
        raise ModelError(f"{path.name} takes {meta.color} input but MediaPipe's ImageClassifier feeds RGB: "
                         f"use its phone variant (RGB in, grayscale inside the graph), e.g. {PHONE_MODEL.name}")
    if STANDARD_METADATA_KEY not in tflite_metadata_entries(path.read_bytes()):
        raise ModelError(f"{path.name} has no standard TFLite metadata ({STANDARD_METADATA_KEY}), which "
                         f"MediaPipe's ImageClassifier needs: write it with edge-fer convert --to phone")
    return meta


def check_detector_file(path: str | Path | None) -> Path:
    from ..detectors import find_detector_files

    (found,) = find_detector_files(DETECTOR, None if path is None else str(path))
    if found.read_bytes()[4:8] != b"TFL3":
        raise ModelError(f"{found}: not a TFLite file (expected BlazeFace short-range, {DETECTOR})")
    return found


def page_config(options: WebExportOptions, model_name: str, detector_name: str) -> dict:
    """``edge-fer.json``: what the page needs, from the model's metadata and the defaults."""
    from ..detectors import DetectorOptions
    from ..detectors.blazeface import ANCHOR_OFFSET, DEFAULT_CONFIDENCE, INPUT_SIZE, KEYPOINTS, NMS_IOU, STRIDES
    from ..pipeline import PipelineOptions

    meta = check_web_model(options.model_path)
    detector, pipeline = DetectorOptions(name=DETECTOR), PipelineOptions()
    return {
        "schema": 1,
        "edge_fer_version": EDGE_FER_VERSION,
        "model": {"file": f"models/{model_name}", "name": meta.name, "labels": list(meta.labels),
                  "input_size_hw": list(meta.input_size_hw), "color": meta.color, "scale": meta.scale,
                  "offset": meta.offset, "crop_margin": meta.crop_margin, "temperature": meta.temperature,
                  "framing": meta.framing.to_dict() if meta.framing is not None else None,
                  "scaling_note": "scale/offset are applied by MediaPipe from the file's standard TFLite metadata"},
        "detector": {"name": DETECTOR, "file": f"models/{detector_name}", "input_size": INPUT_SIZE,
                     "anchor_strides": list(STRIDES), "anchor_offset": ANCHOR_OFFSET, "keypoints": list(KEYPOINTS),
                     "detect_width": detector.detect_width, "min_confidence": DEFAULT_CONFIDENCE,
                     "nms_iou": NMS_IOU, "min_face_px": detector.min_face_px, "max_faces": detector.max_faces},
        "pipeline": {"detect_every": options.detect_every, "smooth": options.smooth,
                     "iou_threshold": pipeline.iou_threshold, "max_track_misses": pipeline.max_track_misses},
        "runtime": {**runtime_info(), "delegate": options.delegate.upper()},
    }


def runtime_info() -> dict:
    """The vendored runtime's name and version (from vendor/MANIFEST.json)."""
    try:
        package = json.loads((VENDOR_DIR / "MANIFEST.json").read_text())["packages"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise OutputError(f"the vendored web runtime is missing ({VENDOR_DIR / 'MANIFEST.json'}: {exc}); "
                          "run tools/vendor_web.sh or reinstall edge-fer") from None
    return {"name": package["name"], "version": package["version"]}


def web_files(options: WebExportOptions = WebExportOptions()) -> dict[str, Path | bytes]:
    """Every file of the page: relative path -> a file to copy or the bytes to write."""
    model = Path(options.model_path)
    detector = check_detector_file(options.detector_model)
    files: dict[str, Path | bytes] = {name: STATIC_DIR / name for name in STATIC_FILES}
    for path in sorted(VENDOR_DIR.rglob("*")):
        if path.is_file():
            files[path.relative_to(WEB_DIR).as_posix()] = path
    files[f"models/{model.name}"] = model
    files[f"models/{detector.name}"] = detector
    config = page_config(options, model.name, detector.name)
    files[CONFIG_FILE] = (json.dumps(config, indent=1) + "\n").encode("utf-8")
    files[SW_FILE] = service_worker(files)
    return files


def service_worker(files: dict[str, Path | bytes]) -> bytes:
    """``sw.js`` with the list of files to cache and a cache name that changes with their content."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(name.encode() + b"\0" + (data if isinstance(data, bytes) else data.read_bytes()))
    cached = ["./"] + sorted(files)
    text = (STATIC_DIR / SW_FILE).read_text()
    text = text.replace("__CACHE_VERSION__", digest.hexdigest()[:16]).replace("__FILES__", json.dumps(cached))
    return text.encode("utf-8")


def refuse_unsafe_folder(out: Path) -> None:
    """OutputError for a folder that must never be replaced by the page's: the filesystem's root,
    the home folder, the working folder or one that holds it."""
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    reasons = ((resolved == Path(resolved.anchor), "the filesystem's root"),
               (resolved == Path.home().resolve(), "the home folder"),
               (resolved == cwd, "the working folder"),
               (resolved in cwd.parents, "a folder holding the working folder"))
    for unsafe, what in reasons:
        if unsafe:
            raise OutputError(f"refusing to write the page over {out} ({what}): give a new folder for it; "
                              "nothing was changed")


def export_web(out_dir: str | Path, options: WebExportOptions = WebExportOptions(), *,
               force: bool = False) -> WebExport:
    """Write the page's folder to ``out_dir``: built beside it, renamed into place when complete.
    An existing non-empty ``out_dir`` is an error unless ``force`` (then it is replaced)."""
    out = Path(out_dir)
    refuse_unsafe_folder(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputError(f"{out} exists and is not empty (WebExportOptions.force replaces it)")
    files = web_files(options)  # every check before anything is written
    parent = out.resolve().parent
    if not parent.is_dir():
        raise OutputError(f"output folder's parent does not exist: {parent}")
    sizes = {}
    with folder_atomic(out) as tmp:
        for name, data in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                shutil.copyfile(data, target)
            sync_file(target)
            sizes[name] = target.stat().st_size
            if target.suffix in GZIP_SUFFIXES:
                packed = target.with_name(target.name + ".gz")
                packed.write_bytes(gzip.compress(target.read_bytes(), GZIP_LEVEL, mtime=0))
                sync_file(packed)
                sizes[name + ".gz"] = packed.stat().st_size
    return WebExport(out, sizes)


DEVICE_PREFIX = "/device/"


def mount_device_page(server, stack) -> Path | None:
    """Serve the page (default models) at ``/device/`` of ``server`` (a
    :class:`~edge_fer.serve.FerServer`), exported into a temporary folder that ``stack`` (an
    ExitStack) removes. Public (no token): static files that show nothing of the server's camera,
    and the page's own requests could not carry one. None, with a warning, where it cannot be
    built (e.g. a missing detector file): the live view still runs."""
    import logging

    from ..errors import EdgeFerError

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-fer-device-"))) / "device"
    try:
        export_web(folder)
    except EdgeFerError as exc:
        logging.getLogger("edge_fer.web").warning("no %s page: %s", DEVICE_PREFIX, exc)
        return None
    server.mount(DEVICE_PREFIX, folder, public=True)
    return folder
