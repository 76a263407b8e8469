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
#: Flags a run hides from its programs' CPUID (tools/as_avx2.sh sets it: an AVX2-only box on an
#: AVX-512 one); /proc/cpuinfo still lists them, so the report leaves them out and names them.
HIDDEN_FLAGS_ENV = "EDGE_FER_HIDDEN_CPU_FLAGS"
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


def hidden_cpu_flags() -> list[str]:
    """The /proc/cpuinfo flags this process's CPUID hides (``EDGE_FER_HIDDEN_CPU_FLAGS``)."""
    return sorted(set(os.environ.get(HIDDEN_FLAGS_ENV, "").split()))


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model and its INTERESTING_FLAGS, less the hidden ones (what the kernels see)."""
    info = _cpuinfo()
    model = info.get("model name") or info.get("Model") or info.get("Hardware") or platform.processor() \
        or platform.machine()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if "asimddp" in flags:
        flags.add("dotprod")
    flags -= set(hidden_cpu_flags())
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
        **({"cpu_flags_hidden": hidden} if (hidden := hidden_cpu_flags()) else {}),
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
            f"{' '.join(machine['cpu_flags']) or 'no listed SIMD flags'}"
            f"{'; AVX-512 hidden from CPUID' if machine.get('cpu_flags_hidden') else ''}); "
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
