"""The live page's layout and readability in headless Chromium, at a desktop (1280x800) and a
phone (390x844) size, on one served ``--video woman2.mp4 --loop`` run: bars in the model's label
order, a timeline that starts at the first result with a time axis and a legend, the video inside
its card at any window size, a label readable on a phone, and a JSON panel that wraps between
tokens. Set ``EDGE_FER_SCREENSHOTS=docs/images`` to also write ``live-desktop.png`` and
``live-phone.png`` there (the pictures in docs/serve.md)."""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from browser_steps import NAVIGATION_TIMEOUT_MS, goto
from conftest import REPO
from test_serve import served_run

#: fer2013's label order: the shipped model's classes, the order of every event's ``scores``.
FER2013 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

FACE_SHOWN = """() => {
    const text = document.getElementById('edge-fer-result').textContent;
    return text && JSON.parse(text).faces.length >= 1 && document.querySelector('#faces .face .bar');
}"""


@pytest.fixture(scope="module")
def live(media_dir, playwright_driver, chromium_path):
    """(the served run, a Chromium browser): one of each for the whole module."""
    video = os.path.relpath(media_dir / "woman2.mp4", REPO)  # the page shows it: no machine's path
    with served_run("--video", video, "--serve", "127.0.0.1:0", "--loop", "--headless") as run:
        browser = playwright_driver.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield run, browser
        finally:
            browser.close()


def open_page(live, size: str):
    """A new page at ``size`` ("desktop", or "phone": a mobile viewport with touch), once it
    shows a face's bars."""
    run, browser = live
    phone = size == "phone"
    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1, is_mobile=phone,
                                  has_touch=phone)
    page = context.new_page()
    goto(page, run.url)
    try:
        page.wait_for_function(FACE_SHOWN, timeout=NAVIGATION_TIMEOUT_MS)
    except Exception as error:  # say why: the run died, or no face reached the page
        raise AssertionError(f"no face on the page within {NAVIGATION_TIMEOUT_MS // 1000} s ({error}); run exit code "
                             f"{run.proc.poll()}, its stderr ends: {run.stderr[-8:]}") from None
    return page


def next_frame(page, timeout_ms: int = 30000) -> None:
    """Wait until the page has rendered a newer event than the one it shows now."""
    frame = page.locator("#frame").inner_text()
    page.wait_for_function(f"() => document.getElementById('frame').textContent !== {frame!r}",
                           timeout=timeout_ms)


def wait_for_timeline(page, seconds: float) -> None:
    """Wait until the timeline spans ``seconds`` of results."""
    page.wait_for_function(f"""() => {{
        const box = document.getElementById('timelines');
        return box.dataset.endMs && box.dataset.endMs - box.dataset.firstMs >= {seconds * 1000};
    }}""", timeout=90000)


def rgb(color: str) -> tuple[int, ...]:
    """``#rrggbb`` or a computed ``rgb(r, g, b)`` as a tuple."""
    if color.startswith("#"):
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in re.findall(r"\d+", color)[:3])


@pytest.mark.parametrize("size", SIZES)
def test_bars_keep_the_model_label_order(live, size):
    page = open_page(live, size)
    seen, sorted_differs = set(), False
    for _ in range(6):
        next_frame(page)
        state = page.evaluate("""() => {
            const face = document.querySelector('#faces .face');
            return {text: document.getElementById('edge-fer-result').textContent,
                    bars: [...face.querySelectorAll('.bar')].map(b => ({
                        label: b.dataset.label, name: b.querySelector('.name').textContent,
                        width: b.querySelector('.fill').style.width,
                        num: b.querySelector('.num').textContent}))};
        }""")
        event = json.loads(state["text"])
        scores = event["faces"][0]["scores"]
        labels = [bar["label"] for bar in state["bars"]]
        assert labels == FER2013 == list(scores), (labels, list(scores))
        assert [bar["name"] for bar in state["bars"]] == labels
        for bar in state["bars"]:  # each bar shows its own label's score
            score = scores[bar["label"]]
            assert abs(float(bar["width"].rstrip("%")) - 100 * score) <= 0.051, bar  # 1 decimal
            assert abs(float(bar["num"]) - score) <= 0.0051, bar  # 2 decimals
        sorted_differs |= labels != sorted(scores, key=scores.get, reverse=True)
        seen.add(event["frame"])
    page.context.close()
    assert len(seen) == 6
    assert sorted_differs  # sorting by score would have moved the bars


