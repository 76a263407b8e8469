"""Dataset loaders: folder-per-class (FER2013 layout), FER2013 CSV and CK+.

Each loader returns a :class:`FaceDataset`: uint8 images (N, H, W) in grayscale, int labels and
the explicit class list. Corrupt images are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

#: Explicit class sets. FER2013's order is its CSV's emotion codes 0..6.
CLASS_SETS = {
    "fer2013": ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    "pyfer": ("angry", "disgust", "fear", "happy", "sad", "surprise"),
    "ckplus": ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise"),
}


@dataclass
class FaceDataset:
    images: np.ndarray  # (N, H, W) uint8 grayscale
    labels: np.ndarray  # (N,) int64 indexes into classes
    classes: tuple[str, ...]
    paths: list[str] = field(default_factory=list)
    skipped: int = 0

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}

    def subset(self, index: np.ndarray) -> "FaceDataset":
        paths = [self.paths[i] for i in index] if self.paths else []
        return FaceDataset(self.images[index], self.labels[index], self.classes, paths)


def order_classes(names: list[str]) -> tuple[str, ...]:
    """FER2013 names keep FER2013's order (so models agree with the peer); others sort."""
    for known in CLASS_SETS.values():
        if set(names) <= set(known):
            return tuple(c for c in known if c in names)
    return tuple(sorted(names))


def load_folder(root: str | Path, size_hw: tuple[int, int] | None = None,
                classes: tuple[str, ...] | None = None, limit_per_class: int | None = None,
                seed: int = 0) -> FaceDataset:
    """Load a folder-per-class dataset: ``root/<class>/<image>``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise InputError(f"dataset folder {root} has no class subfolders (expected {root}/<class>/<image>)")
    classes = tuple(classes) if classes else order_classes(found)
    missing = [c for c in classes if c not in found]
    if missing:
        raise InputError(f"dataset folder {root} lacks class folders {missing}; found {found}")
    rng = np.random.default_rng(seed)
    images, labels, paths, skipped = [], [], [], 0
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if limit_per_class is not None and len(files) > limit_per_class:
            files = [files[i] for i in sorted(rng.choice(len(files), limit_per_class, replace=False))]
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None or image.size == 0:
                skipped += 1
                continue
            if size_hw is not None and image.shape[:2] != tuple(size_hw):
                image = cv2.resize(image, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)
            images.append(image)
            labels.append(index)
            paths.append(str(path))
    if not images:
        raise InputError(f"dataset folder {root} holds no readable images ({skipped} unreadable)")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError(f"images in {root} differ in size {sorted(shapes)[:3]}...; pass a size to resize them")
    return FaceDataset(np.stack(images), np.asarray(labels, np.int64), classes, paths, skipped)


def load_fer2013_csv(path: str | Path, usage: str | None = "Training") -> FaceDataset:
    """Load FER2013's original CSV (columns ``emotion,pixels,Usage``); ``usage`` filters rows."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"CSV file not found: {path}")
    images, labels, skipped = [], [], 0
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"emotion", "pixels"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise InputError(f"{path.name}: expected columns emotion,pixels[,Usage], got {reader.fieldnames}")
        for row in reader:
            if usage and "Usage" in row and row["Usage"] != usage:
                continue
            try:
                pixels = np.asarray(row["pixels"].split(), dtype=np.uint8)
                label = int(row["emotion"])
                if pixels.size != 48 * 48 or not 0 <= label < 7:
                    raise ValueError
            except (ValueError, AttributeError):
                skipped += 1
                continue
            images.append(pixels.reshape(48, 48))
            labels.append(label)
    if not images:
        raise InputError(f"{path.name}: no usable rows (usage={usage!r}, {skipped} malformed)")
    return FaceDataset(np.stack(images), np.asarray(labels, np.int64), CLASS_SETS["fer2013"], [], skipped)


def dedup_against(dataset: FaceDataset, reference: FaceDataset) -> np.ndarray:
    """Indexes of ``dataset`` whose pixels have no identical twin in ``reference``."""
    seen = {hashlib.sha1(im.tobytes()).digest() for im in reference.images}
    return np.asarray([i for i, im in enumerate(dataset.images)
                       if hashlib.sha1(im.tobytes()).digest() not in seen], np.int64)
