"""Stable face ids across frames (greedy IoU matching) and per-track probability smoothing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import defaults
from .errors import OptionsError
from .types import Face


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one corner-form box (x0, y0, x1, y1) against (N, 4) of them: the one IoU of
    edge-fer (the tracker here, BlazeFace's and SSD's NMS)."""
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def corners(boxes_xywh) -> np.ndarray:
    """(N, 4) corner-form boxes from (x, y, w, h) ones."""
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def iou_xywh(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    return float(iou_one_to_many(corners(a)[0], corners(b))[0])


def drop_nested(faces: list[Face]) -> list[Face]:
    """Drop duplicate detections: a face whose centre lies inside a kept face's box (faces
    taken by score, then by size). Detectors such as Haar sometimes report one face twice,
    at two overlapping scales; two real faces never hold each other's centre."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: (f.score, f.box_xywh[2] * f.box_xywh[3]), reverse=True):
        x, y, w, h = face.box_xywh
        cx, cy = x + w / 2, y + h / 2
        if not any(kx <= cx <= kx + kw and ky <= cy <= ky + kh for kx, ky, kw, kh in (k.box_xywh for k in kept)):
            kept.append(face)
    kept_ids = {id(f) for f in kept}
    return [f for f in faces if id(f) in kept_ids]


@dataclass
class Track:
    track_id: int
    face: Face
    probs: np.ndarray | None = None
    misses: int = 0
    hits: int = 1


@dataclass
class IouTracker:
    """Match each new face to the live track it overlaps most (IoU >= ``iou_threshold``).

    ``smooth`` is the weight of the past in the exponential moving average of each track's
    probabilities (0 turns smoothing off). A track unseen for more than ``max_misses``
    detections is dropped.
    """

    iou_threshold: float = 0.3
    max_misses: int = 5
    smooth: float = defaults.SMOOTH
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise OptionsError(f"IouTracker.iou_threshold={self.iou_threshold!r}: expected 0 <= t <= 1")
        if not 0.0 <= self.smooth < 1.0:
            raise OptionsError(f"IouTracker.smooth={self.smooth!r}: expected 0 <= smooth < 1")
        if self.max_misses < 0:
            raise OptionsError(f"IouTracker.max_misses={self.max_misses!r}: expected >= 0")

    def update(self, faces: list[Face]) -> list[Track]:
        """Assign faces to tracks; returns the tracks seen in this detection, in face order."""
        face_boxes = corners([f.box_xywh for f in faces])
        pairs = sorted(((float(iou), ti, fi) for ti, t in enumerate(self.tracks) if faces
                        for fi, iou in enumerate(iou_one_to_many(corners(t.face.box_xywh)[0], face_boxes))),
                       reverse=True)
        matched: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for iou, ti, fi in pairs:
            if iou < self.iou_threshold:
                break
            if ti in used_tracks or fi in matched:
                continue
            track = self.tracks[ti]
            track.face, track.misses, track.hits = faces[fi], 0, track.hits + 1
            matched[fi] = track
            used_tracks.add(ti)
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for fi, face in enumerate(faces):
            if fi not in matched:
                track = Track(self._next_id, face)
                self._next_id += 1
                self.tracks.append(track)
                matched[fi] = track
        return [matched[i] for i in range(len(faces))]

    def live(self) -> list[Track]:
        """Tracks matched in the latest detection (carried between detections)."""
        return [t for t in self.tracks if t.misses == 0]

    def smooth_probs(self, track: Track, probs: np.ndarray) -> np.ndarray:
        if self.smooth == 0.0 or track.probs is None:
            track.probs = np.array(probs, np.float32)
        else:
            track.probs = self.smooth * track.probs + (1.0 - self.smooth) * probs
        return track.probs
