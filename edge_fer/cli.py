"""The ``edge-fer`` command line: a click group of thin commands.

Each command parses its arguments, builds one options object and calls one library function.
Command modules import only click at import time; heavy libraries load inside the call.
Any :class:`~edge_fer.errors.EdgeFerError` becomes one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import sys

import click

from .errors import EdgeFerError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeFerError as exc:
            click.echo(f"edge-fer: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edge-fer: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-fer")
def main() -> None:
    """Facial expression recognition on edge devices: run, bench, convert, train."""


def _register() -> None:
    from .commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
