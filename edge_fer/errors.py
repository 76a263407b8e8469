"""Errors that the CLI turns into one-line messages and a non-zero exit code.

Every message names the bad value and, where there is one, the expected value.
"""


class EdgeFerError(Exception):
    """Base class: ``str(error)`` is a single line meant for the user."""

    exit_code = 2


class InputError(EdgeFerError):
    """A source (image, video, camera, dataset folder) that cannot be read."""


class ModelError(EdgeFerError):
    """A model file that is missing, corrupt or that the runtime cannot feed."""


class DetectorError(EdgeFerError):
    """An unknown face detector or missing detector files."""


class OptionsError(EdgeFerError):
    """An option value outside what the stage accepts."""


class ConversionError(EdgeFerError):
    """A conversion that failed or did not pass verification."""


class WorkerError(EdgeFerError):
    """Worker processes that could not start (a script without a ``__main__`` guard, say)."""


class OutputError(EdgeFerError):
    """An output (video, image folder, report, model file) that cannot be written in full:
    a missing or read-only folder, a full disk."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text (at most ``limit`` characters), else its type name."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
