"""Every code block of README.md and docs/*.md marked runnable runs, with the shared data.

Mark a block with an HTML comment on the line right before its fence (GitHub does not show it):

    <!-- runnable -->
    ```bash
    edge-fer run --demo
    ```

``<!-- runnable: slow -->`` marks a block that takes more than ~20 s: its test is marked slow.
The fence's language must be ``bash`` or ``python``; a marker anywhere else (no fence on the next
line, an unknown language or option, an unclosed fence) stops the collection with an error.

Each block runs as a user runs it from the repository root, in a sandbox that looks like one:
``TMP/main`` is the working directory, ``TMP/shared`` links to the shared data (so
``../shared/data/...`` resolves), ``edge_fer``, ``tools`` and ``benchmarks`` link to the repo's,
and the names the docs use for the user's own files are stand-ins from the shared data
(``STAND_INS``). ``PATH`` starts at the repo's ``.venv/bin`` and there is no display. bash blocks
run with ``bash -euo pipefail``; python blocks run with the venv's python as a script file
outside the working directory (so a missing ``if __name__ == "__main__":`` guard shows). Each
must exit 0 without a traceback on stderr, and leave the repo's shipped models untouched.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import DATA, REPO, SHARED

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = ("bash", "python")
OPTIONS = ("slow",)
TIMEOUT_S = 600
MIN_BLOCKS = 6  # the blocks marked when this test was written; fewer means markers were lost

# Sandbox name -> shared file or folder it stands for (a folder: its listed files).
STAND_INS = {
    "clip.mp4": "media/test.mp4",
    "face.jpg": "media/justin.jpg",
    "fer.tflite": "peers/fer/emotion_model_quantized.tflite",
    "photos": ["media/justin.jpg", "media/no-faces.jpg"],
    "sessions": ["media/test.mp4", "media/justin.jpg"],
}
REPO_LINKS = ("edge_fer", "tools", "benchmarks")
WATCHED = REPO / "edge_fer" / "models"  # reached through the sandbox's edge_fer link

MARKER_HINT = re.compile(r"<!--\s*runnable", re.IGNORECASE)
MARKER = re.compile(r"^\s*<!-- runnable(?:: (?P<options>[a-z, ]+))? -->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[^`\s]*)\s*$")


class DocExampleError(ValueError):
    """A runnable marker that does not mark a runnable block."""


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repo
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    slow: bool

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def collect(text: str, path: str) -> list[Block]:
    """The blocks of one Markdown text marked runnable; a malformed marker raises."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if not MARKER_HINT.search(line):
            continue
        where = f"{path}:{i + 1}"
        marker = MARKER.match(line)
        if marker is None:
            raise DocExampleError(f"{where}: malformed marker {line.strip()!r} "
                                  "(expected '<!-- runnable -->' or '<!-- runnable: slow -->')")
        options = [o.strip() for o in (marker["options"] or "").split(",") if o.strip()]
        unknown = [o for o in options if o not in OPTIONS]
        if unknown:
            raise DocExampleError(f"{where}: unknown marker option(s) {unknown} (known: {OPTIONS})")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise DocExampleError(f"{where}: a runnable marker must be right before a ``` fence")
        if fence["lang"] not in LANGUAGES:
            raise DocExampleError(f"{path}:{i + 2}: runnable block in language "
                                  f"{fence['lang']!r}: the test runs only {LANGUAGES}")
        indent = fence["indent"]
        body = []
        for j in range(i + 2, len(lines)):
            if lines[j].strip() == "```":
                break
            if lines[j].strip() and not lines[j].startswith(indent):
                raise DocExampleError(f"{path}:{j + 1}: line less indented than its fence")
            body.append(lines[j][len(indent):])
        else:
            raise DocExampleError(f"{path}:{i + 2}: runnable block is never closed")
        if not "".join(body).strip():
            raise DocExampleError(f"{path}:{i + 2}: runnable block is empty")
        blocks.append(Block(path, i + 2, fence["lang"], "\n".join(body) + "\n",
                            "slow" in options))
    return blocks


def collect_docs() -> list[Block]:
    blocks = []
    for doc in DOCS:
        blocks += collect(doc.read_text(encoding="utf-8"), str(doc.relative_to(REPO)))
    return blocks


BLOCKS = collect_docs()  # a malformed marker fails the whole module at collection, loudly


# --- the collector itself ---------------------------------------------------------------------

