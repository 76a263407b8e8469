"""The summary of an analysis: one row per source and track, one for a source with no face.

``share_<class>``: the fraction of the track's frames whose top expression is that class;
``dominant``: the class with the largest share (ties: the first in the model's label order).

Short tracks (fewer frames than ``AnalyzeOptions.min_track_frames``, typically a false detection
on the background for a frame or two) are left out of the rows and the summary by
:func:`drop_short_tracks` once their source has ended, and counted: ``dropped_tracks`` per source
in the summary file, and in the totals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from .items import NOT_A_FILE, UNSUPPORTED
from .worker import SourceResult

SHARE_DECIMALS = 4
#: The default of AnalyzeOptions.min_track_frames (docs/analyze.md has the measurement): the
#: false tracks on the sample videos last 2-3 frames, the real ones the whole video.
MIN_TRACK_FRAMES = 10


def track_frames(rows) -> dict[int, int]:
    """``{track_id: frames with that track}``."""
    frames: dict[int, set] = {}
    for row in rows:
        frames.setdefault(row.track_id, set()).add(row.frame)
    return {track: len(seen) for track, seen in frames.items()}


def drop_short_tracks(result: SourceResult, min_frames: int) -> SourceResult:
    """``result`` without the tracks seen in fewer than ``min_frames`` frames, counted in
    ``dropped_tracks``/``dropped_rows``. A track seen in every frame of its source is never
    short (an image's one face, a clip shorter than ``min_frames``). Call it on a whole
    source: a track's length is known only once the source has ended."""
    if min_frames <= 1 or not result.ok or not result.rows:
        return result
    short = {track for track, frames in track_frames(result.rows).items()
             if frames < min_frames and frames < result.frames}
    if not short:
        return result
    kept = tuple(row for row in result.rows if row.track_id not in short)
    return replace(result, rows=kept, dropped_tracks=result.dropped_tracks + len(short),
                   dropped_rows=result.dropped_rows + len(result.rows) - len(kept))


@dataclass(frozen=True)
class TrackSummary:
    """One track of one source; ``track_id`` None (and ``frames`` 0) for a source without faces.
    ``first_ms``/``last_ms``: the timestamps of the track's first and last frame;
    ``source_dropped_tracks``: the source's short tracks left out."""

    source: str
    source_frames: int
    track_id: int | None
    first_ms: float | None
    last_ms: float | None
    frames: int
    dominant: str | None
    shares: dict[str, float]
    source_dropped_tracks: int = 0


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str


def summarize(result: SourceResult) -> list[TrackSummary]:
    """The summary rows of one readable source."""
    by_track: dict[int, list] = {}
    for row in result.rows:
        by_track.setdefault(row.track_id, []).append(row)
    source, dropped = result.item.source, result.dropped_tracks
    if not by_track:
        return [TrackSummary(source, result.frames, None, None, None, 0, None, {}, dropped)]
    tracks = []
    for track_id in sorted(by_track):
        rows = by_track[track_id]
        counts = Counter(row.expression for row in rows)
        shares = {label: round(counts.get(label, 0) / len(rows), SHARE_DECIMALS) for label in result.labels}
        dominant = max(result.labels, key=lambda label: (counts.get(label, 0), -result.labels.index(label)))
        times = [row.time_ms for row in rows]
        tracks.append(TrackSummary(source, result.frames, track_id, min(times), max(times),
                                   len({row.frame for row in rows}), dominant, shares, dropped))
    return tracks


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


@dataclass
class AnalysisSummary:
    """Everything an analysis saw: per-track rows, failures and totals. ``skipped``: files found
    in folders and left out, with the reason; ``dropped_tracks``/``dropped_rows``: short tracks
    left out (``min_track_frames``); ``unwritten``: ``(path, reason)`` of output files that could
    not be written (:func:`~edge_fer.analyze.api.write_analysis` writes the others)."""

    labels: tuple[str, ...]
    tracks: list[TrackSummary] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    sources: int = 0
    reused: int = 0
    frames: int = 0
    rows: int = 0
    seconds: float = 0.0
    min_track_frames: int = MIN_TRACK_FRAMES
    dropped_tracks: int = 0
    dropped_rows: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unwritten: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: SourceResult) -> None:
        if not result.ok:
            self.failures.append(Failure(result.item.source, result.error))
            return
        self.sources += 1
        self.reused += result.reused
        self.frames += result.frames
        self.rows += len(result.rows)
        self.dropped_tracks += result.dropped_tracks
        self.dropped_rows += result.dropped_rows
        self.tracks.extend(summarize(result))

    def columns(self) -> list[str]:
        return (["source", "source_frames", "dropped_tracks", "track_id", "first_ms", "last_ms", "frames",
                 "dominant"] + [f"share_{label}" for label in self.labels])

    def table(self) -> list[list]:
        return [[t.source, t.source_frames, t.source_dropped_tracks, t.track_id, t.first_ms, t.last_ms, t.frames,
                 t.dominant] + [t.shares.get(label) for label in self.labels] for t in self.tracks]

    def to_line(self, skipped_hint: str = "") -> str:
        """One line of totals; ``skipped_hint`` follows the counts of files skipped and links not
        followed in the folders (the CLI's "-v names them")."""
        reused = f" ({self.reused} kept from the previous output)" if self.reused else ""
        fps = f" ({self.frames / self.seconds:.0f} frames/s)" if self.seconds > 0 and self.frames else ""
        dropped = (f", {_plural(self.dropped_tracks, 'track')} under {self.min_track_frames} frames left out "
                   f"({_plural(self.dropped_rows, 'row')})") if self.dropped_tracks else ""
        reasons = Counter(reason for _, reason in self.skipped)
        links = sum(count for reason, count in reasons.items() if reason not in (UNSUPPORTED, NOT_A_FILE))
        skipped = "".join(
            [f", {_plural(reasons[UNSUPPORTED], 'file')} skipped (not a video or image)"] * bool(reasons[UNSUPPORTED])
            + [f", {_plural(reasons[NOT_A_FILE], 'entry', 'entries')} skipped (not a regular file)"]
            * bool(reasons[NOT_A_FILE])
            + [f", {_plural(links, 'symbolic link')} not followed"] * bool(links))
        skipped += skipped_hint if skipped else ""
        return (f"{self.sources} sources{reused}, {self.frames} frames, {self.rows} face rows{dropped}, "
                f"{len(self.failures)} failed{skipped}, in {self.seconds:.1f} s{fps}")
