"""IoU matching, stable ids and per-track smoothing (pure logic: synthetic boxes are the input)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_fer.errors import OptionsError
from edge_fer.tracking import IouTracker, drop_nested, iou_xywh
from edge_fer.types import Face


@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (20, 20, 10, 10), 0.0),
    ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),          # touching edges
    ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),
    ((0, 0, 10, 10), (2, 2, 5, 5), 25 / 100),         # inside
    ((0, 0, 20, 10), (0, 0, 10, 20), 100 / 300),
])
def test_iou(a, b, expected):
    assert iou_xywh(a, b) == pytest.approx(expected)
    assert iou_xywh(b, a) == pytest.approx(expected)


def face(x, y, size=40):
    return Face((x, y, size, size))


def test_moving_face_keeps_its_id_and_a_far_face_gets_a_new_one():
    tracker = IouTracker()
    ids = [tracker.update([face(100 + 4 * i, 50)])[0].track_id for i in range(10)]
    assert ids == [1] * 10
    tracks = tracker.update([face(300, 50), face(140, 52)])  # a newcomer listed first
    assert [t.track_id for t in tracks] == [2, 1]            # returned in face order
    assert tracks[1].face.box_xywh == (140, 52, 40, 40)


def test_two_faces_keep_ids_whatever_order_the_detector_lists_them():
    tracker = IouTracker()
    first = tracker.update([face(0, 0), face(200, 0)])
    swapped = tracker.update([face(202, 1), face(2, 1)])
    assert [t.track_id for t in first] == [1, 2]
    assert [t.track_id for t in swapped] == [2, 1]


@pytest.mark.parametrize("misses, same_id", [(1, True), (5, True), (6, False)])
def test_a_face_missed_up_to_max_misses_keeps_its_id(misses, same_id):
    tracker = IouTracker(max_misses=5)
    tracker.update([face(100, 100)])
    for _ in range(misses):
        assert tracker.update([]) == []
        assert tracker.live() == []
    back = tracker.update([face(102, 100)])[0]
    assert (back.track_id == 1) == same_id
    assert [t.track_id for t in tracker.live()] == [back.track_id]


def test_low_overlap_is_not_a_match():
    tracker = IouTracker(iou_threshold=0.5)
    tracker.update([face(0, 0)])
    assert tracker.update([face(20, 0)])[0].track_id == 2   # IoU 1/3 < 0.5
    assert len(tracker.tracks) == 2                           # the old one is kept, missing once


def test_smoothing_is_an_exponential_moving_average_per_track():
    tracker = IouTracker(smooth=0.75)
    a, b = tracker.update([face(0, 0), face(200, 0)])
    p1, p2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(tracker.smooth_probs(a, p1), p1)             # the first is taken as is
    np.testing.assert_allclose(tracker.smooth_probs(a, p2), [0.75, 0.25])
    np.testing.assert_allclose(tracker.smooth_probs(a, p2), [0.5625, 0.4375])
    np.testing.assert_allclose(tracker.smooth_probs(b, p2), p2)             # tracks do not mix
    off = IouTracker(smooth=0.0)
    (c,) = off.update([face(0, 0)])
    off.smooth_probs(c, p1)
    np.testing.assert_allclose(off.smooth_probs(c, p2), p2)


@pytest.mark.parametrize("kwargs, message", [
    ({"iou_threshold": 1.5}, r"IouTracker.iou_threshold=1.5: expected 0 <= t <= 1"),
    ({"smooth": 1.0}, r"IouTracker.smooth=1.0: expected 0 <= smooth < 1"),
    ({"smooth": -0.1}, r"IouTracker.smooth=-0.1: expected"),
    ({"max_misses": -1}, r"IouTracker.max_misses=-1: expected >= 0"),
])
def test_bad_tracker_options(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        IouTracker(**kwargs)


@pytest.mark.parametrize("boxes, kept", [
    # Haar on woman2.mp4 frame 13: the face twice, at two scales (IoU 0.32)
    ([(216, 74, 138, 138), (248, 130, 130, 130)], [0]),
    ([(248, 130, 130, 130), (216, 74, 138, 138)], [1]),     # the larger is kept, order kept
    ([(0, 0, 50, 50), (60, 0, 50, 50), (10, 10, 20, 20)], [0, 1]),
    ([(0, 0, 50, 50), (30, 0, 50, 50)], [0, 1]),            # side by side, overlapping: both real
    ([(5, 5, 40, 40), (5, 5, 40, 40)], [0]),                # the same box twice
    ([], []),
])
def test_drop_nested_duplicates(boxes, kept):
    faces = [Face(b) for b in boxes]
    assert drop_nested(faces) == [faces[i] for i in kept]


def test_drop_nested_prefers_the_more_confident_face():
    small_sure, big_unsure = Face((20, 20, 40, 40), 0.99), Face((0, 0, 100, 100), 0.6)
    assert drop_nested([big_unsure, small_sure]) == [small_sure]
