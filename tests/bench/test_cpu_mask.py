"""tools/as_avx2.sh: an "AVX2-only box" on an AVX-512 one (issue 27), and the machine report under it.

The mask hides AVX-512 from CPUID through CPUID faulting; these tests check that the kernels'
own feature probes (NumPy's, OpenCV's) stop seeing AVX-512 while AVX2 stays, and that the
default loop's output on the AVX2 kernels is the committed golden output (tests/golden). They
skip where the mask cannot work or would show nothing: not x86-64 Linux, no C compiler, no
``cpuid_fault``, or no AVX-512 to hide.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_fer.bench.machine import HIDDEN_FLAGS_ENV, _cpuinfo, cpu_model_and_flags, describe, machine_info

REPO = Path(__file__).resolve().parents[2]
AS_AVX2 = REPO / "tools" / "as_avx2.sh"


def _cpuinfo_flags() -> set[str]:
    """Every x86 flag /proc/cpuinfo lists (empty elsewhere), hidden ones included."""
    return set(_cpuinfo().get("flags", "").split())


def _mask_usable() -> str:
    """Empty if the mask can run and hide something here, else why not."""
    flags = _cpuinfo_flags()
    if not flags:
        return "no x86 /proc/cpuinfo flags"
    if "cpuid_fault" not in flags:
        return "no CPUID faulting (cpuid_fault) on this CPU/kernel"
    if "avx512f" not in flags:
        return "no AVX-512 here: nothing to hide"
    if not shutil.which("cc"):
        return "no C compiler (cc) to build tools/cpuid_mask.c"
    return ""


needs_mask = pytest.mark.skipif(bool(_mask_usable()), reason=_mask_usable() or "usable")


def masked(args: list[str], tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # builds the library afresh
    return subprocess.run(["bash", str(AS_AVX2), *args], capture_output=True, text=True, env=env,
                          timeout=900, **kwargs)


# OpenCV's CpuFeatures enum (core/cvdef.h; the Python module does not export it): CPU_AVX2 = 11,
# CPU_AVX_512F = 13.
PROBE = """
import json, cv2
from numpy._core._multiarray_umath import __cpu_features__ as numpy_features
from edge_fer.bench.machine import machine_info
print(json.dumps({"numpy_avx512f": numpy_features["AVX512F"], "numpy_avx2": numpy_features["AVX2"],
                  "opencv_avx512f": cv2.checkHardwareSupport(13),
                  "opencv_avx2": cv2.checkHardwareSupport(11), "machine": machine_info()}))
"""


@needs_mask
def test_the_mask_hides_avx512_from_the_kernels_and_keeps_avx2(tmp_path):
    if os.environ.get(HIDDEN_FLAGS_ENV):
        pytest.skip("the suite itself runs under tools/as_avx2.sh: no unmasked process to compare with")
    plain = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                                      timeout=300, check=True).stdout)
    proc = masked([sys.executable, "-c", PROBE], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    under = json.loads(proc.stdout)
    assert plain["numpy_avx512f"] and plain["opencv_avx512f"]  # the box has what the mask hides
    assert not under["numpy_avx512f"] and not under["opencv_avx512f"]
    assert under["numpy_avx2"] and under["opencv_avx2"]
    assert "avx512f" in plain["machine"]["cpu_flags"] and "cpu_flags_hidden" not in plain["machine"]
    assert "avx512f" not in under["machine"]["cpu_flags"] and "avx2" in under["machine"]["cpu_flags"]
    assert "avx512f" in under["machine"]["cpu_flags_hidden"]


@needs_mask
def test_a_segv_handler_installed_later_keeps_the_mask_and_gets_real_faults(tmp_path):
    """Python's faulthandler (pytest turns it on) installs a SIGSEGV handler after the mask's."""
    probe = ("from numpy._core._multiarray_umath import __cpu_features__ as f; import cv2; "
             "print(f['AVX512F'], cv2.checkHardwareSupport(13))")
    proc = masked([sys.executable, "-X", "faulthandler", "-c", probe], tmp_path)
    assert proc.returncode == 0 and proc.stdout.split() == ["False", "False"], proc.stderr[-2000:]
    crash = masked([sys.executable, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"], tmp_path)
    assert crash.returncode == -11 and "Segmentation fault" in crash.stderr  # faulthandler still reports it


@needs_mask
@pytest.mark.parametrize("video", ["woman2.mp4", "test.mp4"])
def test_run_json_on_the_avx2_kernels_is_the_golden_output(media_dir, tmp_path, video):
    sys.path.insert(0, str(REPO / "tests"))
    from test_run_golden import GOLDEN, same_face

    proc = masked([sys.executable, "-m", "edge_fer.cli", "run", "--video", str(media_dir / video), "--headless",
                   "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    want = [json.loads(line) for line in (GOLDEN / f"run_{Path(video).stem}.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in got] == [e["frame"] for e in want]
    for g, w in zip(got, want):
        assert len(g["faces"]) == len(w["faces"]), g["frame"]
        for gf, wf in zip(g["faces"], w["faces"]):
            assert not same_face(gf, wf), f"frame {g['frame']}: {same_face(gf, wf)}"


def test_the_machine_report_leaves_hidden_flags_out_and_names_them(monkeypatch):
    monkeypatch.delenv(HIDDEN_FLAGS_ENV, raising=False)
    _, flags = cpu_model_and_flags()
    if not flags:
        pytest.skip("no listed SIMD flags on this CPU")
    monkeypatch.setenv(HIDDEN_FLAGS_ENV, f"{flags[-1]} not_a_flag")
    machine = machine_info()
    assert machine["cpu_flags"] == flags[:-1]
    assert machine["cpu_flags_hidden"] == sorted([flags[-1], "not_a_flag"])
    assert "hidden from CPUID" in describe(machine)


def test_the_wrapper_refuses_a_box_without_cpuid_faulting_in_one_line(tmp_path):
    if "cpuid_fault" in _cpuinfo_flags():
        pytest.skip("this box has CPUID faulting: the refusal path cannot run here")
    proc = masked(["true"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cpuid_fault" in proc.stderr
