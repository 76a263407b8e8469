"""CycleGAN class balancing: learn to turn faces of a common class (e.g. neutral) into faces of
a rare one (e.g. disgust), then add generated images of the rare class to a dataset.

Training follows the FER data-augmentation CycleGAN recipe:

- adversarial loss: least squares (L2), real label 1.0, fake label 0.0, with label flipping (the
  discriminators' real/fake labels swapped with a small probability per step);
- identity loss: L1, weight 2 (a generator fed an image of its own output domain should keep it);
- cycle loss, forward (A -> B -> A) and backward (B -> A -> B) each
  ``(L1 + L2 + (1 - SSIM)) / 3``, weight 5;
- Adam, learning rate 2e-4, beta_1 0.5, batch 1; the rate stays constant for ``epochs`` epochs,
  then decays linearly to zero over ``decay_epochs`` (100 + 100 by default);
- batch normalization and dropout in both networks.

Images are 48x48 gray, scaled to [-1, 1] (generator output: tanh). The generator is small
(7x7 conv, two stride-2 convs, residual blocks, two transposed convs, 7x7 conv); the
discriminator is a PatchGAN (a 12x12 map of real/fake scores for overlapping patches).
Training checkpoints after every epoch and resumes from the last checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, OptionsError


@dataclass(frozen=True)
class CycleGanOptions:
    """``steps_per_epoch``: None = one pass over the target (rare) class, each target image
    paired with a random source image. ``label_flip``: probability of swapping the
    discriminators' real/fake labels in a step."""

    epochs: int = 100
    decay_epochs: int | None = None  # None: as many as ``epochs``
    steps_per_epoch: int | None = None
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    cycle_weight: float = 5.0
    identity_weight: float = 2.0
    label_flip: float = 0.05
    filters: int = 32
    res_blocks: int = 4
    dropout: float = 0.3
    size_hw: tuple[int, int] = (48, 48)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.decay_epochs is None:
            object.__setattr__(self, "decay_epochs", self.epochs)
        if self.epochs < 1:
            raise OptionsError(f"CycleGanOptions.epochs={self.epochs!r}: expected >= 1")
        if self.decay_epochs < 0:
            raise OptionsError(f"CycleGanOptions.decay_epochs={self.decay_epochs!r}: expected >= 0")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise OptionsError(f"CycleGanOptions.steps_per_epoch={self.steps_per_epoch!r}: expected >= 1")
        if not 0.0 <= self.label_flip < 0.5:
            raise OptionsError(f"CycleGanOptions.label_flip={self.label_flip!r}: expected a probability in [0, 0.5)")
        if not self.learning_rate > 0:
            raise OptionsError(f"CycleGanOptions.learning_rate={self.learning_rate!r}: expected > 0")
        if self.filters < 1:
            raise OptionsError(f"CycleGanOptions.filters={self.filters!r}: expected >= 1")
        if self.res_blocks < 0:
            raise OptionsError(f"CycleGanOptions.res_blocks={self.res_blocks!r}: expected >= 0")
        if any(s % 4 for s in self.size_hw):
            raise OptionsError(f"CycleGanOptions.size_hw={self.size_hw!r}: expected sides that are multiples of 4")

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.decay_epochs

    def lr_at(self, epoch: int) -> float:
        """Learning rate in 0-based ``epoch``: constant, then linear decay towards zero."""
        decay = max(0, epoch + 1 - self.epochs) / (self.decay_epochs + 1)
        return self.learning_rate * (1.0 - decay)


@dataclass
class EpochLog:
    epoch: int
    lr: float
    g_loss: float
    d_loss: float
    cycle_loss: float
    identity_loss: float
    seconds: float


@dataclass
class CycleGanResult:
    epochs_run: int
    logs: list[EpochLog] = field(default_factory=list)


