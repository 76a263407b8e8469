"""The one table of face detectors: name -> wrapper class, the files it needs, their licence,
whether it gives landmarks (and so aligned framing). Everything that lists detectors (the
CLI's choices, ``fetch-detectors``, ``doctor``, ``bench``, ``calibrate-framing``) reads it.

Adding a detector: one new module here with its wrapper class (``detect(frame_bgr) ->
list[Face]``, ``close()``, a context manager), and one line below. Pure Python: the CLI imports
it without NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorSpec:
    """``module``/``class_name``: the wrapper in this package; ``files``: what it loads that does
    not come with OpenCV (looked up by :func:`~edge_fer.detectors.find_detector_files`)."""

    name: str
    module: str
    class_name: str
    files: tuple[str, ...]
    licence: str
    landmarks: bool


REGISTRY: dict[str, DetectorSpec] = {spec.name: spec for spec in (
    DetectorSpec("haar", "haar", "HaarDetector", (), "BSD-3-Clause (OpenCV's cascade)", False),
    DetectorSpec("ssd", "ssd", "SsdDetector",
                 ("res10_300x300_ssd_iter_140000.caffemodel", "res10_300x300_ssd_deploy.prototxt"),
                 "none stated for the weights (not shipped)", False),
    DetectorSpec("yunet", "yunet", "YuNetDetector", ("face_detection_yunet_2023mar.onnx",), "MIT", True),
    DetectorSpec("blazeface", "blazeface", "BlazeFaceDetector", ("blazeface_short_range.tflite",),
                 "Apache-2.0", True),
    DetectorSpec("rfb", "rfb", "RfbDetector", ("ultralight_rfb_320.onnx",), "MIT", False),
    DetectorSpec("mtcnn", "mtcnn", "MtcnnDetector", ("mtcnn_pnet.onnx", "mtcnn_rnet.onnx", "mtcnn_onet.onnx"),
                 "MIT (facenet-pytorch's weights)", True),
)}

#: Detector names, in the registry's order.
DETECTORS = tuple(REGISTRY)
#: Files each detector needs that do not come with OpenCV.
DETECTOR_FILES = {name: spec.files for name, spec in REGISTRY.items() if spec.files}
