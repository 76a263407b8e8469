"""Classifier architectures: PyFER (the first seed), a transfer model (the second seed) and
edge-fer's own small network, ``edgenet``, the one the package ships.

Every builder takes the class count and returns an uncompiled Keras model whose input is the
face crop's raw pixels (0..255, float): scaling lives inside the graph, so converted models need
only ``scale=1, offset=0`` and an int8 input maps pixels exactly (scale 1, zero point -128).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import InputError, OptionsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture needs from the data and how it is optimized."""

    name: str
    input_size_hw: tuple[int, int]
    color: str  # "gray" or "rgb"
    optimizer: str  # "sgd-pyfer" | "adam-transfer" | "adamw-cosine"
    batch_size: int


ARCHS = {
    "pyfer": ArchSpec("pyfer", (64, 64), "gray", "sgd-pyfer", 64),
    "transfer": ArchSpec("transfer", (96, 96), "rgb", "adam-transfer", 128),
    "edgenet": ArchSpec("edgenet", (48, 48), "gray", "adamw-cosine", 64),
    #: edgenet at 1.5x width: the teacher candidate of the model campaign (docs/model_card/campaign.md).
    "edgenet-m": ArchSpec("edgenet-m", (48, 48), "gray", "adamw-cosine", 64),
    #: edgenet at 2x width (2.6M parameters): a teacher for a GPU machine (tools/train_gpu.py).
    "edgenet-l": ArchSpec("edgenet-l", (48, 48), "gray", "adamw-cosine", 64),
    #: edgenet with squeeze-excitation after each block (issue 21 item 5's pilot; +2% parameters).
    "edgenet-se": ArchSpec("edgenet-se", (48, 48), "gray", "adamw-cosine", 64),
}
#: Channel widths of edgenet's four blocks, per architecture name.
EDGENET_WIDTHS = {"edgenet": (32, 48, 96, 192), "edgenet-m": (48, 72, 144, 288), "edgenet-l": (64, 96, 192, 384),
                  "edgenet-se": (32, 48, 96, 192)}
#: Squeeze-excitation's bottleneck: the block's width over this (Hu et al. 2018 use 16; 8 keeps
#: the first block's 32 channels at 4).
SE_REDUCTION = 8
#: Training's compute precisions (TrainOptions.precision). mixed_bfloat16 computes in bfloat16
#: with float32 weights: PyFER and edgenet train 1.4x faster on a CPU with AVX512_BF16
#: (benchmarks/results/train_speed_*_bf16*.json).
PRECISIONS = ("float32", "mixed_bfloat16")


def arch_spec(name: str) -> ArchSpec:
    if name not in ARCHS:
        raise OptionsError(f"unknown architecture {name!r}; expected one of {sorted(ARCHS)}")
    return ARCHS[name]


def build_model(name: str, num_classes: int, weights: str | None = None, precision: str = "float32"):
    """``name`` for ``num_classes``; ``precision`` (one of PRECISIONS) is its layers' dtype policy,
    set for this build only (Keras keeps it in each layer; the global policy is left as it was)."""
    import keras

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        return _build(name, num_classes, weights)
    finally:
        keras.config.set_dtype_policy(saved)


def float32_twin(model, name: str, num_classes: int):
    """``model``'s weights (float32 under any mixed policy) in a float32 build of ``name``: the
    model that is exported, converted and run."""
    twin = build_model(name, num_classes)
    twin.set_weights(model.get_weights())
    return twin


def init_weights(model, path: str) -> None:
    """Copy the weights of the ``.keras`` file ``path`` into ``model`` (same architecture)."""
    from .keras_io import load_keras

    source, _ = load_keras(path)
    shapes = [tuple(w.shape) for w in source.weights]
    if shapes != [tuple(w.shape) for w in model.weights]:
        raise InputError(f"TrainOptions.init_from={path!r}: its {len(shapes)} weight tensors do not fit the "
                         f"{model.name} being trained ({len(model.weights)} tensors)")
    model.set_weights(source.get_weights())
    log.info(f"starting from the weights of {path}")


def _build(name: str, num_classes: int, weights: str | None):
    spec = arch_spec(name)
    if name == "transfer":
        return build_transfer(num_classes, spec.input_size_hw, weights=weights)
    if name in EDGENET_WIDTHS:
        return build_edgenet(num_classes, spec.input_size_hw, EDGENET_WIDTHS[name], name=name.replace("-", "_"),
                             squeeze_excite=name == "edgenet-se")
    return build_pyfer(num_classes, spec.input_size_hw)


