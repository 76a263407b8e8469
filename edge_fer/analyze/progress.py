"""A progress bar on a text stream (stderr), standard library only.

    bar = ProgressBar(sys.stderr)
    write_analysis(paths, options, on_event=bar.on_event); bar.close()

Events: ``("start", -1, files)``, ``("open", i, frame_count)``, ``("frames", i, n)``,
``("done", i, frames)`` and ``("skip", i, frames)`` (a source kept from a previous output).

Shows files done, frames read, frames per second and an ETA from the frames still to read
(the frame counts of the sources opened so far, and their mean for the others). On a terminal
it redraws one line (at most ``redraw_s`` apart); elsewhere (a log file, CI) it prints a line
every ``log_every_s``.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class ProgressBar:
    def __init__(self, stream: TextIO, files: int = 0, clock: Callable[[], float] = time.monotonic,
                 redraw_s: float = 0.2, log_every_s: float = 5.0) -> None:
        self.stream = stream
        self.files = files
        self.clock = clock
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval_s = redraw_s if self.tty else log_every_s
        self.files_done = self.frames_done = 0
        self.skipped_files = 0
        self.frame_counts: dict[int, int] = {}
        self.start = clock()
        self._last_draw = None
        self._width = 0

    def on_event(self, kind: str, index: int, value: int) -> None:
        if kind == "start":
            self.files, self.start = value, self.clock()
            return
        if kind == "open":
            self.frame_counts[index] = value
        elif kind == "frames":
            self.frames_done += value
        elif kind in ("done", "skip"):
            self.files_done += 1
            self.skipped_files += kind == "skip"
        now = self.clock()
        if self._last_draw is None or now - self._last_draw >= self.interval_s or self.files_done == self.files:
            self._draw(now)

    def eta_s(self, now: float) -> float | None:
        elapsed = now - self.start
        if self.files and self.files_done >= self.files:
            return 0.0
        if self.frames_done <= 0 or elapsed <= 0:
            return None
        known = sum(self.frame_counts.values())
        unopened = max(0, self.files - self.skipped_files - len(self.frame_counts))
        mean = known / len(self.frame_counts) if self.frame_counts else 0.0
        remaining = max(0.0, known + unopened * mean - self.frames_done)
        return remaining * elapsed / self.frames_done

    def line(self, now: float) -> str:
        share = self.files_done / self.files if self.files else 1.0
        filled = int(round(share * WIDTH))
        elapsed = max(now - self.start, 1e-9)
        eta = self.eta_s(now)
        return (f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.files_done}/{self.files} files, "
                f"{self.frames_done} frames, {self.frames_done / elapsed:.0f} frames/s, "
                f"ETA {format_duration(eta) if eta is not None else '?'}")

    def _draw(self, now: float) -> None:
        self._last_draw = now
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (a terminal's cursor goes to the next line)."""
        if self.tty and self._last_draw is not None:
            self.stream.write("\n")
            self.stream.flush()
