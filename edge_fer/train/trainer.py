"""``edge-fer train``: fit a classifier on folder-per-class face crops.

Resumable (Keras ``BackupAndRestore`` after every epoch, optimizer included; a run folder only
resumes the run it was started with: :mod:`.run_folder`), deterministic with a seed, selects the
best epoch on a validation folder (across resumed parts), and writes a ``.keras`` file that
records its classes and preprocessing, with ``history.csv``, ``curve.png`` and ``summary.json``.
Uses a GPU when TensorFlow sees one; ``strategy`` spreads the steps over several
GPUs or machines (:mod:`.distribute`). :func:`train_on` fits in-memory sets (the CK+ protocols).
"""

from __future__ import annotations

import logging
import platform
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionsError
from ..fileio import write_json_atomic
from ..metadata import ModelMeta
from .augment import AUGMENTS, MIXES, augmenter, mix_batch
from .datasets import FaceDataset, class_counts, oversample, resolve_classes
from .distribute import check_strategy, make_strategy, prebuild_for_multiworker, shard_by_data
from .loaders import CKPLUS_KINDS, LoadOptions, dataset_kind, load_dataset
from .models import PRECISIONS, arch_spec, build_model, float32_twin, init_weights
from .run_folder import (CURVE_FILE, HISTORY_FILE, check_or_record, fingerprint, make_callbacks,
                         plot_curve, read_history)

log = logging.getLogger(__name__)

#: Optimizers ``--optimizer`` may pick over an architecture's own (ArchSpec.optimizer).
OPTIMIZERS = ("sgd-pyfer", "adam", "adam-transfer", "adamw-cosine", "sgd-nesterov-cosine")
#: Each optimizer's learning rate when none is given (the cosine ones: the peak after warm-up), at
#: the architecture's own batch.
DEFAULT_LR = {"sgd-pyfer": 0.001, "adam": 0.001, "adam-transfer": 0.001, "adamw-cosine": 3e-3,
              "sgd-nesterov-cosine": 0.01}


