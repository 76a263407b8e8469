"""``edge-fer train`` and ``edge-fer eval`` (workstation side; TensorFlow loads inside)."""

from __future__ import annotations

import click


@click.command("train")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(),
              help="Folder-per-class training images (repeat to add more, e.g. generated ones).")
@click.option("--arch", default="edgenet", show_default=True,
              help="Architecture: pyfer, transfer or edgenet.")
@click.option("--epochs", default=40, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(), help="Output folder (checkpoints, model.keras).")
@click.option("--val", type=click.Path(), help="Validation folder used to select the best epoch.")
@click.option("--batch-size", type=int, help="Default: the architecture's own.")
@click.option("--lr", "learning_rate", type=float, help="Peak learning rate (default: the architecture's).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--limit-per-class", type=int, help="Use at most this many images per class.")
@click.option("--fresh", is_flag=True, help="Ignore an earlier run's checkpoints in --out (default: resume).")
@click.option("--deterministic", is_flag=True, help="Deterministic TensorFlow ops (slower).")
@click.option("--weights", help="Transfer backbone weights: 'imagenet' (downloads once) or a file.")
def train_command(**kwargs) -> None:
    """Train an expression classifier; resumes from --out's checkpoints."""
    from ..train.trainer import TrainOptions, train

    result = train(TrainOptions(**kwargs))
    acc = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.4f}"
    click.echo(f"saved {result.model_path}: {result.epochs_run} epochs, best epoch "
               f"{result.best_epoch}, val accuracy {acc}, {result.seconds:.0f} s")


@click.command("eval")
@click.option("--model", "model_path", required=True, type=click.Path(), help=".keras, .h5, .tflite or .onnx")
@click.option("--data", required=True, type=click.Path(), help="Folder-per-class labelled face crops.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--out", type=click.Path(), help="Folder for confusion.png and confusion.json.")
@click.option("--limit-per-class", type=int)
def eval_command(model_path, data, as_json, out, limit_per_class) -> None:
    """Accuracy, per-class recall and confusion matrix of any model format."""
    from ..train.evaluate import EvalOptions, evaluate, format_report

    report = evaluate(EvalOptions(model_path, data, out, limit_per_class))
    click.echo(report.to_json() if as_json else format_report(report))
