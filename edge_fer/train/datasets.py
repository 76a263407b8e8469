"""Dataset readers: folder-per-class (FER2013 layout, or any other) and FER2013 CSV.

Each reader returns a :class:`FaceDataset`: uint8 images (N, H, W) in grayscale, int labels and
the explicit class list. Corrupt images are skipped and counted, never fatal. Datasets of full
frames (CK+, photos) can be cut to faces with the runtime's own detectors (:mod:`.cropping`).
CK+ lives in :mod:`.ckplus`; :func:`edge_fer.train.loaders.load_dataset` picks the reader from
what the path is.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..classifier import resize_to
from ..errors import InputError, OptionsError
from ..sources.images import IMAGE_SUFFIXES  # noqa: F401 (ckplus and callers import it from here)
from ..sources.images import decode_image_strict
from ..metadata import LABEL_PRESETS

log = logging.getLogger(__name__)

#: Explicit class sets (one definition: edge_fer.metadata.LABEL_PRESETS).
CLASS_SETS = LABEL_PRESETS
CSV_USAGES = ("Training", "PublicTest", "PrivateTest")
#: Other spellings of the FER2013 names (CK+48's folders say ``anger``, ``sadness``): a class
#: folder so named loads as the FER2013 class, so models agree with the runtime's label names.
CLASS_ALIASES = {"anger": "angry", "sadness": "sad", "happiness": "happy"}


@dataclass
class FaceDataset:
    images: np.ndarray  # (N, H, W) uint8 grayscale
    labels: np.ndarray  # (N,) int64 indexes into classes
    classes: tuple[str, ...]
    paths: list[str] = field(default_factory=list)
    skipped: int = 0  # unreadable images / malformed rows
    no_face: int = 0  # frames in which the face cropper found no face

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}

    def subset(self, index: np.ndarray) -> "FaceDataset":
        paths = [self.paths[i] for i in index] if self.paths else []
        return FaceDataset(self.images[index], self.labels[index], self.classes, paths,
                           self.skipped, self.no_face)


def class_counts(text: str | tuple | None, field: str = "oversample") -> tuple[tuple[str, int], ...]:
    """``"disgust=4965,fear=5000"`` (or such pairs already) as ``(("disgust", 4965), ...)``."""
    if not text:
        return ()
    pairs = [item.split("=") for item in text.split(",") if item.strip()] if isinstance(text, str) else text
    try:
        counts = tuple((str(name).strip(), int(count)) for name, count in pairs)
    except ValueError:
        counts = ()
    if not counts or any(not name or count < 1 for name, count in counts):
        raise OptionsError(f"{field}={text!r}: expected CLASS=COUNT pairs with counts >= 1, e.g. 'disgust=4965'")
    return counts


def oversample(data: FaceDataset, counts: tuple[tuple[str, int], ...]) -> FaceDataset:
    """Each named class's images repeated in their order, cycling, up to its count (the simple
    way to balance a rare class: docs/train.md, "At full scale"); other classes as they are."""
    index = [np.arange(len(data))]
    for name, count in counts:
        if name not in data.classes:
            raise InputError(f"oversample: class {name!r} is not in the training data: {list(data.classes)}")
        own = np.flatnonzero(data.labels == data.classes.index(name))
        if count < len(own):
            raise InputError(f"oversample: {name}={count} is below the {len(own)} images it already has")
        if len(own):
            index.append(np.resize(own, count - len(own)))
    return data.subset(np.concatenate(index))


def image_key(path: str | Path) -> str:
    """An image's key in teacher and votes files: ``<class folder>/<file name>``."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def resolve_classes(text: str | tuple[str, ...] | list[str] | None,
                    field: str = "classes") -> tuple[str, ...] | None:
    """A preset of :data:`CLASS_SETS` (``pyfer``, ``fer2013``, ``ckplus``) or ``"a,b,c"``;
    ``field`` names the option in the error (``"TrainOptions.classes"``)."""
    if text is None or isinstance(text, (tuple, list)):
        names = tuple(text) if text else None
    elif text in CLASS_SETS:
        return CLASS_SETS[text]
    else:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names is not None:
        names = tuple(CLASS_ALIASES.get(n, n) for n in names)
    if names is not None and (len(names) < 2 or len(set(names)) != len(names)):
        raise OptionsError(f"{field}={text!r}: expected a preset ({', '.join(sorted(CLASS_SETS))}) or "
                           ">= 2 distinct comma-separated names")
    return names


