"""``edge-fer convert`` (workstation side; TensorFlow loads inside the call)."""

from __future__ import annotations

from pathlib import Path

import click

from . import COLOR, QUANTIZATION_NAMES, TARGET_NAMES, Choice, GroupedCommand, finite_float


@click.command("convert", cls=GroupedCommand, groups={
    "Output": ["out", "to", "quantize", "all_formats", "int8_io"],
    "Verification": ["calibration", "verify", "calibration_count", "verify_count", "min_agreement", "seed"],
    "Model": ["labels", "input_scale", "input_offset", "color", "unsafe", "trust_model"],
    "Performance": ["num_threads"],
})
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--to", "--target", "to", type=Choice(TARGET_NAMES, "target"),
              help="Output format (default: from --out's suffix); phone: a .tflite MediaPipe Tasks can "
                   "feed (RGB input, standard metadata; from a Keras model; check it with check-phone).")
@click.option("--quantize", type=Choice(QUANTIZATION_NAMES, "quantization"),
              help="none (float32), fp16, dynamic or int8 (full int8).  [default: none]")
@click.option("--out", required=True, type=click.Path(), metavar="FILE|DIR",
              help="Output file (.tflite or .onnx); with --all, the output folder.")
@click.option("--all", "all_formats", is_flag=True,
              help="Write every format (TFLite float32/fp16/dynamic/int8, ONNX float32/int8) into --out "
                   "with summary.json.")
@click.option("--calibration", type=click.Path(), metavar="DIR",
              help="Folder-per-class face crops: int8 calibration; faces held back from the sample verify.")
@click.option("--verify", type=click.Path(), metavar="DIR",
              help="Folder of faces to verify on (default: held back from --calibration).")
@click.option("--calibration-count", default=300, type=int, metavar="N", help="Faces to calibrate int8 on.")
@click.option("--verify-count", default=500, type=int, metavar="N", help="Faces to verify on (0: every face).")
@click.option("--min-agreement", type=float, metavar="FRACTION",
              help="Least top-1 agreement with the source, a fraction "
                   "(default 0.995 float32/fp16, 0.97 dynamic, 0.95 int8).")
@click.option("--labels", metavar="NAMES", help="For models without metadata: 'fer2013' or 'a,b,c' in output order.")
@click.option("--input-scale", type=float, metavar="SCALE", callback=finite_float,
              help="Model input = pixel * scale + offset (pixel 0..255).")
@click.option("--input-offset", type=float, metavar="OFFSET", callback=finite_float, help="See --input-scale.")
@click.option("--color", type=COLOR, help="Input colour (default: gray for 1 channel, rgb for 3).")
@click.option("--int8-io/--float-io", default=True,
              help="Full-int8 TFLite: int8 input/output tensors, or float ones.")
@click.option("--unsafe", is_flag=True, help="Allow Keras Lambda layers (runs code from the file).")
@click.option("--trust-model", is_flag=True,
              help="Convert a SavedModel even if its graph has side-effecting ops (file, Python, network).")
@click.option("--seed", default=0, type=int, metavar="N", help="Seed of the calibration and verification sample.")
@click.option("--threads", "num_threads", default=2, type=int, metavar="N",
              help="CPU threads of the runtimes that verify the conversion.")
def convert_command(all_formats: bool, quantize: str | None, **kwargs) -> None:
    """Convert MODEL (.keras, .h5, SavedModel folder, .onnx) to TFLite, ONNX or the phone TFLite,
    verified on real faces."""
    from converters import ConvertOptions, convert, convert_all, format_report, format_summary
    from edge_fer.errors import ConversionError, OptionsError

    if all_formats and (kwargs["to"] or quantize):
        raise OptionsError("--all writes every format: leave out --to and --quantize")
    options = ConvertOptions(quantize=quantize or "none", **kwargs)
    if not all_formats:
        click.echo(format_report(convert(options)))
        return
    reports = convert_all(options)
    click.echo(format_summary(reports))
    click.echo(f"edge-fer: wrote {Path(options.out) / 'summary.json'}", err=True)
    failed = [f"{r.format} {r.quantization}" for r in reports if not r.ok]
    if failed:
        raise ConversionError(f"{len(failed)} of {len(reports)} variants failed ({', '.join(failed)}); "
                              f"see {Path(options.out) / 'summary.json'}")
