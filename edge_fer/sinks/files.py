"""Sinks that write annotated pictures: a video file (:class:`VideoSink`) and a folder of
images (:class:`ImageFolderSink`), each written to a temporary name, checked and renamed."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..backends import quiet_native_stderr
from ..errors import OptionsError, OutputError
from ..fileio import (check_writable_folder, commit_file, output_error, partial_path, remove_stale_temps,
                      write_bytes_atomic)
from .base import SinkBase, SinkItem

#: Video file suffix -> FourCC that this OpenCV (FFmpeg backend) writes.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


def open_file_sink(path: str, source):
    """A :class:`VideoSink` for videos and cameras, an :class:`ImageFolderSink` for images."""
    if source.stills:
        return ImageFolderSink(path, {p.resolve().parent for p in source.paths})
    if not source.live and Path(path).resolve() == Path(source.name).resolve():
        raise OptionsError(f"RunOptions.save_video={str(path)!r}: would overwrite the input video")
    return VideoSink(path, source.fps or 30.0)


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise OptionsError(f"RunOptions.save_video={str(path)!r}: folder {path.parent} does not exist")


class VideoSink:
    """Writes frames to ``.<stem>.partial-<host>-<pid><suffix>`` beside ``path``
    (:func:`~edge_fer.fileio.partial_path`; the next recording removes a killed one's); the rename
    happens on a normal exit or KeyboardInterrupt, the partial file is removed on any other error."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        _check_parent(self.path)
        if self.path.exists() and not self.path.is_file():  # a folder, a FIFO: refused before the run
            raise OptionsError(f"RunOptions.save_video={str(self.path)!r}: exists and is not a file; "
                               "expected a video file (.mp4, .avi, .mkv) or a new name")
        check_writable_folder(self.path.parent, "RunOptions.save_video")
        self.fourcc = VIDEO_CODECS[self.path.suffix.lower()]
        self.fps = fps
        self.written = 0
        remove_stale_temps(self.path)
        self._tmp = partial_path(self.path)
        self._writer = None
        self._size_wh = None

    def write(self, item: SinkItem) -> bool:
        self.write_image(item.annotated_bgr)
        return True

    def write_image(self, image_bgr: np.ndarray, name: str = "") -> None:
        if self._writer is None:
            self._size_wh = (image_bgr.shape[1], image_bgr.shape[0])
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc),
                                           self.fps, self._size_wh)
            if not self._writer.isOpened():
                self._writer = None
                raise OutputError(f"cannot write video {self.path}: {self._why_not_opened()}")
        if (image_bgr.shape[1], image_bgr.shape[0]) != self._size_wh:
            image_bgr = cv2.resize(image_bgr, self._size_wh)
        with quiet_native_stderr():  # "Failed to write frame" per frame on a full disk: close() says it once
            self._writer.write(image_bgr)
        self.written += 1

    def close(self, keep: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep and self.written and self._tmp.exists():
            try:
                self._check_written()
                commit_file(self._tmp, self.path)
            except BaseException:
                self.written = 0
                self._tmp.unlink(missing_ok=True)
                raise
        else:
            self.written = 0
            self._tmp.unlink(missing_ok=True)

    def _why_not_opened(self) -> str:
        """cv2.VideoWriter says only that it did not open: a full disk, or a missing codec."""
        try:
            disk = os.statvfs(self.path.parent)
            free_bytes = disk.f_bavail * disk.f_frsize
        except OSError:
            free_bytes = None
        if free_bytes is not None and free_bytes < 1 << 20:
            return f"the disk is full ({free_bytes // 1024} KiB free)"
        return f"this OpenCV cannot encode {self.fourcc} into {self.path.suffix} (try another suffix)"

    def _check_written(self) -> None:
        """cv2.VideoWriter reports no write errors (a full disk included): reopen the file and
        count its frames before it takes the output's name."""
        with quiet_native_stderr():  # FFmpeg's "moov atom not found" for a truncated file
            capture = cv2.VideoCapture(str(self._tmp))
        try:
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
            if capture.isOpened() and frames <= 0:  # no count in the container: read them
                while capture.grab():
                    frames += 1
        finally:
            capture.release()
        if frames != self.written:
            raise OutputError(f"cannot write video {self.path}: the file reopens with {frames} of the "
                              f"{self.written} frames written (is the disk full?); nothing saved")

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep=exc_type is None or issubclass(exc_type, KeyboardInterrupt))


class ImageFolderSink(SinkBase):
    """Writes each annotated image into a folder under its source file's name, atomically."""

    def __init__(self, folder: str | Path, input_folders: set[Path]) -> None:
        self.path = Path(folder)
        if self.path.exists() and not self.path.is_dir():
            raise OptionsError(f"RunOptions.save_video={str(folder)!r}: a file; for images expected a folder")
        _check_parent(self.path)
        if self.path.resolve() in input_folders:
            raise OptionsError(f"RunOptions.save_video={str(folder)!r}: would overwrite the input images; expected another folder")
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise output_error(self.path, exc) from None
        check_writable_folder(self.path, "RunOptions.save_video")
        self.written = 0

    def write(self, item: SinkItem) -> bool:
        self.write_image(item.annotated_bgr, item.name)
        return True

    def write_image(self, image_bgr: np.ndarray, name: str) -> None:
        target = self.path / name
        ok, data = cv2.imencode(target.suffix, image_bgr)
        if not ok:
            raise OptionsError(f"cannot encode {target.name} as {target.suffix}")
        write_bytes_atomic(target, data.tobytes())
        self.written += 1