@pytest.mark.parametrize("size", SIZES)
def test_timeline_starts_at_the_first_result_with_axis_and_legend(live, size):
    page = open_page(live, size)
    wait_for_timeline(page, 3.0)
    state = page.evaluate("""() => {
        const box = document.getElementById('timelines'), canvas = box.querySelector('canvas');
        const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
        const alpha = (x) => { const d = ctx.getImageData(x, 0, 1, H).data; let n = 0;
                               for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n / H; };
        const axis = document.getElementById('axis').getBoundingClientRect();
        const cbox = canvas.getBoundingClientRect();
        return {first: +box.dataset.firstMs, start: +box.dataset.startMs, end: +box.dataset.endMs,
                W, H, cssWidth: cbox.width, left: alpha(0), left2: alpha(2), right: alpha(W - 1),
                middle: alpha(Math.floor(W / 2)),
                canvasX: cbox.left, axisX: axis.left, axisW: axis.width,
                ticks: [...document.querySelectorAll('#axis span')].map(t => ({
                    text: t.textContent, s: +t.dataset.s, x: t.getBoundingClientRect().left,
                    right: t.getBoundingClientRect().right})),
                title: document.querySelector('.axis-title').textContent,
                legend: [...document.querySelectorAll('#legend span')].map(s => ({
                    label: s.dataset.label, text: s.textContent,
                    color: getComputedStyle(s.querySelector('i')).backgroundColor})),
                colors: JSON.parse(document.getElementById('edge-fer-config').textContent).colors};
    }""")
    page.context.close()
    print(state)
    # the timeline begins with the first result (not at page open), and fills its width
    assert state["start"] == state["first"] and state["end"] - state["first"] >= 3000
    assert state["W"] == round(state["cssWidth"])  # drawn at its displayed size (dpr 1)
    assert state["left"] > 0.95 and state["left2"] > 0.95, state  # the first column is drawn
    assert state["middle"] > 0.95 and state["right"] > 0.95, state
    # a time axis in seconds under the canvases: from 0 s at the left edge, rising
    ticks = state["ticks"]
    assert len(ticks) >= 3 and all(t["text"].endswith(" s") for t in ticks)
    assert ticks[0]["text"] == "0 s" and abs(ticks[0]["x"] - state["axisX"]) <= 1
    assert [t["s"] for t in ticks] == sorted(t["s"] for t in ticks)
    assert ticks[-1]["s"] * 1000 <= state["end"] - state["first"] + 1
    assert all(state["axisX"] - 1 <= t["x"] and t["right"] <= state["axisX"] + state["axisW"] + 1 for t in ticks)
    assert abs(state["axisX"] - state["canvasX"]) <= 1 and "seconds" in state["title"]
    # a legend: every label, in the model's order, in the colour it has on the canvas and bars
    assert [item["label"] for item in state["legend"]] == FER2013
    assert [item["text"] for item in state["legend"]] == FER2013
    for item in state["legend"]:
        assert rgb(item["color"]) == rgb(state["colors"][item["label"]]), item


def test_video_fits_its_card_at_any_window_size(live):
    page = open_page(live, "desktop")
    page.wait_for_function("() => document.getElementById('video').naturalWidth > 0",
                           timeout=NAVIGATION_TIMEOUT_MS)  # a function: the page's CSP forbids eval of an expression
    sizes = [(1280, 800), (390, 844), (844, 390), (1920, 450), (700, 1000), (320, 568)]
    for width, height in sizes:
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        state = page.evaluate("""() => {
            const img = document.getElementById('video'), card = document.getElementById('video-card');
            const i = img.getBoundingClientRect(), c = card.getBoundingClientRect();
            const cs = getComputedStyle(card);
            return {img: [i.left, i.top, i.right, i.bottom], card: [c.left, c.top, c.right, c.bottom],
                    pad: parseFloat(cs.paddingLeft), fit: getComputedStyle(img).objectFit,
                    nw: img.naturalWidth, nh: img.naturalHeight,
                    pageWidth: document.documentElement.scrollWidth};
        }""")
        (il, it, ir, ib), (cl, ct, cr, cb) = state["img"], state["card"]
        where = f"at {width}x{height}: {state}"
        assert cl <= il + 0.5 and ir <= cr + 0.5 and ct <= it + 0.5 and ib <= cb + 0.5, where
        assert ir - il >= (cr - cl) - 2 * state["pad"] - 3, where  # it fills the card's width
        assert cr <= width + 0.5 and state["pageWidth"] <= width, where  # nothing overflows the window
        assert ib - it <= 0.7 * height + 1, where  # at most 70 % of the window's height
        assert state["fit"] == "contain", where  # letterboxed, never stretched, where height-limited
        if (width, height) in [(1280, 800), (390, 844), (700, 1000), (320, 568)]:  # not height-limited:
            assert abs((ir - il) / (ib - it) - state["nw"] / state["nh"]) < 0.02, where  # no bars
    page.context.close()


