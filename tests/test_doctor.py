"""``edge-fer doctor``: real facts from this machine, a measured recommendation, no TensorFlow."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge_fer.tflite_metadata import set_metadata_entry
from edge_fer.backends.onnx import PROVIDERS, choose_providers, provider_options
from edge_fer.cli import main
from edge_fer.commands.doctor import doctor_command
from edge_fer.doctor import DoctorOptions, recommend
from edge_fer.errors import OptionsError
from edge_fer.metadata import FER2013_LABELS, METADATA_KEY, ModelMeta

from conftest import REPO

if "doctor" not in main.commands:  # until edge_fer/commands/__init__.py lists it
    main.add_command(doctor_command)

KEYS = {"edge_fer", "python", "platform", "cpu", "packages", "runtimes", "opencv", "cameras", "benchmark",
        "recommendation", "seconds"}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, peer_dir):
    """The `fer` peer's TFLite model with edge-fer metadata: a real classifier to time."""
    meta = ModelMeta(labels=FER2013_LABELS, input_size_hw=(64, 64), color="gray", scale=2 / 255, offset=-1.0,
                     name="fer-peer")
    data = (peer_dir / "emotion_model_quantized.tflite").read_bytes()
    folder = tmp_path_factory.mktemp("models")
    (folder / "peer.tflite").write_bytes(set_metadata_entry(data, METADATA_KEY, meta.to_json_text().encode()))
    return folder


