"""Face detectors on real media (justin.jpg, no-faces.jpg, woman2.mp4) with the shared detector
files, their bad-input errors, and the offline (``--from``) path of ``fetch-detectors``."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.detectors import (DETECTOR_FILES, DETECTORS, DetectorOptions, _Closeable, create_detector)
from edge_fer.detectors import fetch as fetch_module
from edge_fer.detectors.blazeface import ssd_anchors, weighted_nms
from edge_fer.detectors.fetch import FetchOptions, fetch_detectors, file_digest
from edge_fer.errors import DetectorError, OptionsError

# justin.jpg (381x384): the face as Haar finds it at detect_width 320 (checked by eye).
JUSTIN_FACE_XYWH = (85, 81, 200, 200)
WOMAN2_FRAMES = 464
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"


def options(name: str, detector_dir, **kwargs) -> DetectorOptions:
    """Haar uses the cascade OpenCV ships, mtcnn the files shipped in the package (the shared
    folder has none); the others their files in ``detector_dir``."""
    return DetectorOptions(name, model_path=None if name in ("haar", "mtcnn") else str(detector_dir), **kwargs)


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0, min(ay1, by1) - max(a[1], b[1]))
    return w * h / float(a[2] * a[3] + b[2] * b[3] - w * h)


@pytest.fixture(scope="module")
def justin(media_dir):
    return cv2.imread(str(media_dir / "justin.jpg"))


@pytest.fixture(scope="module")
def woman2_frames(media_dir) -> list[np.ndarray]:
    """Every frame of woman2.mp4 (596x336), read once for the module."""
    capture = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == WOMAN2_FRAMES
    return frames


@pytest.mark.parametrize("name", DETECTORS)
def test_one_face_in_justin_on_the_face(name, detector_dir, justin):
    with create_detector(options(name, detector_dir)) as detector:
        faces = detector.detect(justin)
    assert len(faces) == 1, faces
    assert iou(faces[0].box_xywh, JUSTIN_FACE_XYWH) > 0.5, faces[0]
    assert 0.0 < faces[0].score <= 1.0


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_in_no_faces(name, detector_dir, media_dir):
    with create_detector(options(name, detector_dir)) as detector:
        assert detector.detect(cv2.imread(str(media_dir / "no-faces.jpg"))) == []


@pytest.mark.parametrize("name", DETECTORS)
def test_gray_frame_is_accepted(name, detector_dir, justin):
    with create_detector(options(name, detector_dir)) as detector:
        faces = detector.detect(cv2.cvtColor(justin, cv2.COLOR_BGR2GRAY))
    assert len(faces) == 1 and iou(faces[0].box_xywh, JUSTIN_FACE_XYWH) > 0.5


# The slower detectors (~25-50 ms a frame on 2 shared cores) see every 2nd frame (232 of 464).
VIDEO_STEP = {"haar": 2, "ssd": 2}


@pytest.mark.parametrize("name", DETECTORS)
def test_face_in_95_percent_of_woman2(name, detector_dir, woman2_frames):
    step = VIDEO_STEP.get(name, 1)
    with create_detector(options(name, detector_dir)) as detector:
        counts = np.array([len(detector.detect(frame)) for frame in woman2_frames[::step]])
    assert len(counts) == -(-WOMAN2_FRAMES // step)
    assert (counts >= 1).mean() >= 0.95, f"{name}: face in {(counts >= 1).mean():.1%} of frames"
    assert (counts > 1).mean() <= 0.05, f"{name}: >1 face in {(counts > 1).mean():.1%} of frames (one woman)"


@pytest.mark.parametrize("name", DETECTORS)
def test_boxes_are_full_frame_pixels_at_any_detect_width(name, detector_dir, justin, woman2_frames):
    """detect_width 0 (full size) and 320 (justin x1/1.19, woman2 x1/1.86) give the same boxes."""
    frames = (justin, woman2_frames[200])
    boxes = {}
    for width in (0, 320):
        with create_detector(options(name, detector_dir, detect_width=width)) as detector:
            boxes[width] = [[face.box_xywh for face in detector.detect(frame)] for frame in frames]
    for full, small in zip(boxes[0], boxes[320]):
        assert len(full) == len(small) == 1, boxes
        assert iou(full[0], small[0]) > 0.8, boxes
        assert all(abs(a - b) <= 0.1 * full[0][2] for a, b in zip(full[0], small[0])), boxes


@pytest.mark.parametrize("name", DETECTORS)
def test_options_limit_faces(name, detector_dir, justin):
    with create_detector(options(name, detector_dir, min_face_px=300)) as detector:
        assert detector.detect(justin) == []  # justin's face is ~200 px
    if name != "haar":  # haar has no confidence
        with create_detector(options(name, detector_dir, min_confidence=1.0)) as detector:
            assert detector.detect(justin) == []


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_is_a_context_manager(name, detector_dir, monkeypatch):
    detector = create_detector(options(name, detector_dir))
    closed = []
    monkeypatch.setattr(detector, "close", lambda: closed.append(True))
    with detector as entered:
        assert entered is detector and isinstance(detector, _Closeable)
    assert closed == [True]


def test_blazeface_anchors_and_weighted_nms():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    assert np.allclose(anchors[0], [0.5 / 16, 0.5 / 16]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[512], [0.5 / 8, 0.5 / 8]) and np.allclose(anchors[-1], [7.5 / 8, 7.5 / 8])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    merged, scores = weighted_nms(boxes, np.array([0.9, 0.6, 0.8], np.float32), 0.3)
    assert np.allclose(scores, [0.9, 0.8])
    assert np.allclose(merged[0], [0.4, 0, 10.4, 10]) and np.allclose(merged[1], boxes[2])


def _corrupt(tmp_path, detector_dir, name, bad_file):
    """A copy of ``name``'s files in tmp_path with ``bad_file`` replaced by an HTML error page."""
    for file_name in DETECTOR_FILES.get(name, ()):
        shutil.copy(detector_dir / file_name, tmp_path / file_name)
    (tmp_path / bad_file).write_bytes(HTML_PAGE)
    return str(tmp_path / bad_file) if name == "haar" else str(tmp_path)


