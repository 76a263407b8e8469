"""Verification: the converted file, run exactly as ``edge-fer run`` runs it, against the source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
from edge_fer.errors import ConversionError
from edge_fer.metadata import ModelMeta

from .calibration import FaceSet, accuracy

CHUNK = 256  # faces per runtime call


@dataclass(frozen=True)
class Verification:
    faces: int
    agreement: float
    converted_accuracy: float | None
    max_prob_diff: float


def runtime_probabilities(path: Path, crops, num_threads: int = 2) -> tuple[np.ndarray, ModelMeta]:
    """Probabilities for ``crops`` through :class:`ExpressionClassifier` (the file's own metadata)."""
    with ExpressionClassifier.create_from_options(ClassifierOptions(model_path=path,
                                                                    num_threads=num_threads)) as classifier:
        probs = [classifier.predict_proba(crops[i:i + CHUNK]) for i in range(0, len(crops), CHUNK)]
        return np.concatenate(probs), classifier.meta


def verify(path: Path, faces: FaceSet, reference: np.ndarray, expected: ModelMeta,
           num_threads: int = 2) -> Verification:
    """Top-1 agreement and largest probability difference with ``reference`` (the source's
    probabilities on ``faces``); fails if the file's metadata does not read back as ``expected``."""
    probs, meta = runtime_probabilities(path, faces.crops, num_threads)
    if meta != expected:
        raise ConversionError(f"metadata read back from {path.name} differs from what was written: "
                              f"{meta.to_json_text()} != {expected.to_json_text()}")
    agreement = float((probs.argmax(axis=1) == reference.argmax(axis=1)).mean())
    return Verification(len(probs), agreement, accuracy(probs, faces.truth),
                        float(np.abs(probs - reference).max()))


def verified_on() -> str:
    """``model (flags)`` of this CPU: what the verification's int8 kernels were chosen for."""
    from edge_fer.bench.machine import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    return f"{model} ({' '.join(flags) or 'no listed features'})"
