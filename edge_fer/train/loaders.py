"""Pick the reader for a dataset path: a FER2013 CSV, a CK+ tree, CK+48 crops or any other
folder-per-class folder (:func:`dataset_kind`), and read it with one :class:`LoadOptions`.

The readers live in :mod:`.datasets` (folders, CSV) and :mod:`.ckplus`; this module imports both,
neither imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionsError
from ..metadata import Framing
from .ckplus import is_ckplus_crops, is_ckplus_root, load_ckplus, load_ckplus_crops
from .datasets import (FaceDataset, fit_size, limit_classes, load_fer2013_csv, load_folder,
                       resolve_classes, select_classes)

#: The kinds that are CK+ (``--last-frames`` applies).
CKPLUS_KINDS = ("ckplus", "ckplus-crops")


@dataclass(frozen=True)
class LoadOptions:
    """How to read any dataset :func:`load_dataset` knows.

    ``size_hw``: resize to this (None keeps the files' size). ``classes``: which classes, in
    which order (None: all, FER2013's order where the names fit). ``crop_faces``: a runtime
    detector name (haar, ssd, yunet, ...) to cut the largest face out of full frames;
    ``detector_model`` its file. ``usage``: the FER2013 CSV rows to keep. ``last_k`` and
    ``first_as_neutral``: which CK+ frames to take from each labelled sequence (``last_k``
    applies to CK+48 too).
    """

    size_hw: tuple[int, int] | None = None
    classes: tuple[str, ...] | None = None
    limit_per_class: int | None = None
    seed: int = 0
    crop_faces: str | None = None
    detector_model: str | None = None
    crop_margin: float = 0.0
    framing: Framing | None = None  # how cut faces are framed (a model's table; None: the box)
    usage: str | None = "Training"
    last_k: int = 1
    first_as_neutral: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", resolve_classes(self.classes, "LoadOptions.classes"))
        if self.limit_per_class is not None and self.limit_per_class < 1:
            raise OptionsError(f"LoadOptions.limit_per_class={self.limit_per_class!r}: expected >= 1")
        if self.last_k < 1:
            raise OptionsError(f"LoadOptions.last_k={self.last_k!r}: expected >= 1 (CK+ frames per sequence)")
        if self.crop_faces is not None and self.size_hw is None:
            raise OptionsError("LoadOptions.size_hw=None: expected a size to resize the faces that "
                               "LoadOptions.crop_faces cuts out to")


def dataset_kind(path: str | Path) -> str:
    """``csv`` (FER2013 CSV file), ``ckplus`` (a CK+ tree), ``ckplus-crops`` (CK+48: class
    folders of CK+ frame names) or ``folder`` (any other folder-per-class folder)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"
    if path.is_file():
        raise InputError(f"dataset {path} is a file but not a FER2013 .csv; expected a .csv, a "
                         "folder-per-class folder or a CK+ folder")
    if path.is_dir() and is_ckplus_root(path):
        return "ckplus"
    if path.is_dir() and is_ckplus_crops(path):
        return "ckplus-crops"
    return "folder"


def load_dataset(path: str | Path, options: LoadOptions = LoadOptions()) -> FaceDataset:
    """Load a folder-per-class folder, a FER2013 CSV, a CK+ tree or CK+48, whichever ``path`` is."""
    kind = dataset_kind(path)
    if kind == "csv" and options.crop_faces:
        raise OptionsError("FER2013 CSV rows are face crops already: leave LoadOptions.crop_faces unset")
    if kind == "ckplus-crops" and options.first_as_neutral:
        raise OptionsError(f"{path} holds CK+ crops of the last frames only (no neutral first "
                           "frame): leave LoadOptions.first_as_neutral off, or use the CK+ tree")
    cropper = None
    if options.crop_faces:
        from .cropping import open_cropper

        cropper = open_cropper(options.crop_faces, options.size_hw, options.crop_margin,
                               options.detector_model, options.framing)
    try:
        if kind == "folder":
            return load_folder(path, options.size_hw, options.classes, options.limit_per_class,
                               options.seed, cropper)
        if kind == "csv":
            data = load_fer2013_csv(path, options.usage)
            data = FaceDataset(np.stack([fit_size(im, options.size_hw) for im in data.images]),
                               data.labels, data.classes, data.paths, data.skipped)
        elif kind == "ckplus-crops":
            data = load_ckplus_crops(path, options.size_hw, options.classes, options.last_k, cropper)
        else:
            data = load_ckplus(path, options.size_hw, options.last_k, options.first_as_neutral, cropper)
    finally:
        if cropper is not None:
            cropper.close()
    return limit_classes(select_classes(data, options.classes), options.limit_per_class, options.seed)