BAD_ROWS = [
    # (detector, model_path: "shared" | "empty" | "missing" | "corrupt:<file>" | "peer:<file>"
    #  | "shared:<file>", other options, error, message part)
    ("retinaface", None, {}, DetectorError, "DetectorOptions.name='retinaface': unknown detector; expected one of haar, ssd"),
    ("ssd", "shared", {"detect_width": -1}, OptionsError, "DetectorOptions.detect_width=-1: expected >= 0"),
    ("rfb", "shared", {"num_threads": 0}, OptionsError, "DetectorOptions.num_threads=0: expected an integer from 1"),
    ("yunet", "shared", {"min_confidence": 1.5}, OptionsError, "DetectorOptions.min_confidence=1.5: expected 0 <= c <= 1"),
    *[(name, "empty", {}, DetectorError, f"detector '{name}' needs {DETECTOR_FILES[name][0]}")
      for name in DETECTOR_FILES],
    ("rfb", "missing", {}, DetectorError, "detector file not found"),
    ("haar", "missing", {}, DetectorError, "Haar cascade not found"),
    ("ssd", "corrupt:res10_300x300_ssd_iter_140000.caffemodel", {}, DetectorError, "not a loadable ssd detector file"),
    ("ssd", "corrupt:res10_300x300_ssd_deploy.prototxt", {}, DetectorError, "not a loadable ssd detector file"),
    ("yunet", "corrupt:face_detection_yunet_2023mar.onnx", {}, DetectorError, "not a loadable yunet detector file"),
    ("blazeface", "corrupt:blazeface_short_range.tflite", {}, DetectorError, "not a loadable blazeface detector"),
    ("rfb", "corrupt:ultralight_rfb_320.onnx", {}, DetectorError, "not a loadable rfb detector file"),
    ("haar", "corrupt:cascade.xml", {}, DetectorError, "not a loadable haar detector file"),
    ("rfb", "shared:face_detection_yunet_2023mar.onnx", {}, DetectorError, "not UltraFace RFB-320"),
    ("blazeface", "peer:emotion_model_quantized.tflite", {}, DetectorError, "not BlazeFace short-range"),
]


@pytest.mark.parametrize("name, where, extra, error, message", BAD_ROWS)
def test_bad_detector_input_is_a_one_line_error(name, where, extra, error, message, tmp_path, detector_dir,
                                                 request):
    if where == "shared":
        model_path = str(detector_dir)
    elif where == "empty":
        model_path = str(tmp_path)
    elif where == "missing":
        model_path = str(tmp_path / "nope.onnx")
    elif where and where.startswith("corrupt:"):
        model_path = _corrupt(tmp_path, detector_dir, name, where.split(":", 1)[1])
    elif where and where.startswith("shared:"):
        model_path = str(detector_dir / where.split(":", 1)[1])
    elif where and where.startswith("peer:"):
        model_path = str(request.getfixturevalue("peer_dir") / where.split(":", 1)[1])
    else:
        model_path = None
    with pytest.raises(error) as caught:
        create_detector(DetectorOptions(name, model_path=model_path, **extra))
    text = str(caught.value)
    assert message in text and "\n" not in text and len(text) < 400, text
    if where and where.startswith("corrupt:"):
        assert where.split(":", 1)[1] in text


# --- fetch-detectors: the offline path (--from) and the download code through file:// URLs ---


def _cli():
    from edge_fer.cli import main

    return main


