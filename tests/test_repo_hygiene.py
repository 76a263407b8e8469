"""Tracked files name no path of the machine they were made on, and no package-server host."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Paths that only mean something on one machine: this checkout, the shared data beside it, the
#: home folder, and the folders of the box the project was started on.
MACHINE_PATHS = sorted({str(REPO), str(REPO.parent / "shared"), "/work/main", "/work/shared", "/work/runs"}
                       | ({os.path.expanduser("~")} - {"/", "/root", "/home"}))
PACKAGE_HOSTS = re.compile(r"pypi\.org|pythonhosted\.org|deb\.debian\.org|archive\.ubuntu\.com|"
                           r"download\.pytorch\.org|registry\.npmjs\.org", re.IGNORECASE)
#: Third-party files vendored as published (their own build paths are not ours), and this file.
SKIP = ("edge_fer/web/vendor/", "tests/test_repo_hygiene.py")


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in listed.decode().split("\0"):
        path = REPO / name
        if not name or name.startswith(SKIP) or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:8192]:  # text only
            files.append(path)
    return files


def test_no_machine_paths_or_package_hosts_in_tracked_files():
    found = []
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if any(p + "/" in line or line.rstrip().endswith(p) or f'"{p}"' in line for p in MACHINE_PATHS) \
                    or PACKAGE_HOSTS.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not found, "machine paths or package hosts in tracked files:\n" + "\n".join(found[:20])


def test_no_test_folder_is_named_like_a_package_of_the_repo():
    """pytest puts tests/ on sys.path: a tests/converters/ folder (no __init__.py) would then be
    imported as the namespace package ``converters`` instead of the real one."""
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert packages and not packages & folders, packages & folders
