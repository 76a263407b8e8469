"""Frame sources: real media files, a corrupted video made from real frames, and a fake camera
(there is no camera here) to drive the latest-frame reader thread."""

from __future__ import annotations

import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from edge_fer.sources import capture
from edge_fer.sources.capture import (DEMO_IMAGE, ImageSource, LiveSource, SourceOptions, VideoSource,
                              open_source)
from edge_fer.errors import InputError, OptionsError


class FakeCapture:
    """A cv2.VideoCapture stand-in: ``frames`` good reads (each frame filled with its read
    number), then failures; ``period_s`` between reads like a camera's frame rate."""

    def __init__(self, frames: int | None = None, opened: bool = True, period_s: float = 0.002) -> None:
        self.frames, self.opened, self.period_s = frames, opened, period_s
        self.reads = 0
        self.released = False
        self.reader_threads: set[str] = set()

    def isOpened(self) -> bool:
        return self.opened and not self.released

    def read(self):
        self.reader_threads.add(threading.current_thread().name)
        time.sleep(self.period_s)
        if self.released or (self.frames is not None and self.reads >= self.frames):
            return False, None
        frame = np.full((24, 32, 3), self.reads % 256, np.uint8)
        self.reads += 1
        return True, frame

    def get(self, prop) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


class Factory:
    """Hands out the given captures in order (the first open, then each reopen)."""

    def __init__(self, *captures: FakeCapture) -> None:
        self.captures = list(captures)
        self.made: list[FakeCapture] = []

    def __call__(self, target):
        cap = self.captures.pop(0) if self.captures else FakeCapture(opened=False)
        self.made.append(cap)
        return cap


# live sources (reader thread) ----------------------------------------------------------------
def test_latest_frame_wins_and_slow_consumer_sees_gaps():
    factory = Factory(FakeCapture(period_s=0.002))
    with LiveSource(0, "fake camera", capture_factory=factory) as source:
        assert source.live and source.fps == 25.0
        seen = []
        for index, time_ms, frame_bgr in source:
            seen.append((index, time_ms, int(frame_bgr[0, 0, 0])))
            time.sleep(0.03)  # a slow pipeline
            if len(seen) == 6:
                break
        dropped = source.dropped
    indexes = [s[0] for s in seen]
    assert indexes == sorted(set(indexes)) and indexes[-1] - indexes[0] > 5  # gaps: stale frames skipped
    assert all(value == index % 256 for index, _, value in seen)  # the newest frame, not a stale copy
    assert [s[1] for s in seen] == sorted(s[1] for s in seen)
    assert dropped >= indexes[-1] - indexes[0] - 5 > 0
    assert not source.reader.alive and factory.made[0].released
    assert factory.made[0].reader_threads == {source.reader._thread.name}


class FakeClock:
    """The reader's clock and backoff pause: each pause advances the clock by what was asked,
    without sleeping, and is recorded."""

    def __init__(self) -> None:
        self.now, self.waits = 100.0, []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        return False


def test_failing_camera_is_retried_with_backoff_then_ends_with_input_error():
    factory = Factory(FakeCapture(frames=3))  # every reopen gets a camera that does not open
    clock = FakeClock()
    with LiveSource(0, "camera 0", capture_factory=factory, retry_seconds=0.4, first_backoff_s=0.02,
                    max_backoff_s=0.1, clock=clock, wait=clock.wait) as source:
        got = []
        with pytest.raises(InputError, match=r"camera 0 stopped delivering frames \(retried for 0.4 s\)"):
            for frame in source:
                got.append(frame.index)
        source.reader._thread.join(5)
        assert not source.reader.alive  # the thread ended by itself
    assert 1 <= len(got) <= 3 and got == sorted(got)
    # backoff doubles up to its cap, and the reader gives up once 0.4 s of its clock have passed
    assert clock.waits == [0.02, 0.04, 0.08, 0.1, 0.1, 0.1]
    assert source.reader.reopens == 6
    assert len(factory.made) == 1 + 6 and all(c.released for c in factory.made)


def test_camera_that_comes_back_after_a_reopen_keeps_going():
    factory = Factory(FakeCapture(frames=2), FakeCapture(opened=False), FakeCapture(frames=None))
    with LiveSource(0, "camera 0", capture_factory=factory, retry_seconds=2.0, first_backoff_s=0.01) as source:
        indexes = []
        for frame in source:
            indexes.append(frame.index)
            if len(indexes) == 5:
                break
        assert source.reader.reopens == 2
    assert indexes == sorted(indexes) and len(indexes) == 5
    assert all(c.released for c in factory.made)


def test_reader_thread_joins_when_the_consumer_fails():
    factory = Factory(FakeCapture())
    with pytest.raises(RuntimeError, match="pipeline broke"):
        with LiveSource(3, "camera 3", capture_factory=factory) as source:
            for _ in source:
                raise RuntimeError("pipeline broke")
    assert not source.reader.alive and factory.made[0].released


def test_camera_that_does_not_open_is_one_line_and_released(monkeypatch):
    closed = FakeCapture(opened=False)
    monkeypatch.setattr(capture, "open_capture", lambda target: closed)
    with pytest.raises(InputError, match="camera index 2 did not open") as info:
        open_source(SourceOptions(camera=2))
    assert closed.released and "\n" not in str(info.value)
    with open_source(SourceOptions()) as fallback:  # no source named: the built-in sample
        assert fallback.name == "demo" and len(list(fallback)) == 1


