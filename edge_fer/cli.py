"""The ``edge-fer`` command line: a click group of thin commands.

Each command parses its arguments, builds one options object and calls one library function.
Commands load lazily (click's documented LazyGroup pattern): ``edge-fer run`` imports only the
run command's module, so start-up stays fast and TensorFlow stays out of the runtime.
Any :class:`~edge_fer.errors.EdgeFerError` becomes one line on stderr and a non-zero exit code.
Library code reports through :mod:`logging` (logger ``edge_fer``); the CLI shows its records on
stderr as ``edge-fer: ...`` lines: notes by default, debug detail with ``-v``, warnings only
with ``-q``. Data (results, reports, JSON) goes to stdout; status lines go to stderr.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings

import click

from .commands.flags import in_flags
from .errors import EdgeFerError

#: command name -> "module:attribute" under edge_fer.commands
COMMANDS = {
    "run": "run:run_command",
    "bench": "bench:bench_command",
    "convert": "convert:convert_command",
    "train": "train:train_command",
    "eval": "train:eval_command",
    "teacher-probs": "train:teacher_probs_command",
    "balance": "balance:balance_command",
    "doctor": "doctor:doctor_command",
    "calibrate-framing": "calibrate:calibrate_command",
    "calibrate-confidence": "calibrate:calibrate_confidence_command",
    "convert-ssd": "convert_ssd:convert_ssd_command",
    "fetch-detectors": "fetch:fetch_command",
    "check-phone": "phone:check_phone_command",
    "export-web": "export_web:export_web_command",
    "analyze": "analyze:analyze_command",
}


#: The command being run (set once click has resolved it): the flags that log lines and errors show.
_running: click.Command | None = None


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name].split(":")
        module = importlib.import_module(f"edge_fer.commands.{module_name}")
        return getattr(module, attr)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        global _running
        name, command, rest = super().resolve_command(ctx, args)
        _running = command  # library messages name option fields: shown as this command's flags
        return name, command, rest

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeFerError as exc:
            click.echo(f"edge-fer: error: {in_flags(str(exc), _running)}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # an output that cannot take what is written (> /dev/full)
            _silence_stdout()
            where = exc.filename or str(getattr(sys.stdout, "name", "stdout")).strip("<>")
            click.echo(f"edge-fer: error: cannot write to {where}: {exc.strerror or type(exc).__name__}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("edge-fer: interrupted", err=True)
            ctx.exit(130)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(in_flags(self.format(record), _running) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 (logging must never raise)
            self.handleError(record)


def configure_logging(verbosity: int) -> None:
    """``edge_fer`` records on stderr: -1 warnings only, 0 notes (INFO), 1+ debug."""
    logger = logging.getLogger("edge_fer")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("edge-fer: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)
    logger.propagate = False


def _silence_stdout() -> None:
    """After a failed write, point fd 1 at /dev/null so that Python's exit-time flush of what is
    still buffered does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    except OSError:
        pass


def quiet_tensorflow_start() -> None:
    """Hide TensorFlow's start-up lines (CUDA probing on a machine without a GPU, CPU-feature
    notes, absl's "before InitializeLog" warning) and Keras' UserWarnings: ``-v`` shows them.
    Costs nothing where TensorFlow is never imported (the runtime)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ INFO/WARNING/ERROR lines (cuInit)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\..*)?$")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Runs TensorFlow's first import with fd 2 silenced: its loaders print before any log
    level applies. Python exceptions still propagate; the finder removes itself when used."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        from .backends import quiet_native_fds

        module.__loader__ = self._loader
        with quiet_native_fds((2,)):
            self._loader.exec_module(module)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-fer")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (debug messages).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """Facial expression recognition on edge devices: run, bench, convert, train."""
    configure_logging(-1 if quiet else verbose)
    if verbose < 1:
        quiet_tensorflow_start()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
