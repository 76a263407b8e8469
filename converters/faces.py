"""What a conversion prepares before it writes anything: the output path checked, the
calibration and verification faces drawn (:func:`face_counts` before any model loads, then
:func:`load_faces` with the source model's probabilities), and the no-framing warning. Shared
by every writer (:mod:`.api` for TFLite/ONNX, :mod:`.phone`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer.classifier import preprocess_crops
from edge_fer.errors import OptionsError
from edge_fer.fileio import check_writable_folder
from edge_fer.metadata import NO_FRAMING

from .calibration import FaceSet, accuracy, sample_faces, shared_split
from .options import SUFFIXES, ConvertOptions
from .models import SourceModel

log = logging.getLogger("edge_fer.converters")


@dataclass
class Faces:
    """Calibration batch (float NHWC, preprocessed as the runtime does; None without a
    calibration folder) and the verification faces with the source model's probabilities."""

    calibration: np.ndarray | None
    verify: FaceSet
    reference: np.ndarray
    source_accuracy: float | None


def face_counts(options: ConvertOptions, quantizations: tuple[str, ...]) -> tuple[int, int]:
    """``(calibration faces, verification faces)`` to draw. Only full int8 calibrates: float,
    fp16 and dynamic draw no calibration sample (0) and verify on ``--verify`` or, else, on the
    calibration folder. Full int8 with one folder for both splits it (:func:`shared_split`);
    called before any model loads, so a folder too small fails at once."""
    if options.calibration is None or "int8" not in quantizations:
        return 0, options.verify_count
    if options.verify is not None:
        return options.calibration_count, options.verify_count
    return shared_split(options.calibration, options.calibration_count, options.verify_count)


def load_faces(options: ConvertOptions, source: SourceModel, counts: tuple[int, int]) -> Faces:
    """The faces of :func:`face_counts` ``counts``, and the source model's probabilities on them."""
    meta = source.meta
    calibration_count, verify_count = counts
    calibration, held_out = None, None
    if calibration_count:
        shared = options.verify is None
        sets = sample_faces(options.calibration, [calibration_count] + ([verify_count] if shared else []),
                            meta.labels, meta.color, options.seed, "calibration")
        calibration = preprocess_crops(meta, sets[0].crops)
        held_out = sets[1] if shared else None
    if held_out is None:  # ConvertOptions guarantees a calibration or a verification folder
        folder, what = (options.verify, "verification") if options.verify is not None else \
            (options.calibration, "calibration")
        held_out = sample_faces(folder, [verify_count], meta.labels, meta.color, options.seed, what)[0]
    reference = source.predict(preprocess_crops(meta, held_out.crops))
    return Faces(calibration, held_out, reference, accuracy(reference, held_out.truth))


def warn_without_framing(meta, written: str) -> None:
    """The ``written`` model(s) have no framing table: say so (the runtime then cuts plain boxes)."""
    if meta.framing is None:
        log.warning("warning: %s: %s", written, NO_FRAMING)


def check_out(path: Path, target: str) -> Path:
    if not path.parent.is_dir():
        raise OptionsError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise OptionsError(f"ConvertOptions.out={str(path)!r}: expected a {SUFFIXES[target]} file, not a folder "
                           "(convert_all writes every format into a folder)")
    if path.suffix.lower() != SUFFIXES[target]:
        raise OptionsError(f"output {path.name!r} does not end in {SUFFIXES[target]} (target {target})")
    check_writable_folder(path.parent, "ConvertOptions.out")  # before minutes of conversion, not after
    return path
