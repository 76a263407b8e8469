"""Confidence a user can trust: temperature scaling and its measure, in one place.

A model's scores are softened (or sharpened) by one temperature ``T`` fitted on labelled faces
(Guo et al. 2017): ``p_T = softmax(log(p) / T)``, which keeps the ranking (top-1 never changes)
and makes "0.8" mean right about 8 times in 10. ``T`` lives in the model file's metadata
(``ModelMeta.temperature``) and every runtime applies it: :class:`~edge_fer.classifier.ExpressionClassifier`
(LiteRT, ONNX Runtime) through :func:`soften`, the web page through the same formula in
``web/static/app.js``. The measure is the expected calibration error (:func:`expected_calibration_error`).
NumPy only: the runtime imports this.
"""

from __future__ import annotations

import numpy as np

#: Confidence bins of the ECE (and of the reliability diagram).
ECE_BINS = 15
#: Smallest probability taken into a logarithm (int8 outputs are often exactly 0).
_EPS = 1e-6


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` per row (float32); ``temperature`` 1 returns ``probs``."""
    probs = np.asarray(probs, np.float32)
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, _EPS, 1.0)) / np.float32(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, true: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(true)), true], _EPS, 1.0))))


def fit_temperature(probs: np.ndarray, true: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The ``T`` in [low, high] that minimises the NLL of ``soften(probs, T)`` on these labels
    (a log-spaced grid, then a golden-section search around its best point)."""
    if not len(true):
        raise ValueError("fitting a temperature needs labelled faces")
    grid = np.geomspace(low, high, 60)
    losses = [nll(soften(probs, t), true) for t in grid]
    best = int(np.argmin(losses))
    a, b = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(soften(probs, float(np.exp(c))), true) < nll(soften(probs, float(np.exp(d))), true):
            b = d
        else:
            a = c
    return round(float(np.exp((a + b) / 2.0)), 4)


def reliability(probs: np.ndarray, true: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width confidence bin: share of faces, mean top score, accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == true
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "share": float(members.mean()) if len(true) else 0.0,
                     "confidence": float(confidence[members].mean()) if members.any() else None,
                     "accuracy": float(correct[members].mean()) if members.any() else None})
    return rows


def expected_calibration_error(probs: np.ndarray, true: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): the top score's mean gap to accuracy over ``bins`` equal-width
    confidence bins, weighted by the share of faces in each."""
    return float(sum(r["share"] * abs(r["accuracy"] - r["confidence"])
                     for r in reliability(probs, true, bins) if r["confidence"] is not None))
