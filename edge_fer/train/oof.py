"""``edge-fer oof-probs``: out-of-fold probabilities of a training folder, for ``edge-fer clean``
(confident learning assumes them) or as a teacher file.

The images are dealt into ``folds`` folds (pixel-identical copies share a fold, so no image is
predicted by a model that trained on its twin); for each fold a model is trained from scratch on
the others with :func:`~edge_fer.train.trainer.train_on` (best epoch picked on ``val``) and
predicts that fold, averaged over the face and its mirror. The result is written in
``edge-fer teacher-probs`` format (names, probs, classes). Each fold's run lives in
``<out>.folds/foldNN/`` and resumes where it stopped; a finished fold is not run again.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OofOptions:
    data: str
    val: str
    out: str  # the .npz to write
    folds: int = 5
    arch: str = "edgenet"
    epochs: int = 10
    seed: int = 0
    batch_size: int | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        from .distill import TEACHER_SUFFIX

        if self.folds < 2:
            raise OptionsError(f"OofOptions.folds={self.folds!r}: expected >= 2")
        if self.epochs < 1:
            raise OptionsError(f"OofOptions.epochs={self.epochs!r}: expected >= 1")
        if not self.out.endswith(TEACHER_SUFFIX):
            raise OptionsError(f"OofOptions.out={self.out!r}: expected a path ending in {TEACHER_SUFFIX}")


def pixel_groups(images: np.ndarray) -> list[str]:
    """One group name per image: pixel-identical images share it."""
    from .datasets import pixel_key

    return [pixel_key(image) for image in images]


def out_of_fold_probs(options: OofOptions) -> dict:
    """Train ``folds`` models, predict each held-out fold, write ``options.out``; returns a summary
    (accuracy of the out-of-fold predictions against the given labels, per fold and overall)."""
    from dataclasses import replace

    from ..fileio import make_output_folder, write_json_atomic, write_with_atomic
    from .datasets import image_key
    from .distill import model_probs
    from .loaders import LoadOptions, load_dataset
    from .models import arch_spec
    from .protocols import assign_folds
    from .trainer import TrainOptions, load_training_data, train_on

    make_output_folder(Path(options.out).parent, "OofOptions.out")
    spec = arch_spec(options.arch)
    data = load_training_data((options.data,), spec, seed=options.seed)
    val = load_dataset(options.val, LoadOptions(size_hw=spec.input_size_hw, classes=data.classes))
    fold = assign_folds(pixel_groups(data.images), options.folds, options.seed)
    work = Path(options.out).with_suffix(".folds")
    base = TrainOptions(data=(options.data,), out="", arch=options.arch, epochs=options.epochs,
                        val=options.val, batch_size=options.batch_size, seed=options.seed,
                        num_threads=options.num_threads)
    probs = np.zeros((len(data), len(data.classes)), np.float32)
    per_fold = []
    for k in range(options.folds):
        held = np.flatnonzero(fold == k)
        fold_out = work / f"fold{k:02d}"
        done = fold_out / "probs.npy"
        if done.exists():
            probs[held] = np.load(done)
        else:
            import keras

            keras.backend.clear_session()
            run = train_on(data.subset(np.flatnonzero(fold != k)), val, replace(base, out=str(fold_out)))
            probs[held] = model_probs(run.model_path, data.images[held], data.classes, True, 256,
                                      options.num_threads or 2)
            write_with_atomic(done, lambda handle: np.save(handle, probs[held]), suffix=".npy")
        accuracy = float((probs[held].argmax(1) == data.labels[held]).mean())
        per_fold.append({"fold": k, "images": int(len(held)), "accuracy": accuracy})
        log.info("fold %d of %d: out-of-fold accuracy %.4f on %d images", k + 1, options.folds, accuracy, len(held))
    names = [image_key(p) for p in data.paths]
    write_with_atomic(options.out, lambda handle: np.savez_compressed(
        handle, names=np.asarray(names), probs=probs.astype(np.float16), classes=np.asarray(data.classes),
        teachers=np.asarray([f"oof-{options.folds}fold-{options.arch}-{options.epochs}ep"])))
    summary = {"out": options.out, "images": len(data), "classes": list(data.classes),
               "accuracy": float((probs.argmax(1) == data.labels).mean()), "per_fold": per_fold,
               "options": asdict(options)}
    write_json_atomic(work / "summary.json", summary)
    return summary
