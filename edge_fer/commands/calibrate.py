"""``edge-fer calibrate-framing``: fit how each detector frames the training faces and write it
into model files (the alignment template and the box transforms of :mod:`edge_fer.align`)."""

from __future__ import annotations

import click

from . import DETECTOR_NAMES, GroupedCommand


@click.command("calibrate-framing", cls=GroupedCommand)
@click.option("--data", required=True, type=click.Path(), metavar="DIR",
              help="The model's training faces, one folder per class (e.g. fer2013/train).")
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="A .tflite/.onnx file to write the framing into (repeatable; none: only report).")
@click.option("--detectors", help=f"Comma-separated detectors to fit (some of {', '.join(DETECTOR_NAMES)}).  "
                                  "[default: every one whose files are here: blazeface and yunet ship, haar "
                                  "comes with OpenCV, ssd and rfb with fetch-detectors or --detector-model]")
@click.option("--detector-model", "detector_models", multiple=True, metavar="NAME=PATH",
              help="A detector's file or folder, e.g. ssd=~/detectors (repeatable).")
@click.option("--count", default=3000, show_default=True, type=click.IntRange(50, 1_000_000),
              help="Training faces to fit on, drawn at random.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--report", type=click.Path(), help="Write the fitted numbers and what they were fitted on (JSON).")
def calibrate_command(data, models, detectors, detector_models, count, seed, report) -> None:
    """Fit each detector's framing on real training faces (upscaled 4x, padded 96 px)."""
    from ..calibrate import CalibrateOptions, calibrate_framing

    chosen = None if detectors is None else tuple(d.strip() for d in detectors.split(",") if d.strip())
    result = calibrate_framing(CalibrateOptions(data, tuple(models), chosen, tuple(detector_models), count, seed,
                                                report))
    for name, row in result["detectors"].items():
        click.echo(f"{name}: found {row['found']} of {result['faces']} faces; box (dx, dy, sw, sh) "
                   f"{row['box']}" + ("; landmarks " + ", ".join(f"{k} {v}" for k, v in row["points"].items())
                                      if row["points"] else ""))
    click.echo(f"fitted on {result['fitted_on']}")
    for path in result["written"]:
        click.echo(f"wrote the framing into {path}")


@click.command("calibrate-confidence", cls=GroupedCommand)
@click.option("--model", "models", multiple=True, required=True, type=click.Path(), metavar="FILE",
              help="A .tflite/.onnx file whose temperature to fit and write (repeatable).")
@click.option("--data", required=True, type=click.Path(), metavar="DIR",
              help="Labelled faces, one folder per class (e.g. fer2013/val).")
@click.option("--dedup-against", type=click.Path(), help="Also report the ECE without faces that have a twin here.")
@click.option("--out", type=click.Path(), help="Folder for reliability.png and confidence.json.")
@click.option("--dry-run", is_flag=True, help="Fit and report only; leave the model files as they are.")
def calibrate_confidence_command(models, data, dedup_against, out, dry_run) -> None:
    """Fit each model's temperature so its scores mean what they say (ECE before/after)."""
    from ..train.temperature import ConfidenceOptions, calibrate_confidence, format_rows

    click.echo(format_rows(calibrate_confidence(ConfidenceOptions(tuple(models), data, dedup_against, out,
                                                                  write=not dry_run))))
