"""``edge-fer analyze``: per-frame expressions of every face in folders of videos and photos."""

from __future__ import annotations

import signal
import sys

import click

from . import pipeline_from, pipeline_options


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM ends the run like Ctrl-C: workers stopped, temp files removed, outputs untouched."""
    raise SystemExit(128 + signum)


@click.command("analyze")
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", required=True,
              help="Rows file: .csv, .jsonl or .parquet (with <stem>_summary.csv, <stem>_failures.csv "
                   "and <stem>_sources.csv beside it).")
@click.option("--glob", "glob_pattern", help="Keep only files in folders whose name or relative path matches, e.g. '*.mp4'.")
@click.option("--workers", type=int, help="Worker processes (--engine ray: tasks in flight); default: the cores "
              "here (ray: the cluster's CPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes, or Ray tasks on a cluster.")
@click.option("--ray-address", help="With --engine ray: the cluster (host:port or auto); default: $RAY_ADDRESS, "
              "else a local Ray instance.")
@click.option("--resume", is_flag=True, help="Keep sources already in --out (same path, size and mtime); read the rest.")
@click.option("--timeline", "timeline_dir",
              help="Write one PNG per video here: each track's expression probabilities over time.")
@pipeline_options
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def analyze_command(paths, out, glob_pattern, workers, engine, ray_address, resume, timeline_dir, model_path,
                    detector, detector_model, detect_width, detect_every, min_face, threads, cv_threads, smooth,
                    no_progress) -> None:
    """Analyze videos, images, folders (recursive) and recording URLs: one row per face per frame.

    Bad files never stop the batch: they are listed, with the reason, in <stem>_failures.csv.
    """
    from ..analyze import AnalyzeOptions, WriteOptions, write_analysis
    from ..analyze.progress import ProgressBar
    options = WriteOptions(
        out=out, timeline_dir=timeline_dir, resume=resume,
        analyze=AnalyzeOptions(
            pipeline=pipeline_from(model_path, detector, detector_model, detect_width, detect_every, min_face,
                                   threads, cv_threads, smooth),
            workers=workers, engine=engine, ray_address=ray_address, glob=glob_pattern))
    bar = None if no_progress else ProgressBar(sys.stderr)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a scheduler's kill cleans up too
    try:
        summary = write_analysis(paths, options, bar.on_event if bar is not None else None)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
    from ..analyze.writers import side_path

    failed = f" (reasons in {side_path(out, 'failures')})" if summary.failures else ""
    click.echo(f"edge-fer: {summary.to_line()}{failed}; wrote {out}", err=True)
