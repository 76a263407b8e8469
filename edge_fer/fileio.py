"""Atomic file writes: a temp file beside the target, synced to disk, renamed over it only on success.

A failed or interrupted write leaves the target as it was and no temp file behind; a write the
file system refuses (a full disk, a read-only or missing folder) raises OutputError, one line.
Temp names carry the writer's process id (``.<name>.<pid>.<random><suffix>``): what a killed
process left (SIGKILL, a power cut) is removed by the next write of the same target
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError

log = logging.getLogger(__name__)

#: errno values that mean "the output cannot be written", whatever the writer was doing.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """The one-line error for an OSError while writing ``path``."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (the disk is full)"
    return OutputError(f"cannot write {path}: {reason}")


def check_writable_folder(folder: str | Path, what: str = "output") -> Path:
    """``folder`` exists and a file can be created in it (a real probe: permission bits do not
    stop root, a read-only mount does); OutputError naming it otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{what} folder does not exist: {folder}")
    try:
        fd, name = tempfile.mkstemp(prefix=".edge-fer-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write into {what} folder {folder}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(name)
    return folder


def make_output_folder(folder: str | Path, what: str = "output") -> Path:
    """``folder`` and its missing parents created, then probed with :func:`check_writable_folder`:
    call it before any slow work, so a bad output path fails at once. OutputError naming it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} folder {folder}: {exc.strerror or type(exc).__name__}") from None
    return check_writable_folder(folder, what)


def sync_file(path: str | Path) -> None:
    """Flush a written file's data to the disk (``fsync``); OutputError when that fails."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None


def commit_file(tmp: str | Path, path: str | Path) -> Path:
    """Sync ``tmp``, give it a plain file's mode and rename it to ``path`` (then sync the folder)."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_file():
        sync_file(tmp)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:  # the rename itself, on disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the data itself is synced
    return path


def temp_prefix(path: Path) -> str:
    """The start of a temp name beside ``path`` for this process: ``.<name>.<pid>.``."""
    return f".{path.name}.{os.getpid()}."


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or not ours to judge: leave its files alone
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files and folders beside ``path`` that a process no longer running left
    while writing it (named ``.<name>.<pid>.*``, or ``.<stem>.partial-<pid><suffix>`` for videos)."""
    ours = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\."
                      rf"|^\.{re.escape(path.stem)}\.partial-(\d+){re.escape(path.suffix)}$")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = ours.match(entry.name)
        if not match or pid_alive(int(match.group(1) or match.group(2))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    if removed:
        log.info("removed %d temporary file(s) that an interrupted run left beside %s", len(removed), path)
    return removed


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", make_parent: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (ending in ``suffix``, for writers that look at it);
    when the block ends without error it is synced, gets a plain file's mode and is renamed to
    ``path``. An OSError writing it (disk full, read-only folder) becomes OutputError."""
    path = Path(path)
    try:
        if make_parent:
            path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=suffix, dir=path.parent)
    except FileNotFoundError:
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist") from None
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in _WRITE_ERRNOS or (exc.filename and Path(exc.filename) == tmp):
                raise output_error(path, exc) from None
            raise
        commit_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | Path, data, indent: int = 1) -> Path:
    with atomic_path(path, make_parent=True) as tmp:
        tmp.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    return Path(path)


def write_with_atomic(path: str | Path, write, suffix: str = ".tmp") -> Path:
    """Call ``write(binary_handle)`` on a temp file beside ``path``, then commit it there."""
    with atomic_path(path, suffix) as tmp, tmp.open("wb") as handle:
        write(handle)
    return Path(path)


def portable_path(path: str | Path) -> str:
    """``path`` as a report records it: relative to the working folder (``../shared/data/...``),
    never absolute, so that a committed report names no folder of the machine it was made on."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows): the name alone
        return Path(path).name


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
