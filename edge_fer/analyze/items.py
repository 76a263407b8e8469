"""Work items: the sources an analysis reads, discovered from paths, folders and URLs.

    items = discover(["sessions/", "extra.mp4", "https://host/rec.mp4"], glob="*.mp4")

* A file is a video unless its suffix is an image suffix (each image is its own source).
* A folder is searched recursively for videos and images (hidden files and folders skipped):
  its files in name order, then each subfolder the same way, in name order. ``glob`` keeps
  the files whose name or path relative to the folder matches. Files named on the command
  line are always taken, whatever ``glob`` says.
* A ``scheme://`` URL is a recording read in order, like a file.
* ``source`` is the path as given (a folder's files: the folder as given joined with the
  file's relative path); the order is the order given, then the folder order above; a
  source named twice is taken once (at its first place).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ..sources.capture import IMAGE_SUFFIXES, is_url
from ..errors import InputError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".ts", ".mts", ".3gp", ".ogv")
KINDS = ("video", "image", "url")


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


def _folder_files(folder: str, glob: str | None) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        relative_root = os.path.relpath(root, folder)
        for name in sorted(files):
            relative = name if relative_root == "." else f"{relative_root}/{name}".replace(os.sep, "/")
            if name.startswith(".") or media_kind(name) is None or not _matches(relative, glob):
                continue
            found.append(os.path.join(folder, relative))
    return found


def _item(index: int, source: str, kind: str) -> WorkItem:
    stat = os.stat(source)
    return WorkItem(index, source, kind, stat.st_size, stat.st_mtime_ns)


def discover(paths, glob: str | None = None) -> list[WorkItem]:
    """The work items of ``paths``; InputError (one line) for a path that does not exist, a
    folder without media, or no paths at all."""
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise InputError("no inputs: give video files, image files, folders or URLs")
    items: list[WorkItem] = []
    seen: set[str] = set()

    def add(source: str, kind: str) -> None:
        if source not in seen:
            seen.add(source)
            items.append(WorkItem(len(items), source, kind) if kind == "url" else _item(len(items), source, kind))

    for path in paths:
        if is_url(path):
            add(path, "url")
        elif os.path.isdir(path):
            files = _folder_files(path, glob)
            if not files:
                what = f"matching AnalyzeOptions.glob={glob!r} " if glob else ""
                raise InputError(f"no videos or images {what}in folder {path} (expected files "
                                 f"ending in {', '.join(VIDEO_SUFFIXES + IMAGE_SUFFIXES)})")
            for file in files:
                add(file, media_kind(file))
        elif os.path.isfile(path):
            add(path, media_kind(path) or "video")  # named explicitly: try it as a video
        else:
            raise InputError(f"input not found: {path} (expected a video, an image, a folder or a URL)")
    return items
