"""``edge-fer fetch-detectors``: download (or copy with --from) the detector files, verified."""

from __future__ import annotations

import click

from . import FETCH_NAMES, SHIPPED_DETECTORS, GroupedCommand


def _complete_detectors(ctx, param, incomplete: str) -> list[str]:
    return [name for name in FETCH_NAMES if name.startswith(incomplete)]


@click.command("fetch-detectors", cls=GroupedCommand, help=(
    f"Fetch the detector files that edge-fer does not ship: {', '.join(FETCH_NAMES)}.\n\n"
    f"DETECTORS: some of {', '.join(FETCH_NAMES)} (default: all of them). Each file's size and sha256 are "
    f"checked against pinned values before it is saved. {' and '.join(SHIPPED_DETECTORS)} ship inside "
    "edge-fer and haar comes with OpenCV: they need nothing fetched."))
@click.argument("detectors", nargs=-1, shell_complete=_complete_detectors)
@click.option("--from", "source_dir", type=click.Path(), metavar="DIR",
              help="Copy the files from this folder instead of downloading them (offline machines).")
@click.option("--dest", "dest_dir", type=click.Path(), metavar="DIR",
              help="Folder to put them in (default: the cache folder the detectors look in).")
@click.option("--force", is_flag=True, help="Replace files that are already there and verified.")
@click.option("--timeout", "timeout_s", default=60.0, type=float, metavar="SECONDS",
              help="Seconds to wait for each download to answer.")
def fetch_command(detectors, source_dir, dest_dir, force, timeout_s) -> None:
    from ..detectors.fetch import FetchOptions, fetch_detectors

    options = FetchOptions(tuple(detectors) or FETCH_NAMES, dest_dir, source_dir, force, timeout_s)
    for fetched in fetch_detectors(options):
        click.echo(f"{fetched.action:<10} {fetched.path} ({fetched.size_bytes} bytes, "
                   f"sha256 {fetched.sha256[:16]}...)")
