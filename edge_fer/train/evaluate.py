"""``edge-fer eval``: accuracy, per-class recall and confusion matrix of a model on a labelled
dataset, whatever the model's format.

``.tflite``/``.onnx`` run through :class:`~edge_fer.classifier.ExpressionClassifier`, i.e. the
runtime's exact preprocessing. ``.keras``/``.h5`` run through Keras (TensorFlow loads only then)
on the float batch that the same ``ExpressionClassifier.preprocess`` makes from the model's
:class:`~edge_fer.metadata.ModelMeta`, so every format is fed the same numbers.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import defaults
from ..backends import to_probabilities
from ..classifier import ClassifierOptions, ExpressionClassifier, preprocess_crops
from ..confidence import expected_calibration_error, soften
from ..errors import InputError, ModelError, OptionsError, OutputError
from ..fileio import check_writable_folder, output_error, write_with_atomic
from ..metadata import resolve_model_meta
from .datasets import FaceDataset, dedup_against, resolve_classes
from .loaders import LoadOptions, load_dataset

log = logging.getLogger(__name__)

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
RUNTIME_SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True)
class EvalOptions:
    """``labels``/``input_scale``/``input_offset``/``color`` stand in for (or override) the metadata a
    model file lacks, as in ``convert``. ``dedup_against``: a training folder; the report adds
    accuracy on the images of ``data`` that have no pixel-identical twin there.
    ``crop_faces``: a detector to cut faces out of full-frame datasets (CK+). ``classes``: evaluate
    on these dataset classes only (CK+48 without ``contempt`` for a 7-class FER2013 model).
    ``votes``: a FER+ votes CSV (:mod:`.soft_labels`); the report adds accuracy against the
    people's plurality label of each face that has one among the model's labels."""

    model_path: str
    data: str
    out: str | None = None
    limit_per_class: int | None = None
    labels: tuple[str, ...] | str | None = None
    input_scale: float | None = None
    input_offset: float | None = None
    color: str | None = None
    dedup_against: str | None = None
    crop_faces: str | None = None
    classes: tuple[str, ...] | str | None = None
    votes: str | None = None
    batch_size: int = 256
    num_threads: int = defaults.BATCH_THREADS
    seed: int = 0

    def __post_init__(self) -> None:
        suffix = Path(self.model_path).suffix.lower()
        if suffix not in KERAS_SUFFIXES + RUNTIME_SUFFIXES:
            raise OptionsError(f"EvalOptions.model_path={str(self.model_path)!r}: expected a model file ending "
                               f"in one of {', '.join(KERAS_SUFFIXES + RUNTIME_SUFFIXES)}")
        object.__setattr__(self, "labels", resolve_classes(self.labels, "EvalOptions.labels"))
        object.__setattr__(self, "classes", resolve_classes(self.classes, "EvalOptions.classes"))
        if self.limit_per_class is not None and self.limit_per_class < 1:
            raise OptionsError(f"EvalOptions.limit_per_class={self.limit_per_class!r}: expected >= 1")
        defaults.check_threads("EvalOptions.num_threads", self.num_threads)
        if self.batch_size < 1:
            raise OptionsError(f"EvalOptions.batch_size={self.batch_size!r}: expected >= 1")
        if self.input_scale is not None and not self.input_scale:
            raise OptionsError(f"EvalOptions.input_scale={self.input_scale!r}: expected a non-zero number")


@dataclass
class Scores:
    """Accuracy of one set of predictions; ``confusion`` rows = true, columns = predicted,
    both over the model's labels."""

    n: int
    accuracy: float
    per_class: dict[str, float]
    confusion: list[list[int]]


@dataclass
class EvalReport:
    model: str
    data: str
    labels: tuple[str, ...]
    n: int
    accuracy: float
    per_class: dict[str, float]
    confusion: list[list[int]]
    skipped: int
    no_face: int
    dedup: Scores | None
    seconds: float
    ece: float = 0.0  # expected calibration error of the top score, 15 equal-width bins
    votes: Scores | None = None  # against the FER+ plurality (EvalOptions.votes)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["labels"] = list(self.labels)
        return out

    def to_json_text(self) -> str:
        return json.dumps(self.to_dict())