@dataclass(frozen=True)
class TrainOptions:
    data: tuple[str, ...]
    out: str
    arch: str = "edgenet"
    epochs: int = 40
    val: str | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    limit_per_class: int | None = None
    fresh: bool = False
    deterministic: bool = False
    weights: str | None = None
    verbose: int | None = None
    classes: tuple[str, ...] | str | None = None  # a CLASS_SETS preset or names; None: all found
    crop_faces: str | None = None  # detector cutting faces out of full frames (CK+)
    last_frames: int = 1  # CK+: frames taken from the end of each labelled sequence
    first_as_neutral: bool = False  # CK+: also each sequence's first frame, as neutral
    flip_tta: bool = False  # export the best epoch wrapped in horizontal-flip averaging
    strategy: str = "default"  # default | mirrored | multiworker (tf.distribute; batch is per replica)
    optimizer: str | None = None  # None: the architecture's own; or one of OPTIMIZERS
    init_from: str | None = None  # a .keras of the same architecture: start from its weights
    teacher: str | None = None  # an `edge-fer teacher-probs` .npz: distil from it (see distill.py)
    distill_alpha: float = 0.5
    distill_temperature: float = 3.0
    soft_labels: str | None = None  # a FER+ votes CSV: mix people's votes into the targets (soft_labels.py)
    soft_label_weight: float = 0.5  # w in target = (1 - w) * one-hot + w * votes
    num_threads: int | None = None  # TensorFlow's intra-op threads (None: every core)
    augment: str = "full"  # one of AUGMENTS
    label_smoothing: float | None = None  # None: the optimizer's own (0.1 for the cosine ones, else 0)
    mix: str = "none"  # one of MIXES: mixup or cutmix on each training batch
    oversample: tuple | str | None = None  # "disgust=4965": repeat a class's training images up to a count
    precision: str = "float32"  # one of PRECISIONS: the layers' compute dtype (weights stay float32)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        arch_spec(self.arch)
        object.__setattr__(self, "classes", resolve_classes(self.classes, "TrainOptions.classes"))
        if not self.data:
            raise OptionsError(f"TrainOptions.data={self.data!r}: expected at least one training set")
        if self.epochs < 1:
            raise OptionsError(f"TrainOptions.epochs={self.epochs!r}: expected >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionsError(f"TrainOptions.batch_size={self.batch_size!r}: expected >= 1")
        if self.last_frames < 1:
            raise OptionsError(f"TrainOptions.last_frames={self.last_frames!r}: expected >= 1")
        check_strategy(self.strategy)
        if self.augment not in AUGMENTS:
            raise OptionsError(f"TrainOptions.augment={self.augment!r}: expected one of {', '.join(AUGMENTS)}")
        object.__setattr__(self, "oversample", class_counts(self.oversample, "TrainOptions.oversample"))
        if self.precision not in PRECISIONS:
            raise OptionsError(f"TrainOptions.precision={self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.mix not in MIXES:
            raise OptionsError(f"TrainOptions.mix={self.mix!r}: expected one of {', '.join(MIXES)}")
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing < 1.0:
            raise OptionsError(f"TrainOptions.label_smoothing={self.label_smoothing!r}: expected 0 <= value < 1")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise OptionsError(f"TrainOptions.optimizer={self.optimizer!r}: expected one of "
                               f"{', '.join(OPTIMIZERS)}")
        if self.teacher:
            from .distill import check_distill
            check_distill(self.distill_alpha, self.distill_temperature)
        if self.soft_labels:
            from .soft_labels import check_weight
            check_weight(self.soft_label_weight)
            if self.teacher:
                raise OptionsError("TrainOptions.soft_labels and TrainOptions.teacher cannot be combined: distil "
                                   "from teachers that were trained on the soft labels instead")


@dataclass
class TrainResult:
    model_path: str
    epochs_run: int
    best_epoch: int
    val_accuracy: float | None
    train_loss_first: float
    train_loss_last: float
    seconds: float
    replicas: int = 1
    batch_per_replica: int = 0


def load_training_data(folders, spec, limit_per_class=None, seed=0, classes=None,
                       crop_faces=None, last_frames=1, first_as_neutral=False) -> FaceDataset:
    """Load and join the training sets (folders, FER2013 CSVs or CK+ trees)."""
    load = LoadOptions(size_hw=spec.input_size_hw, classes=classes, limit_per_class=limit_per_class,
                       seed=seed, crop_faces=crop_faces, last_k=last_frames,
                       first_as_neutral=first_as_neutral)
    parts = [load_dataset(f, load) for f in folders]
    first = parts[0]
    for part in parts[1:]:
        if part.classes != first.classes:
            raise InputError(f"class folders differ between datasets: {first.classes} vs {part.classes}")
    return FaceDataset(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                       first.classes, sum((p.paths for p in parts), []), sum(p.skipped for p in parts),
                       sum(p.no_face for p in parts))


def make_tf_dataset(data: FaceDataset, color: str, batch_size: int, training: bool, seed: int,
                    teacher: np.ndarray | None = None, augment: str = "full", mix: str = "none"):
    """Batches of ``(raw pixels float32 NHWC, one-hot)`` (``[one-hot | teacher]`` with a teacher's
    probabilities); augmented and shuffled for training. Build it outside a strategy's scope (the
    augmentation's seeds are not to be mirrored)."""
    import keras
    import tensorflow as tf

    x = data.images[..., None].astype("float32")
    y = keras.utils.to_categorical(data.labels, len(data.classes)).astype("float32")
    if teacher is not None:
        y = np.concatenate([y, teacher.astype("float32")], axis=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augment != "none":
        transform = augmenter(augment, seed)
        ds = ds.map(lambda a, b: (transform(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    if training and mix != "none":  # numpy, in order (one generator): the same mixes for a seed
        rng = np.random.default_rng(seed)

        def mixed(a, b):
            a2, b2 = tf.numpy_function(lambda u, v: mix_batch(u, v, mix, rng), [a, b], [tf.float32, tf.float32])
            return tf.ensure_shape(a2, a.shape), tf.ensure_shape(b2, b.shape)

        ds = ds.map(mixed)
    if color == "rgb":
        ds = ds.map(lambda a, b: (tf.image.grayscale_to_rgb(a), b))
    return shard_by_data(ds.prefetch(tf.data.AUTOTUNE))


def compile_model(model, spec, steps_per_epoch: int, epochs: int, lr: float | None, optimizer_name=None,
                  distill: tuple[float, float] | None = None, label_smoothing: float | None = None):
    """Compile with ``optimizer_name`` (default: the architecture's); ``distill``: (alpha, T);
    ``label_smoothing`` None: the optimizer's own."""
    import keras

    name = optimizer_name or spec.optimizer
    lr = lr or DEFAULT_LR[name]
    total = steps_per_epoch * epochs
    warmup = min(2 * steps_per_epoch, total // 4)
    if name == "sgd-pyfer":  # the PyFER paper's optimizer
        optimizer = keras.optimizers.SGD(lr, momentum=0.9, weight_decay=0.01)
        smoothing = 0.0
    elif name == "adam":  # plain Adam, constant rate
        optimizer = keras.optimizers.Adam(lr)
        smoothing = 0.0
    elif name == "adam-transfer":  # the second seed's optimizer
        optimizer = keras.optimizers.Adam(lr, beta_1=0.5)
        smoothing = 0.0
    elif name == "sgd-nesterov-cosine":  # Khaireddin & Chen 2021's SGD, on edgenet's schedule
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total - warmup), warmup_target=lr, warmup_steps=warmup)
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4)
        smoothing = 0.1
    else:  # edgenet: AdamW, 2-epoch warm-up, cosine decay to zero over the run
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total - warmup), warmup_target=lr, warmup_steps=warmup)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=5e-3)
        smoothing = 0.1
    if label_smoothing is not None:
        smoothing = label_smoothing
    if distill is None:
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
                      metrics=["accuracy"])
        return
    from .distill import distill_loss, hard_accuracy

    classes = int(model.output_shape[-1])
    model.compile(optimizer=optimizer, loss=distill_loss(classes, *distill, smoothing),
                  metrics=[hard_accuracy(classes)])