def build_pyfer(num_classes: int, size_hw=(64, 64), widths=(64, 128, 256), dense=(512, 256),
                dropout: float = 0.25):
    """PyFER as its paper describes it: 3x3 convolutions, stride 1, no padding, each followed by
    ReLU -> BatchNorm -> Dropout; 2x2 max-pool, stride 2; flatten; dense layers; softmax."""
    import keras
    from keras import layers

    x = inputs = keras.Input((*size_hw, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(x)
    for block, width in enumerate(widths):
        for conv in range(2):
            x = layers.Conv2D(width, 3, strides=1, padding="valid", name=f"conv{block}_{conv}")(x)
            x = layers.ReLU(name=f"relu{block}_{conv}")(x)
            x = layers.BatchNormalization(name=f"bn{block}_{conv}")(x)
            x = layers.Dropout(dropout, name=f"drop{block}_{conv}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(0.5, name=f"dense_drop{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="pyfer")


def build_transfer(num_classes: int, size_hw=(96, 96), weights: str | None = None):
    """The second seed's head (flatten, Dense 128, Dropout 0.3, softmax) on MobileNetV2.

    ``weights``: ``"imagenet"`` (needs internet once, Keras caches it), a path to a weights file
    of the backbone, or None to train from scratch.
    """
    import keras
    from keras import layers

    inputs = keras.Input((*size_hw, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    imagenet = weights == "imagenet"
    try:
        backbone = keras.applications.MobileNetV2(input_shape=(*size_hw, 3), include_top=False,
                                                  weights="imagenet" if imagenet else None, alpha=0.35)
        if weights and not imagenet:
            backbone.load_weights(weights)
    except Exception as exc:  # no internet, or a weights file that does not fit
        from ..errors import ModelError
        if imagenet:
            raise ModelError("TrainOptions.weights='imagenet': expected internet access once (Keras caches "
                             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5 in "
                             "~/.keras/models/), or set TrainOptions.weights to that file") from None
        raise ModelError(f"cannot load backbone weights {weights!r} ({type(exc).__name__})") from None
    x = backbone(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    x = layers.Dropout(0.3, name="drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="transfer_mobilenetv2")


def build_edgenet(num_classes: int, size_hw=(48, 48), widths=EDGENET_WIDTHS["edgenet"], dropout=0.4,
                  name: str = "edgenet", squeeze_excite: bool = False):
    """edge-fer's small VGG-style net: one conv at full resolution, then blocks of two 3x3
    convs (conv -> BN -> ReLU) with 2x2 pooling between, global average pooling, dropout.
    About 0.6M parameters and ~56M multiply-adds at 48x48 (edgenet-m, 1.5x wider: 1.5M and
    ~125M): int8-friendly (plain conv/ReLU). ``squeeze_excite``: each block's output scaled per
    channel by a gate from its global average (Dense -> ReLU -> Dense -> sigmoid; Hu et al. 2018),
    standard layers that every converter and int8 runtime takes."""
    import keras
    from keras import layers

    x = inputs = keras.Input((*size_hw, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(x)
    for block, width in enumerate(widths):
        for conv in range(1 if block == 0 else 2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{block}_{conv}")(x)
            x = layers.BatchNormalization(name=f"bn{block}_{conv}")(x)
            x = layers.ReLU(name=f"relu{block}_{conv}")(x)
        if squeeze_excite:
            gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"se{block}_squeeze")(x)
            gate = layers.Dense(max(width // SE_REDUCTION, 4), activation="relu", name=f"se{block}_reduce")(gate)
            gate = layers.Dense(width, activation="sigmoid", name=f"se{block}_expand")(gate)
            x = layers.Multiply(name=f"se{block}_scale")([x, gate])
        if block < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def add_flip_tta(model):
    """Wrap ``model`` so it averages its predictions on the face and on its mirror image.

    Horizontal-flip test-time augmentation inside the graph (+1.3 points on FER2013 val for
    edgenet), so every runtime and converted format gets it. The mirror is a frozen Dense
    layer holding the anti-identity over the width axis: standard layers only, so the file
    still loads with ``safe_mode=True`` and quantizes exactly (weights are 0 and 1).
    """
    import keras
    import numpy as np
    from keras import layers

    height, width, channels = model.input_shape[1:]
    inputs = keras.Input((height, width, channels), name="face")
    columns_last = layers.Permute((1, 3, 2), name="columns_last")(inputs)
    mirror = layers.Dense(width, use_bias=False, trainable=False, name="mirror")
    mirrored = layers.Permute((1, 3, 2), name="columns_back")(mirror(columns_last))
    mirror.set_weights([np.eye(width, dtype="float32")[::-1]])
    outputs = layers.Average(name="flip_tta")([model(inputs), model(mirrored)])
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")
