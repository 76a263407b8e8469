"""``edge-fer run`` end to end on real media, its outputs, and every kind of bad input.

Most runs use the `fer` package's TFLite (no edge-fer metadata, so labels and scaling are passed
as options, and no framing table: the warning is filtered where the output is compared line by
line); one runs the shipped default model, which has its framing table. Malformed files are made
in tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from edge_fer.sources import capture
from edge_fer.sources.capture import SourceOptions
from edge_fer.classifier import DEFAULT_MODEL, ClassifierOptions
from edge_fer.cli import main
from edge_fer.commands.run import run_command
from edge_fer.detectors import DetectorOptions
from edge_fer.draw import DisplayUnavailable, color_for, draw_result, open_window
from edge_fer.metadata import FER2013_LABELS, NO_FRAMING
from edge_fer.pipeline import STAGES, FerPipeline, PipelineOptions
from edge_fer.runner import RunOptions, run

PEER_MODEL = "emotion_model_quantized.tflite"
FACE_KEYS = {"id", "box_xywh", "expression", "score", "scores"}
#: What run says at start for the peer's model, which has no framing table.
PEER_NO_FRAMING = f"edge-fer: warning: {PEER_MODEL}: {NO_FRAMING}"


def without_framing_warning(stderr: str) -> list[str]:
    """stderr's lines less run's framing warning (the peer model gets one; tested on its own)."""
    return [line for line in stderr.splitlines() if line != PEER_NO_FRAMING]


@pytest.fixture(scope="module")
def cli():
    return main


@pytest.fixture(scope="module")
def model_args(peer_dir) -> list[str]:
    return ["--model", str(peer_dir / PEER_MODEL), "--labels", "fer2013",
            "--input-scale", "0.00784313725", "--input-offset", "-1", "--threads", "1"]


@pytest.fixture(scope="module")
def classifier_options(peer_dir) -> ClassifierOptions:
    return ClassifierOptions(peer_dir / PEER_MODEL, num_threads=1, labels=FER2013_LABELS,
                             scale=2 / 255, offset=-1.0)


def invoke(cli, *args):
    return CliRunner().invoke(cli, ["run", *map(str, args)])


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


class FakeCamera:
    """A camera that is not plugged in (there is none here); or, with ``frames``, one that
    delivers them at about 100 fps."""

    def __init__(self, frames=None) -> None:
        self.frames = list(frames or [])
        self.released = False

    def isOpened(self) -> bool:
        return bool(self.frames) and not self.released

    def read(self):
        time.sleep(0.01)
        if not self.frames or self.released:
            return False, None
        self.frames.append(self.frames.pop(0))
        return True, self.frames[-1].copy()

    def get(self, prop) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


@pytest.fixture
def no_camera(monkeypatch):
    """Camera indexes never open (deterministic whatever devices this machine has)."""
    real = capture.open_capture
    monkeypatch.setattr(capture, "open_capture", lambda t, *rest: FakeCamera() if isinstance(t, int) else real(t, *rest))


def make_onnx_with_vector_input(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "not_an_image",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def empty_avi(path: Path) -> Path:
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48)).release()
    return path


# One table: what the user typed (a function of the data folders) -> exit code and the line.
# ``m`` = media folder, ``p`` = the peer model, ``d`` = detector files, ``t`` = tmp_path.
CASES = [
    ("justin", lambda m, p, d, t: ["--image", m / "justin.jpg"], 0, r"^justin\.jpg: #1 happy 0\.\d\d at \[\d+, \d+, \d+, \d+\]$"),
    ("no faces", lambda m, p, d, t: ["--image", m / "no-faces.jpg"], 0, r"^no-faces\.jpg: no faces$"),
    ("demo", lambda m, p, d, t: ["--demo"], 0, r"^astronaut\.jpg: #1 \w+ [01]\.\d\d at \["),
    ("yunet", lambda m, p, d, t: ["--image", m / "justin.jpg", "--detector", "yunet", "--detector-model", d], 0,
     r"^justin\.jpg: #1 happy"),
    ("missing image", lambda m, p, d, t: ["--image", t / "nope.jpg"], 2, r"image not found: .*nope\.jpg"),
    ("unreadable image", lambda m, p, d, t: ["--image", make_file(t / "x.jpg", b"text")], 2,
     r"cannot read image .*x\.jpg: not an image or an unsupported format"),
    ("empty image folder", lambda m, p, d, t: ["--image", t], 2, r"no images \(\.jpg.*\) in folder"),
    ("missing video", lambda m, p, d, t: ["--video", t / "nope.mp4"], 2, r"video file not found: .*nope\.mp4"),
    ("unreadable video", lambda m, p, d, t: ["--video", make_file(t / "x.mp4", b"text")], 2,
     r"cannot open video .*x\.mp4: not a video or an unsupported codec"),
    ("video without frames", lambda m, p, d, t: ["--video", empty_avi(t / "e.avi")], 2,
     r"video .*e\.avi has no frames that decode"),
    ("stream does not open", lambda m, p, d, t: ["--video", "http://127.0.0.1:9/none.mjpg"], 2,
     r"cannot open stream http://127\.0\.0\.1:9/none\.mjpg"),
    ("camera does not open", lambda m, p, d, t: ["--camera", "7"], 2, r"camera index 7 did not open"),
    ("no source, no camera: the sample", lambda m, p, d, t: [], 0, r"^astronaut\.jpg: #1 \w+ [01]\.\d\d at \["),
    ("two sources", lambda m, p, d, t: ["--demo", "--camera", "0"], 2, r"expected one source, got --camera and --demo"),
    ("missing model", lambda m, p, d, t: ["--demo", "--model", t / "m.tflite"], 2, r"model file not found: .*m\.tflite"),
    ("empty model", lambda m, p, d, t: ["--demo", "--model", make_file(t / "m.tflite", b"")], 2,
     r"model file is empty"),
    ("truncated model", lambda m, p, d, t: ["--demo", "--model", make_file(t / "m.tflite", p.read_bytes()[:40000])], 2,
     r"m\.tflite: not a loadable TFLite model"),
    ("text named .tflite", lambda m, p, d, t: ["--demo", "--model", make_file(t / "x.tflite", b"hello")], 2,
     r"x\.tflite: not a loadable TFLite model"),
    ("text named .onnx", lambda m, p, d, t: ["--demo", "--model", make_file(t / "x.onnx", b"hello")], 2,
     r"x\.onnx: not a loadable ONNX model"),
    ("non-image onnx input", lambda m, p, d, t: ["--demo", "--model", make_onnx_with_vector_input(t / "v.onnx")], 2,
     r"v\.onnx: model input shape \[1, 10\] is not an image batch"),
    ("unknown model suffix", lambda m, p, d, t: ["--demo", "--model", make_file(t / "m.pb", b"x")], 2,
     r"unsupported model file 'm\.pb': expected one of"),
    ("unknown detector", lambda m, p, d, t: ["--demo", "--detector", "retinaface"], 2,
     r"unknown detector 'retinaface'; expected one of haar, ssd, yunet, blazeface, rfb, mtcnn"),
    ("missing haar file", lambda m, p, d, t: ["--demo", "--detector", "haar", "--detector-model", t / "cascade.xml"], 2,
     r"Haar cascade not found: .*cascade\.xml"),
    ("missing detector file", lambda m, p, d, t: ["--demo", "--detector", "ssd", "--detector-model", t / "none"], 2,
     r"detector file not found: .*none"),
    ("detector files not installed", lambda m, p, d, t: ["--demo", "--detector", "rfb"], 2,
     r"detector 'rfb' needs ultralight_rfb_320\.onnx: put them in .*--detector-model"),
    ("bad smooth", lambda m, p, d, t: ["--demo", "--smooth", "1.5"], 2, r"--smooth 1\.5: expected 0 <= smooth < 1"),
    ("bad device", lambda m, p, d, t: ["--demo", "--device", "gpu"], 2, r"unknown device 'gpu'; expected one of auto, cpu, cuda, tensorrt"),
    ("bad labels", lambda m, p, d, t: ["--demo", "--labels", "happy"], 2, r"--labels 'happy': expected a preset"),
    ("repeated labels", lambda m, p, d, t: ["--demo", "--labels", "a,b,a,c,d,e,f"], 2,
     r"--labels 'a,b,a,c,d,e,f': 'a' named twice: expected each label once"),
    ("bad max frames", lambda m, p, d, t: ["--demo", "--max-frames", "0"], 2, r"--max-frames 0: expected >= 1"),
    ("bad video suffix", lambda m, p, d, t: ["--video", m / "test.mp4", "--save-video", t / "o.gif"], 2,
     r"--save-video '.*o\.gif': expected a file ending in \.mp4, \.avi, \.mkv"),
    ("save video over a folder", lambda m, p, d, t: (t / "rec.mp4").mkdir() or ["--video", m / "test.mp4",
     "--save-video", t / "rec.mp4"], 2, r"--save-video '.*rec\.mp4': exists and is not a file; expected a video file"),
    ("save over input images", lambda m, p, d, t: ["--image", m / "justin.jpg", "--save-video", m], 2,
     r"would overwrite the input images"),
]


@pytest.mark.parametrize("args, code, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_run_table(cli, model_args, media_dir, peer_dir, detector_dir, tmp_path, monkeypatch, no_camera,
                   args, code, pattern):
    monkeypatch.setenv("EDGE_FER_DETECTORS", str(tmp_path / "no-detectors"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = [*model_args, "--headless", *args(media_dir, peer_dir / PEER_MODEL, detector_dir, tmp_path)]
    if "--model" in argv[len(model_args):]:  # the row's own model replaces the peer's
        argv = argv[argv.index("--threads"):]
    result = invoke(cli, *argv)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.exception is None
        (line,) = result.stdout.splitlines()
        assert re.search(pattern, line), line
        *notes, summary = without_framing_warning(result.stderr)
        assert summary.startswith("edge-fer: 1 frames in ")
        assert notes == ([] if args(media_dir, None, None, tmp_path) else  # no source: says so
                         [n for n in notes if "camera 0 did not open and no source was given" in n][:1])
    else:
        assert isinstance(result.exception, SystemExit) and result.stdout == ""
        (line,) = without_framing_warning(result.stderr)  # exactly one error line
        assert line.startswith("edge-fer: error: ")
        assert re.search(pattern, line), line


def test_run_is_registered_in_the_cli():
    assert main.get_command(click.Context(main), "run") is run_command
    assert "run" in main.list_commands(click.Context(main))


def test_click_defaults_match_the_options_dataclasses():
    defaults = {p.name: p.default for p in run_command.params}
    detector, pipeline, classifier = DetectorOptions(), PipelineOptions(), ClassifierOptions()
    assert defaults["detector"] == detector.name and defaults["detect_width"] == detector.detect_width
    assert defaults["min_face"] == detector.min_face_px
    assert (defaults["detect_every"], defaults["smooth"]) == (pipeline.detect_every, pipeline.smooth)
    assert defaults["cv_threads"] == pipeline.opencv_threads
    assert (defaults["threads"], defaults["device"]) == (classifier.num_threads, classifier.device)


# real video -----------------------------------------------------------------------------------
def check_json_frames(lines: list[dict], count: int) -> None:
    assert len(lines) == count
    assert [d["frame"] for d in lines] == list(range(count))
    for d in lines:
        assert set(d) == {"frame", "time_ms", "faces", "latency_ms"}
        assert set(d["latency_ms"]) == set(STAGES)
        (face,) = d["faces"]  # exactly one face in every frame
        assert set(face) - {"landmarks"} == FACE_KEYS and len(face["box_xywh"]) == 4  # landmarks: detectors with points
        assert list(face["scores"]) == list(FER2013_LABELS) and face["score"] == max(face["scores"].values())
    assert lines[-1]["time_ms"] == pytest.approx((count - 1) * 1000 / 29.97, abs=1)


def test_json_on_100_video_frames(cli, model_args, media_dir):
    result = invoke(cli, *model_args, "--video", media_dir / "woman2.mp4", "--headless", "--json",
                    "--max-frames", 100)
    assert result.exit_code == 0, result.output
    check_json_frames(json_lines(result.stdout), 100)
    assert "100 frames in" in result.stderr and "0 dropped, 0 failed to decode" in result.stderr


def test_installed_entry_point(model_args, media_dir):
    exe = REPO / ".venv" / "bin" / "edge-fer"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(exe), "run", *model_args, "--video", str(media_dir / "woman2.mp4"),
                           "--headless", "--json", "--max-frames", "100"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    check_json_frames(json_lines(proc.stdout), 100)
    summary, = without_framing_warning(proc.stderr)  # only the summary on stderr (and the warning)
    assert "100 frames in" in summary


def test_whole_video_one_face_one_track(classifier_options, media_dir):
    results = []
    options = RunOptions(SourceOptions(video=str(media_dir / "woman2.mp4")),
                         PipelineOptions(classifier=classifier_options), headless=True)
    summary = run(options, on_result=results.append)
    assert summary.frames == len(results) == 464 and summary.decode_failures == summary.dropped == 0
    with_face = [r for r in results if r.faces]
    ids = [f.track_id for r in results for f in r.faces]
    main_id = max(set(ids), key=ids.count)
    assert len(with_face) >= 0.95 * 464
    assert sum(any(f.track_id == main_id for f in r.faces) for r in results) >= 0.95 * 464
    assert summary.frames_with_faces == len(with_face) and summary.faces == len(ids)
    print(f"woman2: face in {len(with_face)}/464 frames, track {main_id} in {ids.count(main_id)}, "
          f"{summary.fps:.1f} fps")


def test_live_camera_frames_flow_to_json(cli, model_args, media_dir, monkeypatch):
    frames = [cv2.imread(str(media_dir / "justin.jpg"))] * 3
    cameras = []
    monkeypatch.setattr(capture, "open_capture", lambda t: cameras.append(FakeCamera(frames)) or cameras[-1])
    result = invoke(cli, *model_args, "--camera", 0, "--headless", "--json", "--max-frames", 5)
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert len(lines) == 5 and [d["frame"] for d in lines] == sorted({d["frame"] for d in lines})
    assert all(len(d["faces"]) == 1 and d["faces"][0]["id"] == 1 for d in lines)
    assert cameras[0].released


# outputs ----------------------------------------------------------------------------------------
def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_save_video(cli, model_args, media_dir, tmp_path, suffix):
    out = tmp_path / f"annotated{suffix}"
    result = invoke(cli, *model_args, "--video", media_dir / "test.mp4", "--headless", "--max-frames", 12,
                    "--save-video", out)
    assert result.exit_code == 0, result.output
    assert f"saved {out}" in result.stderr
    assert count_frames(out) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left


def test_image_folder_with_json_and_annotated_images(cli, model_args, media_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("justin.jpg", "no-faces.jpg"):
        shutil.copy(media_dir / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    out = tmp_path / "out"
    result = invoke(cli, *model_args, "--image", folder, "--headless", "--json", "--save-video", out)
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [(d["frame"], len(d["faces"])) for d in lines] == [(1, 1), (2, 0)]  # broken.jpg was 0
    assert lines[0]["faces"][0]["id"] == 1
    assert "2 frames in" in result.stderr and "1 failed to decode" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["justin.jpg", "no-faces.jpg"]
    original, annotated = cv2.imread(str(folder / "justin.jpg")), cv2.imread(str(out / "justin.jpg"))
    x, y, w, h = lines[0]["faces"][0]["box_xywh"]
    assert annotated.shape == original.shape
    assert np.abs(annotated[y + h // 2, x].astype(int) - original[y + h // 2, x]).sum() > 60  # the box edge
    assert np.abs(annotated[-1, -1].astype(int) - original[-1, -1]).sum() < 40  # far corner untouched


def test_ctrl_c_finalizes_the_video_prints_the_summary_and_exits_0(cli, model_args, media_dir, tmp_path, monkeypatch):
    out = tmp_path / "partial.mp4"
    process, calls = FerPipeline.process, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return process(self, *args, **kwargs)

    monkeypatch.setattr(FerPipeline, "process", interrupted)
    result = invoke(cli, *model_args, "--video", media_dir / "test.mp4", "--headless", "--save-video", out)
    assert result.exit_code == 0 and "edge-fer: stopped (Ctrl-C)" in result.stderr, result.output
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith("edge-fer: 5 frames in ") and "1 tracks" in summary, summary
    assert re.search(r"p50/p95 ms detect [\d.]+/[\d.]+, .*classify [\d.]+/[\d.]+, .*total", summary), summary
    assert summary.endswith(f"saved {out}"), summary
    assert count_frames(out) == 5 and sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_ctrl_c_before_the_first_frame_exits_130(cli, model_args, media_dir, tmp_path, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(FerPipeline, "process", interrupted)
    result = invoke(cli, *model_args, "--video", media_dir / "test.mp4", "--headless")
    assert result.exit_code == 130 and result.stderr.strip().endswith("edge-fer: interrupted"), result.output


def test_a_failing_run_leaves_no_video(classifier_options, media_dir, tmp_path):
    def fail(result):
        if result.frame_index == 3:
            raise RuntimeError("consumer broke")

    options = RunOptions(SourceOptions(video=str(media_dir / "test.mp4")),
                         PipelineOptions(classifier=classifier_options), headless=True,
                         save_video=str(tmp_path / "o.mp4"))
    with pytest.raises(RuntimeError, match="consumer broke"):
        run(options, on_result=fail)
    assert list(tmp_path.iterdir()) == []


def test_default_model_when_bundled(cli, media_dir):
    if not DEFAULT_MODEL.exists():
        pytest.skip(f"{DEFAULT_MODEL.name} is not bundled yet")
    result = invoke(cli, "--image", media_dir / "justin.jpg", "--headless", "--json")
    assert result.exit_code == 0, result.output
    (line,) = json_lines(result.stdout)
    assert len(line["faces"]) == 1
    assert NO_FRAMING not in result.stderr  # the shipped model has its framing table


def test_a_model_without_framing_warns_at_start(cli, model_args, media_dir):
    """The peer's model has no framing table: run says so, once, before the frames."""
    result = invoke(cli, *model_args, "--headless", "--image", media_dir / "justin.jpg")
    assert result.exit_code == 0, result.output
    warning, summary = result.stderr.splitlines()
    assert warning == PEER_NO_FRAMING and summary.startswith("edge-fer: 1 frames in ")


