"""``edge-fer fetch-detectors``: download (or copy with --from) the detector files, verified."""

from __future__ import annotations

import click


@click.command("fetch-detectors")
@click.argument("detectors", nargs=-1)
@click.option("--from", "source_dir", type=click.Path(),
              help="Copy the files from this folder instead of downloading them (offline machines).")
@click.option("--dest", "dest_dir", type=click.Path(),
              help="Folder to put them in (default: the cache folder the detectors look in).")
@click.option("--force", is_flag=True, help="Replace files that are already there and verified.")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, type=float,
              help="Seconds to wait for each download to answer.")
def fetch_command(detectors, source_dir, dest_dir, force, timeout_s) -> None:
    """Fetch the files of DETECTORS (ssd, yunet, blazeface, rfb; default: all), checking each
    file's size and sha256 against pinned values before it is saved."""
    from ..detectors.fetch import FETCHABLE, FetchOptions, fetch_detectors

    options = FetchOptions(tuple(detectors) or FETCHABLE, dest_dir, source_dir, force, timeout_s)
    for fetched in fetch_detectors(options):
        click.echo(f"{fetched.action:<10} {fetched.path} ({fetched.size_bytes} bytes, "
                   f"sha256 {fetched.sha256[:16]}...)")
