"""``edge-fer doctor``'s text form: :func:`format_report` turns :func:`edge_fer.doctor.diagnose`'s
report into one fact per line, grouped."""

from __future__ import annotations


#: CPU features that compute bfloat16 in hardware: training in it pays there (docs/train.md).
BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16")


def _yes(value) -> str:
    return "yes" if value else "no"


def format_report(report: dict) -> str:
    """The report for a terminal: one fact per line, grouped."""
    py, plat, cpu, rt, cv = report["python"], report["platform"], report["cpu"], report["runtimes"], report["opencv"]
    lines = [f"edge-fer {report['edge_fer']} on Python {py['version']} ({py['implementation']}, {py['executable']})",
             f"platform      {plat['system']} {plat['release']} {plat['machine']}"
             + (f", board {plat['board']}" if plat["board"] else "")
             + (f", Jetson L4T {plat['jetson_l4t']}" if plat["jetson_l4t"] else ""),
             f"cpu           {cpu['model']}: {cpu['cores_logical']} logical / {cpu['cores_physical']} physical "
             f"cores, {cpu['memory_gb']} GB, load {cpu['load_average_1m']}",
             f"cpu features  {' '.join(cpu['features']) or 'none of the listed SIMD features'}"
             + ("; AVX-512 hidden from CPUID (tools/as_avx2.sh)" if cpu.get("hidden_features") else "")
             + ("; bfloat16 in hardware: `edge-fer train --precision mixed_bfloat16` trains faster"
                if set(BF16_FEATURES) & set(cpu["features"]) else ""),
             "packages      " + ", ".join(f"{k} {v}" for k, v in report["packages"].items())]
    lite, tfl, ort = rt["litert"], rt["tflite_runtime"], rt["onnxruntime"]
    if lite["available"]:
        xnn = {True: "XNNPACK delegate attaches", False: "XNNPACK delegate did NOT attach",
               None: "XNNPACK not checked"}[lite["xnnpack"]]
        lines.append(f"litert        {lite['version']}: {xnn} ({lite.get('xnnpack_note', '')})")
    else:
        lines.append(f"litert        not available ({lite['error']})")
    lines.append(f"tflite-runtime {tfl['version'] if tfl['available'] else 'not installed'}")
    if ort["available"]:
        lines.append(f"onnxruntime   {ort['version']} ({ort['device']}): providers {', '.join(ort['providers'])}; "
                     f"edge-fer tries {' > '.join(ort['auto_order'])}")
    else:
        lines.append(f"onnxruntime   not available ({ort['error']})")
    lines.append(f"opencv        {cv['version']}: CUDA devices {cv['cuda_devices']}, DNN CUDA {_yes(cv['dnn_cuda'])}, "
                 f"{cv['threads']} threads ({cv['parallel_framework']}), GUI {cv['gui']}, "
                 f"Haar data {_yes(cv['haar_data'])}, video I/O {', '.join(cv['video_backends'])}")
    cams = []
    for cam in report["cameras"]:
        if cam.get("frame_wh"):
            cams.append(f"{cam['index']}: {cam['frame_wh'][0]}x{cam['frame_wh'][1]} via {cam['backend']}")
        else:
            cams.append(f"{cam['index']}: {cam.get('note') or ('opened, no frame' if cam['opened'] else 'does not open')}")
    lines.append("cameras       " + ("; ".join(cams) if cams else "not probed"))
    if "benchmark" in report:
        bench = report["benchmark"]
        lines.append(f"benchmark on {bench['image']} ({bench['image_wh'][0]}x{bench['image_wh'][1]}), median ms:")
        missing = []
        for row in bench["detectors"]:
            if "latency_ms" in row:
                lines.append(f"  detector {row['detector']:<10} threads {row['threads']}: "
                             f"{row['latency_ms']:8.2f} ms, {row['faces']} face(s)")
            elif " needs " in row["error"]:
                missing.append(row["detector"])
            else:
                lines.append(f"  detector {row['detector']:<10} unavailable: {row['error']}")
        if missing:
            from .detectors import detector_search_dirs

            lines.append(f"  detectors {', '.join(missing)}: files not found in "
                         f"{detector_search_dirs()[-1]} (`edge-fer fetch-detectors` downloads them)")
        for row in bench["models"]:
            lines.append(f"  model {row['model']:<30} threads {row['threads']}: "
                         + (f"{row['latency_ms']:8.3f} ms ({row['runtime']}, {row['provider']})"
                            if "latency_ms" in row else f"unavailable: {row['error']}"))
        if not bench["models"]:
            lines.append("  (no .tflite or .onnx model in the models folder)")
        lines.append(f"recommendation {report['recommendation']['summary']}")
    lines.append(f"({report['seconds']:.1f} s)")
    return "\n".join(lines)
