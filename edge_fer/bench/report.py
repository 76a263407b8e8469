"""The bench report on the terminal (tables), as JSON (written atomically) and its exit code.

Exit code: 0 when every row's p95 of ``total`` is within ``--target-ms``, 1 when any is not
(2 stays the CLI's code for bad input or a failed run).
"""

from __future__ import annotations

from ..fileio import write_json_atomic  # noqa: F401  (the bench scripts import it from here)
from .machine import describe

EXIT_PASS, EXIT_FAIL = 0, 1
STAGE_KEYS = ("p50", "p90", "p95", "p99", "max")


def exit_code(report: dict) -> int:
    return EXIT_PASS if report["rows"] and all(r["pass"] for r in report["rows"]) else EXIT_FAIL


def align(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, ``|`` between them."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [headers, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """One line per row, like Ultralytics' benchmark table."""
    paced = any(r["deadline_misses"] for r in report["rows"])
    headers = ["model", "format", "detector", "thr/cv", "size MB", "accuracy", "faces/fr", "p50 ms", "p95 ms",
               "p99 ms", "cpu ms", "FPS", "CPU %", "RSS MB", "cold s"] + (["late", ">target", ">frame"] if paced else []) + ["pass"]
    rows = []
    for r in report["rows"]:
        total = r["latency_ms"]["total"]
        acc = r["accuracy"]
        line = [r["model"], r["format"], r["detector"] if r["mode"] == "pipeline" else f"({r['detector']} crops)",
                f"{r['threads']}/{r['cv_threads']}", _num(r["model_bytes"] / 1e6, 3),
                "n/a" if acc is None else f"{acc['top1']:.3f}", _num(r["faces_per_frame"], 2),
                _num(total["p50"], 2), _num(total["p95"], 2), _num(total["p99"], 2),
                _num(r["latency_ms"].get("cpu", {}).get("p50"), 2), _num(r["fps"]),
                _num(r["cpu_percent"], 0), _num(r["peak_rss_mb"]), _num(r["cold_start_s"], 2)]
        if paced:
            misses = r["deadline_misses"] or {}
            line += [f"{misses.get('late_starts', 0):g}", f"{misses.get('over_target', 0):g}",
                     f"{misses.get('over_interval', 0):g}"]
        rows.append(line + ["PASS" if r["pass"] else "FAIL"])
    return headers, rows


def stage_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["row", "stage"] + [f"{k} ms" for k in STAGE_KEYS]
    rows = []
    for i, r in enumerate(report["rows"], 1):
        for stage, values in r["latency_ms"].items():
            rows.append([str(i) if stage == next(iter(r["latency_ms"])) else "", stage]
                        + [_num(values[k], 3) for k in STAGE_KEYS])
    return headers, rows


def format_report(report: dict) -> str:
    """The summary table, the per-stage table and a pass count. ``cpu ms``: p50 of the CPU time
    each frame took (all threads): close to the quiet-machine latency when the CPU is shared."""
    method = report["method"]
    rows = report["rows"]
    first = rows[0] if rows else {}
    lines = [
        f"edge-fer bench: {method['mode']}, {method['pacing']}, {method['input']}",
        f"{first.get('frames', 0)} timed frames after {method['warmup_frames']} warm-up, "
        f"{method['repeat']} process(es) per row; pass = {method['target']}",
        f"machine: {describe(report['machine'])}",
        *[f"warning: {w}" for w in report.get("warnings", [])],
        "",
        align(*summary_rows(report)),
        "",
        "per stage (median over processes):",
        align(*stage_rows(report)),
        "",
        f"{sum(r['pass'] for r in rows)}/{len(rows)} rows pass "
        f"(exit code {exit_code(report)})",
    ]
    return "\n".join(lines)
