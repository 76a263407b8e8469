"""Annotating frames (pure functions over a BGR image) and the optional preview window.

``draw_result(frame_bgr, result, fps)`` returns an annotated copy: a box per face in its
expression's colour, ``#id label score`` above it, and the FPS in the corner.
``open_window()`` raises :class:`DisplayUnavailable` when there is no display (a headless
OpenCV build has no GUI at all; a desktop build needs $DISPLAY or $WAYLAND_DISPLAY on Linux).
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from .types import FrameResult, TrackedFace

#: BGR colour per expression; other labels get a colour derived from their name.
COLORS_BGR = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 250),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 60),
    "neutral": (200, 200, 200),
    "contempt": (60, 100, 160),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(label: str) -> tuple[int, int, int]:
    if label in COLORS_BGR:
        return COLORS_BGR[label]
    seed = sum(ord(c) * 31 ** i for i, c in enumerate(label)) & 0xFFFFFF
    return (64 + seed % 192, 64 + (seed >> 8) % 192, 64 + (seed >> 16) % 192)


def _text_scale(image: np.ndarray) -> float:
    return max(0.4, min(image.shape[:2]) / 700.0)


def _label(image: np.ndarray, text: str, x: int, y: int, color, scale: float) -> None:
    """Text on a filled box whose bottom-left corner is (x, y), kept inside the image."""
    thickness = max(1, int(round(scale * 1.5)))
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x = min(max(0, x), max(0, image.shape[1] - w - 4))
    y = max(h + base + 2, y)
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 4, y), color, cv2.FILLED)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - base), FONT, scale, ink, thickness, cv2.LINE_AA)


def draw_face(image: np.ndarray, face: TrackedFace) -> None:
    """Draw one face's box, its landmarks (where the detector gives them) and
    ``#id label score`` on ``image`` in place."""
    x, y, w, h = (int(v) for v in face.face.box_xywh)
    color = color_for(face.expression.label)
    scale = _text_scale(image)
    cv2.rectangle(image, (x, y), (x + w, y + h), color, max(2, int(round(scale * 2))))
    draw_landmarks(image, face.face.landmarks_xy, color, radius=max(2, int(round(scale * 2.5))))
    _label(image, f"#{face.track_id} {face.expression.label} {face.expression.score:.2f}", x, y, color, scale)


def draw_landmarks(image: np.ndarray, landmarks_xy, color, radius: int = 2) -> None:
    """A dot per landmark (``{name: (x, y)}`` in image pixels), with a dark rim so it shows on
    any skin tone; nothing for None."""
    for px, py in (landmarks_xy or {}).values():
        centre = (int(round(px)), int(round(py)))
        cv2.circle(image, centre, radius + 1, (20, 20, 20), cv2.FILLED, cv2.LINE_AA)
        cv2.circle(image, centre, radius, color, cv2.FILLED, cv2.LINE_AA)


def draw_result(frame_bgr: np.ndarray, result: FrameResult, fps: float | None = None) -> np.ndarray:
    """An annotated copy of ``frame_bgr`` (gray frames come back as BGR)."""
    image = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR) if frame_bgr.ndim == 2 else frame_bgr.copy()
    for face in result.faces:
        draw_face(image, face)
    if fps is not None:
        _label(image, f"{fps:.1f} fps", 0, image.shape[0], (32, 32, 32), _text_scale(image))
    return image


class DisplayUnavailable(Exception):
    """There is no screen to show a window on; ``str()`` says why."""


class Window:
    """A preview window; ``show()`` returns False once the user pressed q/Esc or closed it."""

    def __init__(self, title: str) -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image_bgr: np.ndarray, wait_ms: int = 1) -> bool:
        """Show a frame; ``wait_ms=0`` waits for a key (for still images)."""
        cv2.imshow(self.title, image_bgr)
        key = cv2.waitKey(wait_ms) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_window(title: str = "edge-fer") -> Window:
    """A preview window, or :class:`DisplayUnavailable` saying why there cannot be one."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayUnavailable("no $DISPLAY or $WAYLAND_DISPLAY")
    try:
        return Window(title)
    except cv2.error:
        raise DisplayUnavailable("this OpenCV build has no GUI (opencv-python-headless)") from None
