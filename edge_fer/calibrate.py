"""Framing measured on real faces: fit a model's :class:`~edge_fer.metadata.Framing`, and
measure accuracy through a detector's crops.

Both use one protocol (:func:`synthesize_frame`): a dataset face (FER2013: 48x48 gray, framed
as the model was trained) is upscaled ``upscale`` times (bicubic) and padded by ``pad`` pixels
(border replication), so its true frame in the bigger picture is known exactly. A detector then
runs on the whole picture at full size and its largest face is kept.

- :func:`fit_framing` runs each detector over training faces: the robust mean (median) of the
  landmark positions, as fractions of the true frame, is the alignment template; the median box
  -> true-frame offsets and scales are the box transform of box-only detectors.
- :func:`through_detector` classifies each face through the detector's crop (framed by the
  model's framing) and directly, on the same faces, and reports both.
"""

from __future__ import annotations

import logging
import random
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .errors import InputError, OptionsError
from .fileio import portable_path
from .sources.images import list_images, read_image
from .metadata import Framing
from .types import Face

log = logging.getLogger(__name__)

DEFAULT_UPSCALE = 4
DEFAULT_PAD_PX = 96
PROTOCOL_MIN_FACE_PX = 20
#: A detection counts as the face when it overlaps the true frame at least this much (IoU).
MIN_MATCH_IOU = 0.3


@dataclass(frozen=True)
class LabelledFace:
    path: Path
    label: str
    image_gray: np.ndarray


def list_labelled_images(data_dir: str | Path, labels: Sequence[str] | None = None) -> list[tuple[Path, str]]:
    """``(path, class)`` for every image under ``data_dir/<class>/``, sorted; ``labels`` keeps
    only those classes (and checks that each folder is one of them)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"data folder not found: {data_dir}")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if labels is not None and folder.name not in labels:
            raise InputError(f"{folder}: class {folder.name!r} is not one of the model's labels {list(labels)}")
        items += [(p, folder.name) for p in list_images(folder)]
    if not items:
        raise InputError(f"no images in class folders under {data_dir} (expected DIR/<class>/*.jpg)")
    return items


def load_faces(items: Sequence[tuple[Path, str]]) -> Iterator[LabelledFace]:
    for path, label in items:
        image = read_image(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        yield LabelledFace(path, label, image)


def synthesize_frame(face_gray: np.ndarray, upscale: int = DEFAULT_UPSCALE,
                     pad_px: int = DEFAULT_PAD_PX) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The protocol's picture (BGR) of one dataset face, and the face's true frame (x, y, w, h)."""
    h, w = face_gray.shape[:2]
    big = cv2.resize(face_gray, (w * upscale, h * upscale), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, pad_px, pad_px, pad_px, pad_px, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), (pad_px, pad_px, w * upscale, h * upscale)


def largest_face(faces: Sequence[Face], frame_xywh) -> Face | None:
    """The detector's largest face, if it overlaps the true frame (else None: a miss)."""
    from .tracking import iou_xywh

    if not faces:
        return None
    best = max(faces, key=lambda f: f.box_xywh[2] * f.box_xywh[3])
    return best if iou_xywh(best.box_xywh, frame_xywh) >= MIN_MATCH_IOU else None


def protocol_detector_options(name: str, model_path: str | None = None):
    from .detectors import DetectorOptions

    return DetectorOptions(name=name, model_path=model_path, detect_width=0,
                           min_face_px=PROTOCOL_MIN_FACE_PX)