def test_expression_label_is_readable_on_a_phone(live):
    page = open_page(live, "phone")
    state = page.evaluate("""() => {
        const label = document.querySelector('#faces .face .expr'), r = label.getBoundingClientRect();
        const bar = document.querySelector('#faces .face .bar .name');
        const cards = [...document.querySelectorAll('main .panel')].map(c => c.getBoundingClientRect().width);
        return {text: label.textContent, size: parseFloat(getComputedStyle(label).fontSize),
                weight: +getComputedStyle(label).fontWeight, bar: parseFloat(getComputedStyle(bar).fontSize),
                top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                innerWidth: innerWidth, innerHeight: innerHeight, cards};
    }""")
    page.context.close()
    print(state)
    assert state["innerWidth"] == 390 and state["text"] in FER2013
    assert state["size"] >= 24 and state["weight"] >= 600, state
    assert state["bar"] >= 14, state  # the bars' labels too
    # on the first screen, under the video, without scrolling or sideways overflow
    assert 0 <= state["top"] and state["bottom"] <= state["innerHeight"], state
    assert 0 <= state["left"] and state["right"] <= 390, state
    assert all(370 >= width >= 360 for width in state["cards"]), state  # one column, every card full width


@pytest.mark.parametrize("size", SIZES)
def test_json_panel_wraps_between_tokens(live, size):
    page = open_page(live, size)
    page.locator("#json-card summary").click()
    next_frame(page)
    state = page.evaluate(r"""() => {
        const pre = document.getElementById('edge-fer-result'), style = getComputedStyle(pre);
        const node = pre.firstChild, text = node.textContent, split = [];
        const tops = (range) => new Set([...range.getClientRects()].filter(r => r.width > 0)
                                        .map(r => Math.round(r.top)));
        const token = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/g;
        let m, count = 0;
        while ((m = token.exec(text))) {
            const range = document.createRange();
            range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
            count++;
            if (tops(range).size !== 1) split.push(m[0]);
        }
        const all = document.createRange(); all.selectNodeContents(pre);
        return {whiteSpace: style.whiteSpace, wordBreak: style.wordBreak, overflowWrap: style.overflowWrap,
                text, count, split, lines: tops(all).size, newlines: text.split('\n').length,
                scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth};
    }""")
    page.context.close()
    event = json.loads(state["text"])  # pretty-printed, still the event's JSON
    assert set(event) >= {"frame", "time_ms", "faces", "latency_ms"} and event["faces"]
    assert state["text"].count("\n") >= 8  # a key a line, not one long line
    assert (state["whiteSpace"], state["wordBreak"], state["overflowWrap"]) == ("pre-wrap", "normal", "break-word")
    assert state["count"] > 20 and state["split"] == [], state["split"]  # no token broken across lines
    assert state["lines"] > state["newlines"], state  # long lines did wrap (between tokens)
    assert state["scrollWidth"] <= state["clientWidth"], state  # and nothing sticks out


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_faces_panel_is_one_pair_of_files_for_both_pages():
    """faces.css and faces.js of the phone page's folder are the live page's too: the server
    answers them (with the token, like the rest of the live view), both pages use them, and no
    page keeps a copy of the panel's CSS, drawing code or colour table."""
    from edge_fer.serve import FerServer, ServeOptions
    from edge_fer.web.export import STATIC_DIR, STATIC_FILES

    with FerServer.create_from_options(ServeOptions(port=0, token="test-token-1")) as server:
        for name, kind in (("faces.css", "text/css"), ("faces.js", "text/javascript")):
            status, content_type, body = _get(server.port, f"/{name}?token=test-token-1")
            assert status == 200 and content_type.split(";")[0] == kind and body == (STATIC_DIR / name).read_bytes()
            assert _get(server.port, f"/{name}")[0] == 401  # the token, as for every route of the live view
        html = server.page_html.decode()
    assert 'withToken("faces.css")' in html and 'await import(withToken("./faces.js"))' in html
    assert {"faces.css", "faces.js"} <= set(STATIC_FILES)  # exported and cached by the phone page's worker
    assert '<link rel="stylesheet" href="faces.css">' in (STATIC_DIR / "index.html").read_text()
    assert "from './faces.js';" in (STATIC_DIR / "app.js").read_text()
    for page in (html, *((STATIC_DIR / name).read_text() for name in ("index.html", "app.js"))):
        assert not re.search(r"\.bar \.fill|\.face \.expr|COLORS = |class=.?bar|'bar'|\"bar\"|function colorOf", page)


