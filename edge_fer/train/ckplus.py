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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .datasets import CLASS_SETS, IMAGE_SUFFIXES, FaceDataset, read_faces

IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
CKPLUS_CLASSES = CLASS_SETS["ckplus"]  # index = CK+ emotion code


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
