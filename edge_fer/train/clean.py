"""``edge-fer clean``: find the images of a labelled face folder that are not faces or carry a
wrong label, report them, and write a cleaned copy; the source folder is never changed.

The second seed cleans FER2013 before training (deletes non-faces, relabels wrong labels with a
CNN). Here each image is checked by:

- ``constant``: a near-constant picture (its gray levels' standard deviation below
  ``CleanOptions.min_std``): placeholders and blank frames;
- ``no_face``: none of ``CleanOptions.detectors`` finds a face in it, upscaled and framed by a
  flat border (:func:`check_frame`), each at its own lowest score;
- ``label``: confident learning (Northcutt et al. 2021, the ``cleanlab`` library) on predicted
  probabilities: the image's label disagrees with what the model confidently predicts, beyond the
  noise rate estimated for that pair of classes. The probabilities come from a file in
  ``edge-fer teacher-probs`` format; **out-of-fold** ones (``edge-fer oof-probs``) are what
  confident learning assumes: a model's probabilities on its own training images agree with the
  given labels too often and flag too few.

``OUT/report.csv`` lists every flagged image (path relative to the data folder, issue, given label,
suggested label, confidence), ``OUT/summary.json`` the counts and the options, and ``OUT/data/``
the cleaned copy: non-faces dropped; label issues dropped (``action="drop"``) or moved to the
suggested class (``action="relabel"``). OUT is built beside itself and renamed into place at the
end (:func:`~edge_fer.fileio.folder_atomic`), so it is whole or absent.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionsError

log = logging.getLogger(__name__)

ISSUES = ("constant", "no_face", "label")
ACTIONS = ("drop", "relabel")
#: The face check's detectors and the lowest score that counts as a face (None: the detector's
#: default). YuNet at 0.1 keeps most real faces the defaults miss (profiles, screams) while text,
#: icons and drawings score below it; measured on FER2013 train in docs/model_card/cleaning.md.
CLEAN_DETECTORS = (("blazeface", None), ("yunet", 0.1))
REPORT_FIELDS = ("path", "issue", "given", "suggested", "confidence")


@dataclass(frozen=True)
class CleanOptions:
    """``probs``: a teacher-probs ``.npz`` covering every image of ``data`` (None: no label check).
    ``detectors``: ``(name, min_score)`` pairs (``min_score`` None: the detector's default);
    empty skips the face check. ``upscale``/``pad_px``: the picture each face is
    detected in (as ``calibrate-framing`` and ``eval --through-detector``)."""

    data: str
    out: str
    probs: str | None = None
    detectors: tuple[tuple[str, float | None], ...] = CLEAN_DETECTORS
    min_std: float = 5.0
    upscale: int = 4
    pad_px: int = 96
    action: str = "drop"
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise OptionsError(f"CleanOptions.action={self.action!r}: expected one of {', '.join(ACTIONS)}")
        if not self.min_std >= 0:
            raise OptionsError(f"CleanOptions.min_std={self.min_std!r}: expected >= 0 (gray levels)")
        if self.upscale < 1:
            raise OptionsError(f"CleanOptions.upscale={self.upscale!r}: expected >= 1")
        if self.pad_px < 0:
            raise OptionsError(f"CleanOptions.pad_px={self.pad_px!r}: expected >= 0")
        from ..detectors import DETECTORS

        for name, score in self.detectors:
            if name not in DETECTORS:
                raise OptionsError(f"CleanOptions.detectors has {name!r}: expected names of {', '.join(DETECTORS)}")
            if score is not None and not 0 < score <= 1:
                raise OptionsError(f"CleanOptions.detectors has {name!r} at min_score {score!r}: expected 0 < score <= 1")
        if not self.detectors and not self.probs and self.min_std == 0:
            raise OptionsError("CleanOptions checks nothing: give probs, detectors or min_std > 0")


@dataclass(frozen=True)
class Flag:
    index: int
    issue: str
    suggested: str | None
    confidence: float | None

    def __post_init__(self) -> None:
        if self.issue not in ISSUES:
            raise ValueError(f"Flag.issue={self.issue!r}: expected one of {ISSUES}")


def constant_images(images: np.ndarray, min_std: float) -> np.ndarray:
    """Indexes of the images whose gray levels' standard deviation is below ``min_std``."""
    std = images.reshape(len(images), -1).std(axis=1)
    return np.flatnonzero(std < min_std)


def check_frame(image_gray: np.ndarray, upscale: int, pad_px: int) -> np.ndarray:
    """The picture the face check looks at (BGR): the image upscaled (bicubic) and framed by
    ``pad_px`` of its own median gray. Unlike the calibration protocol's replicated border
    (:func:`~edge_fer.calibrate.synthesize_frame`), a flat border holds nothing a detector could
    take for a face, so any detection is one in the image."""
    import cv2

    h, w = image_gray.shape[:2]
    big = cv2.resize(image_gray, (w * upscale, h * upscale), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, pad_px, pad_px, pad_px, pad_px, cv2.BORDER_CONSTANT,
                             value=int(np.median(image_gray)))
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def faceless_images(images: np.ndarray, detectors: tuple[tuple[str, float | None], ...], upscale: int,
                    pad_px: int, num_threads: int = 1) -> np.ndarray:
    """Indexes of the images in which none of ``detectors`` (``(name, min_score)`` pairs) finds a
    face (:func:`check_frame`)."""
    from dataclasses import replace

    from ..calibrate import protocol_detector_options
    from ..detectors import create_detector

    found = np.zeros(len(images), bool)
    for name, score in detectors:
        options = replace(protocol_detector_options(name), num_threads=num_threads)
        if score is not None:
            options = replace(options, min_confidence=score)
        with create_detector(options) as detector:
            for i in np.flatnonzero(~found):
                found[i] = bool(detector.detect(check_frame(images[i], upscale, pad_px)))
        log.info("%s: %d of %d images without a face so far", name, int((~found).sum()), len(images))
    return np.flatnonzero(~found)


def label_issues(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning: ``(indexes, suggested)`` of the images whose label is likely wrong
    (cleanlab's ``prune_by_noise_rate``), most confident first, and the class each should carry
    (the most probable one)."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        raise OptionsError("label checks need cleanlab: pip install 'edge-fer[train]'") from None

    # n_jobs=1: cleanlab would otherwise fork a process pool (one per physical core), and a fork
    # of a process with other threads (a server, a browser driver, TensorFlow) can hang a worker:
    # seen once in the suite, a pool worker blocked forever on the pool's queue lock. The
    # per-class pruning is small; the result does not depend on n_jobs (cleanlab's docs).
    ranked = find_label_issues(labels, probs, filter_by="prune_by_noise_rate",
                               return_indices_ranked_by="self_confidence", n_jobs=1)
    ranked = np.asarray(ranked, np.int64)
    suggested = probs[ranked].argmax(axis=1)
    keep = suggested != labels[ranked]  # never "relabel" to the same class
    return ranked[keep], suggested[keep]


def find_flags(data, options: CleanOptions) -> list[Flag]:
    """Every check of ``options`` on ``data`` (a FaceDataset); an image gets its first issue only,
    in :data:`ISSUES` order."""
    flags: dict[int, Flag] = {}
    if options.min_std > 0:
        for i in constant_images(data.images, options.min_std):
            flags[int(i)] = Flag(int(i), "constant", None, None)
    if options.detectors:
        rest = np.asarray([i for i in range(len(data)) if i not in flags], np.int64)
        for j in faceless_images(data.images[rest], options.detectors, options.upscale, options.pad_px,
                                 options.num_threads):
            flags[int(rest[j])] = Flag(int(rest[j]), "no_face", None, None)
    if options.probs:
        from .distill import teacher_for

        probs = teacher_for(options.probs, data.paths, data.classes)
        for i, s in zip(*label_issues(data.labels, probs)):
            if int(i) not in flags:
                flags[int(i)] = Flag(int(i), "label", data.classes[s], float(probs[i, s]))
    return sorted(flags.values(), key=lambda f: (ISSUES.index(f.issue), -(f.confidence or 0.0), f.index))


def report_rows(data, root: Path, flags: list[Flag]) -> list[dict]:
    return [{"path": Path(data.paths[f.index]).relative_to(root).as_posix(), "issue": f.issue,
             "given": data.classes[data.labels[f.index]], "suggested": f.suggested or "",
             "confidence": "" if f.confidence is None else f"{f.confidence:.4f}"} for f in flags]


def check_paths(data: Path, out: Path) -> None:
    if not data.is_dir():
        raise InputError(f"CleanOptions.data={str(data)!r}: expected a folder of class folders")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"CleanOptions.out={str(out)!r} exists; expected a new or empty folder")
    real_data, real_out = data.resolve(), out.resolve()
    if real_out == real_data or real_data in real_out.parents or real_out in real_data.parents:
        raise InputError(f"CleanOptions.out={str(out)!r} overlaps the data folder {str(data)!r}; "
                         "expected a folder outside it")


def clean(options: CleanOptions) -> dict:
    """Check ``options.data``, write OUT (report.csv, summary.json, data/) whole, return the summary."""
    from ..fileio import folder_atomic, make_output_folder, portable_path, sync_file
    from .datasets import load_folder

    root, out = Path(options.data), Path(options.out)
    check_paths(root, out)
    make_output_folder(out.parent, "CleanOptions.out")
    data = load_folder(root)
    if not data.paths:
        raise InputError(f"no images in class folders under {root}")
    flags = find_flags(data, options)
    rows = report_rows(data, root, flags)
    dropped = {f.index for f in flags if f.issue != "label" or options.action == "drop"}
    moved = {f.index: f.suggested for f in flags if f.issue == "label" and options.action == "relabel"}

    with folder_atomic(out) as building:
        counts = {c: 0 for c in data.classes}
        for i, (path, label) in enumerate(zip(data.paths, data.labels)):
            if i in dropped:
                continue
            cls = moved.get(i, data.classes[label])
            target = building / "data" / cls / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # a copy: editing it never touches the source
            counts[cls] += 1
        text = io.StringIO()
        writer = csv.DictWriter(text, REPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (building / "report.csv").write_text(text.getvalue())
        summary = {
            "data": portable_path(root), "images": len(data), "classes": list(data.classes),
            "flagged": {issue: sum(f.issue == issue for f in flags) for issue in ISSUES},
            "flagged_per_class": {c: {issue: int(sum(f.issue == issue and data.labels[f.index] == k for f in flags))
                                      for issue in ISSUES} for k, c in enumerate(data.classes)},
            "dropped": len(dropped), "relabelled": len(moved), "written": sum(counts.values()),
            "counts_before": data.counts(), "counts_after": counts,
            "options": asdict(options) | {k: portable_path(getattr(options, k))
                                          for k in ("data", "out", "probs") if getattr(options, k)},
        }
        (building / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        for name in ("report.csv", "summary.json"):
            sync_file(building / name)
        os.sync()  # the copies too, before the rename publishes them
    return summary
