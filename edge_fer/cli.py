"""The ``edge-fer`` command line: a click group of thin commands.

Each command parses its arguments, builds one options object and calls one library function.
Commands load lazily (click's documented LazyGroup pattern): ``edge-fer run`` imports only the
run command's module, so start-up stays fast and TensorFlow stays out of the runtime.
Any :class:`~edge_fer.errors.EdgeFerError` becomes one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import importlib
import sys

import click

from .errors import EdgeFerError

#: command name -> "module:attribute" under edge_fer.commands
COMMANDS = {
    "run": "run:run_command",
    "bench": "bench:bench_command",
    "convert": "convert:convert_command",
    "train": "train:train_command",
    "eval": "train:eval_command",
    "balance": "balance:balance_command",
    "doctor": "doctor:doctor_command",
    "fetch-detectors": "fetch:fetch_command",
    "analyze": "analyze:analyze_command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name].split(":")
        module = importlib.import_module(f"edge_fer.commands.{module_name}")
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeFerError as exc:
            click.echo(f"edge-fer: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edge-fer: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-fer")
def main() -> None:
    """Facial expression recognition on edge devices: run, bench, convert, train."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
