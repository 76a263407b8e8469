"""Where an analysis writes, checked before any work starts.

Every output is named after the whole ``--out`` name, so ``r.csv`` and ``r.parquet`` in one
folder never share a file::

    r.csv                    the rows
    r.csv.summary.csv        one row per source and track
    r.csv.failures.csv       sources that could not be read
    r.csv.sources.csv        every source read (what --resume compares)
    r.csv.progress.jsonl     finished sources of a run in progress: kept after an interruption
                             (Ctrl-C, SIGTERM, SIGHUP, SIGKILL) for --resume, removed at the end

:meth:`OutputPlan.check` refuses, before any work (one line, exit 2): a path that is a folder,
a FIFO, a device node or a socket; a symbolic link unless ``overwrite`` (then the link's target
is replaced and a note says so); an existing file unless ``overwrite`` or ``resume``; and a
progress file of an interrupted run unless ``resume`` (keep it) or ``overwrite`` (start again).

Files are written to temp files beside their target (edge_fer.fileio's naming,
``.<name>.tmp-<host>-<pid>-<random><suffix>``), synced and renamed over the target.
:meth:`OutputPlan.ready` removes, once for all outputs, those a killed run of this host left
(its process is gone), and the ``.<name>.XXXXXXXX<suffix>`` files of edge-fer versions before
that naming (:func:`~edge_fer.fileio.is_legacy_temp`): they carry no pid, but by then the checks
have made these outputs this run's (an existing one needs ``overwrite`` or ``resume``), and the
pattern is narrow (a hidden name, exactly mkstemp's 8 characters, the output's own suffix).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import fileio
from ..errors import InputError

log = logging.getLogger(__name__)

SIDE_FILES = ("summary", "failures", "sources")
PROGRESS = "progress"


def side_path(out: str | Path, name: str) -> Path:
    """``r.csv`` -> ``r.csv.<name>.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.name}.{name}.csv")


