"""``edge-fer serve-web DIR``: serve the phone page's folder (docs/phone.md)."""

from __future__ import annotations

import click

from . import GroupedCommand


@click.command("serve-web", cls=GroupedCommand)
@click.argument("folder", metavar="DIR", type=click.Path())
@click.option("--bind", "serve", default="127.0.0.1:8000", show_default=True, metavar="[HOST:]PORT",
              help="Where to listen (port 0: a free one). A phone on the network needs HTTPS: "
                   "0.0.0.0:PORT with --tls-cert and --tls-key.")
@click.option("--tls-cert", type=click.Path(), metavar="FILE", help="HTTPS with this PEM certificate "
              "(docs/phone.md makes one the phone trusts).")
@click.option("--tls-key", type=click.Path(), metavar="FILE", help="The PEM private key of --tls-cert.")
def serve_web_command(folder, serve, tls_cert, tls_key) -> None:
    """Serve DIR, a folder written by `edge-fer export-web`, until Ctrl-C.

    Sends the .gz files export-web writes to browsers that take gzip (a phone's first visit: 16.6 MB
    without them, 7.0 MB with them, measured) and answers a browser's revalidation with 304. Loopback only
    unless --bind names another address; nothing but DIR's files is served. For a phone:
    edge-fer serve-web site/ --bind 0.0.0.0:8443 --tls-cert server.pem --tls-key server.key"""
    import threading
    from pathlib import Path

    from ..errors import InputError
    from ..serve import FerServer, ServeOptions

    if not (Path(folder) / "index.html").is_file():
        raise InputError(f"{folder} holds no index.html: expected a folder written by edge-fer export-web")
    options = ServeOptions.parse(serve, tls_cert=tls_cert, tls_key=tls_key)
    with FerServer.for_folder(folder, options) as server:
        try:
            if not server.loopback and tls_cert is None:
                click.echo("edge-fer: warning: plain HTTP on the network: a phone's browser opens the camera "
                           "only over HTTPS (add --tls-cert and --tls-key; docs/phone.md)", err=True)
            click.echo(f"edge-fer: serving {folder} at {server.url} (Ctrl-C stops)", err=True)
            threading.Event().wait()
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: how a server ends
            pass
        sent = server.static_sent
        click.echo(f"edge-fer: stopped; answered {sent.files} file requests, sent {sent.bytes:,} bytes",
                   err=True)
