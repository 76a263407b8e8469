"""Work items: the sources an analysis reads, discovered from paths, folders and URLs.

    found = discover_all(["sessions/", "extra.mp4", "https://host/rec.mp4"], glob="*.mp4")
    found.items                                  # [WorkItem]; discover(...) gives this list alone
    found.skipped                                # files left out, with the reason

* A file is a video unless its suffix is an image suffix (each image is its own source).
* A folder is searched recursively for videos and images (hidden files and folders skipped):
  its files in name order, then each subfolder the same way, in name order. ``glob`` keeps
  the files whose name or path relative to the folder matches. Files named on the command
  line are always taken, whatever ``glob`` says. A file in a folder whose suffix is neither a
  video nor an image suffix is left out and listed in ``skipped`` (``notes.txt``).
* Each real file is taken once, by device and inode: a second name for it (a hard link, a
  symbolic link, the same file named twice) is not read again. Symbolic links to files are
  followed (a folder of links to recordings kept elsewhere is a folder of recordings); links to
  folders only where they lead inside one of the folders given (each real folder walked once,
  so ``up -> ..`` or two links to ``.`` cannot loop); ``follow_links`` follows links to folders
  out of them too (still each real folder and file once). A folder's files reached without a
  link come first (they keep their real names), then those reached through one.
* A ``scheme://`` URL is a recording read in order, like a file.
* ``source`` is the path as given (a folder's files: the folder as given joined with the
  file's relative path); the order is the order given, then the folder order above.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from ..errors import InputError
from ..sources.capture import IMAGE_SUFFIXES, is_url

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".ts", ".mts", ".3gp", ".ogv")
KINDS = ("video", "image", "url")
#: Why a file found in a folder is not a source (``Discovery.skipped``).
UNSUPPORTED = "not a video or image suffix"
OUTSIDE = "a symbolic link to a folder out of the input folders (AnalyzeOptions.follow_links follows it)"
BROKEN_LINK = "a symbolic link to nothing"
NOT_A_FILE = "not a regular file (a FIFO, a device, a socket)"


@dataclass(frozen=True)
class WorkItem:
    """One source. ``size_bytes``/``mtime_ns`` identify the file's version (None for a URL):
    ``--resume`` skips a source whose path, size and modification time are unchanged."""

    index: int
    source: str
    kind: str
    size_bytes: int | None = None
    mtime_ns: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"WorkItem.kind={self.kind!r}: expected one of {', '.join(KINDS)}")

    @property
    def key(self) -> tuple[str, int | None, int | None]:
        return (self.source, self.size_bytes, self.mtime_ns)


@dataclass
class Discovery:
    """``items``: the sources; ``skipped``: ``(path, reason)`` of every file found in a folder
    and left out (not media, a link out of the folders), in walk order. Hidden files, files
    ``glob`` leaves out and second names of a file already taken are not listed."""

    items: list[WorkItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def media_kind(path: str | Path) -> str | None:
    """``video``, ``image`` or None (not a media file by its suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _matches(relative: str, glob: str | None) -> bool:
    return glob is None or fnmatchcase(relative, glob) or fnmatchcase(relative.rsplit("/", 1)[-1], glob)


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _inside(real: str, roots: list[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class _Walker:
    """Walks folders: each real folder once (``dirs``: device and inode), links followed only
    into ``roots`` (real paths of the folders given) unless ``follow_links``."""

    def __init__(self, roots: list[str], glob: str | None, follow_links: bool, found: Discovery) -> None:
        self.roots, self.glob, self.follow_links, self.found = roots, glob, follow_links, found
        self.dirs: set[tuple[int, int]] = set()

    def walked(self, folder: str) -> bool:
        info = os.stat(folder)
        return (info.st_dev, info.st_ino) in self.dirs

    def walk(self, folder: str) -> list[str]:
        """The media files under ``folder`` (paths: the folder as given + relative path): those
        reached without a symbolic link first, then those reached through one."""
        files: list[str] = []
        links: list[tuple[str, str, bool]] = []
        self._walk(folder, "", files, links)
        while links:
            full, rel, is_dir = links.pop(0)
            if is_dir:
                self._walk(full, rel + "/", files, links)
            elif not os.path.isfile(full):
                self._skip(full, NOT_A_FILE, rel)
            else:
                self._file(full, rel, files)
        return files

    def _walk(self, path: str, relative: str, files: list[str], links: list) -> None:
        try:
            info = os.stat(path)
            if (info.st_dev, info.st_ino) in self.dirs:
                return
            self.dirs.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:  # unreadable subfolder: say so, walk the rest
            log.warning("cannot list folder %s: %s", path, exc.strerror or type(exc).__name__)
            return
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{relative}{entry.name}"
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if not os.path.exists(real):
                    self._skip(entry.path, BROKEN_LINK, rel)
                elif is_dir and not self.follow_links and not _inside(real, self.roots):
                    self._skip(entry.path, OUTSIDE, rel)
                else:
                    links.append((entry.path, rel, is_dir))
            elif is_dir:
                subfolders.append((entry.path, rel + "/"))
            elif not _is_file(entry):
                self._skip(entry.path, NOT_A_FILE, rel)
            else:
                self._file(entry.path, rel, files)
        for full, rel in subfolders:
            self._walk(full, rel, files, links)

    def _file(self, path: str, relative: str, files: list[str]) -> None:
        if media_kind(path) is None:
            self._skip(path, UNSUPPORTED, relative)
        elif _matches(relative, self.glob):
            files.append(path)

    def _skip(self, path: str, reason: str, relative: str) -> None:
        if _matches(relative, self.glob):
            self.found.skipped.append((path, reason))


def _identity(path: str) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime_ns) of a regular file; None if it is not one."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def discover_all(paths, glob: str | None = None, follow_links: bool = False) -> Discovery:
    """The work items of ``paths`` and the files skipped in folders; InputError (one line) for
    a path that does not exist, a folder without media, or no paths at all."""
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise InputError("no inputs: give video files, image files, folders or URLs")
    found = Discovery()
    roots = [os.path.realpath(p) for p in paths if not is_url(p) and os.path.isdir(p)]
    walker = _Walker(roots, glob, follow_links, found)
    urls: set[str] = set()
    files: set[tuple[int, int]] = set()

    def add_file(source: str, kind: str) -> bool:
        identity = _identity(source)
        if identity is None:
            raise InputError(f"input is not a regular file: {source} (expected a video, an image, a folder or a URL)")
        if identity[:2] in files:
            log.debug("%s: the same file as a source already taken: read once", source)
            return False
        files.add(identity[:2])
        found.items.append(WorkItem(len(found.items), source, kind, identity[2], identity[3]))
        return True

    for path in paths:
        if is_url(path):
            if path not in urls:
                urls.add(path)
                found.items.append(WorkItem(len(found.items), path, "url"))
        elif os.path.isdir(path):
            if walker.walked(path):  # named twice, or inside a folder given before
                log.debug("%s: walked already", path)
                continue
            folder_files = walker.walk(path)
            for file in folder_files:
                add_file(file, media_kind(file))
            if not folder_files:
                what = f"matching AnalyzeOptions.glob={glob!r} " if glob else ""
                links = sum(reason == OUTSIDE for _, reason in found.skipped)
                hint = (f"; {links} symbolic link{'s' if links != 1 else ''} to folders out of it not followed: "
                        "add AnalyzeOptions.follow_links" if links else "")
                raise InputError(f"no videos or images {what}in folder {path} (expected files "
                                 f"ending in {', '.join(VIDEO_SUFFIXES + IMAGE_SUFFIXES)}){hint}")
        elif os.path.exists(path):
            add_file(path, media_kind(path) or "video")  # named explicitly: try it as a video
        else:
            raise InputError(f"input not found: {path} (expected a video, an image, a folder or a URL)")
    for path, reason in found.skipped:
        log.debug("skipped %s: %s", path, reason)
    return found


def discover(paths, glob: str | None = None, follow_links: bool = False) -> list[WorkItem]:
    """The work items of ``paths`` (see :func:`discover_all`)."""
    return discover_all(paths, glob, follow_links).items
