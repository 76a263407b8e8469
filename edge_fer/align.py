"""Frame each face the way the model's training faces are framed, before classification.

Three ways, chosen per face by :func:`face_to_input_transform`:

1. **Aligned** (the face has landmarks and the model's :class:`~edge_fer.metadata.Framing` has
   a template for its detector): the similarity transform (rotation, uniform scale, translation;
   least squares over the landmarks, as ``cv2.estimateAffinePartial2D`` fits without outliers)
   that puts the landmarks on the template's points in the model's input.
2. **Calibrated box** (no landmarks, but the framing has a box transform for the detector):
   the box moved and scaled onto the training frame, then scaled to the input.
3. **Plain box** (a model without framing): today's crop of the box grown by ``crop_margin``.

1 and 2 are one affine warp from the full frame straight to the model's input size, with area
pre-shrinking for large faces (no aliasing) and edge replication where the frame ends.
Coordinates are continuous with pixel *edges* at integers (a box (x, y, w, h) covers exactly
x..x+w); :func:`warp_to_input` converts to OpenCV's pixel-centre convention.
"""

from __future__ import annotations

import math
from typing import Mapping

import cv2
import numpy as np

from .metadata import Framing, ModelMeta
from .types import Face

#: Landmarks that take part in alignment (ears are unstable under head turns).
ALIGN_POINTS = ("right_eye", "left_eye", "nose", "mouth", "mouth_right", "mouth_left")


def similarity_transform(src_xy, dst_xy) -> np.ndarray:
    """The 2x3 similarity ``[[a, -b, tx], [b, a, ty]]`` mapping ``src_xy`` (N x 2) onto
    ``dst_xy`` (N x 2) in the least-squares sense (N >= 2), in closed form: with both point
    sets centred, a = sum(s . d) / sum(|s|^2), b = sum(s x d) / sum(|s|^2). Plain floats: for
    a handful of points this is several times faster than numpy."""
    src = [(float(x), float(y)) for x, y in src_xy]
    dst = [(float(x), float(y)) for x, y in dst_xy]
    n = len(src)
    sx, sy = sum(p[0] for p in src) / n, sum(p[1] for p in src) / n
    dx, dy = sum(p[0] for p in dst) / n, sum(p[1] for p in dst) / n
    dot = cross = norm = 0.0
    for (px, py), (qx, qy) in zip(src, dst):
        px, py, qx, qy = px - sx, py - sy, qx - dx, qy - dy
        dot += px * qx + py * qy
        cross += px * qy - py * qx
        norm += px * px + py * py
    if norm <= 1e-12:
        raise ValueError("landmarks coincide: no transform")
    a, b = dot / norm, cross / norm
    return np.array([[a, -b, dx - (a * sx - b * sy)], [b, a, dy - (b * sx + a * sy)]])


def template_for(framing: Framing, face: Face) -> Mapping[str, tuple[float, float]] | None:
    """The template points for this face's detector, or else the template that shares the most
    (>= 3) of the face's landmarks (a face from MTCNN or an application's own detector), or None."""
    if face.landmarks_xy is None or not framing.points:
        return None
    if face.detector in framing.points:
        return framing.points[face.detector]
    shared = {name: len(set(points) & set(face.landmarks_xy) & set(ALIGN_POINTS))
              for name, points in framing.points.items()}
    best = max(shared, key=shared.get, default=None)  # the most points in common; the first on a tie
    return framing.points[best] if best is not None and shared[best] >= 3 else None


def landmark_transform(face: Face, template: Mapping[str, tuple[float, float]],
                       size_hw: tuple[int, int]) -> np.ndarray | None:
    """Full frame -> model input, from the face's landmarks onto ``template`` (0..1 of the input)."""
    names = [n for n in ALIGN_POINTS if n in template and n in face.landmarks_xy]
    if len(names) < 2:
        return None
    h, w = size_hw
    src = [face.landmarks_xy[n] for n in names]
    dst = [(template[n][0] * w, template[n][1] * h) for n in names]
    try:
        return similarity_transform(src, dst)
    except ValueError:
        return None