def test_the_docs_have_runnable_blocks_in_known_languages():
    assert len(BLOCKS) >= MIN_BLOCKS, [b.id for b in BLOCKS]
    assert {b.lang for b in BLOCKS} == set(LANGUAGES), [(b.id, b.lang) for b in BLOCKS]
    assert any(not b.slow for b in BLOCKS) and any(b.slow for b in BLOCKS)
    assert len({b.id for b in BLOCKS}) == len(BLOCKS)
    assert len({b.path for b in BLOCKS}) >= 3 and all(b.code.strip() for b in BLOCKS)
    assert any(b.path == "docs/run.md" for b in BLOCKS)  # run's examples (moved there from the README)


def test_the_collector_reads_markers_fences_and_indentation():
    text = ("intro\n<!-- runnable -->\n```bash\necho one\n```\n\n```bash\necho unmarked\n```\n"
            "1. step\n\n   <!-- runnable: slow -->\n   ```python\n   print(2)\n   ```\n")
    blocks = collect(text, "x.md")
    assert [(b.line, b.lang, b.code, b.slow) for b in blocks] == [
        (3, "bash", "echo one\n", False), (13, "python", "print(2)\n", True)]


@pytest.mark.parametrize("text, message", [
    ("<!-- runnable -->\n```sh\nls\n```\n", "language 'sh'"),
    ("<!-- runnable -->\n```\nls\n```\n", "language ''"),
    ("<!-- runnable -->\n```console\n$ ls\n```\n", "language 'console'"),
    ("<!-- runnable -->\n\n```bash\nls\n```\n", "right before a ``` fence"),
    ("<!-- runnable -->\n", "right before a ``` fence"),
    ("<!-- runnable: fast -->\n```bash\nls\n```\n", "unknown marker option"),
    ("<!--runnable-->\n```bash\nls\n```\n", "malformed marker"),
    ("<!-- runnable -->\n```bash\nls\n", "never closed"),
    ("<!-- runnable -->\n```bash\n\n```\n", "empty"),
], ids=["sh", "no-language", "console", "blank-line", "no-fence", "option", "spacing",
        "unclosed", "empty"])
def test_a_malformed_marker_fails_loudly(text, message):
    with pytest.raises(DocExampleError, match=re.escape(message)):
        collect(text, "x.md")


# --- the blocks -------------------------------------------------------------------------------

def _sandbox(root: Path) -> Path:
    """TMP/main as a repo root (links and stand-ins), TMP/shared as the shared data."""
    if not DATA.exists():
        message = f"shared test data not found: {DATA} (set EDGE_FER_SHARED)"
        if os.environ.get("EDGE_FER_SKIP_MISSING_DATA") == "1":
            pytest.skip(message)
        pytest.fail(message)
    main = root / "main"
    main.mkdir()
    (root / "shared").symlink_to(SHARED.resolve(), target_is_directory=True)
    for name in REPO_LINKS:
        (main / name).symlink_to(REPO / name, target_is_directory=True)
    for name, source in STAND_INS.items():
        if isinstance(source, str):
            (main / name).symlink_to(DATA / source)
        else:
            (main / name).mkdir()
            for file in source:
                (main / name / Path(file).name).symlink_to(DATA / file)
    return main


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), env.get("PATH", os.defpath)])
    env["VIRTUAL_ENV"] = str(REPO / ".venv")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run in its own process group; on timeout, end the whole group (the block's children too)."""
    process = subprocess.Popen(argv, cwd=cwd, env=_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"still running after {TIMEOUT_S} s\nstdout:\n{stdout[-3000:]}\n"
                    f"stderr:\n{stderr[-3000:]}")
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("block", [
    pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else []) for b in BLOCKS])
def test_doc_example_runs(block: Block, tmp_path):
    main = _sandbox(tmp_path)
    script = tmp_path / f"block.{'sh' if block.lang == 'bash' else 'py'}"
    script.write_text(block.code, encoding="utf-8")
    argv = (["bash", "-euo", "pipefail", str(script)] if block.lang == "bash"
            else [_python(), str(script)])
    before = _fingerprint(WATCHED)
    returncode, stdout, stderr = _run(argv, main)
    report = (f"{block.id} ({block.lang}) exited {returncode}\n--- block:\n{block.code}"
              f"--- stdout (end):\n{stdout[-3000:]}\n--- stderr (end):\n{stderr[-5000:]}")
    assert returncode == 0, report
    assert "Traceback (most recent call last)" not in stderr, report
    assert _fingerprint(WATCHED) == before, f"{block.id} changed {WATCHED}"