# video files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, count", [("woman2.mp4", 464), ("test.mp4", 115)])
def test_video_files_are_read_in_order_without_drops(media_dir, name, count):
    with open_source(SourceOptions(video=str(media_dir / name))) as source:
        frames = [(index, time_ms, frame.shape) for index, time_ms, frame in source]
        assert not source.live
    assert [f[0] for f in frames] == list(range(count))
    assert {f[2] for f in frames} == {(336, 596, 3)}
    assert frames[1][1] == pytest.approx(1000 / source.fps, rel=0.05)  # the stream timestamp
    assert all(b[1] > a[1] for a, b in zip(frames, frames[1:]))
    assert source.dropped == 0 and source.decode_failures == 0
    assert source._capture is None  # released


def write_mjpg(path, frames) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (frames[0].shape[1], frames[0].shape[0])) \
        if frames else cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_frames_that_fail_to_decode_are_skipped_and_counted(media_dir, tmp_path):
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    path = tmp_path / "corrupt.avi"
    write_mjpg(path, frames)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == 20
    for k in (5, 6, 12):  # wipe each JPEG's start and headers
        data[starts[k]:starts[k] + 600] = bytes(600)
    path.write_bytes(bytes(data))
    with open_source(SourceOptions(video=str(path))) as source:
        indexes = [index for index, _, _ in source]
    assert indexes == [i for i in range(20) if i not in (5, 6, 12)]
    assert source.decode_failures == 3


def test_video_read_logic_with_a_fake_capture():
    class Gappy(FakeCapture):
        def read(self):
            self.reads += 1
            if self.reads in (2, 3) or self.reads > 6:
                return False, None
            return True, np.zeros((4, 4, 3), np.uint8)

    with VideoSource(__file__, capture_factory=lambda target: Gappy(), max_gap=5) as source:
        assert [i for i, _, _ in source] == [0, 3, 4, 5]
        assert source.decode_failures == 2


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "video file not found: .*missing.mp4"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4",
     "cannot open video .*notes.mp4: not a video or an unsupported codec"),
    (lambda d: write_mjpg(d / "empty.avi", []) or d / "empty.avi", "video .*empty.avi has no frames that decode"),
    (lambda d: d, "is a folder, not a video: a folder of images is SourceOptions.image"),
])
def test_bad_videos_are_one_line_input_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        with open_source(SourceOptions(video=str(path))) as source:
            list(source)
    assert "\n" not in str(info.value)


# images -------------------------------------------------------------------------------------
def test_image_file_folder_and_demo(media_dir, tmp_path):
    with open_source(SourceOptions(image=str(media_dir / "justin.jpg"))) as source:
        frames = list(source)
    assert len(frames) == 1 and frames[0].frame_bgr.shape == (384, 381, 3) and source.stills

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b_justin.jpg", "d_no-faces.jpg"):
        shutil.copy(media_dir / name.split("_", 1)[1], folder / name)
    (folder / "a_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "c_notes.txt").write_text("ignored: not an image suffix")
    with open_source(SourceOptions(image=str(folder))) as source:
        frames = list(source)
    assert [source.paths[f.index].name for f in frames] == ["b_justin.jpg", "d_no-faces.jpg"]
    assert source.decode_failures == 1 and frames[1].frame_bgr.shape == (148, 199, 3)

    with open_source(SourceOptions(demo=True)) as source:
        frames = list(source)
    assert source.paths == [DEMO_IMAGE] and frames[0].frame_bgr.shape == (384, 384, 3)


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jpg", "image not found"),
    (lambda d: (d / "x.jpg").write_text("text") and d / "x.jpg", "cannot read image .*x.jpg: not an image"),
    (lambda d: (d / "empty.png").write_bytes(b"") or d / "empty.png", "cannot read image"),
    (lambda d: d, "no images .* in folder"),
    (lambda d: (d / "y.png").write_text("text") and d, "none of the 1 images in .* could be read"),
])
def test_bad_images_are_one_line_input_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message):
        with ImageSource(path) as source:
            list(source)


@pytest.mark.parametrize("kwargs, kind, error", [
    ({}, "camera", None),
    ({"camera": 1}, "camera", None),
    ({"video": "rtsp://cam.local/stream"}, "video", None),
    ({"image": "faces/"}, "image", None),
    ({"demo": True}, "demo", None),
    ({"camera": 0, "video": "a.mp4"}, None, "expected one source, got SourceOptions.camera and SourceOptions.video"),
    ({"image": "a.jpg", "demo": True}, None, "expected one source, got SourceOptions.image and SourceOptions.demo"),
    ({"camera": -1}, None, r"SourceOptions.camera=-1: expected a camera index >= 0"),
    ({"retry_seconds": -1}, None, r"SourceOptions.retry_seconds=-1: expected >= 0"),
])
def test_source_options(kwargs, kind, error):
    if error:
        with pytest.raises(OptionsError, match=error):
            SourceOptions(**kwargs)
        return
    options = SourceOptions(**kwargs)
    assert options.kind == kind
    assert options.defaulted == (kwargs == {})