def legacy_side_path(out: str | Path, name: str) -> Path:
    """The side files' names before edge-fer named them after the whole output: ``r_<name>.csv``
    (``--resume`` still reads a ``r_sources.csv`` where ``r.csv.sources.csv`` is absent)."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}.csv")


def progress_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.name}.{PROGRESS}.jsonl")


# temp files ---------------------------------------------------------------------------------------
_HOST = fileio.HOST  # the host part of temp names (tests/analyze/test_analyze_inputs.py builds names with it)


def is_stale_temp(name: str, target_name: str) -> bool:
    """``name`` is a temp file of ``target_name`` that :meth:`OutputPlan.ready` removes: a killed
    run's of this host (:func:`~edge_fer.fileio.is_stale_temp`) or an older edge-fer's
    (:func:`~edge_fer.fileio.is_legacy_temp`)."""
    return fileio.is_stale_temp(name, target_name) or fileio.is_legacy_temp(name, target_name)


def write_failure(path: str | Path, exc: BaseException) -> str:
    """Why ``path`` could not be written, in one line without a repeated "cannot write PATH: "."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    prefix = f"cannot write {path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def progress_sources(path: Path) -> int:
    """How many finished sources a progress file lists (its whole lines after the header)."""
    lines = 0
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read: not ours
            return 0
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                lines += block.count(b"\n")
    except OSError:
        return 0
    return max(0, lines - 1)


# checks -------------------------------------------------------------------------------------------
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_a_file(mode: int) -> str | None:
    return next((what for test, what in _KINDS if test(mode)), None)


def probe_folder(folder: Path, option: str) -> None:
    """InputError unless a file can be created in ``folder`` (a real probe: permission bits do
    not tell for root or a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{option}: folder {folder} is not writable ({exc.strerror})") from None


@dataclass(frozen=True)
class Target:
    """One output: ``path`` as named, ``real``: where it is written (a link's target)."""

    path: Path
    real: Path


class OutputPlan:
    """The outputs of one ``write_analysis``: ``rows``, ``sides`` (name -> Target), ``progress``,
    and the timeline PNGs added with :meth:`check_timelines`."""

    def __init__(self, out: str | Path, overwrite: bool = False, resume: bool = False,
                 suffixes: tuple[str, ...] = ()) -> None:
        self.out = Path(out)
        self.suffixes = suffixes  # the row formats' (writers.FORMATS), for the error messages
        self.overwrite, self.resume = overwrite, resume
        self.option = f"WriteOptions.out={str(out)!r}"
        self.targets: list[Target] = []
        self.notes: list[str] = []  # said by ready(), once every check passed

    def check(self) -> None:
        """Check the rows file, its side files and the progress file (before any work)."""
        folder = self.out.parent
        if not folder.is_dir():
            raise InputError(f"{self.option}: folder {folder} does not exist")
        if self.out.is_dir():
            raise InputError(f"{self.option}: is a folder; expected a file"
                             + (f" ending in {', '.join(self.suffixes)}" if self.suffixes else ""))
        probe_folder(folder, self.option)
        self.rows = self._target(self.out, "")
        self.sides = {name: self._target(side_path(self.out, name), f"its side file {side_path(self.out, name).name}")
                      for name in SIDE_FILES}
        self.progress = self._target(progress_path(self.out), f"its progress file {progress_path(self.out).name}",
                                     progress=progress_sources(progress_path(self.out)))

    def check_timelines(self, folder: Path, names) -> dict:
        """``{key: Target}`` of the PNGs ``names`` (``{key: file name}``) in ``folder``, checked."""
        option = f"WriteOptions.timeline_dir={str(folder)!r}"
        return {key: self._target(folder / name, f"{folder / name}", option=option) for key, name in names.items()}

    def _target(self, path: Path, what: str, option: str | None = None, progress: int | None = None) -> Target:
        option = option or self.option
        where = f"{option}: {what + ' ' if what else ''}"
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return self._add(Target(path, path))
        except OSError as exc:
            raise InputError(f"{where}cannot be checked ({exc.strerror})") from None
        kind = _not_a_file(info.st_mode)
        if kind is not None:
            raise InputError(f"{where}is {kind}; expected a regular file (remove it, or choose another name)")
        real = path
        if stat.S_ISLNK(info.st_mode):
            real = Path(os.path.realpath(path))
            if not self.overwrite:
                raise InputError(f"{where}is a symbolic link (to {real}); add WriteOptions.overwrite to write "
                                 "through it, or choose another name")
            try:
                kind = _not_a_file(os.stat(real).st_mode)
            except FileNotFoundError:
                kind = None
            except OSError as exc:
                raise InputError(f"{where}links to {real}, which cannot be checked ({exc.strerror})") from None
            if kind is not None:
                raise InputError(f"{where}links to {real}, {kind}; expected a regular file")
            if not real.parent.is_dir():
                raise InputError(f"{where}links to {real}, in a folder that does not exist")
            probe_folder(real.parent, option)
            self.notes.append(f"writing through the symbolic link {path} -> {real} (WriteOptions.overwrite)")
        elif progress is not None:
            if progress and not (self.resume or self.overwrite):
                raise InputError(f"{where}holds {progress} finished source{'s' if progress != 1 else ''} of an "
                                 "interrupted run; add WriteOptions.resume to keep them, or WriteOptions.overwrite "
                                 "to start again")
        elif not (self.overwrite or self.resume):
            keep = ", or WriteOptions.resume to keep its finished sources" if option == self.option else ""
            raise InputError(f"{where}exists; add WriteOptions.overwrite to replace it{keep}")
        return self._add(Target(path, real))

    def _add(self, target: Target) -> Target:
        self.targets.append(target)
        return target

    def ready(self) -> list[Path]:
        """Once every check passed: say which links are written through, and remove the temp
        files that killed runs left beside the outputs (returned)."""
        for note in self.notes:
            log.info("%s", note)
        legacy = [legacy_side_path(self.out, name) for name in SIDE_FILES]
        return fileio.remove_stale_temps(*(t.real for t in self.targets), *legacy, legacy=True)
