"""The live page in a real browser: Debian's headless Chromium driven by Playwright (no browser
download: ``executable_path``). ``.ci/run`` installs chromium with apt-get where it is missing;
this test skips, saying so, only where no Chromium binary exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_fer.draw import color_for
from test_serve import served_run

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and Path(p).exists()), None)


def box_edge_match(shot_rgb: np.ndarray, box_xywh, color_rgb, scale: float, tolerance: int = 60) -> float:
    """The best fraction, over rows near the box's top edge (the shown frame may be a frame or
    two from the event's), of pixels along that edge within ``tolerance`` of ``color_rgb``."""
    x, y, w, h = (int(round(v * scale)) for v in box_xywh)
    best = 0.0
    for dy in range(-8, 9):
        for dx in range(-8, 9, 4):
            row = y + dy
            if not 0 <= row < shot_rgb.shape[0]:
                continue
            span = shot_rgb[row, max(0, x + dx + w // 6): x + dx + w - w // 6].astype(int)
            if span.size:
                close = np.abs(span - np.array(color_rgb)).sum(axis=1) <= tolerance
                best = max(best, float(close.mean()))
    return best


def test_page_in_headless_chromium_shows_the_annotated_video(media_dir, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium here (/usr/bin/chromium): apt-get install chromium (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
    with served_run("--video", media_dir / "woman2.mp4", "--serve", "127.0.0.1:0", "--loop",
                    "--headless") as run, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(run.url)
            page.wait_for_function("""() => {
                const text = document.getElementById('edge-fer-result').textContent;
                const img = document.getElementById('video');
                return text && JSON.parse(text).faces.length === 1 && img.complete && img.naturalWidth > 0;
            }""", timeout=30000)
            assert page.locator("#faces .bar").count() == 7  # one bar per expression
            assert page.locator("#timelines canvas").count() >= 1
            assert "woman2.mp4" in page.locator("#source").inner_text()
            assert page.locator("#latency td").count() >= 10  # stage name + ms, five stages or more
            box = page.locator("#video").bounding_box()
            natural = page.evaluate("document.getElementById('video').naturalWidth")
            shot_path = tmp_path / "page.png"
            page.locator("#video").screenshot(path=str(shot_path))
            event = json.loads(page.locator("#edge-fer-result").text_content())
        finally:
            browser.close()
    assert natural == 596
    shot = cv2.cvtColor(cv2.imread(str(shot_path)), cv2.COLOR_BGR2RGB)
    assert abs(shot.shape[1] - box["width"]) <= 2 and shot.std() > 20  # a picture, not a blank

    (face,) = event["faces"]
    b, g, r = color_for(face["expression"])
    scale = shot.shape[1] / natural
    drawn = box_edge_match(shot, face["box_xywh"], (r, g, b), scale)
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, event["frame"] % 464)
    raw = cv2.cvtColor(cv2.resize(cap.read()[1], (shot.shape[1], shot.shape[0])), cv2.COLOR_BGR2RGB)
    cap.release()
    plain = box_edge_match(raw, face["box_xywh"], (r, g, b), scale)
    assert drawn >= 0.6 and plain < 0.3, (drawn, plain, face["expression"])  # the box is drawn, not scenery
