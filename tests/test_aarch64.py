"""The lean runtime installs on aarch64 Linux (JetPack 6: Ubuntu 22.04, glibc 2.35, Python 3.10).

Asks PyPI, through pip, for a binary wheel of every runtime dependency in pyproject.toml
(tools/aarch64_wheels.py; its full Python x platform matrix is in docs/deploy.md). Skipped
with the reason when PyPI cannot be reached.
"""

from __future__ import annotations

import importlib.util

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