def to_unit(images_u8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, H, W, 1) in [-1, 1]."""
    return (images_u8.astype(np.float32)[..., None] / 127.5) - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (N, H, W, 1) -> uint8 (N, H, W)."""
    return np.clip(np.rint((np.asarray(images)[..., 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def build_generator(size_hw=(48, 48), filters: int = 32, res_blocks: int = 4, dropout: float = 0.3,
                    name: str = "generator"):
    import keras
    from keras import layers

    def conv_bn_relu(x, width, kernel, strides=1, transpose=False):
        conv = layers.Conv2DTranspose if transpose else layers.Conv2D
        x = conv(width, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    x = inputs = keras.Input((*size_hw, 1))
    x = conv_bn_relu(x, filters, 7)
    x = conv_bn_relu(x, 2 * filters, 3, 2)
    x = conv_bn_relu(x, 4 * filters, 3, 2)
    for _ in range(res_blocks):
        y = conv_bn_relu(x, 4 * filters, 3)
        y = layers.Dropout(dropout)(y)
        y = layers.Conv2D(4 * filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        x = layers.Add()([x, y])
    x = conv_bn_relu(x, 2 * filters, 3, 2, transpose=True)
    x = conv_bn_relu(x, filters, 3, 2, transpose=True)
    outputs = layers.Conv2D(1, 7, padding="same", activation="tanh", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(size_hw=(48, 48), filters: int = 32, dropout: float = 0.3,
                        name: str = "discriminator"):
    """PatchGAN: one linear real/fake score per overlapping patch (12x12 map at 48x48)."""
    import keras
    from keras import layers

    x = inputs = keras.Input((*size_hw, 1))
    x = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    for width, strides in ((2 * filters, 2), (4 * filters, 1)):
        x = layers.Conv2D(width, 4, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Conv2D(1, 4, padding="same", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


class CycleGan:
    """Generators ``g_ab`` (source -> target), ``g_ba`` and discriminators ``d_a``, ``d_b``,
    trained by :meth:`fit`; :meth:`generate` turns source images into target ones."""

    def __init__(self, options: CycleGanOptions = CycleGanOptions()) -> None:
        import keras
        import tensorflow as tf

        self.options = o = options
        keras.utils.set_random_seed(o.seed)
        self.g_ab = build_generator(o.size_hw, o.filters, o.res_blocks, o.dropout, "g_ab")
        self.g_ba = build_generator(o.size_hw, o.filters, o.res_blocks, o.dropout, "g_ba")
        self.d_a = build_discriminator(o.size_hw, o.filters, o.dropout, "d_a")
        self.d_b = build_discriminator(o.size_hw, o.filters, o.dropout, "d_b")
        self.g_opt = keras.optimizers.Adam(o.learning_rate, beta_1=o.beta_1)
        self.d_opt = keras.optimizers.Adam(o.learning_rate, beta_1=o.beta_1)
        self.g_vars = self.g_ab.trainable_variables + self.g_ba.trainable_variables
        self.d_vars = self.d_a.trainable_variables + self.d_b.trainable_variables
        self.g_opt.build(self.g_vars)
        self.d_opt.build(self.d_vars)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._checkpoint = tf.train.Checkpoint(g_ab=self.g_ab, g_ba=self.g_ba, d_a=self.d_a, d_b=self.d_b,
                                               g_opt=self.g_opt, d_opt=self.d_opt, epoch=self.epoch)
        self.train_step = tf.function(self._train_step)

    # losses --------------------------------------------------------------------------------
    @staticmethod
    def cycle_loss(real, rebuilt):
        """(L1 + L2 + (1 - SSIM)) / 3 on images in [-1, 1] (SSIM on [0, 1])."""
        import tensorflow as tf

        l1 = tf.reduce_mean(tf.abs(real - rebuilt))
        l2 = tf.reduce_mean(tf.square(real - rebuilt))
        ssim = tf.reduce_mean(tf.image.ssim((real + 1.0) / 2.0, (rebuilt + 1.0) / 2.0, max_val=1.0))
        return (l1 + l2 + (1.0 - ssim)) / 3.0

    def _train_step(self, real_a, real_b, real_label, fake_label):
        import tensorflow as tf

        def lsgan(scores, label):
            return tf.reduce_mean(tf.square(scores - label))

        o = self.options
        with tf.GradientTape(persistent=True) as tape:
            fake_b = self.g_ab(real_a, training=True)
            fake_a = self.g_ba(real_b, training=True)
            cycle = (self.cycle_loss(real_a, self.g_ba(fake_b, training=True))
                     + self.cycle_loss(real_b, self.g_ab(fake_a, training=True)))
            identity = (tf.reduce_mean(tf.abs(real_b - self.g_ab(real_b, training=True)))
                        + tf.reduce_mean(tf.abs(real_a - self.g_ba(real_a, training=True))))
            score_fake_b = self.d_b(fake_b, training=True)
            score_fake_a = self.d_a(fake_a, training=True)
            g_adv = lsgan(score_fake_b, 1.0) + lsgan(score_fake_a, 1.0)
            g_loss = g_adv + o.cycle_weight * cycle + o.identity_weight * identity
            d_b_loss = 0.5 * (lsgan(self.d_b(real_b, training=True), real_label)
                              + lsgan(self.d_b(tf.stop_gradient(fake_b), training=True), fake_label))
            d_a_loss = 0.5 * (lsgan(self.d_a(real_a, training=True), real_label)
                              + lsgan(self.d_a(tf.stop_gradient(fake_a), training=True), fake_label))
            d_loss = d_a_loss + d_b_loss
        self.g_opt.apply_gradients(zip(tape.gradient(g_loss, self.g_vars), self.g_vars))
        self.d_opt.apply_gradients(zip(tape.gradient(d_loss, self.d_vars), self.d_vars))
        del tape
        return g_loss, d_loss, cycle, identity

    # training ------------------------------------------------------------------------------
    def restore(self, folder: str | Path) -> int:
        """Load the latest checkpoint in ``folder`` if any; returns the epochs already done."""
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(folder))
        if latest:
            self._checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def fit(self, source_u8: np.ndarray, target_u8: np.ndarray, checkpoint_dir: str | Path | None = None,
            log=print) -> CycleGanResult:
        """Train on uint8 (N, H, W) images of the source (A) and target (B) classes."""
        import tensorflow as tf

        o = self.options
        a_all, b_all = to_unit(source_u8), to_unit(target_u8)
        steps = o.steps_per_epoch or len(b_all)
        manager = None
        if checkpoint_dir is not None:
            Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
            self.restore(checkpoint_dir)
            manager = tf.train.CheckpointManager(self._checkpoint, str(checkpoint_dir), max_to_keep=2)
        result = CycleGanResult(int(self.epoch.numpy()))
        log_path = Path(checkpoint_dir) / "losses.csv" if checkpoint_dir is not None else None
        while int(self.epoch.numpy()) < o.total_epochs:
            epoch = int(self.epoch.numpy())
            rng = np.random.default_rng(o.seed * 100003 + epoch)  # resumable: the epoch fixes the draw
            lr = o.lr_at(epoch)
            self.g_opt.learning_rate = lr
            self.d_opt.learning_rate = lr
            started, sums = time.time(), np.zeros(4)
            b_order = np.concatenate([rng.permutation(len(b_all)) for _ in range(-(-steps // len(b_all)))])
            for step in range(steps):
                a = a_all[rng.integers(len(a_all))]
                b = b_all[b_order[step]]
                if rng.random() < 0.5:
                    a = np.ascontiguousarray(a[:, ::-1])
                if rng.random() < 0.5:
                    b = np.ascontiguousarray(b[:, ::-1])
                flip = rng.random() < o.label_flip
                out = self.train_step(tf.constant(a[None]), tf.constant(b[None]),
                                      tf.constant(0.0 if flip else 1.0), tf.constant(1.0 if flip else 0.0))
                sums += [float(v) for v in out]
            means = sums / steps
            entry = EpochLog(epoch + 1, lr, *map(float, means), round(time.time() - started, 1))
            if not np.all(np.isfinite(means)):
                raise ModelError(f"CycleGAN losses diverged in epoch {epoch + 1} ({means}); the last good "
                                 "checkpoint is kept: run again with a lower CycleGanOptions.learning_rate")
            self.epoch.assign(epoch + 1)
            if manager is not None:
                manager.save()
                _append_log(log_path, entry)
            result.logs.append(entry)
            result.epochs_run = epoch + 1
            log(f"cyclegan epoch {entry.epoch}/{o.total_epochs} lr {lr:.2e}: G {entry.g_loss:.3f} "
                f"D {entry.d_loss:.3f} cycle {entry.cycle_loss:.3f} identity {entry.identity_loss:.3f} "
                f"({entry.seconds:.0f} s)")
        return result

    def generate(self, source_u8: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Source-class uint8 images (N, H, W) -> generated target-class uint8 images."""
        x = to_unit(source_u8)
        out = [self.g_ab(x[i:i + batch_size], training=False).numpy() for i in range(0, len(x), batch_size)]
        return to_uint8(np.concatenate(out)) if out else np.zeros((0, *self.options.size_hw), np.uint8)


def _append_log(path: Path, entry: EpochLog) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(list(entry.__dataclass_fields__))
        writer.writerow(list(vars(entry).values()))


# balancing a dataset ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BalanceOptions:
    """Train a CycleGAN from ``source`` to ``target`` on ``data`` and write a NEW folder-per-class
    dataset to ``out``: every original image plus ``count`` generated ``target`` images
    (default: as many as bring ``target`` up to ``source``'s count). ``out`` also keeps the
    CycleGAN's checkpoints (``out/.cyclegan``, resumed when present) and ``balance.json``."""

    data: str
    source: str
    target: str
    out: str
    count: int | None = None
    crop_faces: str | None = None
    gan: CycleGanOptions = CycleGanOptions()

    def __post_init__(self) -> None:
        if self.source == self.target:
            raise OptionsError(f"BalanceOptions.target={self.target!r}: expected a class other than "
                               "BalanceOptions.source")
        if self.count is not None and self.count < 1:
            raise OptionsError(f"BalanceOptions.count={self.count!r}: expected >= 1")


@dataclass
class BalanceResult:
    out: str
    generated: int
    counts: dict[str, int]
    epochs_run: int
    seconds: float


def balance(options: BalanceOptions, log=print) -> BalanceResult:
    from .datasets import FaceDataset, save_folder
    from .loaders import LoadOptions, dataset_kind, load_dataset

    started = time.time()
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} is a file; expected a new folder")
    if out.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in out.iterdir()):
        raise InputError(f"output folder {out} already holds a dataset; choose a new folder")
    data = load_dataset(options.data, LoadOptions(size_hw=options.gan.size_hw, crop_faces=options.crop_faces))
    for role, name in (("source", options.source), ("target", options.target)):
        if name not in data.classes:
            raise InputError(f"{role} class {name!r} is not in the dataset; it has {list(data.classes)}")
    source = data.images[data.labels == data.classes.index(options.source)]
    target = data.images[data.labels == data.classes.index(options.target)]
    log(f"cyclegan {options.source} ({len(source)} images) -> {options.target} ({len(target)} images)")

    work = out / ".cyclegan"
    gan = CycleGan(options.gan)
    result = gan.fit(source, target, work, log=log)
    gan.g_ab.save(work / f"g_{options.source}_to_{options.target}.keras")

    count = options.count or max(0, len(source) - len(target))
    if count == 0:
        raise InputError(f"{options.target} already has as many images as {options.source}: "
                         "set BalanceOptions.count")
    rng = np.random.default_rng(options.gan.seed)
    generated = gan.generate(source[rng.choice(len(source), count, replace=count > len(source))])

    building = out / ".building"
    shutil.rmtree(building, ignore_errors=True)
    if dataset_kind(options.data) == "folder" and not options.crop_faces:
        for path, label in zip(data.paths, data.labels):
            _link_or_copy(Path(path), building / data.classes[label] / Path(path).name)
    else:  # CSV rows or cropped frames: write the pixels that were loaded
        save_folder(data, building, prefix="image_")
    extra = FaceDataset(generated, np.full(count, data.classes.index(options.target)), data.classes)
    save_folder(extra, building, prefix=f"cyclegan_{options.source}_")
    for folder in sorted(building.iterdir()):
        os.replace(folder, out / folder.name)
    building.rmdir()
    counts = {name: len(list((out / name).iterdir())) for name in data.classes}
    summary = BalanceResult(str(out), count, counts, result.epochs_run, round(time.time() - started, 1))
    (out / "balance.json").write_text(json.dumps({**asdict(summary), "options": asdict(options)}, indent=2))
    return summary


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