@pytest.fixture(scope="module")
def report(models_dir):
    result = CliRunner().invoke(main, ["doctor", "--json", "--models", str(models_dir)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_has_every_section(report):
    assert set(report) == KEYS
    assert 0 < report["seconds"] < 30


def test_versions_are_the_installed_ones(report):
    import onnxruntime

    assert report["runtimes"]["onnxruntime"]["version"] == onnxruntime.__version__
    assert report["runtimes"]["onnxruntime"]["providers"] == onnxruntime.get_available_providers()
    assert report["runtimes"]["litert"]["version"] == metadata.version("ai-edge-litert")
    assert report["runtimes"]["litert"]["xnnpack"] is True  # XNNPACK is LiteRT's default CPU delegate
    assert report["opencv"]["version"] == cv2.__version__
    assert report["opencv"]["threads"] == cv2.getNumThreads()
    assert report["opencv"]["haar_data"] is True
    assert report["python"]["version"] == platform.python_version()
    assert report["packages"]["numpy"] == np.__version__
    assert report["cpu"]["cores_logical"] == os.cpu_count()
    assert report["platform"]["machine"] == platform.machine()


def test_cpu_features_match_proc_cpuinfo(report):
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    flags = set(next(line for line in text.splitlines() if line.startswith(("flags", "Features"))).split(":")[1].split())
    assert report["cpu"]["features"] and set(report["cpu"]["features"]) - {"dotprod"} <= flags


def test_cameras_probed(report):
    assert [c["index"] for c in report["cameras"]] == [0, 1, 2, 3]
    for cam in report["cameras"]:
        if not os.path.exists(f"/dev/video{cam['index']}") and sys.platform.startswith("linux"):
            assert cam["opened"] is False


def test_benchmark_times_the_real_image_and_model(report):
    bench = report["benchmark"]
    haar = [r for r in bench["detectors"] if r["detector"] == "haar"]
    assert [r["threads"] for r in haar] == [1, 2]
    assert all(r["latency_ms"] > 0 and r["faces"] == 1 for r in haar)  # the astronaut's one face
    rows = [r for r in bench["models"] if r["model"] == "peer.tflite"]
    assert [r["threads"] for r in rows] == [1, 2]
    assert all(r["latency_ms"] > 0 and r["runtime"] == "litert" for r in rows)
    rec = report["recommendation"]
    assert rec["model"] == "peer.tflite" and rec["model_threads"] in (1, 2)
    assert rec["detector"] in {r["detector"] for r in bench["detectors"] if r.get("faces")}
    assert "peer.tflite" in rec["summary"]


def test_text_report(models_dir):
    result = CliRunner().invoke(main, ["doctor", "--no-bench", "--cameras", "1", "--models", str(models_dir)])
    assert result.exit_code == 0, result.output
    import onnxruntime

    assert f"onnxruntime   {onnxruntime.__version__}" in result.output
    assert "XNNPACK delegate attaches" in result.output
    assert "recommendation" not in result.output  # --no-bench


@pytest.mark.parametrize("features, hint", [(["avx2", "avx512_bf16"], True), (["avx2", "amx_bf16"], True),
                                            (["asimd", "bf16"], True), (["avx2", "avx512_vnni"], False), ([], False)])
def test_text_report_names_bfloat16_training_where_the_cpu_has_it(report, features, hint):
    from edge_fer.doctor_text import format_report

    text = format_report({**report, "cpu": {**report["cpu"], "features": features}})
    line = next(line for line in text.splitlines() if line.startswith("cpu features"))
    assert ("--precision mixed_bfloat16" in line) == hint, line


@pytest.mark.parametrize("args, message", [
    (["--models", "/no/such/folder"], "--models '/no/such/folder': expected an existing folder of models"),
    (["--cameras", "99"], "--cameras 99: expected 0..16"),
    (["--cameras", "-1"], "--cameras -1: expected 0..16"),
])
def test_bad_options_are_one_line_errors(args, message):
    result = CliRunner().invoke(main, ["doctor", "--no-bench", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_never_imports_tensorflow(models_dir):
    code = ("import sys; from edge_fer.cli import main; from edge_fer.commands.doctor import doctor_command\n"
            "main.commands.setdefault('doctor', doctor_command)\n"
            f"try: main(['doctor', '--json', '--models', {str(models_dir)!r}])\n"
            "except SystemExit as e: assert e.code in (0, None), e.code\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'mediapipe') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "HEAVY []" in run.stdout


def test_options_validate():
    with pytest.raises(OptionsError, match="DoctorOptions.budget_s=0: expected > 0"):
        DoctorOptions(budget_s=0)


@pytest.mark.parametrize("rows, detector, threads", [
    # two threads 20% faster than one: recommended
    ([("a", 1, 10.0, 1), ("a", 2, 8.0, 1)], "a", 2),
    # two threads only 5% faster: one thread leaves a core free
    ([("a", 1, 10.0, 1), ("a", 2, 9.5, 1)], "a", 1),
    # the faster detector found no face: not recommended
    ([("a", 1, 10.0, 1), ("b", 1, 2.0, 0)], "a", 1),
    ([("b", 1, 2.0, 0)], None, None),
])
def test_recommendation_rules(rows, detector, threads):
    bench = {"detectors": [{"detector": n, "threads": t, "latency_ms": ms, "faces": f} for n, t, ms, f in rows],
             "models": []}
    rec = recommend(bench)
    assert (rec["detector"], rec["detector_threads"]) == (detector, threads)
    assert rec["model"] is None and "no loadable model" in rec["summary"]


@pytest.mark.parametrize("rows, accuracy, detector", [
    # the more accurate detector wins over a faster, less accurate one
    ([("haar", 1, 1.0, 1), ("blazeface", 1, 3.0, 1)], {"haar": 0.45, "blazeface": 0.64}, "blazeface"),
    # within ACCURACY_TIE_POINTS of each other: the faster one
    ([("yunet", 1, 2.0, 1), ("blazeface", 1, 3.0, 1)], {"yunet": 0.636, "blazeface": 0.64}, "yunet"),
    # the accurate one did not find the face here: the next best that did
    ([("haar", 1, 1.0, 1), ("blazeface", 1, 3.0, 0)], {"haar": 0.45, "blazeface": 0.64}, "haar"),
])
def test_recommendation_reads_the_measured_accuracy(monkeypatch, rows, accuracy, detector):
    from edge_fer import defaults

    table = {name: {"found_share": 0.95, "accuracy_through": value / 0.95} for name, value in accuracy.items()}
    monkeypatch.setattr(defaults, "through_detector_rows", lambda: table)
    bench = {"detectors": [{"detector": n, "threads": t, "latency_ms": ms, "faces": f} for n, t, ms, f in rows],
             "models": []}
    rec = recommend(bench)
    assert rec["detector"] == detector
    # each figure with the faces it counts: found share, right among those, right of all
    assert (f"finds 95.0% of the faces and the shipped model reads {100 * accuracy[detector] / 0.95:.1f}% of those "
            f"right through its crops, {100 * accuracy[detector]:.1f}% of all faces") in rec["summary"]


def test_the_default_detector_is_the_measured_best():
    """defaults.DETECTOR agrees with the shipped table: the most accurate through its crops, or
    one within the tie margin that is cheaper (BlazeFace is the cheapest shipped detector)."""
    from edge_fer import defaults

    accuracy = defaults.detector_accuracy()
    assert accuracy, "edge_fer/models/through_detector.json is missing"
    assert accuracy[defaults.DETECTOR] >= max(accuracy.values()) - defaults.ACCURACY_TIE_POINTS / 100


@pytest.mark.parametrize("device, available, expected", [
    ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("auto", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]),
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ("cuda", ["CPUExecutionProvider"], OptionsError),
])
def test_provider_order(device, available, expected):
    if expected is OptionsError:
        with pytest.raises(OptionsError, match="needs CUDAExecutionProvider"):
            choose_providers(device, available)
    else:
        assert choose_providers(device, available) == expected


def test_tensorrt_runs_fp16_with_an_engine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    options = provider_options(PROVIDERS["tensorrt"])
    assert options["trt_fp16_enable"] == "True" and options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path / "edge-fer" / "trt")
    assert (tmp_path / "edge-fer" / "trt").is_dir()
    assert provider_options(PROVIDERS["cuda"]) == {} and provider_options(PROVIDERS["cpu"]) == {}
