"""The phone variant: a TFLite file MediaPipe's ``ImageClassifier`` can feed (``edge-fer convert --to phone``).

MediaPipe's classifier feeds only 3- or 4-channel images, so a grayscale model gets RGB input at
the model's size, with ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's ``COLOR_RGB2GRAY`` weights)
inside the graph. :func:`convert_phone` builds it from a Keras model, verifies it through
edge-fer's runtime against the Keras model on held-out real faces (like every conversion), and
writes it with both metadata sets (needs TensorFlow).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_fer.errors import ConversionError, OptionsError, first_line
from edge_fer.fileio import atomic_path
from edge_fer.metadata import METADATA_KEY, ModelMeta
from edge_fer.signals import raise_if_stopped

from .options import PHONE_QUANTIZATIONS, ConversionReport, ConvertOptions
from edge_fer.tflite_metadata import MP_NAME, add_standard_metadata, norm_from_meta, set_metadata_entry, write_model_file

#: OpenCV's COLOR_RGB2GRAY weights (ITU-R BT.601); they add up to 1.
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)


def convert_phone(options: ConvertOptions) -> ConversionReport:
    """``options.model_path`` (Keras) -> the phone variant at ``options.out``, written only if its
    top-1 agreement with the Keras model on the verification faces reaches the threshold."""
    from .faces import check_out, face_counts, load_faces, warn_without_framing
    from .quiet import quiet
    from .models import open_model
    from .verify import verified_on, verify

    out = check_out(Path(options.out), "phone")
    counts = face_counts(options, (options.quantize,))
    with quiet(), open_model(options) as source:
        if source.kind != "keras":
            raise OptionsError(f"ConvertOptions.to='phone': expected a Keras source model (.keras, .h5); "
                               f"{Path(options.model_path).name} is {source.kind}")
        faces = load_faces(options, source, counts)
        started = time.perf_counter()
        data, phone_meta = phone_variant_bytes(source.model, source.meta, options.quantize, source.path.name)
        with atomic_path(out, ".tflite") as tmp:
            tmp.write_bytes(data)
            seconds = time.perf_counter() - started
            check = verify(tmp, faces.verify, faces.reference, phone_meta, options.num_threads)
            if check.agreement < options.required_agreement:
                raise ConversionError(f"phone {options.quantize} agrees with the source on {check.agreement:.1%} of "
                                      f"{check.faces} held-out faces, below the required "
                                      f"{options.required_agreement:.1%}; {out.name} not written")
            size = tmp.stat().st_size
    warn_without_framing(phone_meta, out.name)
    return ConversionReport(str(out), "phone", options.quantize, size, check.agreement, faces.source_accuracy,
                            check.converted_accuracy, check.max_prob_diff, round(seconds, 2), check.faces,
                            cpu=verified_on())


# phone variant -----------------------------------------------------------------------------
def make_phone_variant(source: str | Path, out: str | Path, *, meta: ModelMeta | None = None,
                       quantize: str = "none", unsafe: bool = False) -> Path:
    """A TFLite file MediaPipe's ``ImageClassifier`` can feed, from a Keras model.

    Input: float32 RGB at the model's size, raw pixels 0..255 (standard metadata mean/std fold
    in the model's ``scale``/``offset``); grayscale models get the RGB->gray weighted sum as a
    frozen 1x1 convolution in front, BGR models a channel swap. Output keeps both metadata sets:
    ``edge_fer`` (colour ``rgb``) so edge-fer runs the same file, and the standard one.
    ``quantize``: none (float32), fp16 or dynamic (int8 weights, float compute).
    """
    from edge_fer.train.keras_io import load_keras

    out = Path(out)
    if quantize not in PHONE_QUANTIZATIONS:
        raise ConversionError(f"phone variant quantization must be one of {PHONE_QUANTIZATIONS}, got {quantize!r}")
    if out.suffix.lower() != ".tflite":
        raise ConversionError(f"phone variant output must end in .tflite, got {out.name!r}")
    model, file_meta = load_keras(source, allow_unsafe=unsafe)
    meta = meta or file_meta
    if meta is None:
        raise ConversionError(f"{Path(source).name} carries no edge-fer metadata: pass meta=ModelMeta(...)")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or tuple(shape[1:]) != (*meta.input_size_hw, meta.channels):
        raise ConversionError(f"{Path(source).name}: input {shape} does not match its metadata "
                              f"{meta.input_size_hw} {meta.color}")
    return write_model_file(out, phone_variant_bytes(model, meta, quantize, Path(source).name)[0])


def phone_variant_bytes(model, meta: ModelMeta, quantize: str, source_name: str) -> tuple[bytes, ModelMeta]:
    """The phone variant of a loaded Keras ``model`` described by ``meta``, and its edge-fer metadata."""
    wrapper = _rgb_wrapper(model, meta)
    data = _keras_to_tflite(wrapper, quantize, source_name)
    phone_meta = meta.with_(color="rgb", quantization=quantize,
                            name=f"{meta.name}-phone" if meta.name else "phone")
    data = set_metadata_entry(data, METADATA_KEY, phone_meta.to_json_text().encode("utf-8"))
    mean, std = norm_from_meta(meta)
    data = add_standard_metadata(data, meta.labels, mean, std, name=phone_meta.name or MP_NAME,
                                 description=f"Facial expression classifier ({', '.join(meta.labels)}); "
                                             "RGB input, raw pixels.")
    return data, phone_meta


def _rgb_wrapper(model, meta: ModelMeta):
    """Keras model: RGB image (raw pixels) -> ``model``'s colour -> ``model``."""
    import keras

    h, w = meta.input_size_hw
    image = keras.Input((h, w, 3), name="image", dtype="float32")
    if meta.color == "rgb":
        return keras.Model(image, model(image), name="phone")
    if meta.color == "gray":
        kernel = np.array(GRAY_WEIGHTS_RGB, np.float32).reshape(1, 1, 3, 1)
    else:  # bgr: swap channels 0 and 2
        kernel = np.eye(3, dtype=np.float32)[:, ::-1].reshape(1, 1, 3, 3)
    convert = keras.layers.Conv2D(kernel.shape[-1], 1, use_bias=False, trainable=False, name=f"rgb_to_{meta.color}")
    x = convert(image)
    convert.set_weights([kernel])
    return keras.Model(image, model(x), name="phone")


def _keras_to_tflite(model, quantize: str, source_name: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the MLIR converter raises ConverterError/RuntimeError with long texts
        raise_if_stopped()  # a stop signal inside the converter comes out as some other error
        raise ConversionError(f"TFLite converter failed on {source_name} (phone variant): "
                              f"{first_line(exc)}") from None
