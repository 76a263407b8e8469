"""``edge-fer clean`` and ``edge-fer oof-probs``: find non-faces and wrong labels in a training
folder, and the out-of-fold probabilities that the label check needs."""

from __future__ import annotations

import click

from . import ARCH_NAMES, SHIPPED_DETECTORS, GroupedCommand

CLEAN_ACTIONS = ("drop", "relabel")  # edge_fer.train.clean.ACTIONS


def detector_scores(ctx, param, values):
    """``NAME[:SCORE]`` -> ``(name, score or None)`` pairs (shipped detectors only)."""
    pairs = []
    for value in values:
        name, _, score = value.partition(":")
        if name not in SHIPPED_DETECTORS:
            raise click.BadParameter(f"{value!r}: expected one of {', '.join(SHIPPED_DETECTORS)}, "
                                     "optionally with :SCORE (e.g. yunet:0.1)", ctx, param)
        try:
            pairs.append((name, float(score) if score else None))
        except ValueError:
            raise click.BadParameter(f"{value!r}: the score after ':' must be a number, e.g. yunet:0.1",
                                     ctx, param) from None
    return tuple(pairs)


@click.command("clean", cls=GroupedCommand)
@click.option("--data", required=True, type=click.Path(), metavar="DIR",
              help="The labelled faces (folder-per-class); never changed.")
@click.option("--out", required=True, type=click.Path(), metavar="DIR",
              help="NEW folder: report.csv, summary.json and data/ (the cleaned copy).")
@click.option("--probs", type=click.Path(), metavar="FILE",
              help="Predicted probabilities of every image (.npz from `edge-fer oof-probs` or "
                   "`edge-fer teacher-probs`): also find wrong labels (confident learning, cleanlab).")
@click.option("--detector", "detectors", multiple=True, callback=detector_scores, metavar="NAME[:SCORE]",
              help="A detector of the face check and the lowest score that counts as a face (default: "
                   "its own); repeat. An image none of them finds a face in is flagged no_face. "
                   "Default: blazeface, yunet:0.1.")
@click.option("--no-face-check", is_flag=True, help="Skip the face check.")
@click.option("--min-std", default=5.0, show_default=True, type=click.FloatRange(0),
              help="Flag images whose gray levels vary less than this (standard deviation); 0: off.")
@click.option("--action", default="drop", show_default=True, type=click.Choice(CLEAN_ACTIONS),
              help="What the cleaned copy does with wrong labels: leave them out, or move them "
                   "to the suggested class. Non-faces are always left out.")
@click.option("--threads", "num_threads", default=1, show_default=True, type=click.IntRange(1, 64))
def clean_command(data, out, probs, detectors, no_face_check, min_std, action, num_threads) -> None:
    """Flag non-faces and wrong labels; write a report and a cleaned copy of DATA to OUT."""
    from ..train.clean import CLEAN_DETECTORS, CleanOptions, clean

    chosen = () if no_face_check else (tuple(detectors) or CLEAN_DETECTORS)
    summary = clean(CleanOptions(data, out, probs, chosen, min_std, action=action, num_threads=num_threads))
    flagged = ", ".join(f"{issue} {n}" for issue, n in summary["flagged"].items())
    click.echo(f"wrote {out}: {summary['images']} images checked; flagged {flagged}; "
               f"{summary['written']} in the cleaned copy ({summary['dropped']} left out, "
               f"{summary['relabelled']} relabelled)")


@click.command("oof-probs", cls=GroupedCommand)
@click.option("--data", required=True, type=click.Path(), metavar="DIR", help="The training folder (folder-per-class).")
@click.option("--val", required=True, type=click.Path(), metavar="DIR", help="Picks each fold model's best epoch.")
@click.option("--out", required=True, type=click.Path(), metavar="FILE",
              help="The .npz to write (each fold's run goes to FILE's name + .folds/).")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 50))
@click.option("--arch", default="edgenet", show_default=True, type=click.Choice(ARCH_NAMES))
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", "num_threads", type=click.IntRange(1, 256), help="TensorFlow threads (default: every core).")
def oof_probs_command(data, val, out, folds, arch, epochs, seed, num_threads) -> None:
    """Out-of-fold probabilities of every training image (resumable), for clean --probs."""
    from ..train.oof import OofOptions, out_of_fold_probs

    summary = out_of_fold_probs(OofOptions(data, val, out, folds, arch, epochs, seed, num_threads=num_threads))
    click.echo(f"wrote {out}: {summary['images']} images, {folds} folds; out-of-fold accuracy "
               f"against the given labels {summary['accuracy']:.4f}")
