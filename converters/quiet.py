"""Silence the converters' chatter (Keras export listings, MLIR/TF C++ logs, tf2onnx, onnx2tf)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings


@contextlib.contextmanager
def quiet():
    """Send Python's and native code's stdout/stderr to /dev/null meanwhile; exceptions pass.
    ``EDGE_FER_VERBOSE=1`` in the environment keeps everything."""
    if os.environ.get("EDGE_FER_VERBOSE"):
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = []
    try:
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        if saved:
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
        if saved:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        os.close(devnull)
