"""What the numbers were measured on: CPU model and flags, cores, memory, load, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

#: CPU features that decide which kernels XNNPACK / ONNX Runtime / OpenCV pick.
INTERESTING_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",  # x86
    "neon", "asimd", "asimdhp", "asimddp", "i8mm", "sve", "bf16",  # Arm (asimddp = dotprod)
)
LIBRARIES = ("edge-fer", "numpy", "opencv-python-headless", "opencv-python", "opencv-contrib-python",
             "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu", "psutil")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def cpu_model_and_flags() -> tuple[str, list[str]]:
    info = _cpuinfo()
    model = info.get("model name") or info.get("Model") or info.get("Hardware") or platform.processor() \
        or platform.machine()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if "asimddp" in flags:
        flags.add("dotprod")
    return model, [f for f in INTERESTING_FLAGS + ("dotprod",) if f in flags]


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict:
    """A JSON-ready description of this machine and its state right now (load, busy CPU)."""
    import psutil

    model, flags = cpu_model_and_flags()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": model,
        "cpu_flags": flags,
        "arch": platform.machine(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "load_average_1_5_15": [round(v, 2) for v in load] if load else None,
        "cpu_busy_percent": psutil.cpu_percent(interval=0.5),
    }


def describe(machine: dict) -> str:
    """One line for the terminal."""
    load = machine.get("load_average_1_5_15")
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if k != "edge-fer")
    return (f"{machine['cpu_model']} ({machine['cores_logical']} logical cores; "
            f"{' '.join(machine['cpu_flags']) or 'no listed SIMD flags'}); "
            f"load {load[0] if load else 'n/a'}, {machine['cpu_busy_percent']:.0f}% busy before start; {libs}")


def peak_rss_bytes() -> int:
    """This process's peak resident set. Linux: ``VmHWM`` (per address space, so a process
    started by a large parent does not inherit the parent's peak, as ``ru_maxrss`` does across
    fork + exec); elsewhere ``ru_maxrss`` (macOS: bytes) or psutil's peak working set (Windows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
        import sys

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024
    except ImportError:
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))
