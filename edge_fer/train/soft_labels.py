"""Labels from people: FER+ vote distributions as soft training targets and as a clean-label measure.

FER+ (Barsoum et al. 2016; Microsoft, MIT) asked 10 people what each FER2013 face shows. The votes
file (``shared/data/ferplus/ferplus_votes.csv``) has one row per image, ``file`` relative to the
FER2013 root (``train/angry/Training_10118481.jpg``), then the counts ``neutral, happiness,
surprise, sadness, anger, disgust, fear, contempt, unknown, NF``.

How the ten columns become targets over the training classes:

- the seven emotions map onto FER2013's names (``happiness`` -> ``happy``, ...);
- ``contempt`` (no FER2013 class), ``unknown`` and ``NF`` (not a face) votes are dropped and the
  rest renormalised: a face that people could not read contributes only the votes they could give;
- a face with no emotion vote left (all ``NF``/``unknown``/``contempt``), or an image the file does
  not list, keeps its FER2013 label (one-hot). Both are counted in :class:`SoftLabels`.

Training mixes them with the FER2013 label: ``target = (1 - w) * one_hot + w * votes``. The
trainer realises this through the distillation loss at temperature 1 (``(1 - w) CE + w KL``, whose
gradient equals cross-entropy against the mixed target), so the same code serves both.

As a measure, :func:`plurality_labels` gives each face the class with the most votes when that
maximum is unique and lies among the classes (FER2013 val: 3,372 of 3,589 faces).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionsError
from .datasets import image_key

log = logging.getLogger(__name__)

#: The vote columns of the FER+ file, in its order.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
#: FER+ emotion column -> FER2013 class name. Columns not here are dropped (see module doc).
VOTE_TO_CLASS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                 "sadness": "sad", "anger": "angry", "disgust": "disgust", "fear": "fear"}


@dataclass(frozen=True)
class SoftLabels:
    """Per-image target distributions (N, C) in the training classes' order."""

    probs: np.ndarray
    voted: int  # images whose row had emotion votes
    no_votes: int  # listed, but every vote was contempt/unknown/not-a-face: one-hot kept
    unlisted: int  # images the votes file does not list: one-hot kept


def check_weight(weight: float) -> None:
    if not 0.0 <= weight <= 1.0:
        raise OptionsError(f"TrainOptions.soft_label_weight={weight!r}: expected a weight in [0, 1]")


def read_votes(path: str | Path) -> dict[str, np.ndarray]:
    """``<class folder>/<file name>`` -> the 10 vote counts (float32), from a FER+ votes CSV."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"votes file not found: {path}")
    votes = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("file", *VOTE_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} is not a FER+ votes file: columns {missing} missing "
                             f"(expected file, {', '.join(VOTE_COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            try:
                counts = np.array([float(row[c]) for c in VOTE_COLUMNS], np.float32)
            except (TypeError, ValueError):
                raise InputError(f"{path}:{line}: vote counts must be numbers, got "
                                 f"{[row.get(c) for c in VOTE_COLUMNS]}") from None
            if (counts < 0).any() or not np.isfinite(counts).all():
                raise InputError(f"{path}:{line}: vote counts must be >= 0, got {counts.tolist()}")
            votes[image_key(row["file"])] = counts
    if not votes:
        raise InputError(f"{path} holds no votes")
    return votes


def _votes(source: str | Path | Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """A votes file's path, or what :func:`read_votes` returned (so a caller reads the file once)."""
    return source if isinstance(source, Mapping) else read_votes(source)


def class_votes(counts: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """The vote counts (..., 10) regrouped onto ``classes`` (..., C); unmapped columns dropped."""
    index = {c: i for i, c in enumerate(VOTE_COLUMNS)}
    unknown = [c for c in classes if c not in VOTE_TO_CLASS.values()]
    if unknown:
        raise InputError(f"FER+ votes cover {sorted(VOTE_TO_CLASS.values())}; the classes "
                         f"{unknown} have none")
    by_class = {name: column for column, name in VOTE_TO_CLASS.items()}
    return np.stack([counts[..., index[by_class[c]]] for c in classes], axis=-1)


def soft_targets(votes_path: str | Path | Mapping[str, np.ndarray], paths: list[str], labels: np.ndarray,
                 classes: tuple[str, ...]) -> SoftLabels:
    """The vote distribution of each training image (matched by class folder and file name)."""
    votes = _votes(votes_path)
    where = "the votes given" if isinstance(votes_path, Mapping) else str(votes_path)
    one_hot = np.eye(len(classes), dtype=np.float32)[labels]
    probs = one_hot.copy()
    voted = no_votes = unlisted = 0
    for i, p in enumerate(paths):
        counts = votes.get(image_key(p))
        if counts is None:
            unlisted += 1
            continue
        mine = class_votes(counts, classes)
        if mine.sum() <= 0:
            no_votes += 1
            continue
        probs[i] = mine / mine.sum()
        voted += 1
    if voted == 0:
        raise InputError(f"none of the {len(paths)} training images is in {where} "
                         f"(matched by <class>/<file>, e.g. {image_key(paths[0]) if paths else '-'})")
    log.info(f"soft labels from {where}: {voted} images with votes, {no_votes} with none "
             f"usable (FER2013 label kept), {unlisted} not listed (FER2013 label kept)")
    return SoftLabels(probs, voted, no_votes, unlisted)


def plurality_columns(votes_path: str | Path | Mapping[str, np.ndarray], paths: list[str]) -> np.ndarray:
    """Each image's FER+ plurality as an index of :data:`VOTE_COLUMNS`, or -1 where the file has
    no row or the maximum over all 10 columns is tied."""
    votes = _votes(votes_path)
    out = np.full(len(paths), -1, np.int64)
    for i, p in enumerate(paths):
        counts = votes.get(image_key(p))
        if counts is not None:
            top = np.flatnonzero(counts == counts.max())
            if len(top) == 1:
                out[i] = top[0]
    return out


def plurality_labels(votes_path: str | Path | Mapping[str, np.ndarray], paths: list[str],
                     classes: tuple[str, ...]) -> np.ndarray:
    """Each image's FER+ plurality class index, or -1 where the file has no row, the maximum over
    all 10 columns is tied, or it falls on a column outside ``classes``."""
    index = {k: classes.index(VOTE_TO_CLASS[name]) for k, name in enumerate(VOTE_COLUMNS)
             if VOTE_TO_CLASS.get(name) in classes}
    return np.asarray([index.get(int(c), -1) for c in plurality_columns(votes_path, paths)], np.int64)


def not_a_face(votes_path: str | Path | Mapping[str, np.ndarray], paths: list[str]) -> np.ndarray:
    """True where an image's FER+ plurality is NF (not a face): NF alone has the most votes."""
    return plurality_columns(votes_path, paths) == VOTE_COLUMNS.index("NF")
