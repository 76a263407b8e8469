"""The video decoder's own threads (SourceOptions.decode_threads): the setting reaches FFmpeg,
the frames are the same whatever it is, and a bad value is a one-line OptionsError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_fer import defaults
from edge_fer.errors import OptionsError
from edge_fer.sources.capture import SourceOptions, VideoSource, open_source


@pytest.mark.parametrize("name", ["woman2.mp4", "test.mp4"])
def test_same_frames_with_any_number_of_decoding_threads(media_dir, name):
    runs = {}
    for threads in (0, 1, 2):
        with open_source(SourceOptions(video=str(media_dir / name), read_ahead=0, decode_threads=threads)) as source:
            assert isinstance(source, VideoSource)
            if threads:  # 0 leaves FFmpeg its own choice (one per core)
                assert source._capture.get(cv2.CAP_PROP_N_THREADS) == threads
            runs[threads] = [(i, t, f.copy()) for i, t, f in source]
    first = runs[0]
    assert len(first) > 100
    for threads in (1, 2):
        assert [(i, t) for i, t, _ in runs[threads]] == [(i, t) for i, t, _ in first]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(runs[threads], first)), threads


def test_files_decode_in_the_default_number_of_threads(media_dir):
    with open_source(SourceOptions(video=str(media_dir / "test.mp4"), read_ahead=0)) as source:
        assert source._capture.get(cv2.CAP_PROP_N_THREADS) == defaults.DECODE_THREADS == 1


@pytest.mark.parametrize("value", [-1, 17, True, 1.0, "2"])
def test_bad_decode_threads_is_one_line(value):
    with pytest.raises(OptionsError, match=r"^SourceOptions.decode_threads=.*: expected threads 0..16 \(0: FFmpeg's choice\)$"):
        SourceOptions(demo=True, decode_threads=value)
