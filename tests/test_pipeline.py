"""FerPipeline on real images and video with a real classifier (the `fer` package's TFLite,
which has no edge-fer metadata, so its labels and scaling are given as options)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import edge_fer
from edge_fer.sources.capture import DEMO_IMAGE
from edge_fer.classifier import ClassifierOptions, ExpressionClassifier
from edge_fer.detectors import DetectorOptions
from edge_fer.errors import DetectorError, InputError, OptionsError
from edge_fer.metadata import FER2013_LABELS
from edge_fer.pipeline import STAGES, FerPipeline, PipelineOptions


@pytest.fixture(scope="module")
def classifier_options(peer_dir) -> ClassifierOptions:
    return ClassifierOptions(peer_dir / "emotion_model_quantized.tflite", num_threads=1,
                             labels=FER2013_LABELS, scale=2 / 255, offset=-1.0)


@pytest.fixture(scope="module")
def pipeline(classifier_options):
    with FerPipeline.create_from_options(PipelineOptions(classifier=classifier_options)) as p:
        yield p


def image(media_dir, name):
    return cv2.imread(str(media_dir / name))


def video_frames(media_dir, count):
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = [cap.read()[1] for _ in range(count)]
    cap.release()
    return frames


def test_public_api_is_reachable_from_the_package():
    assert edge_fer.FerPipeline is FerPipeline and edge_fer.PipelineOptions is PipelineOptions
    assert edge_fer.DetectorOptions is DetectorOptions and edge_fer.ClassifierOptions is ClassifierOptions
    assert {"Face", "Expression", "TrackedFace", "FrameResult", "run", "open_source"} <= set(dir(edge_fer))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edge_fer.nope


@pytest.mark.parametrize("name, faces", [("justin.jpg", 1), ("no-faces.jpg", 0), ("astronaut", 1)])
def test_faces_and_expressions_on_real_images(pipeline, media_dir, name, faces):
    frame = cv2.imread(str(DEMO_IMAGE)) if name == "astronaut" else image(media_dir, name)
    pipeline.reset()
    result = pipeline.process(frame, frame_index=7, time_ms=12.5)
    assert (result.frame_index, result.time_ms) == (7, 12.5)
    assert len(result.faces) == faces
    assert set(result.latency_ms) == set(STAGES) and min(result.latency_ms.values()) >= 0
    assert result.latency_ms["total"] >= result.latency_ms["detect"]
    for tracked in result.faces:
        x, y, w, h = tracked.face.box_xywh
        assert 0 <= x and 0 <= y and x + w <= frame.shape[1] and y + h <= frame.shape[0] and w >= 40
        assert tuple(tracked.expression.scores) == FER2013_LABELS
        assert sum(tracked.expression.scores.values()) == pytest.approx(1.0, abs=1e-3)
        assert tracked.expression.score == max(tracked.expression.scores.values())
        assert tracked.track_id == 1


def test_justin_is_happy(pipeline, media_dir):
    pipeline.reset()
    (face,) = pipeline.process(image(media_dir, "justin.jpg")).faces
    assert face.expression.label == "happy" and face.expression.score > 0.5


def test_unsmoothed_scores_are_the_classifiers_own(classifier_options, media_dir):
    frame = image(media_dir, "justin.jpg")
    options = PipelineOptions(classifier=classifier_options, smooth=0.0)
    with FerPipeline.create_from_options(options) as pipeline, \
            ExpressionClassifier.create_from_options(classifier_options) as classifier:
        (face,) = pipeline.process(frame).faces
        (expected,) = classifier.classify(frame, [face.face])
    assert face.expression.scores == pytest.approx(expected.scores, abs=1e-6)


def test_reset_keeps_one_image_from_leaking_into_the_next(pipeline, media_dir):
    justin, astronaut = image(media_dir, "justin.jpg"), cv2.imread(str(DEMO_IMAGE))
    pipeline.reset()
    fresh = pipeline.process(astronaut).faces[0]
    pipeline.reset()
    pipeline.process(justin)
    pipeline.reset()
    after_reset = pipeline.process(astronaut).faces[0]
    assert after_reset.track_id == 1
    assert after_reset.expression.scores == pytest.approx(fresh.expression.scores, abs=1e-6)


def test_detect_every_carries_tracked_boxes_between_detections(classifier_options, media_dir):
    options = PipelineOptions(classifier=classifier_options, detect_every=3)
    with FerPipeline.create_from_options(options) as pipeline:
        calls = []
        detect = pipeline.detector.detect
        pipeline.detector.detect = lambda frame: calls.append(1) or detect(frame)
        results = [pipeline.process(f) for f in video_frames(media_dir, 9)]
    assert len(calls) == 3  # frames 0, 3, 6
    assert all(len(r.faces) == 1 for r in results)
    boxes = [r.faces[0].face.box_xywh for r in results]
    assert boxes[1] == boxes[2] == boxes[0] and boxes[4] == boxes[5] == boxes[3]
    assert {r.faces[0].track_id for r in results} == {1}


def test_bad_frames_and_closed_pipeline(classifier_options):
    pipeline = FerPipeline.create_from_options(PipelineOptions(classifier=classifier_options))
    for bad in (None, np.zeros((0, 0, 3), np.uint8), np.zeros((2, 2, 2, 2), np.uint8)):
        with pytest.raises(InputError, match="frame must be a non-empty HxWx3 BGR array"):
            pipeline.process(bad)
    pipeline.close()
    assert pipeline.detector is None and pipeline.classifier is None
    with pytest.raises(ValueError, match="closed"):
        pipeline.process(np.zeros((64, 64, 3), np.uint8))
    pipeline.close()  # twice is fine


def test_a_detector_that_fails_to_load_releases_the_classifier(classifier_options, monkeypatch):
    closed = []
    original = ExpressionClassifier.close
    monkeypatch.setattr(ExpressionClassifier, "close", lambda self: closed.append(1) or original(self))
    options = PipelineOptions(classifier=classifier_options,
                              detector=DetectorOptions("haar", model_path="/nonexistent/cascade.xml"))
    with pytest.raises(DetectorError, match="Haar cascade not found"):
        FerPipeline.create_from_options(options)
    assert closed == [1]


@pytest.mark.parametrize("kwargs, message", [
    ({"detect_every": 0}, r"PipelineOptions.detect_every=0: expected >= 1"),
    ({"smooth": 1.0}, r"PipelineOptions.smooth=1.0: expected 0 <= smooth < 1"),
    ({"opencv_threads": -1}, r"PipelineOptions.opencv_threads=-1: expected an integer from 0 to"),
])
def test_bad_pipeline_options(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        PipelineOptions(**kwargs)


def test_time_ms_without_a_timestamp_counts_from_the_first_frame(media_dir):
    """The API's ``time_ms`` means what ``run --json``'s does: ms from the start, not epoch time."""
    import time as _time

    import cv2

    import edge_fer

    frame = cv2.imread(str(media_dir / "justin.jpg"))
    with edge_fer.FerPipeline.create_from_options(edge_fer.PipelineOptions()) as pipeline:
        first = pipeline.process(frame)
        _time.sleep(0.05)
        second = pipeline.process(frame)
        given = pipeline.process_video(frame, 7, 1234.5)
    assert first.time_ms == 0.0 and 40.0 <= second.time_ms < 60_000.0
    assert given.time_ms == 1234.5 and given.frame_index == 7
