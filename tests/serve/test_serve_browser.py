"""The live page in a real browser: Debian's headless Chromium driven by Playwright (no browser
download: ``executable_path``). ``.ci/run`` installs chromium with apt-get where it is missing;
this test skips, saying so, only where no Chromium binary exists."""

from __future__ import annotations

import json

import cv2
import numpy as np

from edge_fer.draw import COLORS_BGR
from browser_steps import NAVIGATION_TIMEOUT_MS, goto
from test_serve import served_run



def annotation_near_box(shot_rgb: np.ndarray, frames_rgb: list[np.ndarray], box_xywh):
    """Compare the screenshot with the raw video frame it shows (the closest of ``frames_rgb``:
    the page shows the newest frame it decoded, a few frames from the event's). Returns the number of
    changed pixels around the box (its edges and the label above it), the fraction changed
    elsewhere (the fps label's corner left out), and the median colour of the changes."""
    height, width = frames_rgb[0].shape[:2]
    shot = cv2.resize(shot_rgb, (width, height)).astype(int)
    raw = min(frames_rgb, key=lambda f: np.abs(shot - f).mean())
    changed = np.abs(shot - raw).sum(axis=2) > 90
    x, y, w, h = box_xywh
    near = np.zeros((height, width), bool)
    near[max(0, y - 35):y + h + 10, max(0, x - 10):x + w + 90] = True
    near[y + 10:y + h - 10, x + 10:x + w - 10] = False  # the face inside the box is not an annotation
    corner = np.zeros((height, width), bool)
    corner[height - 30:, :130] = True
    colour = np.median(shot[changed & near], axis=0) if (changed & near).any() else None
    return int((changed & near).sum()), float(changed[~near & ~corner].mean()), colour


def test_page_in_headless_chromium_shows_the_annotated_video(media_dir, tmp_path, playwright_driver, chromium_path):
    with served_run("--video", media_dir / "woman2.mp4", "--serve", "127.0.0.1:0", "--loop",
                    "--headless") as run:
        browser = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, run.url)
            page.wait_for_function("""() => {
                const text = document.getElementById('edge-fer-result').textContent;
                const img = document.getElementById('video');
                return text && JSON.parse(text).faces.length === 1 && img.complete && img.naturalWidth > 0;
            }""", timeout=NAVIGATION_TIMEOUT_MS)
            assert page.locator("#faces .bar").count() == 7  # one bar per expression
            assert page.locator("#timelines canvas").count() >= 1
            assert "woman2.mp4" in page.locator("#source").inner_text()
            assert page.locator("#latency td").count() >= 10  # stage name + ms, five stages or more
            box = page.locator("#video").bounding_box()
            natural = page.evaluate("document.getElementById('video').naturalWidth")
            shot_path = tmp_path / "page.png"
            before = json.loads(page.locator("#edge-fer-result").text_content())
            page.locator("#video").screenshot(path=str(shot_path))
            after = json.loads(page.locator("#edge-fer-result").text_content())
            event = after if len(after["faces"]) == 1 else before  # the frame shown is between them
        finally:
            browser.close()
    assert natural == 596
    shot = cv2.cvtColor(cv2.imread(str(shot_path)), cv2.COLOR_BGR2RGB)
    assert abs(shot.shape[1] - box["width"]) <= 2 and shot.std() > 20  # a picture, not a blank

    (face,) = event["faces"]
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    video = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB) for _ in range(464)]
    cap.release()
    nearby = [video[(event["frame"] + d) % 464] for d in range(-40, 41)]  # a busy browser lags
    changed_near, changed_elsewhere, colour = annotation_near_box(shot, nearby, face["box_xywh"])
    nearest = min(COLORS_BGR, key=lambda label: np.abs(np.array(COLORS_BGR[label][::-1]) - colour).sum())
    distance = np.abs(np.array(COLORS_BGR[nearest][::-1]) - colour).sum()
    print(f"changed near the box {changed_near} px, elsewhere {changed_elsewhere:.3f}, colour "
          f"{colour.tolist()} nearest {nearest} (event: {face['expression']})")
    # the video is there, unchanged but for a box and label in an expression's colour at the face
    assert changed_near >= 500 and changed_elsewhere < 0.05, (changed_near, changed_elsewhere)
    assert distance <= 60, (colour.tolist(), nearest, face["expression"])
