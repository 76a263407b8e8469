"""Files read ahead in a thread of their own (SourceOptions.read_ahead): the same frames in the
same order as a plain read, errors where they happened, and a close that never hangs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge_fer.errors import InputError, OptionsError
from edge_fer.sources.ahead import ReadAhead
from edge_fer.sources.capture import ImageSource, SourceOptions, VideoSource, open_source
from edge_fer.sources.frames import Frame, FrameSource


@pytest.mark.parametrize("read_ahead", [0, 1, 3])
@pytest.mark.parametrize("name", ["test.mp4", "justin.jpg"])
def test_same_frames_in_the_same_order(media_dir, read_ahead, name):
    kind = "video" if name.endswith(".mp4") else "image"
    with (VideoSource if kind == "video" else ImageSource)(media_dir / name) as plain:
        expected = [(i, t, f.copy()) for i, t, f in plain]
    with open_source(SourceOptions(**{kind: str(media_dir / name)}, read_ahead=read_ahead)) as source:
        assert isinstance(source, ReadAhead) == (read_ahead > 0)
        got = list(source)
        assert source.name == str(media_dir / name) and not source.live and source.decode_failures == 0
    assert [(i, t) for i, t, _ in got] == [(i, t) for i, t, _ in expected]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(got, expected))


class Failing(FrameSource):
    """Three frames, then the error a corrupt file gives."""

    name = "failing"
    closed = False

    def __iter__(self):
        for index in range(3):
            yield Frame(index, index * 10.0, np.full((4, 4, 3), index, np.uint8))
        raise InputError("video failing has no frames that decode")

    def close(self) -> None:
        self.closed = True


def test_the_sources_error_comes_out_after_its_frames():
    inner = Failing()
    seen = []
    with pytest.raises(InputError, match="no frames that decode"):
        with ReadAhead(inner, depth=2) as source:
            for frame in source:
                seen.append(frame.index)
    assert seen == [0, 1, 2] and inner.closed


class Endless(FrameSource):
    name = "endless"
    closed = False

    def __iter__(self):
        index = 0
        while True:
            yield Frame(index, float(index), np.zeros((4, 4, 3), np.uint8))
            index += 1

    def close(self) -> None:
        self.closed = True


def test_close_while_the_reader_waits_to_put_returns_and_stops_it():
    inner = Endless()
    source = ReadAhead(inner, depth=1)
    frames = iter(source)
    assert next(frames).index == 0 and next(frames).index == 1
    reader = source._thread
    done = threading.Event()
    threading.Thread(target=lambda: (source.close(), done.set()), daemon=True).start()
    assert done.wait(120), "close() did not return"
    assert not reader.is_alive() and inner.closed
    with pytest.raises(RuntimeError, match="iterated once"):
        source._thread = reader  # a second iteration of the same source
        next(iter(source))


@pytest.mark.parametrize("value", [-1, 17, True, 1.0])
def test_bad_read_ahead_is_one_line(value):
    with pytest.raises(OptionsError, match=r"SourceOptions.read_ahead=.*: expected frames 0..16"):
        SourceOptions(demo=True, read_ahead=value)
