"""Convert OpenCV's res10 SSD face detector (the user's own Caffe files) to ONNX, and check it.

:func:`convert_ssd` builds the graph (:mod:`.ssd_graph`), stores the settings :mod:`.ssd` needs
(priors, variances, NMS) in the file's metadata, optionally quantizes it (ONNX Runtime's static
int8 QDQ, calibrated on real frames; the heads stay float32), and writes it atomically only after
it passed two checks: its numpy priors equal OpenCV's PriorBox output, and its faces match the
Caffe net's (same count, box IoU >= 0.9) on the built-in sample image and the calibration frames.
Needs the ``onnx`` package (``pip install edge-fer[convert]``); running the result needs only
onnxruntime.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_fer.errors import ConversionError, OptionsError
from edge_fer.fileio import atomic_path
from edge_fer.detectors import find_detector_files, load_error
from .ssd_graph import INPUT_HW, build_graph, detector_settings, parse_prototxt

log = logging.getLogger(__name__)

MATCH_IOU = 0.9
QUANT_MODES = ("int8", "none")
ONNX_NAMES = {"none": "res10_300x300_ssd.onnx", "int8": "res10_300x300_ssd_int8.onnx"}


def check_priors(net, settings: dict) -> None:
    """Our numpy priors must be cv2.dnn's PriorBox output (the same boxes in the same order)."""
    from edge_fer.detectors.ssd import ssd_priors

    net.setInput(np.zeros((1, 3, *INPUT_HW), np.float32))
    theirs = net.forward("mbox_priorbox").reshape(2, -1, 4)
    ours = ssd_priors(settings["priors"])
    if ours.shape != theirs[0].shape or np.abs(ours - theirs[0]).max() > 1e-5 \
            or not np.allclose(theirs[1], settings["variances"]):
        raise ConversionError(f"the priors computed from the prototxt do not match OpenCV's ({ours.shape} vs "
                              f"{theirs[0].shape}): not a res10-style SSD")


def box_iou(a, b) -> float:
    """IoU of two corner-form boxes (edge-fer's one IoU, :func:`edge_fer.tracking.iou_one_to_many`)."""
    from edge_fer.tracking import iou_one_to_many

    return float(iou_one_to_many(np.asarray(a, np.float64), np.asarray([b], np.float64))[0])


def match_report(caffe_faces, onnx_faces) -> float:
    """The worst IoU between each Caffe box and the ONNX box matched to it in score order (0 when
    the two find different numbers of faces); 1.0 when neither finds any."""
    if len(caffe_faces) != len(onnx_faces):
        return 0.0
    worst = 1.0
    for face in caffe_faces:
        worst = min(worst, max(box_iou(face, other) for other in onnx_faces))
    return worst