# display ------------------------------------------------------------------------------------------
def test_no_display_is_one_note_then_headless(cli, model_args, media_dir, monkeypatch):
    if re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        monkeypatch.setenv("DISPLAY", ":0")  # opencv-python-headless: no GUI even with a display
    else:  # a desktop OpenCV: take the display away
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = invoke(cli, *model_args, "--image", media_dir / "justin.jpg")
    assert result.exit_code == 0, result.output
    note, summary = without_framing_warning(result.stderr)
    assert note.startswith("edge-fer: note: no display (") and "running headless" in note
    assert result.stdout.startswith("justin.jpg: #1 ")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(DisplayUnavailable, match=r"no \$DISPLAY"):
            open_window()


def test_draw_result_annotates_a_copy(classifier_options, media_dir):
    frame = cv2.imread(str(media_dir / "justin.jpg"))
    before = frame.copy()
    with FerPipeline.create_from_options(PipelineOptions(classifier=classifier_options)) as pipeline:
        result = pipeline.process(frame)
    image = draw_result(frame, result, fps=12.3)
    assert np.array_equal(frame, before) and image.shape == frame.shape
    (x, y, w, h) = result.faces[0].face.box_xywh
    assert tuple(int(v) for v in image[y + h // 2, x + w]) == color_for("happy")  # right edge of the box
    assert np.abs(image[-5:, :40].astype(int) - before[-5:, :40]).sum() > 0      # the fps label
    gray = draw_result(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), result)
    assert gray.shape == frame.shape
    assert color_for("someone-else") == color_for("someone-else") != color_for("happy")