class KerasRunner:
    """A ``.keras``/``.h5`` model behind the runtime classifier's ``predict_proba``."""

    def __init__(self, options: EvalOptions) -> None:
        from .keras_io import load_keras

        self._model, meta = load_keras(options.model_path)  # (quiet: see keras_io.keras_quiet)
        self._model_path = options.model_path
        shape = self._model.input_shape
        if isinstance(shape, list) or len(shape) != 4 or shape[3] not in (1, 3) or None in shape[1:3]:
            raise ModelError(f"{Path(options.model_path).name}: input shape {shape} is not one NHWC image "
                             "of fixed size with 1 or 3 channels")
        self.meta = resolve_model_meta(options.model_path, meta, tuple(shape[1:4]), labels=options.labels,
                                       scale=options.input_scale, offset=options.input_offset,
                                       color=options.color,
                                       field_names=("EvalOptions.labels", "EvalOptions.input_scale",
                                                    "EvalOptions.input_offset"))
        self._predicted = False
        outputs = self._model.output_shape[-1]
        if outputs != len(self.meta.labels):
            raise ModelError(f"model outputs {outputs} scores but has {len(self.meta.labels)} labels "
                             f"{list(self.meta.labels)}")

    def predict_proba(self, crops) -> np.ndarray:
        from .keras_io import keras_quiet

        batch = preprocess_crops(self.meta, crops)
        with keras_quiet(not self._predicted):  # the first call builds the graph (XLA's lines)
            scores = self._model.predict_on_batch(batch)
        self._predicted = True
        probs = to_probabilities(scores, Path(self._model_path).name, len(batch))  # NaN/Inf: one ModelError line
        return soften(probs, self.meta.temperature)

    def close(self) -> None:
        self._model = None

    def __enter__(self) -> "KerasRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_runner(options: EvalOptions):
    """A context manager with ``.meta`` and ``.predict_proba(crops)`` for any model format."""
    if Path(options.model_path).suffix.lower() in KERAS_SUFFIXES:
        return KerasRunner(options)
    return ExpressionClassifier.create_from_options(ClassifierOptions(
        model_path=options.model_path, num_threads=options.num_threads, labels=options.labels,
        scale=options.input_scale, offset=options.input_offset, color=options.color))


def label_map(data_classes, model_labels) -> np.ndarray:
    """Index of each dataset class among the model's labels (matched by name)."""
    missing = [c for c in data_classes if c not in model_labels]
    if missing:
        raise InputError(f"dataset classes {missing} are not among the model's labels: dataset has "
                         f"{list(data_classes)}, model has {list(model_labels)}")
    return np.asarray([list(model_labels).index(c) for c in data_classes], np.int64)


