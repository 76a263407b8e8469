"""A stop signal (SIGTERM, SIGHUP, SIGQUIT) ends any command the way Ctrl-C does: one line
(`edge-fer: stopped by SIGTERM`), exit 128 + the signal's number (143, 129, 131), and nothing half-written left behind (edge_fer/signals.py, wrapped around every command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_conversion_leaves_no_temp_file(signum, peer_dir, fer_val, tmp_path):
    out = tmp_path / "SIGTERM.tflite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_fer.cli", "convert", str(peer_dir / "emotion_model.hdf5"), "--to", "tflite",
         "--labels", "fer2013", "--input-scale", "0.00784313725", "--input-offset", "-1",
         "--verify", str(fer_val), "--verify-count", "0", "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.monotonic() + 600  # a loaded CI box converts slowly; the wait ends at the event
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.startswith(".SIGTERM.tflite.") for p in tmp_path.iterdir()):
                break  # the converted file is being verified under its temp name
            time.sleep(0.05)
        assert proc.poll() is None, f"the conversion ended before its temp file was seen: {proc.communicate()}"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, err  # the shell's convention, as analyze has always done
    assert err.strip().splitlines()[-1] == f"edge-fer: stopped by {signal.Signals(signum).name}"
    assert list(tmp_path.iterdir()) == []  # no temp file, no half-written output


def test_a_stop_that_a_library_turned_into_another_error_is_still_a_stop():
    """TensorFlow's converter catches the interrupt and raises its own error: the wrapper asks
    raise_if_stopped() first, so the command still ends as stopped (128 + the signal), not as a failure."""
    from edge_fer.signals import Terminated, raise_if_stopped, stop_signals_raise

    def library_that_swallows():
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)  # the handler raises here, long before the sleep ends
        except BaseException:
            raise AttributeError("'SymbolicTensor' object has no attribute '_type_spec'") from None

    before = signal.getsignal(signal.SIGHUP)
    with stop_signals_raise():
        with pytest.raises(Terminated, match="SIGHUP"):
            try:
                library_that_swallows()
            except Exception:
                raise_if_stopped()
                raise
    raise_if_stopped()  # outside: nothing pending any more
    assert signal.getsignal(signal.SIGHUP) is before
