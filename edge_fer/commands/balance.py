"""``edge-fer balance``: add CycleGAN-generated images of a rare class to a dataset."""

from __future__ import annotations

import click

from . import GroupedCommand
from .train import CROP_DETECTORS


@click.command("balance", cls=GroupedCommand)
@click.option("--data", required=True, type=click.Path(), metavar="DIR|CSV",
              help="Training set (folder-per-class, FER2013 CSV or CK+).")
@click.option("--source", required=True, metavar="CLASS", help="Common class the generator starts from (e.g. neutral).")
@click.option("--target", required=True, metavar="CLASS", help="Rare class to generate (e.g. disgust).")
@click.option("--out", required=True, type=click.Path(), metavar="DIR",
              help="NEW folder: every original image plus the generated ones, folder-per-class.")
@click.option("--epochs", default=100, show_default=True, type=int, help="Epochs at constant learning rate.")
@click.option("--decay-epochs", type=int, help="Epochs of linear decay to zero afterwards (default: --epochs).")
@click.option("--count", type=int, help="Images to generate (default: up to the source class's count).")
@click.option("--steps-per-epoch", type=int, help="Default: one pass over the target class.")
@click.option("--crop-faces", type=CROP_DETECTORS,
              help="Cut faces out of full frames (CK+) with this runtime detector.")
@click.option("--lr", "learning_rate", default=2e-4, show_default=True, type=float, help="Adam's learning rate.")
@click.option("--seed", default=0, show_default=True, type=int)
def balance_command(data, source, target, out, epochs, decay_epochs, count, steps_per_epoch, crop_faces,
                    learning_rate, seed) -> None:
    """Train a CycleGAN SOURCE -> TARGET and write a balanced copy of the dataset (resumable)."""
    from ..train.cyclegan import BalanceOptions, CycleGanOptions, balance

    gan = CycleGanOptions(epochs=epochs, decay_epochs=decay_epochs, steps_per_epoch=steps_per_epoch,
                          learning_rate=learning_rate, seed=seed)
    result = balance(BalanceOptions(data, source, target, out, count, crop_faces, gan),
                     log=lambda line: click.echo(line, err=True))
    click.echo(f"wrote {result.out}: {result.generated} generated {target} images added; "
               f"counts {result.counts}; {result.epochs_run} CycleGAN epochs, {result.seconds:.0f} s")
