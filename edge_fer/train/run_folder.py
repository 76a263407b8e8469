"""A training run's folder: what it was started with, its per-epoch history, its curve.

``OUT/run.json`` records the run's **fingerprint** (data folders and their class counts, classes,
architecture, input size, label source, schedule) when it starts; a later call with the same
``out`` resumes it only if the fingerprint is the same, and otherwise refuses with one line naming
each difference (a finished 7-class run reused with 6-class data would export a model whose
outputs do not match its labels; a changed schedule would restart a cosine decay mid-run).

``OUT/history.csv`` has one row per epoch, **numbered from 1** like the summary and the progress
lines, with the epoch's wall time (validation included) and training images/s (validation excluded)
beside Keras' metrics; a resumed run appends, and
readers keep the last row of each epoch. ``OUT/curve.png`` plots it (loss and accuracy, train and
val). The epoch lines and the progress bar go to the ``edge_fer`` logger and stderr, never stdout.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

from ..errors import OptionsError
from ..fileio import write_json_atomic

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
CURVE_FILE = "curve.png"


# fingerprint ---------------------------------------------------------------------------------
def fingerprint(options, data, spec, batch_size: int) -> dict:
    """What makes two calls the same run (JSON-ready): data and labels, model, schedule."""
    if options.teacher:
        labels = {"source": "teacher", "file": _resolved(options.teacher),
                  "alpha": options.distill_alpha, "temperature": options.distill_temperature}
    elif options.soft_labels:
        labels = {"source": "soft-labels", "file": _resolved(options.soft_labels),
                  "weight": options.soft_label_weight}
    else:
        labels = {"source": "folders"}
    return {
        "data": [_resolved(d) for d in options.data],
        "train_counts": data.counts(),
        "classes": list(data.classes),
        "arch": options.arch,
        "input_size_hw": list(spec.input_size_hw),
        "labels": labels,
        "epochs": options.epochs,
        "batch_size": batch_size,
        "learning_rate": options.learning_rate,
        "optimizer": options.optimizer or spec.optimizer,
        "augment": options.augment,
        "init_from": _resolved(options.init_from) if options.init_from else None,
        # only when set: runs recorded before the option existed still resume
        **({"label_smoothing": options.label_smoothing} if options.label_smoothing is not None else {}),
        **({"mix": options.mix} if options.mix != "none" else {}),
        **({"precision": options.precision} if options.precision != "float32" else {}),
    }


def check_or_record(out: Path, current: dict, fresh: bool) -> None:
    """Refuse to resume ``out`` with a different fingerprint; record it for a new run."""
    path = out / RUN_FILE
    if path.is_file() and not fresh:
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            earlier = None
        if isinstance(earlier, dict):
            differences = [f"{key} {_short(earlier.get(key))} -> {_short(value)}"
                           for key, value in current.items() if earlier.get(key) != value]
            if differences:
                raise OptionsError(f"{out} holds a run started differently ({'; '.join(differences)}): "
                                   "use another TrainOptions.out, or TrainOptions.fresh to start over there")
            return
    elif not fresh and (out / HISTORY_FILE).is_file():
        log.warning(f"{out} holds a run from before run.json was kept: resuming it unchecked")
    write_json_atomic(path, current, indent=2)


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


# history -------------------------------------------------------------------------------------
def read_history(path: Path) -> dict[str, list[float]]:
    """Columns of ``history.csv`` by name, one value per epoch (the last row of each epoch)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_epoch = {}
    for row in rows:  # a resumed run appends; keep the last row of each epoch
        by_epoch[int(row["epoch"])] = row
    ordered = [by_epoch[k] for k in sorted(by_epoch)]
    out = {}
    for key in (ordered[0].keys() if ordered else []):
        values = [row.get(key) for row in ordered]
        if all(v not in (None, "", "NA") for v in values):  # NA: not logged (no val)
            out[key] = [float(v) for v in values]
    return out


def make_callbacks(out: Path, images_per_epoch: int, total_epochs: int, progress_bar: bool):
    """Keras callbacks: the epoch history (1-based, with seconds and images/s) and the epoch
    lines / progress bar on stderr."""
    import keras

    class EpochHistory(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.trained = None

        def on_test_begin(self, logs=None):  # validation starts: the epoch's training is done
            self.trained = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            seconds, train_seconds = now - self.started, (self.trained or now) - self.started
            row = {"epoch": epoch + 1, "seconds": round(seconds, 2),
                   "images_per_s": round(images_per_epoch / train_seconds, 1),
                   **{k: float(v) for k, v in (logs or {}).items()}}
            _append_row(out / HISTORY_FILE, row)
            first = ("loss", "accuracy", "val_loss", "val_accuracy")
            names = [k for k in first if k in row] + sorted(
                k for k in row if k not in first and k not in ("epoch", "seconds", "images_per_s", "learning_rate"))
            metrics = ", ".join(f"{k} {row[k]:.4f}" for k in names)
            _end_bar()
            log.info(f"epoch {epoch + 1}/{total_epochs}: {metrics}; {seconds:.0f} s, "
                     f"{row['images_per_s']:.0f} images/s")

    class ProgressBar(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.started, self.shown = epoch + 1, time.perf_counter(), 0.0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            steps = self.params.get("steps") or 0
            if now - self.shown < 0.25 or not steps:
                return
            self.shown = now
            done = batch + 1
            eta = (now - self.started) / done * (steps - done)
            filled = int(30 * done / steps)
            loss = (logs or {}).get("loss")
            sys.stderr.write(f"\repoch {self.epoch}/{total_epochs} [{'=' * filled}{' ' * (30 - filled)}] "
                             f"{done}/{steps} ETA {eta:4.0f} s" + (f" loss {loss:.4f}" if loss is not None else ""))
            sys.stderr.flush()

    return [EpochHistory()] + ([ProgressBar()] if progress_bar else [])


def _end_bar() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _append_row(path: Path, row: dict) -> None:
    """Append one row (the header from the file, or this row's keys for a new file), synced."""
    header = None
    if path.is_file() and path.stat().st_size:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), None)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(row), extrasaction="ignore", restval="")
        if header is None:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


def plot_curve(history: dict[str, list[float]], path: Path, title: str) -> Path | None:
    """Loss and accuracy per epoch, train and val, as a PNG (written atomically)."""
    if not history.get("loss"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_path

    epochs = history.get("epoch") or list(range(1, len(history["loss"]) + 1))
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, label in (("loss", loss_ax, "train"), ("val_loss", loss_ax, "val"),
                           ("accuracy", acc_ax, "train"), ("val_accuracy", acc_ax, "val")):
        if key in history:
            ax.plot(epochs, history[key], marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path
