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