# fitting ---------------------------------------------------------------------------------------
def fit_framing(data_dir: str | Path, detectors: Sequence[str], count: int = 3000, seed: int = 0,
                upscale: int = DEFAULT_UPSCALE, pad_px: int = DEFAULT_PAD_PX,
                detector_models: dict[str, str] | None = None) -> tuple[Framing, dict]:
    """The framing of the faces in ``data_dir`` (class folders) as each detector sees them, on
    ``count`` faces drawn at random (``seed``); also a report of what was fitted on."""
    from .detectors import create_detector

    if count < 50:
        raise OptionsError(f"CalibrateOptions.count={count!r}: expected >= 50 faces to fit a framing")
    items = list_labelled_images(data_dir)
    random.Random(seed).shuffle(items)
    items = items[:count]
    points: dict[str, dict] = {}
    boxes: dict[str, tuple] = {}
    report = {"data": portable_path(data_dir), "faces": len(items), "seed": seed, "upscale": upscale,
              "pad_px": pad_px, "detectors": {}}
    box_rows: dict[str, list] = {name: [] for name in detectors}
    samples_uv: dict[str, dict[str, list]] = {name: {} for name in detectors}
    with ExitStack() as stack:  # every detector open at once: each face is read and upscaled once
        opened = {name: stack.enter_context(create_detector(
            protocol_detector_options(name, (detector_models or {}).get(name)))) for name in detectors}
        for face in load_faces(items):
            frame, (fx, fy, fw, fh) = synthesize_frame(face.image_gray, upscale, pad_px)
            for name, detector in opened.items():
                found = largest_face(detector.detect(frame), (fx, fy, fw, fh))
                if found is None:
                    continue
                x, y, w, h = found.box_xywh
                box_rows[name].append(((fx + fw / 2 - (x + w / 2)) / w, (fy + fh / 2 - (y + h / 2)) / h,
                                       fw / w, fh / h))
                for key, (px, py) in (found.landmarks_xy or {}).items():
                    samples_uv[name].setdefault(key, []).append(((px - fx) / fw, (py - fy) / fh))
    for name in detectors:
        rows = np.array(box_rows[name])
        if not len(rows):
            raise InputError(f"detector {name} found none of the {len(items)} faces: nothing to fit")
        boxes[name] = tuple(round(float(v), 4) for v in np.median(rows, axis=0))
        if samples_uv[name]:
            points[name] = {k: tuple(round(float(v), 4) for v in np.median(np.array(uv), axis=0))
                            for k, uv in samples_uv[name].items()}
        spread = np.percentile(rows, [25, 75], axis=0)
        report["detectors"][name] = {"found": len(rows), "found_share": round(len(rows) / len(items), 4),
                                     "box": boxes[name], "box_iqr": [[round(float(v), 4) for v in r] for r in spread],
                                     "points": points.get(name)}
        log.info("%s: found %d of %d faces; box %s", name, len(rows), len(items), boxes[name])
    fitted_on = (f"{len(items)} faces of {Path(data_dir).name}/ (seed {seed}), each upscaled {upscale}x "
                 f"(bicubic) and padded {pad_px} px, detected at full size; medians "
                 f"(edge-fer calibrate-framing)")
    return Framing(points=points, boxes=boxes, fitted_on=fitted_on), report


# measuring -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThroughDetectorReport:
    """``found``: faces the detector found (its largest face overlapping the true frame) of
    ``faces``; ``found_any``: faces where it reported any face at all; ``accuracy_through``: top-1 through the detector's crops, on the found faces;
    ``accuracy_direct_found``: direct classification of the same found faces;
    ``accuracy_direct_all``: direct classification of every face; ``gap_points``: direct minus
    through on the found faces, in percentage points."""

    detector: str
    model: str
    faces: int
    found: int
    found_any: int
    accuracy_through: float
    accuracy_direct_found: float
    accuracy_direct_all: float
    framing: str
    upscale: int
    pad_px: int
    data: str
    per_class_found: dict = field(default_factory=dict)

    @property
    def found_share(self) -> float:
        return self.found / self.faces if self.faces else 0.0

    @property
    def gap_points(self) -> float:
        return 100.0 * (self.accuracy_direct_found - self.accuracy_through)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(data=portable_path(self.data), found_share=round(self.found_share, 4),
                   gap_points=round(self.gap_points, 2))
        return out

    def to_line(self) -> str:
        return (f"{self.detector}: found {self.found}/{self.faces} faces ({100 * self.found_share:.1f}%; "
                f"any face reported on {100 * self.found_any / max(1, self.faces):.1f}%); "
                f"through the detector {100 * self.accuracy_through:.2f}% vs direct "
                f"{100 * self.accuracy_direct_found:.2f}% on the same faces ({self.gap_points:+.2f} points "
                f"lost; {self.framing}); direct on all faces {100 * self.accuracy_direct_all:.2f}%")


