"""``edge-fer doctor``: the first command to run on a new device."""

from __future__ import annotations

import click

from . import GroupedCommand


@click.command("doctor", cls=GroupedCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--no-bench", is_flag=True, help="Skip the few seconds of timing (facts only).")
@click.option("--models", "models_dir", type=click.Path(),
              help="Folder of .tflite/.onnx models to time (default: the shipped ones).")
@click.option("--cameras", default=4, show_default=True, type=int,
              help="Probe camera indexes 0..N-1 (0: none).")
def doctor_command(as_json, no_bench, models_dir, cameras) -> None:
    """Versions, runtimes, providers, OpenCV build, cameras, CPU features and a measured
    recommendation (detector, model, threads) for this device."""
    import json

    from ..doctor import MODELS_DIR, DoctorOptions, diagnose, format_report

    report = diagnose(DoctorOptions(models_dir=models_dir or MODELS_DIR, cameras=cameras, bench=not no_bench))
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
