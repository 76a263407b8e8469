"""Source models: Keras (.keras, legacy .h5/.hdf5), TensorFlow SavedModel folders and ONNX files.

A :class:`SourceModel` (from :func:`open_model`) knows the model's :class:`~edge_fer.metadata.ModelMeta` (from the file or
from the options), runs the model on a float NHWC batch (the verification reference) and hands
each exporter what it needs: a ``tf.lite.TFLiteConverter`` or a float ONNX file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_fer.backends import first_line, image_input_spec, to_probabilities
from edge_fer.classifier import parse_labels
from edge_fer.errors import ConversionError, ModelError
from edge_fer.fileio import file_sha256
from edge_fer.metadata import ModelMeta, read_model_meta, resolve_model_meta

from .op_scan import check_savedmodel_ops
from .options import ConvertOptions

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
BATCH = 256  # faces per forward pass when computing reference probabilities
ONNX_OPSET = 13





def source_kind(path: Path) -> str:
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"{path} is a folder without saved_model.pb: expected a TensorFlow SavedModel")
        return "savedmodel"
    if path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix == ".onnx":
        return "onnx"
    raise ModelError(f"unsupported source model {path.name!r}: expected .keras, .h5/.hdf5, .onnx "
                     "or a SavedModel folder")


def resolve_meta(file_meta: ModelMeta | None, shape, num_classes: int, options: ConvertOptions,
                 path: Path, sha256: str) -> ModelMeta:
    """The file's metadata (or the options' description), checked against the model itself."""
    spec = image_input_spec(shape, path.name)
    meta = resolve_model_meta(path, file_meta, (spec.height, spec.width, spec.channels),
                              labels=parse_labels(options.labels), scale=options.input_scale,
                              offset=options.input_offset, color=options.color, need_scaling=True,
                              field_names=("ConvertOptions.labels", "ConvertOptions.input_scale",
                                           "ConvertOptions.input_offset"))
    meta = meta.with_(quantization="none", source_sha256=sha256, name=meta.name or path.stem)
    if len(meta.labels) != num_classes:
        raise ModelError(f"{path.name} outputs {num_classes} scores but {len(meta.labels)} labels were "
                         f"given ({','.join(meta.labels)})")
    return meta


def _output_classes(shape, path: Path) -> int:
    dims = list(shape)
    if len(dims) != 2 or not isinstance(dims[1], int) or dims[1] < 2:
        raise ModelError(f"{path.name}: output shape {dims} is not a batch of class scores (N, classes)")
    return dims[1]


class SourceModel:
    """A loaded source model. Use as a context manager (it may own a temporary folder)."""

    kind: str

    def __init__(self, path: Path, meta: ModelMeta) -> None:
        self.path = path
        self.meta = meta
        self._tmp: str | None = None

    def predict(self, batch_nhwc: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) of the source model, in chunks."""
        outs = [self._forward(batch_nhwc[i:i + BATCH]) for i in range(0, len(batch_nhwc), BATCH)]
        return to_probabilities(np.concatenate(outs)) if outs else np.zeros((0, len(self.meta.labels)))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def tflite_converter(self):
        raise NotImplementedError

    def write_float_onnx(self, path: Path) -> None:
        raise NotImplementedError

    def temp_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="edge-fer-convert-")
        return Path(self._tmp)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "SourceModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _TfModel(SourceModel):
    """Shared by Keras and SavedModel sources: ONNX through ``tf2onnx.convert.from_function``."""

    def _tf_function(self):
        raise NotImplementedError

    def write_float_onnx(self, path: Path) -> None:
        import tf2onnx

        function, spec = self._tf_function()
        try:
            tf2onnx.convert.from_function(function, input_signature=[spec], opset=ONNX_OPSET,
                                          output_path=str(path))
        except Exception as exc:  # tf2onnx raises many types for unsupported graphs
            raise ConversionError(f"tf2onnx could not convert {self.path.name}: {first_line(exc)}") from None

    def _input_spec(self):
        import tensorflow as tf

        h, w = self.meta.input_size_hw
        return tf.TensorSpec([None, h, w, self.meta.channels], tf.float32, name="input")


class KerasModel(_TfModel):
    """``.keras`` (with edge-fer's metadata inside) or legacy Keras 2 ``.h5``/``.hdf5``."""

    kind = "keras"

    def __init__(self, path: Path, options: ConvertOptions) -> None:
        from edge_fer.train.keras_io import load_keras

        model, file_meta = load_keras(path, allow_unsafe=options.unsafe)
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ModelError(f"{path.name}: expected 1 input and 1 output, got {len(model.inputs)} "
                             f"and {len(model.outputs)}")
        num_classes = _output_classes(model.outputs[0].shape, path)
        super().__init__(path, resolve_meta(file_meta, model.inputs[0].shape, num_classes, options,
                                            path, file_sha256(path)))
        self.model = model

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(batch, training=False))

    def tflite_converter(self):
        # from_concrete_functions drops Keras 3 variables (measured: 18% agreement, NaNs on the
        # peer model); from_keras_model exports a SavedModel first and is exact.
        import tensorflow as tf

        return tf.lite.TFLiteConverter.from_keras_model(self.model)

    def _tf_function(self):
        import tensorflow as tf

        spec = self._input_spec()
        return tf.function(lambda x: self.model(x, training=False), input_signature=[spec]), spec


