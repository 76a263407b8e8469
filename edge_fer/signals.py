"""Signals that end a command the way Ctrl-C does, so every ``finally`` runs: temp files are
removed, a recording is finished, workers are stopped."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP (the terminal or SSH session went away) or SIGQUIT arrived: the work
    stops as on Ctrl-C (``args[0]`` names the signal)."""

    @property
    def signal_name(self) -> str:
        return str(self.args[0]) if self.args else "SIGTERM"


def stop_exit_code(stop: KeyboardInterrupt) -> int:
    """The shell's status for a command a signal stopped: 128 + the signal's number (SIGTERM
    143, SIGHUP 129, SIGQUIT 131; Ctrl-C, SIGINT, 130)."""
    name = stop.signal_name if isinstance(stop, Terminated) else "SIGINT"
    try:
        return 128 + signal.Signals[name].value
    except KeyError:
        return 128 + signal.SIGTERM


def stop_line(stop: KeyboardInterrupt) -> str:
    """The one line a stopped command ends with."""
    return f"edge-fer: stopped by {stop.signal_name}" if isinstance(stop, Terminated) else "edge-fer: interrupted"


#: Signals that end a command the way Ctrl-C does (where the platform has them).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))


#: The stop signal that arrived inside :func:`stop_signals_raise`, if any.
_stopping: list[str] = []


def raise_if_stopped() -> None:
    """Raise :class:`Terminated` if a stop signal arrived: for code that wraps a library which
    catches every exception (TensorFlow's converter turns the interrupt into another error)."""
    if _stopping:
        raise Terminated(_stopping[0])


@contextmanager
def stop_signals_raise():
    """While inside, the first of :data:`STOP_SIGNALS` raises :class:`Terminated` in the main
    thread (later ones are ignored so the cleanup can finish); elsewhere, and outside, nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame) -> None:
        if not fired:
            fired.append(signum)
            _stopping.append(signal.Signals(signum).name)
            raise Terminated(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        _stopping.clear()
        for signum, before in previous.items():
            signal.signal(signum, before if before is not None else signal.SIG_DFL)
