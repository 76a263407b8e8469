"""Timelines: one PNG per video, each track's class probabilities over seconds, smoothed.

matplotlib (Agg canvas, no pyplot, no display) is imported here only, when a timeline is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from .worker import SourceResult

#: Width of the centred moving average drawn, in seconds of video.
SMOOTH_S = 1.0
MAX_TRACKS_DRAWN = 8


def timeline_names(items) -> dict[int, str]:
    """``{item index: PNG name}`` for the videos (and URLs) among ``items``: ``<stem>.png``,
    ``<stem>-2.png`` for the second video with that stem, and so on (in item order)."""
    names, used = {}, {}
    for item in items:
        if item.kind == "image":
            continue
        stem = Path(item.source.rstrip("/").rsplit("/", 1)[-1]).stem or "video"
        used[stem] = used.get(stem, 0) + 1
        names[item.index] = f"{stem}.png" if used[stem] == 1 else f"{stem}-{used[stem]}.png"
    return names


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` samples (shorter at the ends)."""
    window = min(window, values.size)  # np.convolve's "same" is as long as the longer input
    if window <= 1:
        return values
    kernel = np.ones(window)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def _rgb(label: str) -> tuple[float, float, float]:
    from ..draw import color_for

    b, g, r = color_for(label)
    return (r / 255, g / 255, b / 255)


def plot_timeline(result: SourceResult, path: str | Path, smooth_s: float = SMOOTH_S) -> Path:
    """Draw ``result``'s tracks (the longest ``MAX_TRACKS_DRAWN``) into ``path``, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_track: dict[int, list] = {}
    for row in result.rows:
        by_track.setdefault(row.track_id, []).append(row)
    tracks = sorted(by_track, key=lambda t: (-len(by_track[t]), t))[:MAX_TRACKS_DRAWN]
    tracks.sort()
    figure = Figure(figsize=(10, 1.0 + 2.4 * max(1, len(tracks))), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(1, len(tracks)), 1, sharex=True, squeeze=False)[:, 0]
    name = result.item.source
    if not tracks:
        axes[0].text(0.5, 0.5, f"no face found in {result.frames} frames", ha="center", va="center",
                     transform=axes[0].transAxes)
        axes[0].set_xlim(0, max(result.duration_ms / 1000.0, 1.0))
    for ax, track_id in zip(axes, tracks):
        rows = by_track[track_id]
        seconds = np.array([r.time_ms for r in rows]) / 1000.0
        step_s = float(np.median(np.diff(seconds))) if len(rows) > 1 else 0.0
        window = max(1, int(round(smooth_s / step_s))) if step_s > 0 else 1
        for label in result.labels:
            probs = np.array([r.scores.get(label, 0.0) for r in rows], dtype=np.float64)
            ax.plot(seconds, smooth(probs, window), color=_rgb(label), label=label, linewidth=1.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"track {track_id}: {len(rows)} frames, {seconds[0]:.1f}-{seconds[-1]:.1f} s", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", ncol=min(7, len(result.labels)), fontsize=8, framealpha=0.8)
    axes[-1].set_xlabel("time (s)")
    figure.suptitle(f"{name}: expression probabilities ({smooth_s:g} s moving average)", fontsize=11)
    figure.tight_layout()
    with atomic_path(path, suffix=".png", clean=False) as tmp:  # the plan cleaned them all first
        figure.savefig(tmp, format="png")
    return Path(path)
