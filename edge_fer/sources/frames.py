"""What every frame source yields and is: :class:`Frame`, :class:`FrameSource`, and the one
quiet way to open an OpenCV capture. Sources themselves: :mod:`edge_fer.capture` (files, and
the :func:`~edge_fer.capture.open_source` front door) and :mod:`edge_fer.live` (cameras, streams).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import cv2
import numpy as np

from ..backends import quiet_native_stderr


class Frame(NamedTuple):
    """One frame: unpacks as ``frame_index, time_ms, frame_bgr``."""

    index: int
    time_ms: float
    frame_bgr: np.ndarray


class FrameSource:
    """Iterate to get :class:`Frame` s; close (or use ``with``) to release the source."""

    name: str = ""
    live: bool = False     # frames are dropped when the consumer is slower than the source
    stills: bool = False   # independent images: no time relation between frames
    fps: float | None = None
    decode_failures: int = 0

    @property
    def dropped(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_capture(target: int | str, decode_threads: int = 0) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` with what OpenCV and FFmpeg print while it opens hidden (V4L2
    warnings, "Connection refused"): the InputError that follows says what failed, in one line.
    ``decode_threads``: the decoder's threads (0: the backend's choice); a backend that takes no
    such setting opens the target without it."""
    with quiet_native_stderr():
        if decode_threads:
            capture = cv2.VideoCapture(target, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, decode_threads])
            if capture.isOpened():
                return capture
            capture.release()
        return cv2.VideoCapture(target)
