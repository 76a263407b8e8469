"""``edge-fer convert-ssd``: your own res10 SSD Caffe files (``edge-fer fetch-detectors ssd``) to
ONNX for ONNX Runtime, checked against the Caffe net before it is written."""

from __future__ import annotations

import click

from . import GroupedCommand


@click.command("convert-ssd", cls=GroupedCommand)
@click.option("--model-dir", type=click.Path(), help="Folder with the Caffe files, or the .caffemodel "
              "(default: the cache folder `edge-fer fetch-detectors` fills).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Where the .onnx goes (default: beside the Caffe files).")
@click.option("--quantize", type=click.Choice(["int8", "none"]), default="int8", show_default=True)
@click.option("--calibration", multiple=True, type=click.Path(),
              help="Videos, images or image folders to calibrate int8 on (repeatable; default: the built-in sample).")
@click.option("--calibration-frames", default=64, show_default=True, type=click.IntRange(1, 10_000),
              help="Frames taken from the calibration input.")
def convert_ssd_command(model_dir, out_dir, quantize, calibration, calibration_frames) -> None:
    """Build the ssd detector's ONNX file from its Caffe files.

    Writes res10_300x300_ssd[_int8].onnx from the res10 SSD's prototxt and caffemodel (needs
    `pip install "edge-fer[convert]"`; the result runs on onnxruntime alone). The ssd detector then
    uses it; pass --detector-model path/to/the.caffemodel to run the Caffe net."""
    from converters.ssd_convert import SsdConvertOptions, convert_ssd

    result = convert_ssd(SsdConvertOptions(model_dir, out_dir, quantize, tuple(calibration), calibration_frames))
    click.echo(f"wrote {result.path} ({result.quantize}); matches the Caffe net on {result.frames_checked} "
               f"frame(s), {result.faces_checked} face(s), worst box IoU {result.worst_iou:.3f}", err=True)
