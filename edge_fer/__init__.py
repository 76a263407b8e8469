"""edge-fer: facial expression recognition on edge devices.

Importing this package is cheap and never imports TensorFlow: the public names below load
their modules on first use.

    import edge_fer

    options = edge_fer.PipelineOptions(classifier=edge_fer.ClassifierOptions(model_path="fer.tflite"))
    with edge_fer.FerPipeline.create_from_options(options) as pipeline:
        result = pipeline.process(frame_bgr)          # -> edge_fer.FrameResult
        for face in result.faces:
            print(face.track_id, face.face.box_xywh, face.expression.label, face.expression.score)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module (relative to this package) that defines it.
_EXPORTS = {
    "FerPipeline": "pipeline",
    "PipelineOptions": "pipeline",
    "ClassifierOptions": "classifier",
    "ExpressionClassifier": "classifier",
    "DEFAULT_MODEL": "classifier",
    "DetectorOptions": "detectors",
    "create_detector": "detectors",
    "Face": "types",
    "Expression": "types",
    "TrackedFace": "types",
    "FrameResult": "types",
    "ModelMeta": "metadata",
    "read_model_meta": "metadata",
    "SourceOptions": "sources",
    "open_source": "sources",
    "Frame": "sources",
    "RunOptions": "runner",
    "RunSummary": "runner",
    "run": "runner",
    "FerServer": "serve",
    "ServeOptions": "serve",
    "draw_result": "draw",
    "EdgeFerError": "errors",
    "InputError": "errors",
    "ModelError": "errors",
    "DetectorError": "errors",
    "OptionsError": "errors",
    "ConversionError": "errors",
    "OutputError": "errors",
    "WorkerError": "errors",
    "Sink": "sinks",
    "SinkItem": "sinks",
    "AnalyzeOptions": "analyze",
    "WriteOptions": "analyze",
    "write_analysis": "analyze",
    "FaceRow": "analyze",
    "AnalysisSummary": "analyze",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_fer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