def calibration_frames(paths: tuple[str, ...], count: int) -> list[np.ndarray]:
    """About ``count`` frames spread over the videos / images / image folders in ``paths``."""
    from edge_fer.sources.capture import IMAGE_SUFFIXES, SourceOptions, open_source

    frames = []
    for path in paths:
        is_image = Path(path).is_dir() or Path(path).suffix.lower() in IMAGE_SUFFIXES
        with open_source(SourceOptions(image=path) if is_image else SourceOptions(video=path)) as source:
            frames.extend(frame for _, _, frame in source)
    if not frames:
        raise ConversionError(f"no frames in the calibration input {', '.join(paths)}")
    step = max(1, len(frames) // count)
    return frames[::step][:count]


class _FrameReader:
    """onnxruntime.quantization's CalibrationDataReader over preprocessed frames."""

    def __init__(self, frames: list[np.ndarray], input_name: str) -> None:
        from edge_fer.detectors.ssd import INPUT_SIZE, MEAN_BGR

        self._items = iter([{input_name: cv2.dnn.blobFromImage(f, 1.0, INPUT_SIZE, MEAN_BGR)} for f in frames])

    def get_next(self):
        return next(self._items, None)


def float_nodes(model) -> list[str]:
    """Nodes kept in float32: the heads (box offsets and scores need their precision; 7% of the
    multiply-adds) and everything after them, and the L2 normalization feeding the first head."""
    return [n.name for n in model.graph.node
            if "_mbox_" in n.name or n.name.startswith("conv4_3_norm") or n.name.startswith(("loc", "conf"))]


def quantize_int8(float_path: Path, out_path: Path, frames: list[np.ndarray], keep_float: list[str]) -> None:
    """Static int8 QDQ of the backbone (7-bit per-channel weights, uint8 activations:
    :func:`ort_static_int8_settings`; MinMax ranges over ``frames``); ``keep_float`` nodes stay float32."""
    from onnxruntime.quantization import CalibrationMethod, quantize_static

    from edge_fer.backends.quant import ort_static_int8_settings

    logging.disable(logging.WARNING)  # its "consider pre-processing" advice, on the root logger
    try:
        quantize_static(str(float_path), str(out_path), _FrameReader(frames, "data"),
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float,
                        **ort_static_int8_settings("uint8"))
    finally:
        logging.disable(logging.NOTSET)


@dataclass(frozen=True)
class SsdConvertOptions:
    """``model_path``: the Caffe files (a folder, or the .caffemodel with the .prototxt beside
    it); None looks in the cache folders, like the detector. ``out_dir``: where the .onnx goes
    (None: beside the Caffe files, where the detector finds it). ``quantize``: ``int8`` (static,
    calibrated on ``calibration``: videos, images or image folders; the built-in sample image
    when empty) or ``none`` (float32). ``check``: images the result must match the Caffe net on
    (box IoU >= 0.9, the same number of faces); the sample image and the calibration frames are
    always checked."""

    model_path: str | None = None
    out_dir: str | None = None
    quantize: str = "int8"
    calibration: tuple[str, ...] = ()
    calibration_frames: int = 64
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.quantize not in QUANT_MODES:
            raise OptionsError(f"SsdConvertOptions.quantize={self.quantize!r}: expected one of "
                               f"{', '.join(QUANT_MODES)}")
        if self.calibration_frames < 1:
            raise OptionsError(f"SsdConvertOptions.calibration_frames={self.calibration_frames!r}: expected >= 1")
        for path in self.calibration:
            if not Path(path).exists():
                raise OptionsError(f"calibration input not found: {path}")


@dataclass(frozen=True)
class SsdConversion:
    """The file written, and how it compared with the Caffe net on the check frames."""

    path: Path
    quantize: str
    frames_checked: int
    faces_checked: int
    worst_iou: float


def convert_ssd(options: SsdConvertOptions = SsdConvertOptions()) -> SsdConversion:
    """Build, verify and write the ONNX file of the res10 SSD (see the module docstring)."""
    try:
        import onnx
    except ImportError:
        raise ConversionError("converting the SSD needs the onnx package: pip install 'edge-fer[convert]'") from None
    from edge_fer.sources.capture import DEMO_IMAGE
    from edge_fer.detectors import DetectorOptions
    from edge_fer.detectors.ssd import METADATA_KEY, SsdDetector

    caffemodel, prototxt = find_detector_files("ssd", options.model_path)
    SsdDetector(DetectorOptions("ssd", model_path=str(caffemodel))).close()  # bad Caffe files: one line
    try:
        net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        net.enableFusion(False)
        proto = parse_prototxt(prototxt.read_text(encoding="utf-8", errors="replace"))
    except cv2.error as exc:
        raise load_error("ssd", prototxt if "TextFile" in str(exc) else caffemodel, exc) from None
    except ValueError as exc:
        raise ConversionError(f"{prototxt}: not a Caffe prototxt ({exc})") from None
    model, prior_params = build_graph(net, proto)
    loc_heads = [n.name for n in model.graph.node if n.op_type == "Conv" and n.name.endswith("_mbox_loc")]
    settings = detector_settings(net, proto, prior_params, loc_heads)
    check_priors(net, settings)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(settings)
    onnx.checker.check_model(model)

    out_dir = Path(options.out_dir) if options.out_dir else caffemodel.parent
    out_path = out_dir / ONNX_NAMES[options.quantize]
    frames = calibration_frames(options.calibration or (str(DEMO_IMAGE),), options.calibration_frames)
    with atomic_path(out_path, suffix=".onnx", make_parent=True) as tmp:
        if options.quantize == "int8":
            with tempfile.TemporaryDirectory(prefix="edge-fer-ssd-") as work:
                float_path = Path(work) / ONNX_NAMES["none"]
                onnx.save(model, str(float_path))
                quantize_int8(float_path, tmp, frames, float_nodes(model))
            quantized = onnx.load(str(tmp))
            if not any(p.key == METADATA_KEY for p in quantized.metadata_props):
                quantized.metadata_props.add().CopyFrom(entry)
            onnx.save(quantized, str(tmp))
        else:
            onnx.save(model, str(tmp))
        worst, faces = verify(caffemodel, tmp, [cv2.imread(str(DEMO_IMAGE))] + frames, options.num_threads)
    log.debug("wrote %s (%s): %d frames checked against Caffe, worst IoU %.3f", out_path, options.quantize,
             len(frames) + 1, worst)
    return SsdConversion(out_path, options.quantize, len(frames) + 1, faces, worst)


def verify(caffemodel: Path, onnx_path: Path, frames: list[np.ndarray], num_threads: int) -> tuple[float, int]:
    """Worst box IoU of the ONNX file's faces against the Caffe net's over ``frames``, and the
    number of faces compared; raises ConversionError below :data:`MATCH_IOU`."""
    from edge_fer.detectors import DetectorOptions
    from edge_fer.detectors.ssd import SsdDetector

    caffe = SsdDetector(DetectorOptions("ssd", model_path=str(caffemodel),
                                        detect_width=0, min_face_px=1))
    fast = SsdDetector(DetectorOptions("ssd", model_path=str(onnx_path), detect_width=0, min_face_px=1,
                                       num_threads=num_threads))
    worst, faces = 1.0, 0
    for index, frame in enumerate(frames):
        theirs = [corners_xyxy(f.box_xywh) for f in caffe.detect(frame)]
        ours = [corners_xyxy(f.box_xywh) for f in fast.detect(frame)]
        worst, faces = min(worst, match_report(theirs, ours)), faces + len(theirs)
        if worst < MATCH_IOU:
            raise ConversionError(f"the converted SSD does not match the Caffe net on check frame {index} "
                                  f"({len(theirs)} vs {len(ours)} faces, IoU {worst:.2f} < {MATCH_IOU}); "
                                  "not written (try SsdConvertOptions.quantize='none')")
    return worst, faces


def corners_xyxy(box_xywh) -> tuple[float, float, float, float]:
    x, y, w, h = box_xywh
    return (x, y, x + w, y + h)
