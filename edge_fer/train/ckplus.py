"""The Extended Cohn-Kanade dataset (CK+): sequences that go from a neutral face to the peak
of one expression, labelled per sequence.

Layout (as distributed)::

    <root>/cohn-kanade-images/S005/001/S005_001_00000001.png ... (frames, in order)
    <root>/Emotion/S005/001/S005_001_00000011_emotion.txt       ("   3.0000000e+00")

Emotion codes 0..7 = neutral, anger, contempt, disgust, fear, happiness, sadness, surprise
(named here as :data:`~edge_fer.train.datasets.CLASS_SETS` ``ckplus``). Only about 300 of the
~600 sequences carry a label; unlabelled ones are ignored. From each labelled sequence we take
the last ``last_k`` frames (the most expressive) and, optionally, its first frame as neutral.
Frames are full 640x490 pictures: pass a cropper to cut out the face as the runtime does.

CK+48, the 48x48 face crops of the last 3 frames of each labelled sequence, comes as a
folder-per-class folder (``anger/S010_004_00000017.png``; no neutral): :func:`load_ckplus_crops`
reads it and keeps the last ``last_k`` frames of each sequence. Either way the file name says
whose face it is (:func:`frame_id`), so splits can keep a subject or a sequence on one side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .datasets import CLASS_SETS, IMAGE_SUFFIXES, FaceDataset, load_folder, read_faces

IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
CKPLUS_CLASSES = CLASS_SETS["ckplus"]  # index = CK+ emotion code
#: A CK+ frame's file name: ``S005_001_00000011`` = subject S005, its sequence 001, frame 11.
FRAME_NAME = re.compile(r"(S\d{3})_(\d{3})_(\d{8})")


@dataclass(frozen=True)
class Sequence:
    """One labelled CK+ sequence: its frames in order and its emotion code."""

    name: str  # e.g. "S005/001"
    frames: tuple[Path, ...]
    code: int


def is_ckplus_root(root: Path) -> bool:
    return (root / IMAGES_DIR).is_dir() and (root / EMOTION_DIR).is_dir()


def read_emotion_code(path: Path) -> int | None:
    """The code in one ``*_emotion.txt`` file, or None if it is not an integer 0..7."""
    try:
        value = float(path.read_text().split()[0])
    except (ValueError, IndexError, OSError, UnicodeDecodeError):
        return None
    return int(value) if value.is_integer() and 0 <= value < len(CKPLUS_CLASSES) else None


def labelled_sequences(root: str | Path) -> tuple[list[Sequence], int]:
    """The labelled sequences that have frames, and the count of unusable label files."""
    root = Path(root)
    if not is_ckplus_root(root):
        raise InputError(f"{root} is not a CK+ folder: expected {root}/{IMAGES_DIR}/Sxxx/yyy/*.png "
                         f"and {root}/{EMOTION_DIR}/Sxxx/yyy/*_emotion.txt")
    sequences, bad = [], 0
    for label_file in sorted((root / EMOTION_DIR).glob("*/*/*_emotion.txt")):
        seq_dir = label_file.parent.relative_to(root / EMOTION_DIR)
        frames = tuple(sorted(p for p in (root / IMAGES_DIR / seq_dir).glob("*")
                              if p.suffix.lower() in IMAGE_SUFFIXES))
        code = read_emotion_code(label_file)
        if code is None or not frames:
            bad += 1
            continue
        sequences.append(Sequence(seq_dir.as_posix(), frames, code))
    return sequences, bad


def load_ckplus(root: str | Path, size_hw: tuple[int, int] | None = (48, 48), last_k: int = 1,
                first_as_neutral: bool = False, cropper=None) -> FaceDataset:
    """Load CK+ as a :class:`FaceDataset` over the 8 CK+ classes (the caller drops the classes
    it does not want). ``skipped`` counts unreadable frames and unusable label files;
    ``no_face`` the frames in which ``cropper`` found no face."""
    sequences, bad_labels = labelled_sequences(root)
    if not sequences:
        raise InputError(f"CK+ folder {root} has no labelled sequence with frames "
                         f"({bad_labels} label files unusable)")
    items = []
    for seq in sequences:
        if first_as_neutral and len(seq.frames) > last_k:
            items.append((seq.frames[0], 0))
        items += [(frame, seq.code) for frame in seq.frames[-last_k:]]
    data = read_faces(items, CKPLUS_CLASSES, size_hw, cropper, f"CK+ folder {root}")
    data.skipped += bad_labels
    return data


def frame_id(path: str | Path) -> tuple[str, str, int] | None:
    """``(subject, sequence, frame)`` from a CK+ file name (``("S005", "S005_001", 11)``), or None."""
    match = FRAME_NAME.fullmatch(Path(path).stem)
    return (match[1], f"{match[1]}_{match[2]}", int(match[3])) if match else None


def is_ckplus_crops(root: Path) -> bool:
    """A folder-per-class folder whose every image has a CK+ frame name (CK+48's layout)."""
    images = (p for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
              for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    first = next(images, None)  # a FER2013 folder fails here, on its first file
    return first is not None and all(frame_id(p) is not None for p in (first, *images))


def frame_ids(data: FaceDataset) -> list[tuple[str, str, int]]:
    """:func:`frame_id` of every image of ``data``; InputError if one has no CK+ file name."""
    ids = [frame_id(p) for p in data.paths]
    if len(ids) != len(data) or None in ids:
        bad = next((p for p, i in zip(data.paths, ids) if i is None), "(no file names)")
        raise InputError(f"not a CK+ frame name: {bad} (expected S###_###_########.png)")
    return ids


def keep_last_frames(data: FaceDataset, last_k: int) -> FaceDataset:
    """The last ``last_k`` frames (by frame number) of each sequence in ``data``."""
    by_sequence: dict[str, list[tuple[int, int]]] = {}
    for index, (_, sequence, frame) in enumerate(frame_ids(data)):
        by_sequence.setdefault(sequence, []).append((frame, index))
    keep = sorted(i for frames in by_sequence.values() for _, i in sorted(frames)[-last_k:])
    return data.subset(np.asarray(keep, np.int64))


def load_ckplus_crops(root: str | Path, size_hw: tuple[int, int] | None = (48, 48),
                      classes: tuple[str, ...] | None = None, last_k: int = 1,
                      cropper=None) -> FaceDataset:
    """Load CK+48 (``<class>/S###_###_########.png``), the last ``last_k`` frames of each sequence.
    Class folders ``anger``/``sadness`` load as FER2013's ``angry``/``sad``."""
    return keep_last_frames(load_folder(root, size_hw, classes, cropper=cropper), last_k)
