"""Silence the converters' chatter (Keras export listings, MLIR/TF C++ logs, tf2onnx, onnx2tf)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

from edge_fer.backends import quiet_native_fds


@contextlib.contextmanager
def quiet():
    """Send Python's and native code's stdout/stderr to /dev/null meanwhile; exceptions pass.
    ``EDGE_FER_VERBOSE=1`` in the environment (or ``edge-fer -v``) keeps everything."""
    if os.environ.get("EDGE_FER_VERBOSE") or logging.getLogger("edge_fer").isEnabledFor(logging.DEBUG):
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with quiet_native_fds((1, 2)), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
