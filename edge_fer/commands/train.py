"""``edge-fer train`` and ``edge-fer eval`` (workstation side; TensorFlow loads inside)."""

from __future__ import annotations

import click

from . import ARCH_NAMES, COLOR, DETECTOR, Choice, GroupedCommand, finite_float

CROP_DETECTORS = DETECTOR


@click.command("train", cls=GroupedCommand)
@click.option("--data", "data", multiple=True, required=True, type=click.Path(), metavar="DIR|CSV",
              help="Training set: a folder-per-class folder, a FER2013 CSV or a CK+ folder "
                   "(repeat to add more, e.g. generated images).")
@click.option("--arch", default="edgenet", show_default=True, type=Choice(ARCH_NAMES, "architecture"),
              help="Architecture.")
@click.option("--epochs", default=40, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(), metavar="DIR",
              help="Output folder (checkpoints, model.keras).")
@click.option("--val", type=click.Path(), help="Validation set used to select the best epoch.")
@click.option("--classes", help="Class set: pyfer (6), fer2013 (7), ckplus (8) or 'a,b,c' "
                                "(default: every class found).")
@click.option("--crop-faces", type=CROP_DETECTORS,
              help="Cut the largest face out of full frames (CK+) with this runtime detector.")
@click.option("--last-frames", default=1, show_default=True, type=int,
              help="CK+: frames taken from the end of each labelled sequence.")
@click.option("--first-as-neutral", is_flag=True, help="CK+: also each sequence's first frame, as neutral.")
@click.option("--batch-size", type=int, help="Default: the architecture's own.")
@click.option("--lr", "learning_rate", type=float, help="Peak learning rate (default: the architecture's).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--limit-per-class", type=int, help="Use at most this many images per class.")
@click.option("--fresh", is_flag=True, help="Ignore an earlier run's checkpoints in --out (default: resume).")
@click.option("--flip-tta", is_flag=True,
              help="Export the best epoch wrapped in horizontal-flip averaging (in the graph).")
@click.option("--deterministic", is_flag=True, help="Deterministic TensorFlow ops (slower).")
@click.option("--weights", help="Transfer backbone weights: 'imagenet' (downloads once, needs "
                                "internet) or a weights file.")
@click.option("--strategy", default="default", show_default=True,
              type=click.Choice(["default", "mirrored", "multiworker"]),
              help="tf.distribute: mirrored = every local GPU; multiworker = the machines in "
                   "TF_CONFIG. --batch-size is per replica.")
@click.option("--optimizer", type=click.Choice(["sgd-pyfer", "adam", "adam-transfer", "adamw-cosine", "sgd-nesterov-cosine"]),
              help="Override the architecture's optimizer (docs/train.md lists each).")
@click.option("--init-from", type=click.Path(), help="Start from this .keras file's weights (same architecture).")
@click.option("--teacher", type=click.Path(),
              help="Distil from the teacher probabilities in this .npz (from `edge-fer teacher-probs`).")
@click.option("--distill-alpha", default=0.5, show_default=True, type=float,
              help="With --teacher: weight of the distillation term against cross-entropy.")
@click.option("--distill-temperature", default=3.0, show_default=True, type=float,
              help="With --teacher: softening temperature T.")
@click.option("--soft-labels", type=click.Path(),
              help="Mix people's votes into the targets: a FER+ votes CSV (file, neutral, happiness, "
                   "..., NF), e.g. ../shared/data/ferplus/ferplus_votes.csv. Contempt, unknown and "
                   "not-a-face votes are dropped; faces with none left keep their label.")
@click.option("--soft-label-weight", default=0.5, show_default=True, type=float,
              help="With --soft-labels: w in target = (1 - w) * label + w * votes.")
@click.option("--augment", default="full", show_default=True, type=click.Choice(["full", "erase", "flip", "none"]),
              help="Training augmentation: flip, rotation, zoom, shift, brightness and contrast; "
                   "those and random erasing of one patch in half the faces; the mirror image only; or none.")
@click.option("--mix", default="none", show_default=True, type=click.Choice(["none", "mixup", "cutmix"]),
              help="Mix each training batch with itself shuffled: mixup blends two faces and their "
                   "targets; cutmix pastes a box of one face into another, targets by area.")
@click.option("--oversample", metavar="CLASS=N[,...]",
              help="Repeat a class's training images up to N (a rare class: e.g. disgust=4965; see docs/train.md).")
@click.option("--label-smoothing", type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Label smoothing of the cross-entropy (default: the optimizer's own: 0.1 for "
                   "adamw-cosine and sgd-nesterov-cosine, 0 for the others).")
@click.option("--threads", "num_threads", type=click.IntRange(1, 256),
              help="TensorFlow threads (default: every core); set it when jobs share the machine.")
@click.option("--precision", default="float32", show_default=True, type=click.Choice(["float32", "mixed_bfloat16"]),
              help="Compute precision of training; the weights and the saved model stay float32. "
                   "mixed_bfloat16 is faster on CPUs with AVX512_BF16 or AMX and on recent GPUs (docs/train.md).")
@click.option("--protocol", type=click.Choice(["random", "subject"]),
              help="Evaluate the recipe by k-fold cross-validation instead (CK+): folds of random "
                   "images or of subjects; writes OUT/protocol.json.")
@click.option("--folds", default=10, show_default=True, type=int, help="Folds of --protocol.")
@click.option("--run-folds", type=int, help="Run only folds 0..N-1 of --protocol (default: all).")
def train_command(protocol, folds, run_folds, **kwargs) -> None:
    """Train an expression classifier; resumes from --out's checkpoints."""
    from ..train.trainer import TrainOptions, train

    if protocol:
        from ..train.protocols import ProtocolOptions, run_protocol

        summary = run_protocol(ProtocolOptions(TrainOptions(**kwargs), protocol, folds, run_folds))
        std = summary["test_accuracy_std"]
        click.echo(f"{protocol} split, {summary['folds_run']} of {folds} folds, "
                   f"{len(summary['classes'])} classes: test accuracy {summary['test_accuracy_mean']:.4f}"
                   f"{'' if std is None else f' +- {std:.4f}'} (mean +- std over folds), "
                   f"{kwargs['out']}/protocol.json")
        return
    result = train(TrainOptions(**kwargs))
    if not result.model_path:
        click.echo(f"worker done: {result.epochs_run} epochs, {result.seconds:.0f} s (the chief saves the model)")
        return
    acc = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.4f}"
    click.echo(f"saved {result.model_path}: {result.epochs_run} epochs, best epoch "
               f"{result.best_epoch}, val accuracy {acc}, {result.seconds:.0f} s, "
               f"{result.replicas} replica(s) x batch {result.batch_per_replica}")


