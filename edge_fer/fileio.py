"""Atomic file writes: a temp file beside the target, synced to disk, renamed over it only on success.

A failed or interrupted write leaves the target as it was and no temp file behind; a write the
file system refuses (a full disk, a read-only or missing folder) raises OutputError, one line.

The one temp naming of edge-fer, for files and folders (:func:`temp_path`)::

    .<name>.tmp-<host>-<pid>-<random><suffix>     atomic writes, analyze's outputs, export-web's folder
    .<stem>.partial-<host>-<pid><suffix>          a video being recorded (:func:`partial_path`)

What a killed writer left (SIGKILL, a power cut) is removed by the next writer of the same target
(:func:`remove_stale_temps`), and only where the host is this one and the pid runs no more: on
shared storage another machine's temp files are never touched.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import socket
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


# temp names ---------------------------------------------------------------------------------------
def _host_part(hostname: str) -> str:
    """``hostname`` as a temp name's host part: each character other than a letter or digit becomes
    ``_`` (``ip-10-0-1-23`` and ``ip-10-0-12-3`` stay apart); over 32 characters, the first 23 and
    8 hex digits of the whole name's hash."""
    part = re.sub(r"[^A-Za-z0-9]", "_", hostname) or "host"
    if len(part) > 32:
        part = part[:23] + "_" + hashlib.sha256(hostname.encode()).hexdigest()[:8]
    return part


#: This machine, as temp names carry it (only its own temp files are ever judged stale).
HOST = _host_part(socket.gethostname())


def temp_path(path: str | Path, suffix: str = "", pid: int | None = None, host: str = HOST) -> Path:
    """The name of a new temp file or folder beside ``path`` (nothing is created):
    ``.<name>.tmp-<host>-<pid>-<8 random hex digits><suffix>``, this process's unless ``pid`` and
    ``host`` name another writer (tests make what other writers leave with them)."""
    path = Path(path)
    pid = os.getpid() if pid is None else pid
    return path.with_name(f".{path.name}.tmp-{host}-{pid}-{secrets.token_hex(4)}{suffix}")


def partial_path(path: str | Path, pid: int | None = None, host: str = HOST) -> Path:
    """Where a video is recorded before it is checked and renamed to ``path``:
    ``.<stem>.partial-<host>-<pid><suffix>``, its own suffix last (the writer picks the container
    by it). ``pid`` and ``host`` as for :func:`temp_path`."""
    path = Path(path)
    pid = os.getpid() if pid is None else pid
    return path.with_name(f".{path.stem}.partial-{host}-{pid}{path.suffix}")


def new_temp(path: str | Path, suffix: str = "", folder: bool = False) -> Path:
    """Create an empty temp file (a folder with ``folder``) named by :func:`temp_path` beside
    ``path``, for its owner only; OutputError naming ``path`` when its folder refuses it."""
    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        if folder:
            tmp.mkdir(mode=0o700)
        else:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileNotFoundError:
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist") from None
    except OSError as exc:
        raise output_error(path, exc) from None
    return tmp


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (or may: another user's is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def is_stale_temp(name: str, target_name: str) -> bool:
    """``name``, beside the target named ``target_name``, is one of its temp files or folders
    (:func:`temp_path`, :func:`partial_path`) that a process of this host left and that runs no
    more. Another machine's (shared storage) never is: its pid means nothing here."""
    target = Path(target_name)
    match = (re.match(rf"\.{re.escape(target.name)}\.tmp-([A-Za-z0-9_]+)-(\d+)-[0-9a-f]{{8}}", name)
             or re.fullmatch(rf"\.{re.escape(target.stem)}\.partial-([A-Za-z0-9_]+)-(\d+){re.escape(target.suffix)}",
                             name))
    if match is None:
        return False
    host, pid = match[1], int(match[2])
    return host == HOST and pid != os.getpid() and not pid_alive(pid)


def is_legacy_temp(name: str, target_name: str) -> bool:
    """``name`` is a temp file of ``target_name`` as :func:`atomic_path` named them before host and
    pid were in the name: ``.<name>.``, tempfile.mkstemp's 8 random characters, the target's own
    suffix (``.r.csv.k3j_h5g6.csv``; analyze passed its targets' suffixes). Nothing in it says
    whether its writer still runs: only ``remove_stale_temps(..., legacy=True)`` removes them."""
    target = Path(target_name)
    return re.fullmatch(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}{re.escape(target.suffix)}", name) is not None


def _is_stale_entry(entry: os.DirEntry, names: set[str], legacy: bool) -> bool:
    if not entry.name.startswith("."):
        return False
    if any(is_stale_temp(entry.name, name) for name in names):
        return True
    return legacy and entry.is_file(follow_symlinks=False) and any(is_legacy_temp(entry.name, n) for n in names)


def remove_stale_temps(*paths: str | Path, legacy: bool = False) -> list[Path]:
    """Remove the temp files and folders beside each of ``paths`` that a killed writer of this
    host left (:func:`is_stale_temp`); with ``legacy`` also the older files of
    :func:`is_legacy_temp`, for a caller whose checks already made ``paths`` its own (analyze).
    Each folder is read once; what cannot be read or removed stays. Returns what was removed."""
    names_by_folder: dict[Path, set[str]] = {}
    for path in map(Path, paths):
        names_by_folder.setdefault(path.parent, set()).add(path.name)
    removed = []
    for folder, names in names_by_folder.items():
        try:
            with os.scandir(folder) as scan:
                stale = [entry for entry in scan if _is_stale_entry(entry, names, legacy)]
        except OSError:
            continue
        count = len(removed)
        for entry in stale:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
        if len(removed) > count:
            log.info("removed %d temporary file(s) that an interrupted run left in %s", len(removed) - count, folder)
    return removed


def refuse_special(path: Path) -> None:
    """OutputError if ``path`` exists and is not a regular file (or a link to one): a renamed
    temp file would replace a folder, a device such as /dev/full, a FIFO or a socket."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absent (or unreadable: the write will say so)
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise OutputError(f"cannot write {path}: it is {kind}; expected a regular file (or a new name)")


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", make_parent: bool = False,
                clean: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (:func:`new_temp`, ending in ``suffix`` for writers that
    look at it); when the block ends without error it is synced, gets a plain file's mode and is
    renamed to ``path``. An OSError writing it (disk full, read-only folder) becomes OutputError.
    ``clean``: first :func:`remove_stale_temps` of ``path`` (False where the caller did it for
    all its outputs at once)."""
    path = Path(path)
    refuse_special(path)
    if make_parent:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(path, exc) from None
    if clean:
        remove_stale_temps(path)
    tmp = new_temp(path, suffix)
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


@contextmanager
def folder_atomic(path: str | Path) -> Iterator[Path]:
    """Yield a new private temp folder beside ``path`` (:func:`new_temp`); when the block ends
    without error the folder gets mode 0755 and takes ``path``'s place (what was there is removed
    only afterwards). On any error the temp folder is removed; an OSError becomes OutputError
    naming ``path``."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = new_temp(path, folder=True)  # OutputError when the parent refuses it
    try:
        yield tmp
        tmp.chmod(0o755)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