def framing_kind(classifier, detector_name: str, face=None) -> str:
    """How ``detector_name``'s faces are framed for the classifier; ``face`` (one of them) tells
    whether a detector without its own template aligns on another's that shares its landmarks."""
    from .align import template_for

    framing = classifier.meta.framing
    if framing is None:
        return "plain box crop (the model has no framing)"
    if detector_name in framing.points:
        return "aligned on landmarks"
    template = template_for(framing, face) if face is not None else None
    if template is not None:
        owner = next(name for name, points in framing.points.items() if points is template)
        return f"aligned on landmarks ({owner}'s template)"
    if detector_name in framing.boxes:
        return "calibrated box"
    return "plain box crop (no framing for this detector)"


def through_detector(classifier, data_dir: str | Path, detector_name: str, upscale: int = DEFAULT_UPSCALE,
                     pad_px: int = DEFAULT_PAD_PX, limit_per_class: int | None = None,
                     detector_model: str | None = None, batch_size: int = 64) -> ThroughDetectorReport:
    """The through-detector protocol on every face of ``data_dir`` (or the first
    ``limit_per_class`` of each class)."""
    from .detectors import create_detector

    if upscale < 1:
        raise OptionsError(f"ThroughDetectorOptions.upscale={upscale!r}: expected >= 1")
    if pad_px < 0:
        raise OptionsError(f"ThroughDetectorOptions.pad_px={pad_px!r}: expected >= 0")
    labels = classifier.meta.labels
    items = list_labelled_images(data_dir, labels)
    if limit_per_class:
        items = [it for label in dict.fromkeys(l for _, l in items)
                 for it in [i for i in items if i[1] == label][:limit_per_class]]
    direct, through, truth, found_mask = [], [], [], []
    found_any, first_found = 0, None
    with create_detector(protocol_detector_options(detector_name, detector_model)) as detector:
        pending_direct, pending_through = [], []
        for face in load_faces(items):
            frame, frame_xywh = synthesize_frame(face.image_gray, upscale, pad_px)
            detections = detector.detect(frame)
            found_any += bool(detections)
            found = largest_face(detections, frame_xywh)
            truth.append(labels.index(face.label))
            found_mask.append(found is not None)
            pending_direct.append(face.image_gray)
            if found is not None:
                pending_through.append(classifier.crop(frame, found))
                first_found = first_found or found
            if len(pending_direct) >= batch_size:
                direct += _top1(classifier, pending_direct)
                through += _top1(classifier, pending_through)
                pending_direct, pending_through = [], []
        direct += _top1(classifier, pending_direct)
        through += _top1(classifier, pending_through)
    truth_arr, direct_arr, mask = np.array(truth), np.array(direct), np.array(found_mask, bool)
    through_arr = np.array(through)
    n_found = int(mask.sum())
    per_class = {label: round(float(mask[truth_arr == i].mean()), 4) if (truth_arr == i).any() else None
                 for i, label in enumerate(labels)}
    return ThroughDetectorReport(
        detector=detector_name, model=str(classifier.model_path.name), faces=len(truth), found=n_found, found_any=found_any,
        accuracy_through=float((through_arr == truth_arr[mask]).mean()) if n_found else 0.0,
        accuracy_direct_found=float((direct_arr[mask] == truth_arr[mask]).mean()) if n_found else 0.0,
        accuracy_direct_all=float((direct_arr == truth_arr).mean()) if len(truth) else 0.0,
        framing=framing_kind(classifier, detector_name, first_found), upscale=upscale, pad_px=pad_px,
        data=str(data_dir), per_class_found=per_class)


def _top1(classifier, crops) -> list[int]:
    if not crops:
        return []
    return np.argmax(classifier.predict_proba(crops), axis=1).tolist()


@dataclass(frozen=True)
class ThroughDetectorOptions:
    """``edge-fer eval --through-detector``: a runtime model (.tflite/.onnx) on ``data_dir``."""

    model_path: str
    data_dir: str
    detector: str
    upscale: int = DEFAULT_UPSCALE
    pad_px: int = DEFAULT_PAD_PX
    detector_model: str | None = None
    num_threads: int = 1
    limit_per_class: int | None = None


