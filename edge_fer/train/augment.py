"""Training augmentation, shared by `edge-fer train` (TensorFlow) and tools/train_gpu.py (Keras on
any backend): the per-image transforms (:func:`augmenter`, Keras layers) and the batch-level
mixes (:func:`mix_batch`, numpy: mixup and cutmix blend two faces and their targets alike).
"""

from __future__ import annotations

import numpy as np

#: Per-image augmentation levels: flip, rotation, zoom, shift, brightness and contrast ("full");
#: those and random erasing ("erase"); the mirror image only; none.
AUGMENTS = ("full", "erase", "flip", "none")
#: Batch-level mixes: none, mixup (Zhang et al. 2018), cutmix (Yun et al. 2019).
MIXES = ("none", "mixup", "cutmix")
MIXUP_ALPHA = 0.2


def augmenter(level: str, seed: int):
    """The training augmentation (:data:`AUGMENTS`: "full", "erase" or "flip") as one Keras model on
    raw pixels (0..255, NHWC); pure Keras, so any backend runs it (tools/train_gpu.py on PyTorch).
    "erase" is "full" plus random erasing (Zhong et al. 2017) of one patch in half the faces."""
    import keras

    steps = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if level in ("full", "erase"):
        steps += [
            keras.layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom(0.12, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomContrast(0.25, value_range=(0, 255), seed=seed + 5),
        ]
    if level == "erase":
        steps.append(keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.25), value_range=(0, 255), seed=seed + 6))
    return keras.Sequential(steps, name="augment")


def mix_batch(x: np.ndarray, y: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One batch (x: N x H x W x C float32, y: N x K targets, any columns) mixed with a shuffled
    copy of itself. mixup: x and y blended with one Beta(0.2, 0.2) weight per face; cutmix: a box
    of the partner face pasted in (area share 1 - lam, lam ~ U(0, 1)), y blended by the pasted
    area. ``kind`` "none": unchanged."""
    if kind == "none" or len(x) < 2:
        return x, y
    partner = rng.permutation(len(x))
    if kind == "mixup":
        lam = rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, size=len(x)).astype(np.float32)
        mixed = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[partner]
        return mixed.astype(np.float32), (lam[:, None] * y + (1 - lam[:, None]) * y[partner]).astype(np.float32)
    if kind != "cutmix":
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(MIXES)}")
    height, width = x.shape[1:3]
    mixed, share = x.copy(), np.empty(len(x), np.float32)
    for i, lam in enumerate(rng.uniform(0.0, 1.0, size=len(x))):
        cut_h, cut_w = int(height * np.sqrt(1 - lam)), int(width * np.sqrt(1 - lam))
        cy, cx = rng.integers(height), rng.integers(width)
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        mixed[i, y0:y1, x0:x1] = x[partner[i], y0:y1, x0:x1]
        share[i] = (y1 - y0) * (x1 - x0) / (height * width)  # what was pasted, after clipping
    return mixed, ((1 - share)[:, None] * y + share[:, None] * y[partner]).astype(np.float32)
