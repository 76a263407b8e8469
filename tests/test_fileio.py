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
    from edge_fer.fileio import partial_path, temp_path

    target = tmp_path / "model.tflite"
    dead, alive = dead_pid(), os.getpid()
    stale = [temp_path(target, ".tflite", pid=dead), partial_path(target, pid=dead)]
    for path in stale:
        path.write_bytes(b"half")
    stale.append(temp_path(target, pid=dead))
    stale[-1].mkdir()  # a folder (export-web builds one)
    kept = [temp_path(target, ".tflite", pid=alive),              # a writer still running
            temp_path(target, ".tflite", pid=dead, host="other"),  # another machine's (shared storage)
            partial_path(target, pid=dead, host="other"),
            temp_path(tmp_path / "other.tflite", pid=dead),         # another target's
            tmp_path / ".model.tflite.notes",                        # not our naming
            tmp_path / ".model.tflite.k3j_h5g6.tflite"]              # an older edge-fer's: no pid to judge
    for path in kept:
        path.write_bytes(b"x")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, *(p.name for p in kept)])


def test_temp_names_carry_host_and_pid():
    from edge_fer.fileio import HOST, partial_path, temp_path

    assert HOST and all(c.isalnum() or c == "_" for c in HOST) and len(HOST) <= 32
    name = temp_path("out/r.csv", ".csv").name
    assert name.startswith(f".r.csv.tmp-{HOST}-{os.getpid()}-") and name.endswith(".csv")
    assert len(name) == len(f".r.csv.tmp-{HOST}-{os.getpid()}-") + 8 + len(".csv")
    assert partial_path("out/v.mp4", pid=12, host="h").name == ".v.partial-h-12.mp4"


def test_host_part():
    """Letters and digits kept, each other character a ``_`` (so ip-10-0-1-23 and ip-10-0-12-3 stay
    apart); a long name cut to 32 characters, its end a hash of the whole (two names stay apart)."""
    from edge_fer.fileio import _host_part

    assert _host_part("box") == "box" and _host_part("") == "host"
    assert _host_part("ip-10-0-1-23.ec2.internal") == "ip_10_0_1_23_ec2_internal" != _host_part("ip-10-0-12-3")
    long_a, long_b = _host_part("n" * 40 + "a"), _host_part("n" * 40 + "b")
    assert len(long_a) == len(long_b) == 32 and long_a != long_b


def test_atomic_writes_and_folders_use_the_one_naming(tmp_path):
    from edge_fer.fileio import HOST, atomic_path, new_temp

    with atomic_path(tmp_path / "a.json", ".json") as tmp:
        assert tmp.name.startswith(f".a.json.tmp-{HOST}-{os.getpid()}-") and tmp.suffix == ".json"
        tmp.write_text("{}")
    folder = new_temp(tmp_path / "site", folder=True)
    assert folder.is_dir() and folder.name.startswith(f".site.tmp-{HOST}-{os.getpid()}-")
    with pytest.raises(OutputError, match=r"cannot write .*site: folder .*missing does not exist"):
        new_temp(tmp_path / "missing" / "site", folder=True)


def test_remove_stale_temps_of_several_targets_and_legacy_names(tmp_path):
    from edge_fer.fileio import is_legacy_temp, remove_stale_temps, temp_path

    dead = dead_pid()
    (tmp_path / "tl").mkdir()
    targets = [tmp_path / "r.csv", tmp_path / "r.csv.summary.csv", tmp_path / "tl" / "a.png"]
    stale = [temp_path(t, t.suffix, pid=dead) for t in targets]
    legacy = tmp_path / ".r.csv.ab_cd123.csv"
    for path in stale + [legacy]:
        path.write_text("partial")
    assert is_legacy_temp(legacy.name, "r.csv") and not is_legacy_temp(".r.csv.backup.csv", "r.csv")
    assert sorted(remove_stale_temps(*targets)) == sorted(stale)
    assert legacy.exists()  # only where the caller says so: it carries no pid
    assert remove_stale_temps(*targets, legacy=True) == [legacy]


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_atomic_write_never_replaces_what_is_not_a_regular_file(kind, tmp_path):
    """A rename over a FIFO, a folder or a device (``--json /dev/full``) would replace it."""
    from edge_fer.errors import OutputError
    from edge_fer.fileio import write_bytes_atomic

    target = tmp_path / "out.json"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    expected = {"fifo": "a FIFO", "folder": "a folder"}[kind]
    with pytest.raises(OutputError, match=f"cannot write .*out.json: it is {expected}; expected a regular file"):
        write_bytes_atomic(target, b"x")
    assert (target.is_fifo() if kind == "fifo" else target.is_dir())
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file either


def test_folder_atomic_publishes_whole_folders_only(tmp_path):
    from edge_fer.fileio import folder_atomic

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with folder_atomic(out) as building:
            (building / "half.txt").write_text("half")
            raise RuntimeError("stopped midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old folder, no temp left
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with folder_atomic(out) as building:
        (building / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert out.stat().st_mode & 0o777 == 0o755
