"""Atomic writes: the target appears whole or not at all, with a plain file's mode."""

import os
import stat

import pytest

from edge_fer.errors import OutputError
from edge_fer.fileio import atomic_path, write_bytes_atomic, write_json_atomic


def test_success_renames_with_a_plain_mode(tmp_path):
    target = write_bytes_atomic(tmp_path / "m.tflite", b"abc")
    assert target.read_bytes() == b"abc"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text().strip() == '{\n "v": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_suffix_and_missing_folder(tmp_path):
    with atomic_path(tmp_path / "a" / "m.keras", ".keras", make_parent=True) as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path / "a"
        tmp.write_bytes(b"x")
    assert (tmp_path / "a" / "m.keras").read_bytes() == b"x"
    with pytest.raises(OutputError, match=r"folder .*missing does not exist"):
        write_bytes_atomic(tmp_path / "missing" / "m.onnx", b"x")


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_write_removes_what_a_killed_writer_of_the_same_file_left(tmp_path):
    from edge_fer.fileio import write_bytes_atomic

    target = tmp_path / "model.tflite"
    dead, alive = dead_pid(), os.getpid()
    stale = [tmp_path / f".model.tflite.{dead}.abc123.tflite", tmp_path / f".model.partial-{dead}.tflite"]
    (tmp_path / f".model.tflite.{dead}.tmp-xyz").mkdir()  # a folder (export-web builds one)
    stale.append(tmp_path / f".model.tflite.{dead}.tmp-xyz")
    for path in stale[:2]:
        path.write_bytes(b"half")
    kept = [tmp_path / f".model.tflite.{alive}.live.tflite",  # a writer still running
            tmp_path / f".other.tflite.{dead}.x.tflite",      # another target's
            tmp_path / ".model.tflite.notes"]                  # not our naming
    for path in kept:
        path.write_bytes(b"x")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, *(p.name for p in kept)])