def test_faces_panel_on_a_server_with_a_token(live):
    """The live page on a server that needs its token (as one on the LAN does): faces.css and
    faces.js come with it, and the panel shows a result as on a loopback server."""
    from edge_fer.serve import FerServer, ServeOptions
    from edge_fer.types import Expression, Face, FrameResult, TrackedFace

    _, browser = live
    scores = dict(zip(FER2013, (0.05, 0.01, 0.04, 0.62, 0.08, 0.1, 0.1)))
    result = FrameResult(7, 1000.0, (TrackedFace(3, Face((20, 20, 60, 60)), Expression("happy", 0.62, scores)),))
    with FerServer.create_from_options(ServeOptions(port=0, token="test-token-1"), info={"labels": FER2013}) as server:
        server.publish(result, np.zeros((120, 160, 3), np.uint8))
        page = browser.new_page()
        refused = []
        page.on("response", lambda r: refused.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
        try:
            goto(page, server.url)
            page.wait_for_function("() => document.querySelectorAll('#faces .face .bar').length === 7",
                                   timeout=NAVIGATION_TIMEOUT_MS)
            state = page.evaluate("""() => {
                const face = document.querySelector('#faces .face'), expr = face.querySelector('.expr');
                return {expr: expr.textContent, px: parseFloat(getComputedStyle(expr).fontSize),
                        border: getComputedStyle(expr).borderLeftColor, tid: face.querySelector('.tid').textContent,
                        conf: face.querySelector('.conf').textContent,
                        bars: [...face.querySelectorAll('.bar')].map(b => [b.dataset.label, b.querySelector('.num').textContent,
                               getComputedStyle(b.querySelector('.fill')).backgroundColor, b.classList.contains('top')]),
                        colors: JSON.parse(document.getElementById('edge-fer-config').textContent).colors};
            }""")
        finally:
            page.close()
    assert refused == [], refused
    assert (state["expr"], state["conf"], state["tid"]) == ("happy", "0.62", "track #3"), state
    assert state["px"] >= 24, state  # faces.css applied (the label's large type)
    assert rgb(state["border"]) == rgb(state["colors"]["happy"]), state
    assert [(label, num, top) for label, num, _, top in state["bars"]] == [
        (label, f"{scores[label]:.2f}", label == "happy") for label in FER2013], state
    assert all(rgb(colour) == rgb(state["colors"][label]) for label, _, colour, _ in state["bars"]), state


def test_page_loads_before_the_first_frame(live):
    """A page opened before the run's first frame (a camera still starting) loads at once: its
    load event never waits on the endless video stream, which starts after it and shows the
    first frame when it comes."""
    from edge_fer.serve import FerServer, ServeOptions
    from edge_fer.types import FrameResult

    _, browser = live
    with FerServer.create_from_options(ServeOptions(port=0), info={"labels": FER2013}) as server:
        page = browser.new_page()
        try:
            goto(page, server.url)  # the load event, with no frame published yet
            assert server.broadcast.published == 0
            server.publish(FrameResult(0, 0.0, ()), np.full((120, 160, 3), 90, np.uint8))
            page.wait_for_function("() => document.getElementById('video').naturalWidth === 160",
                                   timeout=NAVIGATION_TIMEOUT_MS)
        finally:
            page.close()


@pytest.mark.skipif(not os.environ.get("EDGE_FER_SCREENSHOTS"),
                    reason="set EDGE_FER_SCREENSHOTS=docs/images to write the live page's screenshots")
def test_write_screenshots(live):
    """``live-desktop.png`` and ``live-phone.png`` after about 3 s of results, each < 400 KB."""
    from PIL import Image

    folder = Path(os.environ["EDGE_FER_SCREENSHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        page = open_page(live, size)
        wait_for_timeline(page, 3.0)
        time.sleep(0.3)
        png = page.screenshot(type="png")
        page.context.close()
        image = Image.open(io.BytesIO(png)).convert("RGB")
        path = folder / f"live-{size}.png"
        image.save(path, optimize=True)
        if path.stat().st_size >= 400_000:  # a photo in a PNG: fewer colours, still sharp text
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        print(path, image.size, path.stat().st_size)
        assert path.stat().st_size < 400_000
