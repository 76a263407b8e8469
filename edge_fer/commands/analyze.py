"""``edge-fer analyze``: per-frame expressions of every face in folders of videos and photos."""

from __future__ import annotations

import sys

import click

from .. import defaults
from . import GroupedCommand, finite_float, pipeline_from, pipeline_options

#: Failed sources named on stderr at the end (all of them are in the failures file).
FAILURES_SHOWN = 10


@click.command("analyze", cls=GroupedCommand, examples={"out": "results.csv"}, groups={
    "Input": ["glob_pattern", "follow_links"],
    "Output": ["out", "overwrite", "resume", "timeline_dir", "no_progress"],
    "Detection": ["detector", "detector_model", "detect_width", "detect_every", "min_face", "min_confidence",
                  "min_track_frames"],
    "Model": ["model_path", "smooth"],
    "Performance": ["workers", "engine", "ray_address", "threads", "cv_threads"],
})
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", required=True, metavar="FILE",
              help="Rows file: .csv, .jsonl or .parquet, with FILE.summary.csv, FILE.failures.csv and "
                   "FILE.sources.csv beside it (and FILE.progress.jsonl while it runs).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (and write through an --out that is a "
              "symbolic link); without it (or --resume) an existing output is refused.")
@click.option("--resume", is_flag=True, help="Keep sources already in --out or in the progress file of an "
              "interrupted run (same path, size and mtime); read the rest. Refused if that run used another "
              "model or other detection or --smooth settings.")
@click.option("--glob", "glob_pattern", metavar="PATTERN",
              help="Keep only files in folders whose name or relative path matches, e.g. '*.mp4'.")
@click.option("--follow-links", is_flag=True, help="Follow symbolic links in folders that lead out of the "
              "folders given (each real file is read once either way).")
@click.option("--min-track-frames", type=int, default=10, show_default=True, metavar="N",
              help="Leave out tracks seen in fewer than N frames (false detections), counted in the summary; "
                   "0 keeps every track.")
@click.option("--min-score", "min_confidence", type=float, callback=finite_float, metavar="S",
              help="Detector confidence a face needs, 0 to 1; default: the detector's own (blazeface 0.5).")
@click.option("--workers", type=int, metavar="N", help="Worker processes (--engine ray: tasks in flight); default: "
              "the cores here (ray: the cluster's CPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes, or Ray tasks on a cluster.")
@click.option("--ray-address", metavar="HOST:PORT", help="With --engine ray: the cluster (HOST:PORT or auto); "
              "default: $RAY_ADDRESS, else a local Ray instance.")
@click.option("--timeline", "timeline_dir", metavar="DIR",
              help="Write one PNG per video here: each track's expression probabilities over time.")
@pipeline_options(threads=defaults.WORKER_THREADS)
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def analyze_command(paths, out, overwrite, resume, glob_pattern, follow_links, min_track_frames, min_confidence,
                    workers, engine, ray_address, timeline_dir, model_path, detector, detector_model, detect_width,
                    detect_every, min_face, threads, cv_threads, smooth, no_progress) -> None:
    """Analyze videos, images, folders (recursive) and recording URLs: one row per face per frame.

    Bad files never stop the batch: they are named on stderr and listed, with the reason, in
    FILE.failures.csv. Stopped early (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT, even SIGKILL), a run
    keeps the sources it finished in FILE.progress.jsonl: rerun with --resume.

    \b
    Exit status:
      0  every input analysed and every output written
      1  some inputs failed (the others' results written, the failures listed),
         or an output file could not be written (the others written)
      2  bad usage (one line, nothing written), or no input could be read
    """
    from dataclasses import replace

    from ..analyze import AnalyzeOptions, WriteOptions, write_analysis
    from ..analyze.progress import ProgressBar

    pipeline = pipeline_from(model_path, detector, detector_model, detect_width, detect_every, min_face,
                             threads, cv_threads, smooth)
    if min_confidence is not None:
        pipeline = replace(pipeline, detector=replace(pipeline.detector, min_confidence=min_confidence))
    options = WriteOptions(
        out=out, timeline_dir=timeline_dir, resume=resume, overwrite=overwrite,
        analyze=AnalyzeOptions(pipeline=pipeline, workers=workers, engine=engine, ray_address=ray_address,
                               glob=glob_pattern, min_track_frames=min_track_frames, follow_links=follow_links))
    bar = None if no_progress else ProgressBar(sys.stderr)
    try:  # a stop signal is a Terminated (a KeyboardInterrupt) here: edge_fer/signals.py, the CLI's wrapper
        summary = write_analysis(paths, options, bar.on_event if bar is not None else None)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        _say_what_is_kept(out)
        raise
    finally:
        if bar is not None:
            bar.close()
    raise click.exceptions.Exit(_report(summary, out))


def _say_what_is_kept(out: str) -> None:
    from ..analyze.outputs import progress_path
    from ..analyze.outputs import progress_sources

    kept = progress_sources(progress_path(out))
    if kept:
        click.echo(f"edge-fer: {kept} finished source{'s' if kept != 1 else ''} kept in {progress_path(out)}: "
                   "rerun with --resume to go on from there", err=True)


def _report(summary, out: str) -> int:
    """The end lines on stderr; the exit status (see the command's help)."""
    from ..analyze.outputs import side_path

    for failure in summary.failures[:FAILURES_SHOWN]:
        click.echo(f"edge-fer: failed: {failure.source}: {failure.reason}", err=True)
    more = len(summary.failures) - FAILURES_SHOWN
    if more > 0:
        click.echo(f"edge-fer: ... and {more} more failed", err=True)
    verbose = (click.get_current_context().find_root().params.get("verbose") or 0) > 0
    line = summary.to_line("" if verbose else " (-v names them)")
    failed = f" (reasons in {side_path(out, 'failures')})" if summary.failures else ""
    unwritten = (f"; {len(summary.unwritten)} output file{'s' if len(summary.unwritten) != 1 else ''} could not be "
                 "written (see above)") if summary.unwritten else ""
    click.echo(f"edge-fer: {line}{failed}{unwritten}; wrote {out}", err=True)
    if summary.sources == 0:
        return 2
    return 1 if summary.failures or summary.unwritten else 0