@click.command("teacher-probs", cls=GroupedCommand)
@click.option("--model", "models", multiple=True, required=True, type=click.Path(), metavar="FILE",
              help="A teacher (.keras, .tflite, .onnx with edge-fer metadata); repeat for an ensemble.")
@click.option("--data", required=True, type=click.Path(), metavar="DIR", help="The training folder (folder-per-class).")
@click.option("--out", required=True, type=click.Path(), metavar="FILE", help="The .npz to write.")
@click.option("--no-flip", is_flag=True, help="Do not average each teacher over the face and its mirror.")
@click.option("--threads", "num_threads", default=2, show_default=True, type=click.IntRange(1, 64))
def teacher_probs_command(models, data, out, no_flip, num_threads) -> None:
    """Cache teachers' averaged probabilities on the training images, for train --teacher."""
    from ..train.distill import TeacherOptions, write_teacher_probs

    summary = write_teacher_probs(TeacherOptions(tuple(models), data, out, flip=not no_flip,
                                                 num_threads=num_threads))
    accuracy = ", ".join(f"{k} {v:.4f}" for k, v in summary["train_accuracy"].items())
    ensemble = f"; ensemble accuracy {summary['ensemble_accuracy']:.4f}" if len(models) > 1 else ""
    click.echo(f"wrote {out}: {summary['images']} images, {len(summary['classes'])} classes; "
               f"accuracy on them: {accuracy}{ensemble}")


@click.command("eval", cls=GroupedCommand)
@click.option("--model", "model_path", required=True, type=click.Path(), metavar="FILE",
              help="The model: .keras, .h5, .tflite or .onnx.")
@click.option("--data", required=True, type=click.Path(), metavar="DIR|CSV",
              help="Labelled faces: folder-per-class, FER2013 CSV (PublicTest rows) or CK+ folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--out", type=click.Path(), help="Folder for confusion.png and confusion.json.")
@click.option("--limit-per-class", type=int)
@click.option("--dedup-against", type=click.Path(),
              help="Training set: also report accuracy without images that have a pixel-identical twin there.")
@click.option("--labels", help="For a model without edge-fer metadata: 'fer2013', 'pyfer', 'ckplus' or 'a,b,c'.")
@click.option("--input-scale", type=float, callback=finite_float, help="Model input = pixel * scale + offset (overrides metadata).")
@click.option("--input-offset", type=float, callback=finite_float)
@click.option("--color", type=COLOR, help="Input colour (default: gray for 1 channel, rgb for 3).")
@click.option("--crop-faces", type=CROP_DETECTORS, help="Cut faces out of full frames with this detector.")
@click.option("--through-detector", type=DETECTOR,
              help="Classify each face through this detector's crop (the face upscaled and padded, "
                   "then detected) and directly; .tflite/.onnx models; prints both.")
@click.option("--upscale", default=4, show_default=True, type=click.IntRange(1, 16), help="With --through-detector.")
@click.option("--pad", default=96, show_default=True, type=click.IntRange(0, 1024), help="With --through-detector: px.")
@click.option("--detector-model", type=click.Path(), help="With --through-detector: the detector's file or folder.")
@click.option("--classes", help="Evaluate on these dataset classes only, e.g. CK+48 without contempt: "
                                "'angry,disgust,fear,happy,sad,surprise' (folder aliases like anger apply).")
@click.option("--votes", type=click.Path(), help="A FER+ votes CSV: also report accuracy against the "
                                                  "people's plurality label (../shared/data/ferplus/ferplus_votes.csv).")
def eval_command(model_path, data, as_json, out, limit_per_class, dedup_against, labels,
                 input_scale, input_offset, color, crop_faces, through_detector, upscale, pad,
                 detector_model, classes, votes) -> None:
    """Accuracy, per-class recall and confusion matrix of any model format."""
    if through_detector:
        import json

        from ..calibrate import ThroughDetectorOptions, run_through_detector

        report = run_through_detector(ThroughDetectorOptions(model_path, data, through_detector, upscale, pad,
                                                             detector_model, limit_per_class=limit_per_class))
        click.echo(json.dumps(report.to_dict()) if as_json else report.to_line())
        return
    from ..train.evaluate import EvalOptions, evaluate, format_report

    report = evaluate(EvalOptions(model_path, data, out, limit_per_class, labels=labels,
                                  input_scale=input_scale, input_offset=input_offset,
                                  color=color, dedup_against=dedup_against, crop_faces=crop_faces,
                                  classes=classes, votes=votes))
    click.echo(report.to_json_text() if as_json else format_report(report))
