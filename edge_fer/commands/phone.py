"""``edge-fer check-phone``: does MediaPipe's ImageClassifier agree with edge-fer on a phone model?"""

from __future__ import annotations

import click

from . import GroupedCommand


@click.command("check-phone", cls=GroupedCommand)
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("faces", metavar="FACES", type=click.Path())
@click.option("--count", default=500, show_default=True, type=int, help="Face crops to compare on (sampled, seeded).")
@click.option("--against", type=click.Path(), help="Another model edge-fer runs for the comparison (default: MODEL).")
@click.option("--seed", default=0, show_default=True, type=int)
def check_phone_command(model_path, faces, count, against, seed) -> None:
    """Check that MediaPipe's ImageClassifier agrees with edge-fer on a phone model.

    Runs MODEL (a phone .tflite: `edge-fer convert --to phone`) through MediaPipe's
    ImageClassifier on FACES (folder-per-class crops, fed as RGB like camera frames) and prints,
    as JSON, its top-1 agreement with edge-fer's runtime and both accuracies. MediaPipe runs in
    its own environment: .venv-mp (pip install mediapipe) or $EDGE_FER_MEDIAPIPE_PYTHON."""
    import json
    from pathlib import Path

    from converters.mediapipe_check import check_agreement

    from ..errors import InputError, ModelError, OptionsError

    if count < 1:
        raise OptionsError(f"--count must be >= 1, got {count}")
    for path in (model_path, against):
        if path is not None and not Path(path).is_file():
            raise ModelError(f"model file not found: {path}")
    if not Path(faces).is_dir():
        raise InputError(f"face folder not found: {faces} (expected FACES/<class>/<image>)")
    click.echo(json.dumps(check_agreement(model_path, faces, count, against, seed)))