def run_through_detector(options: ThroughDetectorOptions) -> ThroughDetectorReport:
    from .classifier import ClassifierOptions, ExpressionClassifier

    if Path(options.model_path).suffix.lower() not in (".tflite", ".onnx"):
        raise OptionsError(f"ThroughDetectorOptions.model_path={str(options.model_path)!r}: expected a .tflite or "
                           ".onnx model (the through-detector protocol runs the runtime)")
    with ExpressionClassifier.create_from_options(ClassifierOptions(model_path=options.model_path,
                                                                    num_threads=options.num_threads)) as classifier:
        return through_detector(classifier, options.data_dir, options.detector, options.upscale,
                                options.pad_px, limit_per_class=options.limit_per_class,
                                detector_model=options.detector_model)


# writing ---------------------------------------------------------------------------------------
def write_model_framing(path: str | Path, framing: Framing) -> Path:
    """Put ``framing`` into the edge-fer metadata of a .tflite or .onnx file."""
    from .metadata_write import write_model_fields

    return write_model_fields(path, framing=framing)


#: The detectors ``calibrate-framing`` fits by default, those of them whose files are here.
FRAMING_DETECTORS = ("yunet", "blazeface", "haar", "ssd", "rfb")


@dataclass(frozen=True)
class CalibrateOptions:
    """``edge-fer calibrate-framing``: fit on ``data_dir``, write into ``models``. ``detectors``:
    None fits every one of FRAMING_DETECTORS whose files are here (see :func:`present_detectors`)."""

    data_dir: str
    models: tuple[str, ...] = ()
    detectors: tuple[str, ...] | None = None
    detector_models: tuple[str, ...] = ()  # "name=path"
    count: int = 3000
    seed: int = 0
    report_path: str | None = None

    def __post_init__(self) -> None:
        from .detectors import DETECTORS

        bad = [d for d in self.detectors or () if d not in DETECTORS]
        if bad or self.detectors == ():
            raise OptionsError(f"CalibrateOptions.detectors={','.join(self.detectors)!r}: expected some of "
                               f"{', '.join(DETECTORS)}")
        for item in self.detector_models:
            if "=" not in item or item.split("=", 1)[0] not in DETECTORS:
                raise OptionsError(f"CalibrateOptions.detector_models={item!r}: expected NAME=PATH with NAME one of "
                                   f"{', '.join(DETECTORS)}")
        for model in self.models:
            if Path(model).suffix.lower() not in (".tflite", ".onnx") or not Path(model).is_file():
                raise OptionsError(f"CalibrateOptions.models={str(model)!r}: expected an existing .tflite or "
                                   ".onnx file")


def present_detectors(models: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """FRAMING_DETECTORS split into those whose files are here (shipped, OpenCV's Haar, the
    detector cache folders, or ``models``: name -> file or folder) and those skipped."""
    from .detectors import detector_files_present

    present = tuple(d for d in FRAMING_DETECTORS if detector_files_present(d, models.get(d)))
    return present, tuple(d for d in FRAMING_DETECTORS if d not in present)


def calibrate_framing(options: CalibrateOptions) -> dict:
    """Fit, write into each model, write the report; returns the report (with ``written``, and
    ``skipped``: default detectors left out because their files are not here)."""
    from .fileio import write_json_atomic

    models = dict(item.split("=", 1) for item in options.detector_models)
    detectors, skipped = (options.detectors, ()) if options.detectors is not None else present_detectors(models)
    if skipped:
        log.info("note: skipping %s: %s files are not here (`edge-fer fetch-detectors %s`, or "
                 "CalibrateOptions.detector_models NAME=PATH)", ", ".join(skipped),
                 "their" if len(skipped) > 1 else "its", " ".join(skipped))
    framing, report = fit_framing(options.data_dir, detectors, options.count, options.seed,
                                  detector_models=models)
    report["skipped"] = list(skipped)
    report["fitted_on"] = framing.fitted_on
    report["framing"] = framing.to_dict()
    report["written"] = [str(write_model_framing(m, framing)) for m in options.models]
    if options.report_path:
        write_json_atomic(options.report_path, report)
    return report
