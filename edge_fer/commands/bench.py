"""``edge-fer bench``: time the real pipeline per stage; one row per model x detector x threads."""

from __future__ import annotations

import sys

import click

from . import DETECTOR_NAMES, DEVICE, GroupedCommand, complete_paths, finite_float
from .flags import in_flags

from .. import defaults


def _split(values: tuple[str, ...]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``: options take comma-separated or repeated values."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _ints(values: tuple[str, ...], name: str, default: int) -> tuple[int, ...]:
    from ..errors import OptionsError

    try:
        return tuple(int(v) for v in _split(values)) or (default,)
    except ValueError:
        raise OptionsError(f"{name} takes integers such as 1,2; got {','.join(values)!r}") from None


@click.command("bench", cls=GroupedCommand, groups={
    "Input": ["video", "images", "camera", "data"],
    "Model": ["models", "labels", "input_scale", "input_offset", "device"],
    "Detection": ["detectors", "detector_model", "detect_width", "detect_every", "classifier_only"],
    "Performance": ["threads", "cv_threads"],
    "Measurement": ["frames", "warmup", "release", "fps", "repeat", "target_ms"],
    "Output": ["json_path", "plot_path"],
}, epilog="Exit code: 0 when every row's p95 of total latency is within --target-ms, 1 when any row fails it, "
          "2 for bad input or a failed run.")
@click.option("--model", "models", multiple=True, metavar="FILE[,FILE]", shell_complete=complete_paths,
              help="Model file(s), .tflite or .onnx; comma-separated or repeated. Default: the packaged model.")
@click.option("--detector", "detectors", multiple=True, metavar="NAME[,NAME]",
              help=f"{', '.join(DETECTOR_NAMES)}; comma-separated or repeated.  [default: {defaults.DETECTOR}]")
@click.option("--video", type=click.Path(dir_okay=False), metavar="FILE",
              help="Video file (looped when shorter than needed).")
@click.option("--images", type=click.Path(), metavar="FILE|DIR", help="An image file or a folder of images (cycled).")
@click.option("--camera", type=int, metavar="INDEX", help="Camera index.")
@click.option("--frames", default=300, metavar="N",
              help="Timed frames per row (fewer than 300 is allowed, with a warning).")
@click.option("--warmup", default=30, metavar="N", help="Untimed frames first (the first one is the cold start).")
@click.option("--release", is_flag=True, help="Release figures: at least 1,024 frames and 60 s per row.")
@click.option("--fps", type=float, metavar="FPS",
              help="Paced mode: frames arrive at this rate (a camera's); counts deadline misses.")
@click.option("--repeat", default=1, metavar="N",
              help="Fresh processes per row; the table shows the median of their percentiles.")
@click.option("--threads", multiple=True, metavar="N[,N]", help="Runtime threads to sweep.  [default: 1]")
@click.option("--cv-threads", multiple=True, metavar="N[,N]", help="OpenCV threads to sweep.  [default: 1]")
@click.option("--classifier-only", is_flag=True, help="Time preprocess + classify alone, on real face crops.")
@click.option("--data", type=click.Path(file_okay=False), metavar="DIR",
              help="Folder-per-class faces: adds each model's accuracy.")
@click.option("--labels", metavar="NAMES", help="For models without metadata: 'fer2013' or comma-separated names.")
@click.option("--input-scale", type=float, metavar="SCALE", callback=finite_float,
              help="For models without metadata: input = pixel*scale + offset.")
@click.option("--input-offset", type=float, metavar="OFFSET", callback=finite_float,
              help="For models without metadata (see --input-scale).")
@click.option("--device", default="auto", type=DEVICE, help="ONNX Runtime providers (ONNX models).")
@click.option("--detector-model", type=click.Path(), metavar="FILE|DIR",
              help="Detector file, or a folder holding detectors' files.")
@click.option("--detect-width", default=defaults.DETECT_WIDTH, metavar="PX",
              help="Frames wider than this are downscaled for detection.")
@click.option("--detect-every", type=int, metavar="N",
              help=f"Run the detector every Nth frame (not with --classifier-only).  "
                   f"[default: {defaults.DETECT_EVERY}]")
@click.option("--target-ms", default=20.0, metavar="MS", help="Pass when p95 of total latency is within this.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write every figure and per-frame totals.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write a PNG (needs matplotlib).")
@click.pass_context
def bench_command(ctx: click.Context, models, detectors, video, images, camera, threads, cv_threads, labels,
                  input_scale, input_offset, json_path, plot_path, **kwargs) -> None:
    """Latency per stage (p50/p90/p95/p99/max), FPS, CPU, peak RSS and cold start of the pipeline."""
    from ..bench.harness import BenchOptions, SourceSpec
    from ..bench.report import exit_code, format_report, write_json_atomic
    from ..bench.suite import run_bench
    from ..classifier import DEFAULT_MODEL, parse_labels
    from ..errors import OptionsError
    from ..pipeline import PipelineOptions

    given = [name for name, value in (("--video", video), ("--images", images), ("--camera", camera))
             if value is not None]
    if len(given) > 1:
        raise OptionsError(f"give one input, got {' and '.join(given)}")
    source = (SourceSpec("video", video) if video is not None else SourceSpec("images", images)
              if images is not None else SourceSpec("camera", camera=camera) if camera is not None else SourceSpec())
    options = BenchOptions(
        models=tuple(_split(models)) or (str(DEFAULT_MODEL),),
        detectors=tuple(_split(detectors)) or (defaults.DETECTOR,),
        threads=_ints(threads, "--threads", defaults.LIVE_THREADS),
        cv_threads=_ints(cv_threads, "--cv-threads", PipelineOptions().opencv_threads),
        source=source, labels=parse_labels(labels), scale=input_scale, offset=input_offset, **kwargs)
    _check_outputs(json_path, plot_path)  # before the timed run, not after it
    argv = ["edge-fer", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("edge-fer") else None
    command = {"argv": argv, "params": ctx.params}
    report = run_bench(options, command, progress=lambda message: click.echo(message, err=True))
    click.echo(in_flags(format_report(report), click.get_current_context().command))
    if json_path:
        click.echo(f"edge-fer: wrote {write_json_atomic(json_path, report)}", err=True)
    if plot_path:
        from ..bench.plot import MatplotlibMissing, write_plot

        try:
            click.echo(f"edge-fer: wrote {write_plot(report, plot_path)}", err=True)
        except MatplotlibMissing as exc:
            click.echo(f"edge-fer: {exc}", err=True)
    ctx.exit(exit_code(report))


def _check_outputs(json_path: str | None, plot_path: str | None) -> None:
    """A report or plot that could not be written fails now: each folder exists and takes a file,
    and --plot has matplotlib."""
    from pathlib import Path

    from ..fileio import check_writable_folder, refuse_special

    for flag, path in (("--json", json_path), ("--plot", plot_path)):
        if path:
            refuse_special(Path(path))
            check_writable_folder(Path(path).parent, flag)
    if plot_path:
        from ..bench.plot import MatplotlibMissing, require_matplotlib

        try:
            require_matplotlib()
        except MatplotlibMissing as exc:
            from ..errors import OptionsError

            raise OptionsError(f"--plot: {exc}") from None
