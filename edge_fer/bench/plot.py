"""``--plot PATH.png``: per-stage p50 latency per row (stacked bars) and a histogram of totals."""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_path

PLOT_STAGES = ("decode", "detect", "track", "align", "preprocess", "classify")


class MatplotlibMissing(Exception):
    """matplotlib is not installed (it is optional)."""


def caption(report: dict) -> str:
    """What was measured where, and why the stage bars need not add up to the total."""
    machine = report.get("machine", {})
    flags = [f for f in ("avx2", "avx512f", "avx512_vnni", "neon") if f in machine.get("cpu_flags", [])]
    box = (f"{machine.get('cpu_model', '?')}, {machine.get('cores_logical', '?')} logical cores"
           + (f" ({', '.join(flags)})" if flags else ""))
    return (f"input: {report['method'].get('input', '?')}; {report['method'].get('frames', '?')} timed frames per row; "
            f"box: {box}.\nEach stage's bar is that stage's own median: detection runs on every Nth frame "
            "and the stages' slow frames differ, so the stacked medians need not add up to the total's (the diamond).")


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend; MatplotlibMissing where it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MatplotlibMissing("matplotlib is not installed: no plot written (pip install matplotlib)") from None
    return plt


def write_plot(report: dict, path: str | Path) -> Path:
    plt = require_matplotlib()
    rows = report["rows"]
    labels = [f"{i}: {r['model']}\n{r['detector']}, threads {r['threads']}/{r['cv_threads']}"
              for i, r in enumerate(rows, 1)]
    fig, (bars, hist) = plt.subplots(2, 1, figsize=(min(16.0, max(8.0, 2.2 * len(rows) + 3)), 9.0))
    bottom = [0.0] * len(rows)
    for stage in PLOT_STAGES:
        values = [r["latency_ms"].get(stage, {}).get("p50", 0.0) for r in rows]
        if any(values):
            bars.bar(range(len(rows)), values, bottom=bottom, width=0.6, label=f"{stage} p50")
            bottom = [b + v for b, v in zip(bottom, values)]
    bars.scatter(range(len(rows)), [r["latency_ms"]["total"]["p50"] for r in rows], marker="D", s=40,
                 color="black", label="total p50", zorder=3)
    bars.scatter(range(len(rows)), [r["latency_ms"]["total"]["p95"] for r in rows], marker="_", s=500,
                 color="black", label="total p95", zorder=3)
    target = rows[0]["target_ms"] if rows else 0
    bars.axhline(target, color="red", linestyle="--", linewidth=1, label=f"budget {target:g} ms per frame (p95)")
    bars.set_xticks(range(len(rows)), labels, fontsize=7)
    bars.set_xlabel("row: model, detector, threads (classifier/OpenCV)", fontsize=8)
    bars.set_ylabel("latency (ms)")
    bars.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    # the x axis stops at the largest p99: a few slow frames would squash every histogram
    right = max((r["latency_ms"]["total"]["p99"] for r in rows), default=1.0) * 1.1
    for i, r in enumerate(rows, 1):
        totals = [t for rep in r["raw_total_ms"] for t in rep]
        hist.hist(totals, bins=80, range=(0.0, right), histtype="step", label=labels[i - 1].replace("\n", ", "))
    hist.axvline(target, color="red", linestyle="--", linewidth=1)
    hist.set_xlabel("total latency per frame (ms), up to the largest p99")
    hist.set_ylabel("frames")
    hist.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"edge-fer bench: {report['method']['mode']}, {report['method']['pacing']}", fontsize=10)
    fig.text(0.01, 0.005, caption(report), fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0.0, 0.06, 1.0, 1.0))
    path = Path(path)
    try:
        with atomic_path(path, ".png", make_parent=True) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
