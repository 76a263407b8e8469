"""``--plot PATH.png``: per-stage p50 latency per row (stacked bars) and a histogram of totals."""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_path

PLOT_STAGES = ("decode", "detect", "track", "align", "preprocess", "classify")


class MatplotlibMissing(Exception):
    """matplotlib is not installed (it is optional)."""


def write_plot(report: dict, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MatplotlibMissing("matplotlib is not installed: no plot written (pip install matplotlib)") from None
    rows = report["rows"]
    labels = [f"{i}: {r['model'][:14]}\n{r['detector']} {r['threads']}/{r['cv_threads']}" for i, r in enumerate(rows, 1)]
    fig, (bars, hist) = plt.subplots(2, 1, figsize=(min(16.0, max(8.0, 1.3 * len(rows) + 3)), 8.5))
    bottom = [0.0] * len(rows)
    for stage in PLOT_STAGES:
        values = [r["latency_ms"].get(stage, {}).get("p50", 0.0) for r in rows]
        if any(values):
            bars.bar(range(len(rows)), values, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, values)]
    bars.scatter(range(len(rows)), [r["latency_ms"]["total"]["p95"] for r in rows], marker="_", s=400,
                 color="black", label="p95 total", zorder=3)
    bars.axhline(report["rows"][0]["target_ms"] if rows else 0, color="red", linestyle="--", linewidth=1,
                 label="target")
    bars.set_xticks(range(len(rows)), labels, fontsize=7)
    bars.set_ylabel("latency (ms), p50 per stage")
    bars.legend(fontsize=7)
    # the x axis stops at the largest p99: a few slow frames would squash every histogram
    right = max((r["latency_ms"]["total"]["p99"] for r in rows), default=1.0) * 1.1
    for i, r in enumerate(rows, 1):
        totals = [t for rep in r["raw_total_ms"] for t in rep]
        hist.hist(totals, bins=80, range=(0.0, right), histtype="step", label=labels[i - 1].replace("\n", " "))
    hist.set_xlabel("total latency per frame (ms), up to the largest p99")
    hist.set_ylabel("frames")
    hist.legend(fontsize=7)
    fig.suptitle(f"edge-fer bench: {report['method']['mode']}, {report['method']['pacing']}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path, ".png", make_parent=True) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
