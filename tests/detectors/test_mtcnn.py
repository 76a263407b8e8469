"""MTCNN's own steps (the pyramid, PyTorch's area resize, both suppressions, squaring,
crops) and its shipped files; the
detector itself runs in test_detectors.py's and test_align.py's parametrized tests."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_fer.detectors import DetectorOptions, create_detector
from edge_fer.detectors.mtcnn import NETS, area_resize, crops, integral_image, nms, pyramid_scales, square
from edge_fer.detectors.registry import DETECTOR_FILES
from edge_fer.detectors.shipped import MANIFEST, MODELS_DIR, shipped_files
from edge_fer.errors import DetectorError


def test_pyramid_covers_faces_from_the_smallest_up():
    # 100 px: 12/20 = 0.6 first, then x0.709 while the short side stays >= 12 px
    scales = pyramid_scales(100, 150, 20)
    assert scales == pytest.approx([0.6 * 0.709 ** k for k in range(5)])
    assert min(100, 150) * scales[-1] >= 12 > min(100, 150) * scales[-1] * 0.709
    assert pyramid_scales(100, 150, 40)[0] == pytest.approx(0.3)
    assert pyramid_scales(20, 30, 20) == [0.6] and pyramid_scales(19, 30, 20) == []  # 12 px at least


@pytest.mark.parametrize("method, kept", [
    # B overlaps A by IoU 0.82 (suppressed at 0.5), C is inside A (IoU 0.25, but all of C: "min" drops it)
    ("union", [0, 2, 3]),
    ("min", [0, 3]),
])
def test_nms_by_union_or_by_the_smaller_box(method, kept):
    corners = np.array([[0, 0, 100, 100], [10, 0, 110, 100], [25, 25, 75, 75], [300, 300, 340, 340]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(corners, scores, 0.5, method).tolist() == kept


def test_nms_keeps_the_best_first_whatever_the_input_order():
    corners = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(corners, np.array([0.2, 0.9, 0.5], np.float32), 0.3).tolist() == [1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).tolist() == []


def test_square_keeps_the_centre_and_takes_the_longer_side():
    out = square(np.array([[10, 20, 50, 100]], np.float32))[0]
    assert out.tolist() == [-10, 20, 70, 100]


def adaptive_average(image: np.ndarray, size_hw) -> np.ndarray:
    """PyTorch's adaptive average pooling written out cell by cell (its definition)."""
    (h, w), (m, k) = image.shape[:2], size_hw
    out = np.zeros((m, k, image.shape[2]))
    for i in range(m):
        for j in range(k):
            y0, y1 = (i * h) // m, -((-(i + 1) * h) // m)
            x0, x1 = (j * w) // k, -((-(j + 1) * w) // k)
            out[i, j] = image[y0:y1, x0:x1].mean(axis=(0, 1))
    return out


@pytest.mark.parametrize("region_yyxx, size_hw", [
    ((0, 60, 0, 80), (30, 40)),     # halving: OpenCV's INTER_AREA gives the same
    ((0, 60, 0, 80), (43, 57)),     # a pyramid step (0.709...)
    ((5, 29, 7, 19), (24, 24)),     # a crop upscaled to R-Net's input
    ((10, 59, 3, 80), (48, 48)),
])
def test_area_resize_is_pytorchs_adaptive_average(region_yyxx, size_hw):
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    y0, y1, x0, x1 = region_yyxx
    got = area_resize(integral_image(rgb), region_yyxx, size_hw)
    assert got.dtype == np.float32 and got.shape == (*size_hw, 3)
    np.testing.assert_allclose(got, adaptive_average(rgb[y0:y1, x0:x1].astype(np.float64), size_hw), atol=1e-4)
    if size_hw == (30, 40):
        np.testing.assert_allclose(got, cv2.resize(rgb.astype(np.float32), (40, 30), interpolation=cv2.INTER_AREA),
                                   atol=1e-3)


def test_crops_skip_boxes_without_pixels_and_clip_the_rest():
    rgb = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    corners = np.array([[-10, -10, 30, 30], [100, 100, 140, 140], [70.7, 50.2, 90.0, 75.0]], np.float32)
    patches, valid = crops(integral_image(rgb), corners, 24)
    assert valid.tolist() == [True, False, True] and patches.shape == (2, 24, 24, 3)
    # the first box is clipped to the frame: rows and columns 0..29
    np.testing.assert_allclose(patches[0], adaptive_average(rgb[0:30, 0:30].astype(np.float64), (24, 24)), atol=1e-4)


def test_the_three_nets_ship_in_the_package_with_their_manifest_entries():
    entries = [e for e in json.loads(MANIFEST.read_text())["files"] if e["detector"] == "mtcnn"]
    assert [e["file"] for e in entries] == list(DETECTOR_FILES["mtcnn"])
    assert all(e["license"] == "MIT" and (MODELS_DIR / e["license_file"]).is_file() for e in entries)
    assert [p.name for p in shipped_files("mtcnn")] == [f"mtcnn_{net}.onnx" for net in NETS]


def test_a_folder_without_the_three_nets_is_a_one_line_error(tmp_path):
    (tmp_path / "mtcnn_pnet.onnx").write_bytes(b"not onnx")
    with pytest.raises(DetectorError, match=r"detector 'mtcnn' needs mtcnn_pnet.onnx \+ mtcnn_rnet.onnx"):
        create_detector(DetectorOptions("mtcnn", model_path=str(tmp_path)))


def test_nets_swapped_in_a_folder_are_named(tmp_path):
    for name, source in zip(DETECTOR_FILES["mtcnn"], ("mtcnn_onet.onnx", "mtcnn_rnet.onnx", "mtcnn_pnet.onnx")):
        (tmp_path / name).write_bytes((MODELS_DIR / source).read_bytes())
    with pytest.raises(DetectorError, match=r"mtcnn_pnet.onnx: not MTCNN's pnet: expected input \[N, 3, H, W\]"):
        create_detector(DetectorOptions("mtcnn", model_path=str(tmp_path)))