def order_classes(names: list[str]) -> tuple[str, ...]:
    """FER2013 names keep FER2013's order (so models agree with the peer); others sort."""
    for known in CLASS_SETS.values():
        if set(names) <= set(known):
            return tuple(c for c in known if c in names)
    return tuple(sorted(names))


def fit_size(image: np.ndarray, size_hw: tuple[int, int] | None) -> np.ndarray:
    """Resize with the runtime's own :func:`~edge_fer.classifier.resize_to`, so training and
    inference see the same pixels."""
    return image if size_hw is None else resize_to(image, tuple(size_hw))


def read_face(path: str | Path, size_hw=None, cropper=None) -> tuple[np.ndarray | None, str]:
    """``(gray image, "")``, or ``(None, "unreadable: why")`` (a file that does not decode, or that
    the decoder complains about: :func:`~edge_fer.sources.images.decode_image_strict`), or ``(None,
    "no_face")`` if ``cropper`` (which cuts out the largest face of a full frame) finds no face."""
    image, why = decode_image_strict(path, cv2.IMREAD_GRAYSCALE if cropper is None else cv2.IMREAD_COLOR)
    if image is None:
        return None, f"unreadable: {why}"
    if cropper is not None:
        image = cropper.crop(image)
        if image is None:
            return None, "no_face"
    return fit_size(image, size_hw), ""


#: Unreadable files named at warning level; the rest only in the debug log (``-v``).
NAMED_UNREADABLE = 3


def read_faces(items, classes, size_hw=None, cropper=None, where: str = "dataset") -> FaceDataset:
    """Read ``(path, label)`` pairs with :func:`read_face` into a :class:`FaceDataset`; images
    that are unreadable or faceless are counted, and the unreadable ones named (the first
    :data:`NAMED_UNREADABLE` in a warning, every one in the debug log). One-line errors for
    nothing usable or mixed sizes."""
    images, labels, paths, misses, unreadable = [], [], [], {"skipped": 0, "no_face": 0}, []
    for path, label in items:
        image, why = read_face(path, size_hw, cropper)
        if image is None:
            misses["no_face" if why == "no_face" else "skipped"] += 1
            if why != "no_face":
                unreadable.append(f"{path} ({why.split(': ', 1)[1]})")
            continue
        images.append(image)
        labels.append(label)
        paths.append(str(path))
    if unreadable:
        more = len(unreadable) - NAMED_UNREADABLE
        log.warning(f"warning: {where}: {len(unreadable)} unreadable image(s) skipped: "
                    f"{'; '.join(unreadable[:NAMED_UNREADABLE])}"
                    f"{f'; and {more} more (verbose logging lists them)' if more > 0 else ''}")
        for line in unreadable:
            log.debug(f"unreadable, skipped: {line}")
    return stack_dataset(images, labels, classes, paths, misses, where)


def stack_dataset(images, labels, classes, paths, misses: dict, where: str) -> FaceDataset:
    """Build a :class:`FaceDataset`; ``misses`` counts images not loaded, by reason."""
    skipped, no_face = misses.get("skipped", 0), misses.get("no_face", 0)
    if not images:
        raise InputError(f"{where} holds no usable images ({skipped} unreadable, {no_face} without a face)")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError(f"images in {where} differ in size {sorted(shapes)[:3]}...; pass a size to resize them")
    return FaceDataset(np.stack(images), np.asarray(labels, np.int64), tuple(classes), list(paths),
                       skipped, no_face)


