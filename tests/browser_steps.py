"""Steps the Chromium tests of the phone page share: launch, start the camera, wait for results."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Debian's chromium (``.ci/run`` installs it with apt-get where missing), or $EDGE_FER_CHROMIUM.
CHROMIUM = Path(os.environ.get("EDGE_FER_CHROMIUM") or next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
     if p and Path(p).exists()), "/usr/bin/chromium"))


def launch(playwright, chromium_path: str, *extra: str):
    """Headless Chromium whose camera prompts are answered yes, with a fake camera device."""
    return playwright.chromium.launch(executable_path=chromium_path, args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", *extra])


#: A page load on a loaded 2-core box (training beside the suite) has taken over Playwright's 30 s.
NAVIGATION_TIMEOUT_MS = 120_000


def goto(page, url: str) -> None:
    """Load ``url`` with a margin a loaded box meets (the wait is on the load event, not on time);
    a load that times out names the requests still unfinished."""
    pending, done = {}, []
    page.on("request", lambda r: pending.setdefault(r, r.url))
    page.on("requestfinished", lambda r: done.append(pending.pop(r, r.url)))
    page.on("requestfailed", lambda r: done.append(pending.pop(r, r.url) + " (failed)"))
    try:
        page.goto(url, timeout=NAVIGATION_TIMEOUT_MS)
    except Exception as error:  # say what the page was still waiting for
        raise AssertionError(f"{url}: no load event within {NAVIGATION_TIMEOUT_MS // 1000} s "
                             f"({type(error).__name__}); requests unfinished: {list(pending.values())}; "
                             f"finished: {done}") from None


def wait_results(page, count: int | None = None, timeout_ms: int = 60000) -> list[dict]:
    """The page's results once it is done (``count`` None) or has ``count`` of them."""
    # Function expressions, not bare strings: Playwright would eval() those, which the CSP forbids.
    condition = ("() => window.edgeFerDone || window.edgeFerError" if count is None else
                 f"() => window.edgeFerError || (window.edgeFerResults && window.edgeFerResults.length >= {count})")
    page.wait_for_function(condition, timeout=timeout_ms)
    error = page.evaluate("() => window.edgeFerError || null")
    assert error is None, error
    return page.evaluate("() => window.edgeFerResults")


def start_camera(page) -> None:
    """Tap the page's "Start the camera" button where it asks first (the browser has not
    granted the camera to the site yet); nothing where it started the camera itself."""
    page.wait_for_function("() => ['prompt', 'running', 'blocked', 'error'].includes(window.edgeFerState)"
                           " || (window.edgeFerResults && window.edgeFerResults.length > 0)", timeout=60000)
    if page.evaluate("() => window.edgeFerState") == "prompt":
        page.click("#edge-fer-start")
