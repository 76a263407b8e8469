"""The summary of an analysis: one row per source and track, one for a source with no face.

``share_<class>``: the fraction of the track's frames whose top expression is that class;
``dominant``: the class with the largest share (ties: the first in the model's label order).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .worker import SourceResult

SHARE_DECIMALS = 4


@dataclass(frozen=True)
class TrackSummary:
    """One track of one source; ``track_id`` None (and ``frames`` 0) for a source without faces.
    ``first_ms``/``last_ms``: the timestamps of the track's first and last frame."""

    source: str
    source_frames: int
    track_id: int | None
    first_ms: float | None
    last_ms: float | None
    frames: int
    dominant: str | None
    shares: dict[str, float]


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str


def summarize(result: SourceResult) -> list[TrackSummary]:
    """The summary rows of one readable source."""
    by_track: dict[int, list] = {}
    for row in result.rows:
        by_track.setdefault(row.track_id, []).append(row)
    source = result.item.source
    if not by_track:
        return [TrackSummary(source, result.frames, None, None, None, 0, None, {})]
    tracks = []
    for track_id in sorted(by_track):
        rows = by_track[track_id]
        counts = Counter(row.expression for row in rows)
        shares = {label: round(counts.get(label, 0) / len(rows), SHARE_DECIMALS) for label in result.labels}
        dominant = max(result.labels, key=lambda label: (counts.get(label, 0), -result.labels.index(label)))
        times = [row.time_ms for row in rows]
        tracks.append(TrackSummary(source, result.frames, track_id, min(times), max(times),
                                   len({row.frame for row in rows}), dominant, shares))
    return tracks


@dataclass
class AnalysisSummary:
    """Everything an analysis saw: per-track rows, failures and totals."""

    labels: tuple[str, ...]
    tracks: list[TrackSummary] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    sources: int = 0
    reused: int = 0
    frames: int = 0
    rows: int = 0
    seconds: float = 0.0

    def add(self, result: SourceResult) -> None:
        if not result.ok:
            self.failures.append(Failure(result.item.source, result.error))
            return
        self.sources += 1
        self.reused += result.reused
        self.frames += result.frames
        self.rows += len(result.rows)
        self.tracks.extend(summarize(result))

    def columns(self) -> list[str]:
        return (["source", "source_frames", "track_id", "first_ms", "last_ms", "frames", "dominant"]
                + [f"share_{label}" for label in self.labels])

    def table(self) -> list[list]:
        return [[t.source, t.source_frames, t.track_id, t.first_ms, t.last_ms, t.frames, t.dominant]
                + [t.shares.get(label) for label in self.labels] for t in self.tracks]

    def to_line(self) -> str:
        reused = f" ({self.reused} kept from the previous output)" if self.reused else ""
        fps = f" ({self.frames / self.seconds:.0f} frames/s)" if self.seconds > 0 and self.frames else ""
        return (f"{self.sources} sources{reused}, {self.frames} frames, {self.rows} face rows, "
                f"{len(self.failures)} failed, in {self.seconds:.1f} s{fps}")
