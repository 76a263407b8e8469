"""Convert your own res10 SSD Caffe files (``edge-fer fetch-detectors ssd``) to ONNX for ONNX Runtime.

    python tools/ssd_to_onnx.py                          # int8, beside the fetched Caffe files
    python tools/ssd_to_onnx.py --calibration my_webcam.mp4 --calibration faces/
    python tools/ssd_to_onnx.py --quantize none --model-dir DIR --out-dir DIR

The detector then uses the .onnx file it finds beside (or instead of) the Caffe files; pass
``--detector-model path/to/res10_300x300_ssd_iter_140000.caffemodel`` to run the Caffe net.
Needs the ``onnx`` package (``pip install 'edge-fer[convert]'``); the result needs only onnxruntime.
The file is checked against the Caffe net before it is written (see edge_fer/detectors/ssd_convert.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer.cli import configure_logging  # noqa: E402
from edge_fer.errors import EdgeFerError  # noqa: E402


@click.command()
@click.option("--model-dir", type=click.Path(), help="Folder with the Caffe files, or the .caffemodel "
              "(default: the cache folder `edge-fer fetch-detectors` fills).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Where the .onnx goes (default: beside the Caffe files).")
@click.option("--quantize", type=click.Choice(["int8", "none"]), default="int8", show_default=True)
@click.option("--calibration", multiple=True, type=click.Path(),
              help="Videos, images or image folders to calibrate int8 on (repeatable; default: the built-in sample).")
@click.option("--calibration-frames", default=64, show_default=True, help="Frames taken from the calibration input.")
def main(model_dir, out_dir, quantize, calibration, calibration_frames) -> None:
    """Build res10_300x300_ssd[_int8].onnx from the res10 SSD's prototxt and caffemodel."""
    from edge_fer.detectors.ssd_convert import SsdConvertOptions, convert_ssd

    configure_logging(0)
    try:
        result = convert_ssd(SsdConvertOptions(model_dir, out_dir, quantize, tuple(calibration), calibration_frames))
    except EdgeFerError as exc:
        click.echo(f"edge-fer: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"wrote {result.path} ({result.quantize}); matches the Caffe net on {result.frames_checked} "
               f"frame(s), {result.faces_checked} face(s), worst box IoU {result.worst_iou:.3f}")


if __name__ == "__main__":
    main()
