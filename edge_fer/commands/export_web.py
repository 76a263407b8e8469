"""``edge-fer export-web DIR``: the phone page as a static folder (docs/phone.md)."""

from __future__ import annotations

import click

from . import GroupedCommand

from .. import defaults


@click.command("export-web", cls=GroupedCommand)
@click.argument("out_dir", type=click.Path())
@click.option("--model", "model_path", type=click.Path(),
              help="Classifier: a .tflite with RGB input and standard TFLite metadata "
                   "(default: the shipped edgenet_fer2013_phone.tflite).")
@click.option("--detector-model", type=click.Path(),
              help="BlazeFace short-range .tflite (default: the one edge-fer ships).")
@click.option("--delegate", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="MediaPipe delegate the page starts with: cpu = WebAssembly, gpu = WebGL2 (?delegate= overrides).")
@click.option("--detect-every", default=defaults.DETECT_EVERY, show_default=True, type=int,
              help="Run the detector on every Nth frame, tracked boxes carried between.")
@click.option("--smooth", default=defaults.SMOOTH, show_default=True, type=float,
              help="Per-face smoothing: EMA weight of the past (0 = off).")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists and is not empty.")
def export_web_command(out_dir, model_path, detector_model, delegate, detect_every, smooth, force) -> None:
    """Write the phone page, a static folder, to OUT_DIR.

    The page runs detect -> align -> classify -> track -> draw on a phone's camera, in its
    browser: host OUT_DIR on any static HTTPS server (or localhost)."""
    from ..web import WebExportOptions, export_web
    from ..web.export import PHONE_MODEL

    options = WebExportOptions(model_path or PHONE_MODEL, detector_model, delegate, detect_every, smooth)
    result = export_web(out_dir, options, force=force)
    click.echo(f"wrote {len(result.sizes)} files to {result.folder}: {result.total_bytes / 1e6:.1f} MB, "
               f"{result.gzip_bytes / 1e6:.1f} MB to download from a server that sends the .gz files")
    click.echo(f"try it on this machine: edge-fer serve-web {result.folder}, then open http://127.0.0.1:8000/ "
               "(a phone needs HTTPS: see docs/phone.md)")
