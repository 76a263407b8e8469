"""``edge-fer run``: expressions of the faces in a camera, video, stream or images."""

from __future__ import annotations

import click

from . import COLOR, DEVICE, GroupedCommand, complete_paths, finite_float, pipeline_from, pipeline_options

from .. import defaults


@click.command("run", cls=GroupedCommand, groups={
    "Input": ["camera", "video", "image", "demo", "loop", "max_frames", "open_timeout"],
    "Output": ["headless", "as_json", "save_video"],
    "Serving": ["serve", "token", "max_clients", "tls_cert", "tls_key"],
    "Detection": ["detector", "detector_model", "detect_width", "detect_every", "min_face"],
    "Model": ["model_path", "labels", "input_scale", "input_offset", "input_color", "smooth"],
    "Performance": ["threads", "cv_threads", "device"],
})
@click.option("--camera", type=int, metavar="INDEX", help="Camera index (the default source: 0).")
@click.option("--video", metavar="FILE|URL", shell_complete=complete_paths,
              help="Video file, or a stream URL (rtsp://, http://...) read live.")
@click.option("--image", metavar="FILE|DIR", shell_complete=complete_paths,
              help="An image file or a folder of images.")
@click.option("--demo", is_flag=True, help="Run on the built-in image (assets/astronaut.jpg).")
@pipeline_options(threads=defaults.LIVE_THREADS)
@click.option("--labels", metavar="NAMES", help="For a model without edge-fer metadata: 'fer2013' or 'a,b,c,...'.")
@click.option("--input-scale", type=float, metavar="SCALE", callback=finite_float,
              help="Model input = pixel * scale + offset (overrides metadata).")
@click.option("--input-offset", type=float, metavar="OFFSET", callback=finite_float, help="See --input-scale.")
@click.option("--input-color", type=COLOR, help="Input colour (overrides metadata).")
@click.option("--device", default="auto", type=DEVICE,
              help="ONNX Runtime providers: auto = TensorRT > CUDA > CPU, whichever are present.")
@click.option("--headless", is_flag=True, help="No window.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per processed frame on stdout.")
@click.option("--save-video", type=click.Path(), metavar="FILE|DIR",
              help="Write the annotated video here (.mp4, .avi, .mkv); with --image/--demo, a folder for the "
                   "annotated images.")
@click.option("--max-frames", type=int, metavar="N", help="Stop after this many processed frames.")
@click.option("--open-timeout", default=defaults.STREAM_TIMEOUT_S, type=float, metavar="SECONDS",
              help="Seconds a stream URL may send nothing (opening, or between frames) before it fails.")
@click.option("--loop", is_flag=True, help="Repeat a video file (or the images) from the start when it ends.")
@click.option("--serve", metavar="[HOST:]PORT", is_flag=False, flag_value="127.0.0.1:8080",
              help="Show the live view in a browser: an HTTP server on HOST:PORT (bare --serve: "
                   "127.0.0.1:8080; port 0: a free one). Another host than loopback needs a token.")
@click.option("--token", metavar="TOKEN",
              help="With --serve: the token viewers must give (generated for a non-loopback host).")
@click.option("--max-clients", default=4, type=int, metavar="N",
              help="With --serve: the most viewers at once (more get 503).")
@click.option("--tls-cert", type=click.Path(), metavar="FILE", help="With --serve: HTTPS with this PEM certificate "
              "(a phone's camera page at /device/ needs HTTPS; docs/phone.md makes one the phone trusts).")
@click.option("--tls-key", type=click.Path(), metavar="FILE", help="With --serve: the PEM private key of --tls-cert.")
def run_command(camera, video, image, demo, model_path, labels, input_scale, input_offset, input_color,
                detector, detector_model, detect_width, detect_every, min_face, threads, cv_threads,
                device, smooth, headless, as_json, save_video, max_frames, open_timeout, loop, serve, token,
                max_clients, tls_cert, tls_key) -> None:
    """Recognize facial expressions live; q or Esc closes the window, Ctrl-C stops.

    With no source, camera 0 is used; where no camera opens, the built-in sample runs instead (a note on stderr says so).
    The end summary goes to stderr.
    """
    from ..sources.capture import SourceOptions
    from ..classifier import parse_labels
    from ..errors import OptionsError
    from ..runner import RunOptions, Terminated, run
    from ..signals import stop_exit_code, stop_line
    from ..serve import ServeOptions

    if serve is None and token is not None:
        raise OptionsError("--token is for --serve; add --serve [HOST:]PORT")
    if serve is None and (tls_cert or tls_key):
        raise OptionsError("--tls-cert/--tls-key are for --serve; add --serve [HOST:]PORT")
    options = RunOptions(
        source=SourceOptions(camera=camera, video=video, image=image, demo=demo, loop=loop,
                             open_timeout_s=open_timeout),
        pipeline=pipeline_from(model_path, detector, detector_model, detect_width, detect_every, min_face,
                               threads, cv_threads, smooth, device=device, labels=parse_labels(labels),
                               scale=input_scale, offset=input_offset, color=input_color),
        headless=headless, json=as_json, save_video=save_video, max_frames=max_frames,
        serve=None if serve is None else ServeOptions.parse(serve, token=token, max_clients=max_clients,
                                                            tls_cert=tls_cert, tls_key=tls_key))
    try:
        summary = run(options, on_serving=_announce)
    except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM, SIGHUP, SIGQUIT
        summary = getattr(stop, "summary", None)
        if summary is None:  # stopped before the first frame: nothing to sum up
            click.echo(stop_line(stop), err=True)
            raise click.exceptions.Exit(stop_exit_code(stop)) from None
        click.echo(f"edge-fer: stopped ({stop.signal_name if isinstance(stop, Terminated) else 'Ctrl-C'})", err=True)
    click.echo(f"edge-fer: {summary.to_line()}", err=True)


def _announce(server) -> None:
    if not server.loopback:
        click.echo(f"edge-fer: warning: serving on {server.options.host}:{server.port}, reachable from "
                   "other machines; anyone with the token in the URL can watch", err=True)
    click.echo(f"edge-fer: serving {server.url}", err=True)
    if "/device/" in server.mounts:
        click.echo(f"edge-fer: phone page {server.url.split('?')[0]}device/ (docs/phone.md)", err=True)
