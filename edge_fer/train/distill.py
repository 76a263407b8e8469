"""Knowledge distillation: teachers' probabilities cached on disk, and the student's loss.

``edge-fer teacher-probs`` runs one or more finished models (any format :func:`open_runner`
reads, each with its own metadata) over a training folder, averages their probabilities (each on
the face and its mirror image with ``flip``) and writes them, keyed by class folder and file name, to one ``.npz``
of a few MB. ``edge-fer train --teacher FILE`` then fits against
``(1 - alpha) * cross-entropy + alpha * T^2 * KL(teacher_T || student_T)``, both softened at
temperature ``T`` (Hinton et al. 2015). The student's softened distribution comes from its own
probabilities: ``softmax(log p / T) == softmax(logits / T)``, so models keep their softmax output.

The training targets then carry both parts side by side, ``[one-hot | teacher]`` (2C wide);
validation targets stay one-hot (C wide) and get the plain cross-entropy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionsError
from .datasets import image_key

log = logging.getLogger(__name__)

TEACHER_SUFFIX = ".npz"


@dataclass(frozen=True)
class TeacherOptions:
    models: tuple[str, ...]
    data: str
    out: str
    flip: bool = True
    batch_size: int = 256
    num_threads: int = 2

    def __post_init__(self) -> None:
        if not self.models:
            raise OptionsError(f"TeacherOptions.models={self.models!r}: expected at least one model")
        if not self.out.endswith(TEACHER_SUFFIX):
            raise OptionsError(f"TeacherOptions.out={self.out!r}: expected a path ending in {TEACHER_SUFFIX}")
        if self.batch_size < 1:
            raise OptionsError(f"TeacherOptions.batch_size={self.batch_size!r}: expected >= 1")


def model_probs(model_path: str, images: np.ndarray, classes: tuple[str, ...], flip: bool,
                batch_size: int, num_threads: int) -> np.ndarray:
    """One model's probabilities (N, len(classes)) in ``classes`` order, flip-averaged if asked."""
    from .evaluate import EvalOptions, label_map, open_runner, predict_proba

    with open_runner(EvalOptions(model_path, "", num_threads=num_threads)) as runner:
        columns = label_map(classes, tuple(runner.meta.labels))
        probs = predict_proba(runner, images, batch_size)
        if flip:
            probs = (probs + predict_proba(runner, images[:, :, ::-1], batch_size)) / 2
    probs = probs[:, columns]
    return probs / probs.sum(axis=1, keepdims=True)


def write_teacher_probs(options: TeacherOptions) -> dict:
    """Average the models' probabilities on ``options.data`` and write them to ``options.out``
    (its missing folders created first, before anything loads). The summary's
    ``train_accuracy`` holds each teacher's top-1 accuracy on those images (keyed by its path) and
    ``ensemble_accuracy`` that of the averaged probabilities, the ones written."""
    from ..fileio import make_output_folder, portable_path, write_with_atomic
    from .datasets import load_folder

    make_output_folder(Path(options.out).parent, "TeacherOptions.out")
    data = load_folder(options.data)
    names = [image_key(p) for p in data.paths]
    probs = [model_probs(m, data.images, data.classes, options.flip, options.batch_size,
                         options.num_threads) for m in options.models]
    ensemble = np.mean(probs, axis=0)
    write_with_atomic(options.out, lambda handle: np.savez_compressed(
        handle, names=np.asarray(names), probs=ensemble.astype(np.float16), classes=np.asarray(data.classes),
        teachers=np.asarray([portable_path(m) for m in options.models])))

    def accuracy(p: np.ndarray) -> float:
        return float((p.argmax(1) == data.labels).mean())

    return {"out": options.out, "images": len(names), "classes": list(data.classes),
            "train_accuracy": {portable_path(m): accuracy(p) for m, p in zip(options.models, probs)},
            "ensemble_accuracy": accuracy(ensemble)}


def teacher_for(path: str, paths: list[str], classes: tuple[str, ...]) -> np.ndarray:
    """The cached teacher probabilities (N, C) of each of ``paths`` (matched by class folder and file name)."""
    if not Path(path).is_file():
        raise InputError(f"teacher file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as cached:
            names, probs, their = list(cached["names"]), cached["probs"], tuple(cached["classes"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path} is not a teacher file from `edge-fer teacher-probs` ({exc})") from None
    if their != tuple(classes):
        raise InputError(f"teacher classes {list(their)} differ from the training classes {list(classes)}")
    row = {name: i for i, name in enumerate(names)}
    missing = [image_key(p) for p in paths if image_key(p) not in row]
    if missing:
        raise InputError(f"{len(missing)} training images have no teacher probabilities in {path} "
                         f"(first: {missing[0]}); make the teacher file from the same TrainOptions.data")
    return np.asarray(probs[[row[image_key(p)] for p in paths]], np.float32)


def check_distill(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise OptionsError(f"TrainOptions.distill_alpha={alpha!r}: expected a weight in [0, 1]")
    if not temperature > 0:
        raise OptionsError(f"TrainOptions.distill_temperature={temperature!r}: expected > 0")


def distill_loss(num_classes: int, alpha: float, temperature: float, smoothing: float):
    """The student's loss on ``[one-hot | teacher]`` targets (one-hot alone: cross-entropy)."""
    import keras
    from keras import ops

    check_distill(alpha, temperature)
    eps = 1e-7

    @keras.saving.register_keras_serializable(package="edge_fer")
    def distill(y_true, y_pred):
        log_p = ops.log(ops.clip(y_pred, eps, 1.0))
        hard = y_true[..., :num_classes] * (1.0 - smoothing) + smoothing / num_classes
        ce = -ops.sum(hard * log_p, axis=-1)
        if y_true.shape[-1] == num_classes:
            return ce
        teacher_t = ops.softmax(ops.log(ops.clip(y_true[..., num_classes:], eps, 1.0)) / temperature)
        student_log_t = ops.log_softmax(log_p / temperature)
        kl = ops.sum(teacher_t * (ops.log(ops.clip(teacher_t, eps, 1.0)) - student_log_t), axis=-1)
        return (1.0 - alpha) * ce + alpha * temperature ** 2 * kl

    return distill


def hard_accuracy(num_classes: int):
    """Top-1 accuracy against the one-hot part of the targets (named ``accuracy``)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="edge_fer")
    def accuracy(y_true, y_pred):
        return ops.cast(ops.equal(ops.argmax(y_true[..., :num_classes], axis=-1),
                                  ops.argmax(y_pred, axis=-1)), "float32")

    return accuracy
