"""The lean runtime installs and runs on aarch64 Linux (Jetson, other Arm boards).

* Wheels: asks PyPI, through pip, for a binary wheel of every runtime dependency in
  pyproject.toml (tools/aarch64_wheels.py; the Python x platform matrix is in docs/jetson.md).
  Skipped with the reason when PyPI cannot be reached.
* Running: tools/check_aarch64.sh runs edge-fer in Debian arm64 roots under qemu-user and
  compares with x86 (slow; needs root, qemu-user-static and binfmt_misc, else skipped with the
  reason); its comparator (tools/compare_aarch64.py) is checked here on small tables.
* Jetson CSI cameras: a ``nvarguscamerasrc`` GStreamer pipeline string is a source edge-fer
  accepts and OpenCV opens on its GStreamer backend (unopened here: no such camera).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("aarch64_wheels", REPO / "tools" / "aarch64_wheels.py")
wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheels)

DEPENDENCIES = wheels.runtime_dependencies()
NAMES = [d.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip() for d in DEPENDENCIES]


@pytest.fixture(scope="module")
def pypi():
    """Skip unless pip can reach the index (a pure-Python wheel resolves for any platform)."""
    probe = wheels.resolve("click", "3.10", wheels.PLATFORMS["jetpack6"], timeout_s=60)
    if "error" in probe:
        pytest.skip(f"PyPI unreachable: {probe['error']}")


def test_runtime_dependencies_read_from_pyproject():
    assert {"numpy", "opencv-python-headless", "ai-edge-litert", "onnxruntime"} <= set(NAMES)
    assert "tensorflow" not in NAMES  # the lean runtime


@pytest.mark.parametrize("requirement", DEPENDENCIES, ids=NAMES)
def test_aarch64_wheel_resolves_for_jetpack6(pypi, requirement):
    python, platform = "3.10", "jetpack6"
    row = wheels.resolve(requirement, python, wheels.PLATFORMS[platform])
    if row.get("not_applicable"):  # Python 3.8 only (JetPack 5's system Python): check it there
        python, platform = "3.8", "jetpack5"
        row = wheels.resolve(requirement, python, wheels.PLATFORMS[platform])
        assert not row.get("not_applicable"), f"{requirement!r} applies to neither Python 3.10 nor 3.8"
    assert "error" not in row, row["error"]
    wheel = row["wheel"]
    assert wheel.endswith(".whl") and ("aarch64" in wheel or wheel.endswith("-none-any.whl")), wheel
    cp = "cp" + python.replace(".", "")
    assert cp in wheel or "abi3" in wheel or "py3-none" in wheel, wheel


def test_platform_tags_accept_older_glibc():
    tags = wheels.platform_tags(35)
    assert tags[0] == "manylinux2014_aarch64" and "manylinux_2_28_aarch64" in tags and tags[-1].startswith("manylinux_2_35")
    assert wheels.platform_tags(17) == ["manylinux2014_aarch64", "manylinux_2_17_aarch64"]


# tools/check_aarch64.sh ------------------------------------------------------------------------
SCRIPT = REPO / "tools" / "check_aarch64.sh"
CACHE = Path(os.environ.get("EDGE_FER_AARCH64_CACHE", "/var/cache/edge-fer/aarch64"))
SUITES = os.environ.get("EDGE_FER_AARCH64_SUITES", "bookworm bullseye").split()


def why_check_cannot_run() -> str | None:
    """None where tools/check_aarch64.sh can run: root, qemu-aarch64 (or an aarch64 host),
    binfmt_misc, and each root cached or debootstrap to build it."""
    if os.geteuid() != 0:
        return "needs root (chroot and bind mounts)"
    if platform.machine() != "aarch64":
        if not Path("/usr/bin/qemu-aarch64-static").exists():
            return "no /usr/bin/qemu-aarch64-static (apt-get install qemu-user-static)"
        if not Path("/proc/sys/fs/binfmt_misc").is_dir():
            return "no /proc/sys/fs/binfmt_misc in this kernel"
    missing = [s for s in SUITES if not (CACHE / s / "usr" / "bin" / "python3").exists()]
    if missing and shutil.which("debootstrap") is None:
        return f"no cached {', '.join(missing)} root in {CACHE} and no debootstrap to build it"
    return None


@pytest.mark.slow
def test_check_aarch64_script_matches_x86(tmp_path, media_dir):
    reason = why_check_cannot_run()
    if reason:
        pytest.skip(reason)
    suites = [arg for suite in SUITES for arg in ("--suite", suite)]
    run = subprocess.run(["bash", str(SCRIPT), *suites, "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=3600, env=os.environ | {"EDGE_FER_SHARED": str(media_dir.parents[1])})
    if run.returncode == 77:
        pytest.skip(run.stderr.strip().splitlines()[-1])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for suite in SUITES:
        table = (tmp_path / f"table-{suite}.md").read_text()
        assert "MISMATCH" not in table and "| demo-haar |" in table and "| frames-haar |" in table, table


@pytest.mark.parametrize("args, message", [
    (["--suite", "buster"], "--suite must be bookworm or bullseye, got 'buster'"),
    (["--bogus"], "unknown argument: --bogus"),
])
def test_check_aarch64_script_rejects_bad_arguments(args, message):
    run = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and message in run.stderr, run.stderr


compare_spec = importlib.util.spec_from_file_location("compare_aarch64", REPO / "tools" / "compare_aarch64.py")
compare = importlib.util.module_from_spec(compare_spec)
compare_spec.loader.exec_module(compare)

FACE = {"id": 1, "box_xywh": [128, 46, 81, 81], "expression": "happy", "score": 0.8718,
        "scores": {"angry": 0.0274, "happy": 0.8718, "neutral": 0.0235}}


def write_side(out: Path, side: str, face: dict, error: str = "edge-fer: error: smooth must be in [0, 1), got 1.5") -> None:
    folder = out / side
    folder.mkdir(parents=True)
    (folder / "paths.tsv").write_text(f"/{side}/models\t/{side}/media\t/{side}/tmp\n")
    (folder / "demo-haar.out").write_text(json.dumps({"frame": 0, "faces": [face]}) + "\n")
    (folder / "bad-smooth.err").write_text(error + "\n")
    for case, rc in (("demo-haar", 0), ("bad-smooth", 2)):
        (folder / f"{case}.rc").write_text(f"{rc}\n")
    (folder / "demo-haar.err").write_text("")
    (folder / "bad-smooth.out").write_text("")


def shifted(dx: int = 0, happy: float = 0.0, expression: str = "happy") -> dict:
    box = [FACE["box_xywh"][0] + dx] + FACE["box_xywh"][1:]
    return FACE | {"box_xywh": box, "expression": expression, "scores": FACE["scores"] | {"happy": 0.8718 + happy}}


@pytest.mark.parametrize("face, error, same", [
    (FACE, None, True),
    (shifted(dx=2, happy=0.019), None, True),       # at the tolerances
    (shifted(dx=3), None, False),                   # box 3 px off
    (shifted(happy=0.03), None, False),             # a score 0.03 off
    (shifted(expression="sad"), None, False),       # another top-1
    (FACE, "edge-fer: error: smooth must be in [0, 1), got 2", False),  # another message
    (FACE, "Traceback (most recent call last):", False),
])
def test_compare_aarch64_tolerances(tmp_path, capsys, face, error, same):
    write_side(tmp_path, "x86", FACE)
    write_side(tmp_path, "aarch64-test", face, *([error] if error else []))
    cases = tmp_path / "cases.tsv"
    cases.write_text("demo-haar\trun --demo\nbad-smooth\trun --smooth 1.5\n")
    rc = compare.main([str(tmp_path), "aarch64-test", "--cases", str(cases)])
    table = capsys.readouterr().out
    assert (rc == 0) == same and ("MISMATCH" not in table) == same, table


# Jetson CSI camera: a GStreamer pipeline string --------------------------------------------------
CSI_PIPELINE = ("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! "
                "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")


def test_csi_pipeline_string_is_a_live_source_opencv_accepts():
    from edge_fer.sources import capture
    from edge_fer.errors import InputError

    options = capture.SourceOptions(video=CSI_PIPELINE)
    assert options.kind == "video" and options.live and capture.is_gstreamer_pipeline(CSI_PIPELINE)
    assert not capture.is_gstreamer_pipeline("clip.mp4") and not capture.is_gstreamer_pipeline("rtsp://cam/1")
    # No CSI camera (nor nvarguscamerasrc) here: OpenCV returns an unopened capture, no crash.
    opened = cv2.VideoCapture(CSI_PIPELINE, cv2.CAP_GSTREAMER)
    try:
        assert not opened.isOpened()
    finally:
        opened.release()
    with pytest.raises(InputError, match="cannot open the GStreamer pipeline"):
        capture.open_source(options)


@pytest.mark.parametrize("face, same", [
    (shifted(happy=0.03, expression="sad"), True),   # decoded pixels differ: scores are not required
    (shifted(dx=3), False),                           # boxes still are
])
def test_compare_aarch64_video_rows_require_boxes_only(tmp_path, capsys, face, same):
    write_side(tmp_path, "x86", FACE)
    write_side(tmp_path, "aarch64-test", face)
    for side in ("x86", "aarch64-test"):
        for suffix in (".out", ".err", ".rc"):
            (tmp_path / side / f"demo-haar{suffix}").rename(tmp_path / side / f"video-haar{suffix}")
    cases = tmp_path / "cases.tsv"
    cases.write_text("video-haar\trun --video v.mp4\n")
    rc = compare.main([str(tmp_path), "aarch64-test", "--cases", str(cases)])
    table = capsys.readouterr().out
    assert (rc == 0) == same, table
    assert ("not required" in table) == same, table


@pytest.mark.parametrize("python, expected", [
    ("3.8", ["numpy>=1.21", "tflite-runtime>=2.13"]),
    ("3.10", ["numpy>=1.21", "ai-edge-litert>=1.2"]),
])
def test_install_check_evaluates_the_wheels_markers_for_the_target_python(tmp_path, python, expected):
    import zipfile

    wheel = tmp_path / "edge_fer-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("edge_fer-0.1.0.dist-info/METADATA", "\n".join([
            "Metadata-Version: 2.1", "Name: edge-fer", "Version: 0.1.0",
            "Requires-Dist: numpy>=1.21",
            "Requires-Dist: ai-edge-litert>=1.2; python_version >= \"3.9\"",
            "Requires-Dist: tflite-runtime>=2.13; python_version < \"3.9\"",
            "Requires-Dist: pytest>=7.4; extra == \"test\"", ""]))
    assert wheels.wheel_requirements(wheel, python) == ("edge-fer==0.1.0", expected)