def train(options: TrainOptions) -> TrainResult:
    """Load ``options.data`` (and ``options.val``) and :func:`train_on` them."""
    spec = arch_spec(options.arch)
    ckplus = (options.last_frames, options.first_as_neutral)
    if ckplus != (1, False) and not any(dataset_kind(p) in CKPLUS_KINDS for p in options.data):
        raise OptionsError("TrainOptions.last_frames and TrainOptions.first_as_neutral apply to CK+ folders; "
                           "no TrainOptions.data is one")
    data = load_training_data(options.data, spec, options.limit_per_class, options.seed, options.classes,
                              options.crop_faces, *ckplus)
    empty = [c for c, n in data.counts().items() if n == 0]
    if empty:
        raise InputError(f"classes {empty} have no training images (their output would never be "
                         "learned): add images, or leave the class out with TrainOptions.classes")
    if options.val:
        warn_val_classes_left_out(options.val, data.classes)
    val = (load_dataset(options.val, LoadOptions(size_hw=spec.input_size_hw, classes=data.classes,
                                                 usage="PublicTest", crop_faces=options.crop_faces,
                                                 last_k=options.last_frames,
                                                 first_as_neutral=options.first_as_neutral))
           if options.val else None)
    return train_on(data, val, options)


def train_on(data: FaceDataset, val: FaceDataset | None, options: TrainOptions) -> TrainResult:
    """Fit ``options.arch`` on ``data``, pick the best epoch on ``val`` (else the lowest training
    loss), write ``options.out``; resumes from its backup. Only the chief writes ``out``."""
    spec = arch_spec(options.arch)
    task = check_strategy(options.strategy)
    if options.num_threads:
        set_tf_threads(options.num_threads)
    strategy = make_strategy(options.strategy)  # first: multi-worker setup precedes other TF work
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    import keras

    keras.utils.set_random_seed(options.seed)
    if options.deterministic:
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    if len(data.classes) < 2:
        raise InputError(f"training needs >= 2 classes, found {list(data.classes)}")
    data = oversample(data, options.oversample)
    per_replica = options.batch_size or spec.batch_size
    replicas = int(strategy.num_replicas_in_sync)
    batch = per_replica * replicas
    teacher, distill = None, None
    if options.teacher:
        from .distill import teacher_for
        teacher = teacher_for(options.teacher, data.paths, data.classes)
        distill = (options.distill_alpha, options.distill_temperature)
    elif options.soft_labels:  # (1 - w) CE + w KL at T = 1: cross-entropy against the mixed target
        from .soft_labels import soft_targets
        teacher = soft_targets(options.soft_labels, data.paths, data.labels, data.classes).probs
        distill = (options.soft_label_weight, 1.0)
    train_ds = make_tf_dataset(data, spec.color, batch, True, options.seed, teacher, options.augment, options.mix)
    val_ds = make_tf_dataset(val, spec.color, 256, False, options.seed) if val else None
    steps = int(np.ceil(len(data) / batch))

    files = out if task.is_chief else out / f".{task.type}-{task.index}"  # a worker's private backup
    backup = files / "backup"
    if task.is_chief:
        check_or_record(out, fingerprint(options, data, spec, batch), options.fresh)
    if options.fresh:
        if backup.exists():
            shutil.rmtree(backup)
        for name in (HISTORY_FILE, "best.keras", "summary.json", CURVE_FILE):
            (out / name).unlink(missing_ok=True)
    with strategy.scope():
        model = build_model(options.arch, len(data.classes), weights=options.weights, precision=options.precision)
        if options.init_from:
            init_weights(model, options.init_from)
        compile_model(model, spec, steps, options.epochs, options.learning_rate, options.optimizer, distill,
                      options.label_smoothing)
    if options.strategy == "multiworker":  # works around Keras 3.15 (see distribute.py)
        prebuild_for_multiworker(model, strategy, train_ds)
    best_path = out / "best.keras"
    monitor = "val_accuracy" if val_ds is not None else "loss"
    earlier = read_history(out / HISTORY_FILE)
    # a resumed part must beat the best epoch of the parts before it, not start from scratch
    best_so_far = ((max if val_ds is not None else min)(earlier[monitor])
                   if earlier.get(monitor) and best_path.exists() else None)
    callbacks = [keras.callbacks.BackupAndRestore(str(backup))]
    if task.is_chief:
        progress = sys.stderr.isatty() if options.verbose is None else options.verbose == 1
        callbacks += [
            keras.callbacks.ModelCheckpoint(str(best_path), monitor=monitor, save_best_only=True,
                                            mode="max" if val_ds is not None else "min",
                                            initial_value_threshold=best_so_far),
            *make_callbacks(out, len(data), options.epochs, progress),
        ]
    if spec.optimizer == "adam-transfer":
        callbacks += [keras.callbacks.EarlyStopping(monitor=monitor, patience=10, restore_best_weights=True),
                      keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=5)]
    log.info(f"training {options.arch} on {len(data)} images {data.counts()} "
             f"({data.skipped} unreadable skipped, {data.no_face} without a face), {options.epochs} epochs, "
             f"batch {batch} ({per_replica} x {replicas} replicas, strategy {options.strategy})")
    started = time.time()
    done = len(earlier.get("loss", []))
    if done and done < options.epochs and task.is_chief:
        log.info(f"resuming {out} after epoch {done} of {options.epochs}")
    # Every worker of a cluster must step together: only a single process skips a finished run.
    if done < options.epochs or not best_path.exists() or task.workers > 1:
        model.fit(train_ds, validation_data=val_ds, epochs=options.epochs, callbacks=callbacks, verbose=0)
    else:  # an earlier run finished every epoch (its backup is gone): export its best epoch only
        log.info(f"{out} already holds all {done} epochs: exporting its best epoch")
    seconds = time.time() - started
    if not task.is_chief:  # the chief exports; a finished worker needs no backup
        shutil.rmtree(files, ignore_errors=True)
        return TrainResult("", options.epochs, 0, None, float("nan"), float("nan"), round(seconds, 1),
                           replicas, per_replica)

    history = read_history(out / HISTORY_FILE)
    if history.get("seconds"):  # every part's epochs, not only this call's
        seconds = sum(history["seconds"])
    if best_path.exists():
        model = keras.saving.load_model(best_path, compile=False, safe_mode=True)
    if options.precision != "float32":  # exported and converted in float32, whatever trained it
        model = float32_twin(model, options.arch, len(data.classes))
    if options.flip_tta:
        from .models import add_flip_tta
        model = add_flip_tta(model)
    meta = ModelMeta(labels=data.classes, input_size_hw=spec.input_size_hw, color=spec.color,
                     scale=1.0, offset=0.0, name=options.arch)
    from .keras_io import save_keras
    model_path = save_keras(model, out / "model.keras", meta)
    accs = history.get("val_accuracy") or []
    best_epoch = (int(history["epoch"][int(np.argmax(accs))]) if accs
                  else len(history.get("loss", [])))
    losses = history.get("loss") or [float("nan")]
    result = TrainResult(str(model_path), len(losses), best_epoch,
                         float(max(accs)) if accs else None, float(losses[0]), float(losses[-1]),
                         round(seconds, 1), replicas, per_replica)
    summary = {**asdict(result), "options": asdict(options), "classes": list(data.classes),
               "train_counts": data.counts(), "val_count": len(val) if val else 0,
               "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "keras": keras.__version__}
    write_json_atomic(out / "summary.json", summary, indent=2)
    plot_curve(history, out / CURVE_FILE, f"{options.arch} on {', '.join(Path(d).name for d in options.data)}")
    return result


def warn_val_classes_left_out(val: str, classes: tuple[str, ...]) -> None:
    """Warn, naming them, when the validation folder has classes training does not (their
    images are left out of every val number)."""
    from ..sources.images import list_images
    from .datasets import class_folders

    root = Path(val)
    if dataset_kind(root) != "folder" or not root.is_dir():
        return
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    extra = {name: len(list_images(root / folder)) for name, folder in class_folders(root, folders).items()
             if name not in classes}
    if extra:
        log.warning(f"validation classes {sorted(extra)} are not among the training classes "
                    f"{list(classes)}: their {sum(extra.values())} images are left out of validation")


def set_tf_threads(num_threads: int) -> None:
    """Limit TensorFlow's thread pools; only possible before its runtime starts in this process."""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == num_threads:
        return  # set already (an earlier fold of a protocol)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, num_threads))
    except RuntimeError:  # TensorFlow already ran something here: its pools are fixed
        log.warning(f"TrainOptions.num_threads={num_threads!r} ignored: TensorFlow already started in this "
                    f"process with {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads")