def score(true: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> Scores:
    """Accuracy, recall of each class present in ``true``, and the confusion matrix."""
    k = len(labels)
    confusion = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    rows = confusion.sum(axis=1)
    per_class = {labels[i]: float(confusion[i, i] / rows[i]) for i in range(k) if rows[i]}
    accuracy = float(np.trace(confusion) / max(1, len(true)))
    return Scores(int(len(true)), accuracy, per_class, confusion.tolist())


def predict_proba(runner, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The runner's scores (N, labels) for each image, in batches."""
    probs = [np.asarray(runner.predict_proba(list(images[i:i + batch_size])), np.float32)
             for i in range(0, len(images), batch_size)]
    return np.concatenate(probs) if probs else np.zeros((0, len(runner.meta.labels)), np.float32)


def predict(runner, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Predicted label index of each image, in batches."""
    return np.argmax(predict_proba(runner, images, batch_size), axis=1).astype(np.int64)


def evaluate(options: EvalOptions) -> EvalReport:
    """Run the model over the dataset; write confusion.json/.png into ``options.out`` if set."""
    started = time.time()
    if options.out:  # a folder that cannot be written fails now, not after the evaluation
        check_out_folder(Path(options.out), "EvalOptions.out")
    with open_runner(options) as runner:
        meta = runner.meta
        load = LoadOptions(size_hw=meta.input_size_hw, classes=options.classes,
                           limit_per_class=options.limit_per_class, seed=options.seed, usage="PublicTest",
                           crop_faces=options.crop_faces, crop_margin=meta.crop_margin,
                           framing=meta.framing)  # faces cut and framed as `run` frames them
        data = load_dataset(options.data, load)
        to_model = label_map(data.classes, meta.labels)
        true = to_model[data.labels]
        probs = predict_proba(runner, data.images, options.batch_size)
        pred = np.argmax(probs, axis=1).astype(np.int64)
    scores = score(true, pred, meta.labels)
    voted = None
    if options.votes:
        from .soft_labels import plurality_labels

        plural = plurality_labels(options.votes, data.paths, tuple(meta.labels))
        keep = np.flatnonzero(plural >= 0)
        if not len(keep):
            raise InputError(f"no image of {options.data} has a FER+ plurality label in {options.votes}")
        voted = score(plural[keep], pred[keep], meta.labels)
    dedup = None
    if options.dedup_against:
        keep = dedup_against(data, load_reference(options.dedup_against, meta.input_size_hw))
        dedup = score(true[keep], pred[keep], meta.labels)
    report = EvalReport(str(options.model_path), str(options.data), meta.labels, scores.n,
                        scores.accuracy, scores.per_class, scores.confusion, data.skipped,
                        data.no_face, dedup, round(time.time() - started, 2),
                        expected_calibration_error(probs, true), voted)
    if options.out:
        write_outputs(report, Path(options.out))
    return report


def load_reference(path: str, size_hw) -> FaceDataset:
    """The training set to de-duplicate against (a FER2013 CSV: its Training rows)."""
    return load_dataset(path, LoadOptions(size_hw=size_hw, usage="Training"))


def format_report(report: EvalReport) -> str:
    lines = [f"{report.model} on {report.data}: accuracy {report.accuracy:.4f} over {report.n} images "
             f"({report.skipped} unreadable skipped{_no_face(report)})"]
    if report.dedup is not None:
        lines.append(f"de-duplicated against training set: accuracy {report.dedup.accuracy:.4f} over "
                     f"{report.dedup.n} images ({report.n - report.dedup.n} with a twin in train removed)")
    if report.votes is not None:
        lines.append(f"against the FER+ plurality: accuracy {report.votes.accuracy:.4f} over {report.votes.n} "
                     "images with a unique plurality among the model's labels")
    lines.append(f"expected calibration error (15 bins): {report.ece:.4f}")
    lines.append("recall per class:")
    lines += [f"  {name:>10s} {recall:.4f}" for name, recall in report.per_class.items()]
    width = max(6, max(len(x) for x in report.labels) + 1)
    lines.append("confusion (rows true, columns predicted):")
    lines.append(" " * width + "".join(f"{x[:width - 1]:>{width}s}" for x in report.labels))
    for name, row in zip(report.labels, report.confusion):
        if sum(row):
            lines.append(f"{name:>{width}s}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def _no_face(report: EvalReport) -> str:
    return f", {report.no_face} without a face" if report.no_face else ""


def write_outputs(report: EvalReport, out: Path) -> tuple[Path, Path]:
    """``confusion.json`` (the report) and ``confusion.png``, each written atomically."""
    prepare_out_folder(out)
    json_path, png_path = out / "confusion.json", out / "confusion.png"
    write_with_atomic(json_path, lambda handle: handle.write(json.dumps(report.to_dict(), indent=2).encode()))
    figure = confusion_figure(report)
    write_with_atomic(png_path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    log.info("wrote %s", json_path)
    log.info("wrote %s", png_path)
    return json_path, png_path


def check_out_folder(out: Path, field: str = "EvalOptions.out") -> None:
    """OutputError now if ``out`` (or, while it does not exist, the folder it would be made in)
    cannot be written; nothing is created. ``field`` names the option in the error."""
    folder = out
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{field}={str(out)!r}: expected a folder, but {folder} is a file")
    check_writable_folder(folder, field)


def prepare_out_folder(out: Path, field: str = "EvalOptions.out") -> Path:
    """``out`` created if missing and checked writable (OutputError, one line, otherwise);
    ``field`` names the option in the error."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc) from None
    return check_writable_folder(out, field)


def confusion_figure(report: EvalReport):
    """Row-normalized confusion matrix (recall on the diagonal) with counts; Agg canvas, no pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(report.confusion, float)
    rows = counts.sum(axis=1, keepdims=True)
    shown = [i for i in range(len(report.labels)) if rows[i, 0]]
    norm = counts[shown] / rows[shown]
    figure = Figure(figsize=(1.0 + 0.8 * len(report.labels), 1.0 + 0.7 * len(shown)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    for r, i in enumerate(shown):
        for j in range(len(report.labels)):
            ax.text(j, r, f"{norm[r, j]:.2f}\n{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[r, j] > 0.5 else "black")
    ax.set_xticks(range(len(report.labels)), report.labels, rotation=45, ha="right")
    ax.set_yticks(range(len(shown)), [report.labels[i] for i in shown])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{Path(report.model).name}: accuracy {report.accuracy:.3f} (n={report.n})", fontsize=9)
    figure.tight_layout()
    return figure