def framed_box_xywh(box_xywh, transform: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The training frame (x, y, w, h) that a detector box maps onto (see ``Framing.boxes``)."""
    x, y, w, h = (float(v) for v in box_xywh)
    dx, dy, sw, sh = transform
    cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
    fw, fh = sw * w, sh * h
    return cx - fw / 2, cy - fh / 2, fw, fh


def box_transform(box_xywh, size_hw: tuple[int, int]) -> np.ndarray:
    """Full frame -> model input for an axis-aligned frame ``box_xywh`` (x, y, w, h)."""
    x, y, w, h = box_xywh
    out_h, out_w = size_hw
    sx, sy = out_w / w, out_h / h
    return np.array([[sx, 0.0, -x * sx], [0.0, sy, -y * sy]])


def face_to_input_transform(face: Face, meta: ModelMeta) -> np.ndarray | None:
    """The 2x3 full frame -> input transform for ``face`` (aligned, else calibrated box), or
    None when the model has no framing for it (then the plain box crop applies)."""
    framing = meta.framing
    if framing is None:
        return None
    template = template_for(framing, face)
    if template is not None:
        matrix = landmark_transform(face, template, meta.input_size_hw)
        if matrix is not None:
            return matrix
    transform = framing.boxes.get(face.detector or "")
    if transform is None:
        return None
    return box_transform(framed_box_xywh(face.box_xywh, transform), meta.input_size_hw)


def warp_to_input(frame_bgr: np.ndarray, matrix: np.ndarray, size_hw: tuple[int, int],
                  gray: bool = False) -> np.ndarray:
    """``frame_bgr`` through the 2x3 ``matrix`` into an image of ``size_hw`` (gray HxW where
    ``gray``, else BGR). Large faces are first shrunk by an integer factor with area averaging
    (a plain bilinear warp would alias; integer factors take OpenCV's fast path), and pixels
    beyond the frame replicate its edge."""
    out_h, out_w = size_hw
    (a, b, tx), (c, d, ty) = matrix.tolist()
    det = a * d - b * c
    scale = abs(det) ** 0.5  # input px per frame px
    factor = max(1, int(1.0 / scale)) if scale > 0 else 1  # faces smaller than the input: no shrink
    H, W = frame_bgr.shape[:2]
    # The frame region the output sees (its corners mapped back through the inverse), plus a margin.
    corners = []
    for u, v in ((0.0, 0.0), (out_w, 0.0), (0.0, out_h), (out_w, out_h)):
        u, v = u - tx, v - ty
        corners.append(((d * u - b * v) / det, (a * v - c * u) / det))
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    margin = 2 + factor
    x0, y0 = math.floor(min(xs)) - margin, math.floor(min(ys)) - margin
    x1, y1 = math.ceil(max(xs)) + margin, math.ceil(max(ys)) + margin
    if factor >= 2:  # start on the output origin's grid of the factor: no half-pixel blur there
        ox, oy = math.floor(corners[0][0]), math.floor(corners[0][1])
        x0, y0 = x0 - (x0 - ox) % factor, y0 - (y0 - oy) % factor
        x0 += factor * max(0, (-x0 + factor - 1) // factor)  # still on the grid once inside the frame
        y0 += factor * max(0, (-y0 + factor - 1) // factor)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1 - x0 < 2 * factor or y1 - y0 < 2 * factor:  # the face lies (almost) outside the frame
        x0, y0, x1, y1, factor = 0, 0, W, H, 1
    if factor >= 2:  # whole multiples of the factor, so that the shrink is exact
        x1, y1 = x0 + (x1 - x0) // factor * factor, y0 + (y1 - y0) // factor * factor
    roi = frame_bgr[y0:y1, x0:x1]
    if gray and roi.ndim == 3:
        roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
    if factor >= 2:
        roi = cv2.resize(roi, ((x1 - x0) // factor, (y1 - y0) // factor), interpolation=cv2.INTER_AREA)
    # roi px -> frame px: x = x0 + u * factor (edges exact), then the original matrix; in
    # OpenCV's pixel-centre convention: q_c = A (p_c + 0.5) + t - 0.5.
    a2, b2, c2, d2 = a * factor, b * factor, c * factor, d * factor
    t2x, t2y = a * x0 + b * y0 + tx, c * x0 + d * y0 + ty
    centred = np.array([[a2, b2, t2x + 0.5 * (a2 + b2) - 0.5], [c2, d2, t2y + 0.5 * (c2 + d2) - 0.5]])
    return cv2.warpAffine(roi, centred, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

