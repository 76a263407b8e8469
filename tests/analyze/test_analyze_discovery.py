"""``edge-fer analyze`` input discovery: order, --glob, duplicates, symbolic and hard links,
files left out (issue 24 item 6, issue 25 item 9). No model needed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edge_fer.analyze.items import discover


def test_discovery_order_glob_and_duplicates(media_dir, tmp_path):
    nested = tmp_path / "day1" / "cam"
    nested.mkdir(parents=True)
    shutil.copy(media_dir / "justin.jpg", nested / "b.jpg")
    shutil.copy(media_dir / "justin.jpg", tmp_path / "a.JPG")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    items = discover([media_dir / "justin.jpg", media_dir, tmp_path])
    assert [Path(i.source).name for i in items] == [
        "justin.jpg", "no-faces.jpg", "test.mp4", "woman2.mp4", "a.JPG", "b.jpg"]
    assert [i.kind for i in items] == ["image", "image", "video", "video", "image", "image"]
    assert [i.index for i in items] == list(range(6))
    assert items[-1].source == str(tmp_path / "day1" / "cam" / "b.jpg")  # the folder as given + relative path
    assert [Path(i.source).name for i in discover([media_dir], glob="*.jpg")] == ["justin.jpg", "no-faces.jpg"]
    assert [Path(i.source).name for i in discover([tmp_path], glob="day1/*/*.jpg")] == ["b.jpg"]
    assert [i.kind for i in discover(["https://host/rec.mp4"])] == ["url"]


# Discovery: symbolic links, hard links, unsupported files (issue 24 item 6, issue 25 item 9) -----
def _layout(root: Path, image: Path, name: str) -> Path:
    """A folder ``root/in`` holding a.jpg and what the case ``name`` adds; returns it."""
    folder = root / "in"
    folder.mkdir()
    shutil.copy(image, folder / "a.jpg")
    if name == "up -> ..":
        (folder / "up").symlink_to("..")
    elif name == "two links to .":
        (folder / "l1").symlink_to(".")
        (folder / "l2").symlink_to(".")
    elif name == "link to a file inside":
        (folder / "0.jpg").symlink_to("a.jpg")  # sorts first: the real name still wins
    elif name == "hard link":
        os.link(folder / "a.jpg", folder / "h.jpg")
    elif name == "link to a folder inside":
        (folder / "sub").mkdir()
        shutil.copy(image, folder / "sub" / "c.jpg")
        (folder / "alias").symlink_to("sub")
    elif name == "link to a folder outside":
        (root / "other").mkdir()
        shutil.copy(image, root / "other" / "c.jpg")
        (folder / "ext").symlink_to("../other")
    elif name == "link to a file outside":
        (root / "store").mkdir()
        shutil.copy(image, root / "store" / "rec.jpg")
        (folder / "b.jpg").symlink_to("../store/rec.jpg")
    elif name == "a FIFO named like a video":
        os.mkfifo(folder / "live.mp4")
    elif name == "broken link":
        (folder / "gone.jpg").symlink_to("nowhere.jpg")
    return folder


def _discover_within(seconds: float, *args, **kwargs):
    """discover_all in a thread: a loop fails the test instead of hanging the suite."""
    import threading

    from edge_fer.analyze.items import discover_all

    found = []
    thread = threading.Thread(target=lambda: found.append(discover_all(*args, **kwargs)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"discovery did not finish within {seconds} s"
    return found[0]


LINK_CASES = [  # name, sources (relative to in/), with follow_links, skipped (names, reasons)
    ("up -> ..", ["a.jpg"], ["a.jpg"], [("up", "a symbolic link to a folder out")]),
    ("two links to .", ["a.jpg"], ["a.jpg"], []),
    ("link to a file inside", ["a.jpg"], ["a.jpg"], []),
    ("hard link", ["a.jpg"], ["a.jpg"], []),
    ("link to a folder inside", ["a.jpg", "sub/c.jpg"], ["a.jpg", "sub/c.jpg"], []),
    ("link to a folder outside", ["a.jpg"], ["a.jpg", "ext/c.jpg"], [("ext", "a symbolic link to a folder out")]),
    ("link to a file outside", ["a.jpg", "b.jpg"], ["a.jpg", "b.jpg"], []),  # a folder of links to recordings
    ("broken link", ["a.jpg"], ["a.jpg"], [("gone.jpg", "a symbolic link to nothing")]),
    ("a FIFO named like a video", ["a.jpg"], ["a.jpg"], [("live.mp4", "not a regular file")]),
]


@pytest.mark.parametrize("sources, followed, skipped", [c[1:] for c in LINK_CASES],
                         ids=[c[0] for c in LINK_CASES])
def test_links_walk_each_real_file_once(media_dir, tmp_path, request, sources, followed, skipped):
    """``up -> ..`` gave 41 rows for one image and two links to ``.`` never finished: each real
    folder and file is read once, and links to folders out of the folders given are followed only
    when asked (links to files are: they cannot loop)."""
    folder = _layout(tmp_path, media_dir / "justin.jpg", request.node.callspec.id)
    found = _discover_within(60, [folder])
    assert [os.path.relpath(i.source, folder) for i in found.items] == sources
    assert [(Path(p).name, r[:len(why)]) for (p, r), (_, why) in zip(found.skipped, skipped)] == skipped
    assert len(found.skipped) == len(skipped)
    again = _discover_within(60, [folder], follow_links=True)
    assert [os.path.relpath(i.source, folder) for i in again.items] == followed


def test_a_file_named_twice_or_inside_a_folder_given_is_read_once(media_dir, tmp_path):
    shutil.copy(media_dir / "justin.jpg", tmp_path / "a.jpg")
    items = discover([tmp_path / "a.jpg", f"{tmp_path}/./a.jpg", tmp_path, tmp_path])
    assert [i.source for i in items] == [str(tmp_path / "a.jpg")]


def test_unsupported_files_are_listed(tmp_path, media_dir):
    from edge_fer.analyze.items import UNSUPPORTED, discover_all

    shutil.copy(media_dir / "justin.jpg", tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")  # hidden: not listed
    assert discover_all([tmp_path]).skipped == [(str(tmp_path / "notes.txt"), UNSUPPORTED)]
    assert discover_all([tmp_path], glob="*.jpg").skipped == []  # left out by --glob: not "unsupported"


def test_a_folder_of_only_outside_folder_links_says_how_to_follow_them(tmp_path, media_dir):
    from edge_fer.errors import InputError

    (tmp_path / "store").mkdir()
    shutil.copy(media_dir / "justin.jpg", tmp_path / "store" / "a.jpg")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day1").symlink_to("../store")
    with pytest.raises(InputError, match=r"; 1 symbolic link to folders out of it not followed: add "
                                         r"AnalyzeOptions\.follow_links$"):
        discover([tmp_path / "in"])
    assert [Path(i.source).name for i in discover([tmp_path / "in"], follow_links=True)] == ["a.jpg"]
