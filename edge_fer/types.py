"""Small, frozen, self-validating result types shared by every stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

#: Landmark names, in the subject's own left/right (the subject's right eye is on the image's
#: left in an unmirrored photo), as YuNet (5 points) and BlazeFace (6 keypoints) give them.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth", "mouth_right", "mouth_left",
                  "right_ear", "left_ear")


@dataclass(frozen=True)
class Face:
    """A detected face: box in pixels of the full frame, (x, y, width, height), and, where the
    detector gives them, named landmarks in full-frame pixels (see :data:`LANDMARK_NAMES`).
    ``detector`` names the detector that found it: the classifier frames the crop for it (the
    model's framing table, see :mod:`edge_fer.align`)."""

    box_xywh: tuple[int, int, int, int]
    score: float = 1.0
    landmarks_xy: Mapping[str, tuple[float, float]] | None = None
    detector: str | None = None

    def __post_init__(self) -> None:
        if len(self.box_xywh) != 4:
            raise ValueError(f"box_xywh must have 4 values, got {self.box_xywh!r}")
        if self.box_xywh[2] <= 0 or self.box_xywh[3] <= 0:
            raise ValueError(f"box width and height must be > 0, got {self.box_xywh!r}")
        if not 0.0 <= self.score <= 1.0 + 1e-6:
            raise ValueError(f"face score must be in [0, 1], got {self.score}")
        if self.landmarks_xy is not None:
            points = {}
            for name, xy in self.landmarks_xy.items():
                if name not in LANDMARK_NAMES:
                    raise ValueError(f"unknown landmark {name!r}; expected one of {', '.join(LANDMARK_NAMES)}")
                x, y = (float(v) for v in xy)
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError(f"landmark {name!r} must be finite, got {xy!r}")
                points[name] = (x, y)
            object.__setattr__(self, "landmarks_xy", points)

    def landmarks_json(self) -> dict[str, list[float]] | None:
        """``{"right_eye": [x, y], ...}`` rounded to 0.1 px, or None without landmarks."""
        if self.landmarks_xy is None:
            return None
        return {k: [round(x, 1), round(y, 1)] for k, (x, y) in self.landmarks_xy.items()}


@dataclass(frozen=True)
class Expression:
    """A classification: the top label, its probability and every label's probability."""

    label: str
    score: float
    scores: Mapping[str, float]

    def __post_init__(self) -> None:
        if self.label not in self.scores:
            raise ValueError(f"label {self.label!r} is not one of {sorted(self.scores)}")
        if not 0.0 <= self.score <= 1.0 + 1e-6:
            raise ValueError(f"expression score must be in [0, 1], got {self.score}")


@dataclass(frozen=True)
class TrackedFace:
    """A face with its stable track id and its (time-smoothed) expression."""

    track_id: int
    face: Face
    expression: Expression

    def to_json(self) -> dict:
        """The face's ``--json`` object; ``landmarks`` only where the detector gives them."""
        out = {
            "id": self.track_id,
            "box_xywh": [int(v) for v in self.face.box_xywh],
            "expression": self.expression.label,
            "score": round(float(self.expression.score), 4),
            "scores": {k: round(float(v), 4) for k, v in self.expression.scores.items()},
        }
        landmarks = self.face.landmarks_json()
        if landmarks is not None:
            out["landmarks"] = landmarks
        return out


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline says about one frame."""

    frame_index: int
    time_ms: float
    faces: tuple[TrackedFace, ...]
    latency_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {self.frame_index}")

    def to_json(self) -> dict:
        return {
            "frame": self.frame_index,
            "time_ms": round(float(self.time_ms), 3),
            "faces": [f.to_json() for f in self.faces],
            "latency_ms": {k: round(float(v), 3) for k, v in self.latency_ms.items()},
        }
