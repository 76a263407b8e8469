"""Real face crops for int8 calibration and for verification, fed exactly as the runtime feeds them.

Faces come from a folder-per-class tree (``root/<class>/<image>``; a flat folder of images also
works, unlabelled). Samples are spread evenly over the classes and seeded; the verification
sample is disjoint from the calibration sample when both come from one folder
(:func:`shared_split` sizes the two). Float, fp16 and dynamic conversions draw no calibration
sample: they verify on the folder alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edge_fer.errors import InputError
from edge_fer.sources.images import IMAGE_SUFFIXES, list_images, read_image

log = logging.getLogger("edge_fer.converters")

#: Fewest faces each side gets when full-int8 calibration and verification share one folder.
MIN_SHARED_FACES = 20


@dataclass
class FaceSet:
    """Crops as the runtime receives them (uint8 gray HxW or BGR HxWx3) and their true class
    indexes into the model's labels (-1: folder not among the labels; None: unlabelled folder)."""

    crops: list[np.ndarray]
    truth: np.ndarray | None
    paths: list[str]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.crops)


def list_faces(root: str | Path, what: str) -> dict[str, list[Path]]:
    """``{class folder name: sorted image paths}``; a flat folder of images gives ``{"": paths}``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{what} folder not found: {root}")

    def images(folder: Path) -> list[Path]:
        return list_images(folder)

    classes = {p.name: images(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    classes = {name: files for name, files in classes.items() if files}
    if not classes and images(root):
        classes = {"": images(root)}
    if not classes:
        raise InputError(f"{what} folder {root} holds no images (expected {root}/<class>/<image>, "
                         f"image suffixes {', '.join(IMAGE_SUFFIXES)})")
    return classes


def even_quota(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over classes as evenly as their sizes allow (``total`` 0 = take all)."""
    if total <= 0 or total >= sum(sizes):
        return list(sizes)
    quota = [0] * len(sizes)
    left = total
    while left:
        open_ = [i for i, s in enumerate(sizes) if quota[i] < s]
        share, extra = divmod(left, len(open_))
        for rank, i in enumerate(open_):
            take = min(sizes[i] - quota[i], share + (1 if rank < extra else 0))
            quota[i] += take
            left -= take
    return quota


def count_faces(root: str | Path, what: str) -> int:
    """Images in a face folder (listed, not read)."""
    return sum(len(files) for files in list_faces(root, what).values())


def shared_split(root: str | Path, calibration_count: int, verify_count: int) -> tuple[int, int]:
    """``(calibration, verification)`` face counts for one folder that gives both (full int8
    without ``--verify``): as asked when the folder holds both samples (``verify_count`` 0, every
    face left, counts as at least MIN_SHARED_FACES); else calibration gets at most half the folder
    and verification the rest (logged). InputError, naming the size needed, for a folder too small
    to give each side MIN_SHARED_FACES (or the smaller count asked for)."""
    total = count_faces(root, "calibration")
    wanted_verify = verify_count or MIN_SHARED_FACES
    if calibration_count + wanted_verify <= total:
        return calibration_count, verify_count
    calibrate = min(calibration_count, total // 2)
    verify = total - calibrate if verify_count == 0 else min(verify_count, total - calibrate)
    least = (min(calibration_count, MIN_SHARED_FACES), min(wanted_verify, MIN_SHARED_FACES))
    if calibrate < least[0] or verify < least[1]:
        raise InputError(f"calibration folder {root} has {total} image{'' if total == 1 else 's'}: full int8 "
                         f"calibrates on {least[0]}+ and verifies on {least[1]}+ other faces of one folder, so it "
                         f"needs at least {sum(least)} (add images or set ConvertOptions.verify)")
    asked = f"{verify_count} verification" if verify_count else f"at least {MIN_SHARED_FACES} left to verify on"
    log.warning("calibration folder %s has %d images, fewer than the %d calibration faces + %s asked for: "
                "calibrating on %d, verifying on %d others (ConvertOptions.verify verifies on another folder)",
                root, total, calibration_count, asked, calibrate, verify)
    return calibrate, verify


def sample_faces(root: str | Path, counts: Sequence[int], labels: Sequence[str], color: str,
                 seed: int = 0, what: str = "calibration") -> list[FaceSet]:
    """Disjoint seeded samples of ``counts[k]`` faces each (0 = every face left), even over classes."""
    by_class = list_faces(root, what)
    rng = np.random.default_rng(seed)
    shuffled = {name: [files[i] for i in rng.permutation(len(files))] for name, files in by_class.items()}
    index = {label.lower(): i for i, label in enumerate(labels)}
    labelled = "" not in by_class
    taken = dict.fromkeys(by_class, 0)
    samples = []
    for count in counts:
        names = list(shuffled)
        quota = even_quota([len(shuffled[n]) - taken[n] for n in names], count)
        crops, truth, paths, skipped = [], [], [], 0
        for name, n in zip(names, quota):
            for path in shuffled[name][taken[name]:taken[name] + n]:
                image = read_crop(path, color)
                if image is None:
                    skipped += 1
                    continue
                crops.append(image)
                truth.append(index.get(name.lower(), -1))
                paths.append(str(path))
            taken[name] += n
        if not crops and skipped:
            raise InputError(f"{what} folder {root}: none of the {skipped} images sampled could be read")
        if not crops:  # an earlier sample took every image
            total = sum(len(files) for files in by_class.values())
            raise InputError(f"{what} folder {root} has {total} image{'' if total == 1 else 's'}, all taken by "
                             f"the {what} sample: none left to verify on (add images or set ConvertOptions.verify)")
        samples.append(FaceSet(crops, np.asarray(truth) if labelled else None, paths, skipped))
    return samples


def read_crop(path: Path, color: str) -> np.ndarray | None:
    """A face crop as a camera frame gives it to the runtime: gray for gray models, else BGR."""
    return read_image(path, cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR)


def accuracy(probs: np.ndarray, truth: np.ndarray | None) -> float | None:
    """Top-1 accuracy over the faces whose folder names one of the model's labels."""
    if truth is None or not (truth >= 0).any():
        return None
    known = truth >= 0
    return float((probs[known].argmax(axis=1) == truth[known]).mean())