def test_fetch_from_folder_then_detectors_load_from_the_cache(tmp_path, detector_dir, justin, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("EDGE_FER_DETECTORS", raising=False)
    result = CliRunner().invoke(_cli(), ["fetch-detectors", "--from", str(detector_dir)])
    assert result.exit_code == 0, result.output
    dest = cache / "edge-fer" / "detectors"
    names = [f for d in ("ssd", "rfb") for f in DETECTOR_FILES[d]]  # a bare fetch-detectors fetches what does not ship
    assert sorted(p.name for p in dest.iterdir()) == sorted(names)  # no temp files left
    for file_name in names:
        assert file_digest(dest / file_name) == file_digest(detector_dir / file_name)
        assert f"copied     {dest / file_name}" in result.output
    for name in DETECTOR_FILES:  # model_path None: found in the cache folder
        with create_detector(DetectorOptions(name)) as detector:
            assert len(detector.detect(justin)) == 1
    again = CliRunner().invoke(_cli(), ["fetch-detectors", "--from", str(detector_dir), "rfb"])
    assert again.exit_code == 0 and again.output.startswith("present"), again.output


def test_fetch_accepts_upstream_names_and_crlf_or_lf_prototxt(tmp_path, detector_dir):
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    shutil.copy(detector_dir / "ultralight_rfb_320.onnx", source / "version-RFB-320.onnx")
    shutil.copy(detector_dir / "res10_300x300_ssd_iter_140000.caffemodel", source)
    lf_text = (detector_dir / "res10_300x300_ssd_deploy.prototxt").read_bytes().replace(b"\r\n", b"\n")
    (source / "deploy.prototxt").write_bytes(lf_text)  # as the URL serves it
    fetched = fetch_detectors(FetchOptions(("rfb", "ssd"), str(dest), str(source)))
    assert [f.action for f in fetched] == ["copied"] * 3
    assert {f.path.name: f.size_bytes for f in fetched}["res10_300x300_ssd_deploy.prototxt"] == 28092
    with create_detector(DetectorOptions("ssd", model_path=str(dest))) as detector:
        assert detector.detect(np.zeros((100, 100, 3), np.uint8)) == []


def test_fetch_download_path_with_file_urls(tmp_path, detector_dir, monkeypatch):
    """The download code (urllib, streaming, pins, atomic write) on file:// URLs: no internet here."""
    remote = fetch_module.REMOTE_FILES["face_detection_yunet_2023mar.onnx"]
    good = fetch_module.RemoteFile(remote.name, (detector_dir / remote.name).as_uri(), remote.pins,
                                   remote.upstream_name)
    monkeypatch.setitem(fetch_module.REMOTE_FILES, remote.name, good)
    fetched = fetch_detectors(FetchOptions(("yunet",), str(tmp_path)))
    assert [(f.action, f.size_bytes) for f in fetched] == [("downloaded", 232589)]

    html = tmp_path / "error.html"
    html.write_bytes(HTML_PAGE)
    bad = fetch_module.RemoteFile(remote.name, html.as_uri(), remote.pins, remote.upstream_name)
    monkeypatch.setitem(fetch_module.REMOTE_FILES, remote.name, bad)
    with pytest.raises(DetectorError, match="is not the pinned face_detection_yunet_2023mar.onnx"):
        fetch_detectors(FetchOptions(("yunet",), str(tmp_path), force=True))
    assert file_digest(tmp_path / remote.name) == file_digest(detector_dir / remote.name)  # kept intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error.html", remote.name]

    gone = fetch_module.RemoteFile(remote.name, (tmp_path / "gone.onnx").as_uri(), remote.pins,
                                   remote.upstream_name)
    monkeypatch.setitem(fetch_module.REMOTE_FILES, remote.name, gone)
    with pytest.raises(DetectorError, match="download of file://.*gone.onnx failed"):
        fetch_detectors(FetchOptions(("yunet",), str(tmp_path / "new")))
    assert list((tmp_path / "new").iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["haar"], "cannot fetch detector 'haar': expected one of ssd, yunet, blazeface, rfb"),
    (["blazefast"], "cannot fetch detector 'blazefast'"),
    (["--from", "{tmp}/nowhere"], "nowhere': folder not found"),
    (["--from", "{tmp}/src", "rfb"], "ultralight_rfb_320.onnx not found in"),
    (["--from", "{tmp}/html", "yunet"], "is not the pinned face_detection_yunet_2023mar.onnx"),
    (["--from", "{tmp}/html", "--timeout", "0", "yunet"], "--timeout 0.0: expected > 0"),
])
def test_fetch_bad_input_is_a_one_line_error(args, message, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "face_detection_yunet_2023mar.onnx").write_bytes(HTML_PAGE)
    dest = tmp_path / "dest"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(_cli(), ["fetch-detectors", "--dest", str(dest), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("edge-fer: error: ") and message in result.output, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not dest.exists() or list(dest.iterdir()) == []
