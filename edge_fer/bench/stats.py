"""Latency statistics, frame rate, pacing and the measured loop, all on an injectable clock.

Percentiles are nearest-rank (the smallest observed value with at least p % of the samples at
or below it), as MLPerf reports them: every figure is a latency that really happened.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

PERCENTILES = (50, 90, 95, 99)
MIN_FRAMES = 300  # per configuration, the documented minimum (MLPerf single-stream style)
RELEASE_FRAMES = 1024
RELEASE_SECONDS = 60.0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (``p`` in (0, 100])."""
    if not len(values):
        raise ValueError("percentile of no values")
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p95/p99/max/mean of one stage's per-frame latencies (ms)."""
    out = {f"p{p}": percentile(values_ms, p) for p in PERCENTILES}
    out["max"] = float(max(values_ms))
    out["mean"] = float(sum(values_ms) / len(values_ms))
    return out


def fps_from_end_times(end_times_s: Sequence[float]) -> float:
    """Frames per second over the N-1 intervals between N frame completions (0 if N < 2)."""
    if len(end_times_s) < 2 or end_times_s[-1] <= end_times_s[0]:
        return 0.0
    return (len(end_times_s) - 1) / (end_times_s[-1] - end_times_s[0])


def deadline_misses(totals_ms: Sequence[float], target_ms: float, interval_ms: float | None) -> dict[str, int]:
    """Frames over the latency target and (paced mode) frames longer than one frame interval."""
    return {
        "over_target": sum(1 for t in totals_ms if t > target_ms),
        "over_interval": sum(1 for t in totals_ms if t > interval_ms) if interval_ms else 0,
    }


class Pacer:
    """Releases frame ``i`` at ``start + i / fps`` (a camera's rate); a late frame starts at once.

    ``late`` counts frames that could not start on time because the previous one overran.
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.interval_s = 1.0 / fps
        self._clock, self._sleep = clock, sleep
        self._start: float | None = None
        self._index = 0
        self.late = 0

    def wait(self) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self._start + self._index * self.interval_s
        self._index += 1
        if now < due:
            self._sleep(due - now)
        elif now > due + 1e-4:
            self.late += 1


@dataclass
class LoopResult:
    """Per-frame stage latencies (ms, ``total`` measured around the whole step) and end times."""

    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    end_times_s: list[float] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)
    late: int = 0

    @property
    def frames(self) -> int:
        return len(self.end_times_s)

    @property
    def seconds(self) -> float:
        return self.end_times_s[-1] - self.end_times_s[0] if self.frames > 1 else 0.0


def measure_loop(step: Callable[[], tuple[Mapping[str, float], int]], frames: int, min_seconds: float = 0.0,
                 pacer: Pacer | None = None, clock: Callable[[], float] = time.perf_counter,
                 every: Callable[[int], None] | None = None,
                 cpu_clock: Callable[[], float] | None = None) -> LoopResult:
    """Run ``step`` (-> stage latencies in ms, number of faces) until ``frames`` frames are done
    and ``min_seconds`` have passed; ``every(i)`` runs after each frame, outside the timing.

    With ``cpu_clock`` (``time.process_time``), stage ``cpu`` holds the CPU time each frame
    took in all of this process's threads: on a busy machine, the work behind the wall time."""
    result = LoopResult()
    first_start: float | None = None
    while result.frames < frames or (first_start is not None and clock() - first_start < min_seconds):
        if pacer is not None:
            pacer.wait()
        c0 = cpu_clock() if cpu_clock else 0.0
        t0 = clock()
        first_start = t0 if first_start is None else first_start
        stages, faces = step()
        t1 = clock()
        c1 = cpu_clock() if cpu_clock else 0.0
        for name, value in stages.items():
            result.stages_ms.setdefault(name, []).append(float(value))
        result.stages_ms.setdefault("total", []).append((t1 - t0) * 1000.0)
        if cpu_clock:
            result.stages_ms.setdefault("cpu", []).append((c1 - c0) * 1000.0)
        result.end_times_s.append(t1)
        result.faces.append(int(faces))
        if every is not None:
            every(result.frames)
    result.late = pacer.late if pacer is not None else 0
    return result


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        raise ValueError("median of no values")
    return float(ordered[n // 2]) if n % 2 else float((ordered[n // 2 - 1] + ordered[n // 2]) / 2.0)


def median_of_summaries(summaries: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Per stage and per figure, the median over repeats (``--repeat``)."""
    stages = [s for s in summaries[0] if all(s in other for other in summaries)]
    return {stage: {key: median([s[stage][key] for s in summaries]) for key in summaries[0][stage]}
            for stage in stages}