def load_folder(root: str | Path, size_hw: tuple[int, int] | None = None,
                classes: tuple[str, ...] | None = None, limit_per_class: int | None = None,
                seed: int = 0, cropper=None) -> FaceDataset:
    """Load a folder-per-class dataset: ``root/<class>/<image>``.

    ``classes`` picks and orders class folders (others are ignored); ``cropper`` (a
    :class:`~edge_fer.train.cropping.FaceCropper`) cuts the largest face out of full frames.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"dataset folder {root} has no class subfolders (expected {root}/<class>/<image>)")
    folder_of = class_folders(root, folders)
    found = sorted(folder_of)
    classes = tuple(classes) if classes else order_classes(found)
    missing = [c for c in classes if c not in found]
    if missing:
        raise InputError(f"dataset folder {root} lacks class folders {missing}; found {found}")
    rng = np.random.default_rng(seed)
    items = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / folder_of[name]).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if limit_per_class is not None and len(files) > limit_per_class:
            files = [files[i] for i in sorted(rng.choice(len(files), limit_per_class, replace=False))]
        items += [(path, index) for path in files]
    return read_faces(items, classes, size_hw, cropper, f"dataset folder {root}")


def class_folders(root: Path, folders: list[str]) -> dict[str, str]:
    """Class name -> folder name, with :data:`CLASS_ALIASES` applied (``anger/`` holds angry)."""
    folder_of = {}
    for folder in folders:
        name = CLASS_ALIASES.get(folder, folder)
        if name in folder_of:
            raise InputError(f"dataset folder {root} has both {folder_of[name]}/ and {folder}/ "
                             f"for class {name!r}; keep one")
        folder_of[name] = folder
    return folder_of


def load_fer2013_csv(path: str | Path, usage: str | None = "Training") -> FaceDataset:
    """Load FER2013's original CSV (columns ``emotion,pixels,Usage``); ``usage`` filters rows
    (``Training``, ``PublicTest``, ``PrivateTest``; None keeps all). Malformed rows are counted."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"CSV file not found: {path}")
    if usage is not None and usage not in CSV_USAGES:
        raise OptionsError(f"FER2013 usage must be one of {CSV_USAGES}, got {usage!r}")
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
            except (ValueError, AttributeError, OverflowError):
                skipped += 1
                continue
            images.append(pixels.reshape(48, 48))
            labels.append(label)
    if not images:
        raise InputError(f"{path.name}: no usable rows (usage={usage!r}, {skipped} malformed)")
    return FaceDataset(np.stack(images), np.asarray(labels, np.int64), CLASS_SETS["fer2013"], [], skipped)


def select_classes(dataset: FaceDataset, classes: tuple[str, ...] | None) -> FaceDataset:
    """Keep only ``classes`` (in that order, labels renumbered); a class with no images is an
    error. None keeps every class that has images."""
    present = [c for c, n in dataset.counts().items() if n]
    classes = tuple(present) if classes is None else tuple(classes)
    missing = [c for c in classes if c not in present]
    if missing:
        raise InputError(f"dataset has no images of classes {missing}; it has {present}")
    old_to_new = np.full(len(dataset.classes), -1, np.int64)
    for new, name in enumerate(classes):
        old_to_new[dataset.classes.index(name)] = new
    keep = np.flatnonzero(old_to_new[dataset.labels] >= 0)
    out = dataset.subset(keep)
    return FaceDataset(out.images, old_to_new[out.labels], tuple(classes), out.paths, out.skipped, out.no_face)


def limit_classes(dataset: FaceDataset, limit_per_class: int | None, seed: int = 0) -> FaceDataset:
    """At most ``limit_per_class`` images of each class, drawn at random with ``seed``."""
    if limit_per_class is None:
        return dataset
    rng = np.random.default_rng(seed)
    keep = []
    for index in range(len(dataset.classes)):
        members = np.flatnonzero(dataset.labels == index)
        if len(members) > limit_per_class:
            members = np.sort(rng.choice(members, limit_per_class, replace=False))
        keep.extend(members)
    return dataset.subset(np.asarray(sorted(keep), np.int64))


def pixel_key(image: np.ndarray) -> str:
    """A name shared by pixel-identical images (and by no others, in practice)."""
    return hashlib.sha1(image.tobytes()).hexdigest()


def dedup_against(dataset: FaceDataset, reference: FaceDataset) -> np.ndarray:
    """Indexes of ``dataset`` whose pixels have no identical twin in ``reference``."""
    seen = {pixel_key(im) for im in reference.images}
    return np.asarray([i for i, im in enumerate(dataset.images) if pixel_key(im) not in seen], np.int64)


def save_folder(dataset: FaceDataset, root: str | Path, prefix: str = "") -> list[Path]:
    """Write ``dataset`` as PNG files ``root/<class>/<prefix><index>.png``; returns the paths.
    Lossless, so reloading gives the same pixels."""
    root = Path(root)
    written = []
    for i, (image, label) in enumerate(zip(dataset.images, dataset.labels)):
        folder = root / dataset.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}{i:06d}.png"
        if not cv2.imwrite(str(path), image):
            raise InputError(f"cannot write image {path}")
        written.append(path)
    return written
