"""Shared by the browser benchmarks (web_runtimes.py, web_stages.py): woman2.mp4's first frames as
PNG files, a quiet local HTTP server for the page's folder, headless Chromium, a page's result,
and the report printed (and written with --json).

Each page writes ``running`` into ``#out`` at first and its JSON result when it is done.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
WOMAN2 = SHARED / "media" / "woman2.mp4"
CHROMIUM = "/usr/bin/chromium"
#: Modules and WebAssembly served with their own types, whatever the system's MIME table holds.
MIME_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
#: How long a page may take to finish (ms).
PAGE_TIMEOUT_MS = 300000


def write_frames(folder: Path, count: int, video: Path = WOMAN2) -> list[str]:
    """The video's first ``count`` frames as ``folder/0000.png``... and ``folder/list.json`` (their
    names, which are returned); ``folder`` is created and must not exist yet."""
    folder.mkdir()
    capture, names = cv2.VideoCapture(str(video)), []
    for i in range(count):
        ok, frame = capture.read()
        if not ok:
            break
        names.append(f"{i:04d}.png")
        cv2.imwrite(str(folder / names[-1]), frame)
    capture.release()
    (folder / "list.json").write_text(json.dumps(names))
    return names


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on a free port of 127.0.0.1, without request logs; yields its base URL
    (``http://127.0.0.1:PORT/``) and stops the server on exit."""
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {
        "log_message": lambda *a: None,
        "extensions_map": {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}})
    handler = lambda *a, **k: quiet(*a, directory=str(folder), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()


@contextmanager
def chromium() -> Iterator:
    """Headless Chromium (the system's, through Playwright), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


def page_result(browser, url: str) -> dict:
    """Open ``url`` in a fresh page, wait until its ``#out`` no longer says ``running``, and
    return the JSON it then holds."""
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for_function("() => document.getElementById('out').textContent !== 'running'",
                               timeout=PAGE_TIMEOUT_MS)
        return json.loads(page.text_content("#out"))
    finally:
        page.close()


def command_line(script: str) -> str:
    """How the report names the command that made it: ``python benchmarks/SCRIPT ARGS...``."""
    return f"python benchmarks/{script} " + " ".join(sys.argv[1:])


def emit(report: dict, json_path: str | None) -> None:
    """Print the report as indented JSON; also write it to ``json_path`` when given."""
    text = json.dumps(report, indent=1)
    if json_path:
        Path(json_path).write_text(text + "\n")
    print(text)