class SavedModelDir(_TfModel):
    """A TensorFlow SavedModel folder; its ``serving_default`` signature is the model."""

    kind = "savedmodel"
    SIGNATURE = "serving_default"

    def __init__(self, path: Path, options: ConvertOptions) -> None:
        import tensorflow as tf

        if not options.trust_model:  # loading runs its restore/init functions: read it as data first
            check_savedmodel_ops(path)
        try:
            self.loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path.name}: not a loadable SavedModel ({first_line(exc)})") from None
        signature = self.loaded.signatures.get(self.SIGNATURE)
        if signature is None:
            raise ModelError(f"{path.name}: SavedModel has no {self.SIGNATURE!r} signature "
                             f"(has {sorted(self.loaded.signatures)})")
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path.name}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        (self._input_name, in_spec), = inputs.items()
        (self._output_name, out_spec), = outputs.items()
        self._signature = signature
        num_classes = _output_classes(out_spec.shape.as_list(), path)
        super().__init__(path, resolve_meta(None, in_spec.shape.as_list(), num_classes, options, path,
                                            file_sha256(path)))

    def _call(self, x):
        return self._signature(**{self._input_name: x})[self._output_name]

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._call(tf.constant(batch, tf.float32)).numpy()

    def tflite_converter(self):
        import tensorflow as tf

        return tf.lite.TFLiteConverter.from_saved_model(str(self.path), signature_keys=[self.SIGNATURE])

    def _tf_function(self):
        import tensorflow as tf

        spec = self._input_spec()
        return tf.function(self._call, input_signature=[spec]), spec


class OnnxModel(SourceModel):
    """An ONNX file: reference through ONNX Runtime; TFLite through onnx2tf (optional)."""

    kind = "onnx"

    def __init__(self, path: Path, options: ConvertOptions) -> None:
        from edge_fer.backends import BackendOptions, open_backend

        self._backend = open_backend(path, BackendOptions(options.num_threads, "cpu"))
        try:
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            graph_input = model.graph.input[0]
            self.input_name = graph_input.name
            self.input_shape = [d.dim_value or -1 for d in graph_input.type.tensor_type.shape.dim]
            out_dims = [d.dim_value or None for d in model.graph.output[0].type.tensor_type.shape.dim]
            spec = self._backend.input_spec
            shape = [None, spec.height, spec.width, spec.channels]
            meta = resolve_meta(read_model_meta(path), shape, _output_classes([None, *out_dims[1:]], path),
                                options, path, file_sha256(path))
        except BaseException:
            self._backend.close()
            raise
        super().__init__(path, meta)

    @property
    def nchw(self) -> bool:
        return len(self.input_shape) == 4 and self.input_shape[-1] != self.meta.channels

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self._backend.run(batch)

    def write_float_onnx(self, path: Path) -> None:
        shutil.copyfile(self.path, path)

    def tflite_converter(self):
        """onnx2tf -> SavedModel (batch 1: its dynamic-batch route fails on BatchNorm) -> TFLite."""
        import tensorflow as tf

        saved = self.temp_dir() / "onnx2tf"
        if not (saved / "saved_model.pb").is_file():
            try:
                import onnx2tf
            except ImportError as exc:
                raise ConversionError(f"ONNX -> TFLite needs onnx2tf ({exc}): pip install --no-deps onnx2tf "
                                      "tf-keras onnx-graphsurgeon sng4onnx sne4onnx (see docs/convert.md)") from None
            h, w = self.meta.input_size_hw
            c = self.meta.channels
            fixed = f"{self.input_name}:1,{c},{h},{w}" if self.nchw else f"{self.input_name}:1,{h},{w},{c}"
            keep = [] if self.nchw else [self.input_name]
            try:
                onnx2tf.convert(input_onnx_file_path=str(self.path), output_folder_path=str(saved),
                                overwrite_input_shape=[fixed], keep_nwc_or_nhwc_or_ndhwc_input_names=keep,
                                non_verbose=True)
            except (Exception, SystemExit) as exc:  # onnx2tf calls sys.exit on some failures
                raise ConversionError(f"onnx2tf could not convert {self.path.name}: {first_line(exc)}") from None
        return tf.lite.TFLiteConverter.from_saved_model(str(saved))

    def close(self) -> None:
        self._backend.close()
        super().close()


def open_model(options: ConvertOptions) -> SourceModel:
    path = Path(options.model_path)
    kind = source_kind(path)
    if kind == "onnx":
        return OnnxModel(path, options)
    if kind == "savedmodel":
        return SavedModelDir(path, options)
    return KerasModel(path, options)
