"""The ``edge-fer`` command line: a click group of thin commands.

Each command parses its arguments, builds one options object and calls one library function.
Commands load lazily (click's documented LazyGroup pattern): ``edge-fer run`` imports only the
run command's module, so start-up stays fast and TensorFlow stays out of the runtime.
Any :class:`~edge_fer.errors.EdgeFerError` becomes one line on stderr and a non-zero exit code;
so does any usage error (a missing, unknown or bad option): ``edge-fer: error: <what, the option,
a good value>; see edge-fer CMD --help``, exit code 2, as click's own errors.
Library code reports through :mod:`logging` (logger ``edge_fer``); the CLI shows its records on
stderr as ``edge-fer: ...`` lines: notes by default, debug detail with ``-v``, warnings only
with ``-q``. Data (results, reports, JSON) goes to stdout; status lines go to stderr.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import warnings

import click

from .commands import HelpContext
from .commands.flags import in_flags
from .errors import EdgeFerError
from .signals import stop_exit_code, stop_line, stop_signals_raise

#: command name -> "module:attribute" under edge_fer.commands
COMMANDS = {
    "run": "run:run_command",
    "bench": "bench:bench_command",
    "convert": "convert:convert_command",
    "train": "train:train_command",
    "eval": "train:eval_command",
    "teacher-probs": "train:teacher_probs_command",
    "balance": "balance:balance_command",
    "clean": "clean:clean_command",
    "oof-probs": "clean:oof_probs_command",
    "doctor": "doctor:doctor_command",
    "calibrate-framing": "calibrate:calibrate_command",
    "calibrate-confidence": "calibrate:calibrate_confidence_command",
    "convert-ssd": "convert_ssd:convert_ssd_command",
    "fetch-detectors": "fetch:fetch_command",
    "check-phone": "phone:check_phone_command",
    "export-web": "export_web:export_web_command",
    "serve-web": "serve_web:serve_web_command",
    "analyze": "analyze:analyze_command",
}


#: The command being run (set once click has resolved it): the flags that log lines and errors show.
_running: click.Command | None = None


class _LazyGroup(click.Group):
    context_class = HelpContext  # help wraps between words only

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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with the first sentence of its help, whole (click cuts it at 45 characters)."""
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit=1000)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _NO_ARGS_IS_HELP:  # bare `edge-fer`: the group's help
            raise
        except click.UsageError as exc:  # edge-fer --bogus
            _usage_error(exc, ctx, self)

    def invoke(self, ctx: click.Context):
        try:
            with stop_signals_raise():  # SIGTERM/SIGHUP/SIGQUIT unwind like Ctrl-C: temp files go
                return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:  # a command's missing, unknown or bad option; an unknown command
            _usage_error(exc, ctx, _running)
        except EdgeFerError as exc:
            click.echo(f"edge-fer: error: {in_flags(str(exc), _running)}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # an output that cannot take what is written (> /dev/full)
            _silence_stdout()
            where = exc.filename or str(getattr(sys.stdout, "name", "stdout")).strip("<>")
            click.echo(f"edge-fer: error: cannot write to {where}: {exc.strerror or type(exc).__name__}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as stop:  # Ctrl-C, or a stop signal (Terminated): 128 + its number
            click.echo(stop_line(stop), err=True)
            ctx.exit(stop_exit_code(stop))


#: click >= 8.2 raises this (a UsageError) for a bare ``edge-fer``; it shows the help, not an error.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_error(exc: click.UsageError, ctx: click.Context, command: click.Command | None):
    """click's usage error as the house's one line on stderr; exit code 2 (click's).
    ``command``: the command being parsed, where click's error does not say (no context)."""
    if exc.ctx is None and command is not None and command is not ctx.command:
        where = f"edge-fer {command.name}"
    else:
        command, where = (exc.ctx or ctx).command, _command_path(exc.ctx or ctx)
    click.echo(f"edge-fer: error: {usage_message(exc, command, exc.ctx or ctx)}; see {where} --help", err=True)
    ctx.exit(exc.exit_code)


def usage_message(exc: click.UsageError, command: click.Command | None, ctx: click.Context | None) -> str:
    """What is wrong, in one line: the option's name and what it wants (its metavar and an
    example value, or the gist of its help)."""
    param = getattr(exc, "param", None)
    if isinstance(exc, click.MissingParameter) and param is not None:
        what = "option" if isinstance(param, click.Option) else "argument"
        return f"missing {what} {_wanted(param, command, ctx)}"
    if isinstance(exc, click.BadParameter):
        name = _flag(param) if param is not None else _hint(exc.param_hint) if exc.param_hint else None
        text = _sentence(exc.message)
        example = _example(param, command, ctx) if param is not None and "expected" not in text else None
        return (f"invalid value for {name}: {text}" if name else f"invalid value: {text}") + (
            f" (e.g. {example})" if example else "")
    if isinstance(exc, click.NoSuchOption):
        return f"no such option {exc.option_name}" + _did_you_mean(exc.possibilities)
    if isinstance(exc, click.BadOptionUsage):
        given = next((p for p in getattr(command, "params", ()) if exc.option_name in getattr(p, "opts", ())), None)
        if given is not None and "requires" in exc.message and "argument" in exc.message:
            return f"option {_flag(given)} needs a value, {_wanted(given, command, ctx, named=False)}"
        return _sentence(exc.message).replace(repr(exc.option_name), exc.option_name)
    if hasattr(exc, "command_name"):  # NoSuchCommand (click >= 8.4)
        possible = getattr(exc, "possibilities", None) or difflib.get_close_matches(exc.command_name, COMMANDS)
        return _sentence(exc.message) + _did_you_mean(possible)
    return _sentence(exc.format_message())


def _sentence(text: str) -> str:
    """click's message as a clause: one line, no final full stop, lower case first letter."""
    return _lower_first(" ".join(str(text).split()).rstrip("."))


def _lower_first(text: str) -> str:
    """``Output file`` -> ``output file``, ``A teacher`` -> ``a teacher``; ``FER2013 CSV`` stays."""
    word = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if word[:1].isupper() and word[1:] == word[1:].lower() else text


def _did_you_mean(possibilities) -> str:
    names = list(possibilities or ())
    if not names:
        return ""
    return f" (did you mean {names[0]}?)" if len(names) == 1 else f" (did you mean one of {', '.join(names)}?)"


def _hint(param_hint) -> str:
    return param_hint if isinstance(param_hint, str) else " / ".join(param_hint)


def _flag(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        long = [opt for opt in param.opts if opt.startswith("--")]
        return (long or param.opts)[0]
    return param.human_readable_name


def _metavar(param: click.Parameter, ctx: click.Context | None) -> str:
    try:
        return param.make_metavar(ctx)  # click >= 8.2
    except TypeError:
        return param.make_metavar()  # click 8.1


def _wanted(param: click.Parameter, command: click.Command | None, ctx: click.Context | None,
            named: bool = True) -> str:
    """What an option wants: ``--out FILE (e.g. --out results.csv)`` where the command gives an
    example, else ``--out FILE|DIR: output file (.tflite or .onnx)`` (the gist of its help);
    ``named=False``: without the flag."""
    if isinstance(param, click.Argument):
        return _metavar(param, ctx)
    text = " ".join(filter(None, (_flag(param) if named else "", "" if param.is_flag else _metavar(param, ctx))))
    example = getattr(command, "examples", {}).get(param.name)
    if example is not None:
        return f"{text} (e.g. {_flag(param)} {example})"
    gist = _gist(param.help or "")
    return f"{text}: {gist}" if gist else text


def _gist(help_text: str) -> str:
    """The first clause of an option's help (up to its first full stop or semicolon), if short."""
    text = re.split(r"\.\s+(?=[A-Z])|; ", " ".join(help_text.split()))[0].rstrip(".")
    if len(text) > 80 and " (" in text:
        text = text.split(" (")[0]
    return "" if len(text) > 80 else _lower_first(text)


def _example(param: click.Parameter, command: click.Command | None, ctx: click.Context | None) -> str | None:
    """``--threads 1``: the command's example for the option, else, for a number, its default or
    a value of its type."""
    if not isinstance(param, click.Option):
        return None
    example = getattr(command, "examples", {}).get(param.name)
    if example is not None:
        return f"{_flag(param)} {example}"
    kind = param.type
    if not isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return None
    default = param.get_default(ctx) if ctx is not None else param.default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        value = default
    else:
        low = getattr(kind, "min", None)
        value = low if low is not None else (2 if isinstance(kind, click.types.IntParamType) else 0.5)
    return f"{_flag(param)} {value}"


def _command_path(ctx: click.Context) -> str:
    """``edge-fer analyze``, whatever name the program was started by (a test runner's too)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or ctx.command.name)
        ctx = ctx.parent
    return " ".join(["edge-fer", *reversed(names)])


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


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="edge-fer")
@click.option("-v", "--verbose", count=True, show_default=False, help="More detail on stderr (debug messages).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """Facial expression recognition on edge devices: run, bench, convert, train."""
    configure_logging(-1 if quiet else verbose)
    if verbose < 1:
        quiet_tensorflow_start()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
