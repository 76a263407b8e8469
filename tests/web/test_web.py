"""The phone page (edge-fer export-web) in a real browser: Debian's Chromium, headless, driven
by Playwright, on woman2.mp4 (as a fixed frame sequence and as the fake camera), compared frame
by frame with edge-fer's Python runtime on the same frames and the same model files.

Set EDGE_FER_WEB_REPORT=path.json to keep the measured figures (docs/phone.md quotes them).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from browser_steps import goto, launch, start_camera, wait_results
from edge_fer.cli import main
from edge_fer.web import WebExportOptions, export_web
from edge_fer.web.export import PHONE_MODEL

FRAME_STEP = 5  # every 5th frame of woman2.mp4: 93 frames, the whole clip's range of expressions
CAMERA_FRAMES = 20  # results to collect from the fake camera (each time)
INT8_MODEL = PHONE_MODEL.parent / "edgenet_fer2013_int8.tflite"
ONNX_MODEL = PHONE_MODEL.parent / "edgenet_fer2013.onnx"


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


# -- the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory, media_dir) -> Path:
    """Every FRAME_STEP-th frame of woman2.mp4 as lossless PNG, and the list the page reads."""
    out = tmp_path_factory.mktemp("frames")
    capture = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    names, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % FRAME_STEP == 0:
            names.append(f"{index:04d}.png")
            cv2.imwrite(str(out / names[-1]), frame)
        index += 1
    capture.release()
    assert len(names) >= 90
    (out / "list.json").write_text(json.dumps({"frames": names}))
    return out


class _Handler(http.server.SimpleHTTPRequestHandler):
    """/app/ -> the exported folder, /frames/ -> the test's frames; everything else 404."""

    roots: dict[str, Path] = {}
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json", ".tflite": "application/octet-stream"}

    def translate_path(self, path: str) -> str:
        prefix, _, rest = path.split("?", 1)[0].lstrip("/").partition("/")
        root = self.roots.get(prefix)
        if root is None:
            return "/nonexistent"
        return str(root / (rest or "index.html"))

    def log_message(self, *args) -> None:
        pass


class _Served:
    def __init__(self, url: str, roots: dict[str, Path]) -> None:
        self.url, self.roots = url, roots


@pytest.fixture(scope="module")
def server(exported, frames_dir):
    roots = {"app": exported, "frames": frames_dir}
    handler = type("Handler", (_Handler,), {"roots": roots})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield _Served(f"http://127.0.0.1:{httpd.server_port}", roots)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser(playwright_driver, chromium_path):
    """One headless Chromium for the frame-sequence tests."""
    instance = launch(playwright_driver, chromium_path)
    try:
        yield instance
    finally:
        instance.close()


def _python_results(frames_dir: Path, detector_dir: Path, model: Path = PHONE_MODEL,
                    names: list[str] | None = None) -> list[dict]:
    """edge-fer's Python runtime on the same frames: BlazeFace (the detector the page runs),
    the same phone TFLite, detection on every frame, no smoothing."""
    from edge_fer.classifier import ClassifierOptions
    from edge_fer.detectors import DetectorOptions
    from edge_fer.pipeline import FerPipeline, PipelineOptions

    options = PipelineOptions(classifier=ClassifierOptions(model_path=model),
                              detector=DetectorOptions(name="blazeface",
                                                       model_path=str(detector_dir / "blazeface_short_range.tflite")),
                              detect_every=1, smooth=0.0)
    names = names or json.loads((frames_dir / "list.json").read_text())["frames"]
    with FerPipeline.create_from_options(options) as pipeline:
        return [pipeline.process(cv2.imread(str(frames_dir / n)), i).to_json() for i, n in enumerate(names)]


def _browser_frames(browser, url: str) -> list[dict]:
    page = browser.new_page()
    try:
        goto(page, url)
        return wait_results(page, timeout_ms=90000)
    finally:
        page.close()


def _latency(results: list[dict]) -> dict:
    out = {}
    for stage in ("detect", "align", "classify", "total"):
        values = [r["latency_ms"][stage] for r in results]
        out[stage] = {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}
    return out


def _iou(a, b) -> float:
    from edge_fer.tracking import iou_xywh

    return iou_xywh(tuple(a), tuple(b))


def test_page_matches_python_runtime_frame_by_frame(browser, server, frames_dir, detector_dir, exported):
    page = browser.new_page()
    try:
        goto(page, f"{server.url}/app/index.html?frames=/frames/list.json&detect_every=1&smooth=0")
        web = wait_results(page, timeout_ms=90000)
        backend = web[0]["backend"]
        status = page.text_content("#edge-fer-status")
        shown = page.evaluate("() => [...document.querySelectorAll('#faces .bar .num')].map(e => e.textContent)")
    finally:
        page.close()
    py = _python_results(frames_dir, detector_dir)
    assert len(web) == len(py)
    assert "WASM" in backend and "backend" in status
    if web[-1]["faces"]:  # the bars show the last frame's scores
        assert shown[:len(web[-1]["faces"][0]["scores"])] == [f"{v:.2f}" for v in web[-1]["faces"][0]["scores"].values()]
    one_face = [len(r["faces"]) == 1 for r in web]
    both = [(w["faces"][0], q["faces"][0]) for w, q in zip(web, py) if len(w["faces"]) == 1 and len(q["faces"]) == 1]
    agree = [w["expression"] == q["expression"] for w, q in both]
    ious = [_iou(w["box_xywh"], q["box_xywh"]) for w, q in both]
    report = {"frames": len(web), "one_face_rate": sum(one_face) / len(web),
              "python_one_face_rate": sum(len(q["faces"]) == 1 for q in py) / len(py),
              "compared": len(both), "top1_agreement": sum(agree) / len(both),
              "box_iou_median": float(np.median(ious)), "backend": backend,
              "browser_latency_ms": _latency(web), "python_latency_ms": _latency(py),
              "export_bytes": sum(f.stat().st_size for f in exported.rglob("*") if f.is_file())}
    if os.environ.get("EDGE_FER_WEB_REPORT"):
        Path(os.environ["EDGE_FER_WEB_REPORT"]).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    assert report["one_face_rate"] >= 0.95, report
    assert len(both) >= 0.95 * len(web), report
    assert report["top1_agreement"] >= 0.95, report
    assert report["box_iou_median"] >= 0.8, report


#: Framing tables written into a copy of the phone model, to run the two framed crop paths
#: (align.py) in the browser against Python: landmarks onto a template, and a calibrated box.
FRAMINGS = {
    "aligned": {"points": {"blazeface": {"right_eye": (0.31, 0.37), "left_eye": (0.69, 0.37),
                                         "nose": (0.5, 0.58), "mouth": (0.5, 0.79)}},
                "boxes": {"blazeface": (0.0, 0.04, 1.08, 1.12)}},
    "box": {"boxes": {"blazeface": (0.01, 0.06, 1.15, 1.2)}},
}


@pytest.mark.parametrize("kind", [
    "aligned", pytest.param("box", marks=pytest.mark.slow),  # the box path is also the shipped model's
])
def test_framed_crops_match_python(kind, browser, server, frames_dir, detector_dir, tmp_path):
    from edge_fer.calibrate import write_model_framing
    from edge_fer.metadata import Framing

    model = tmp_path / f"phone_{kind}.tflite"
    shutil.copyfile(PHONE_MODEL, model)
    write_model_framing(model, Framing(**FRAMINGS[kind], fitted_on="test"))
    site = tmp_path / "site"
    detector = detector_dir / "blazeface_short_range.tflite"
    export_web(site, WebExportOptions(model_path=model, detector_model=detector))
    assert json.loads((site / "edge-fer.json").read_text())["model"]["framing"]["boxes"]
    names = json.loads((frames_dir / "list.json").read_text())["frames"][::4]  # 24 frames
    (frames_dir / f"list_{kind}.json").write_text(json.dumps({"frames": names}))
    server.roots[kind] = site
    web = _browser_frames(browser, f"{server.url}/{kind}/index.html?frames=/frames/list_{kind}.json"
                                         "&detect_every=1&smooth=0")
    py = _python_results(frames_dir, detector_dir, model, names)
    pairs = [(w["faces"][0], q["faces"][0]) for w, q in zip(web, py) if w["faces"] and q["faces"]]
    assert len(pairs) >= 0.95 * len(names)
    agree = sum(w["expression"] == q["expression"] for w, q in pairs) / len(pairs)
    assert agree >= 0.95, (kind, agree)
    # the framed crop, not the plain box: probabilities as close as with the box crop
    diff = max(abs(w["scores"][k] - q["scores"][k]) for w, q in pairs for k in w["scores"])
    assert diff < 0.05, (kind, diff)


def _visible_ui(page) -> dict:
    """What a person sees on the page: the loading panel, the faces panel's label and bars (in
    their order), the error, and whether any visible element shows raw JSON."""
    return page.evaluate("""() => {
        const visible = e => !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
        const face = document.querySelector('#faces .face');
        return {
            loading: visible(document.getElementById('edge-fer-loading')),
            loadingText: document.getElementById('edge-fer-loading-text').textContent,
            error: visible(document.getElementById('edge-fer-error')) ? document.getElementById('edge-fer-error').textContent : null,
            label: face && visible(face) ? face.querySelector('.expr').textContent : null,
            labelPx: face ? parseFloat(getComputedStyle(face.querySelector('.expr')).fontSize) : null,
            bars: face ? [...face.querySelectorAll('.bar')].filter(visible).map(b => [b.dataset.label,
                         b.querySelector('.num').textContent]) : [],
            rawJson: [...document.querySelectorAll('body *')].some(e => visible(e) && e.children.length === 0
                         && /^\\s*[\\[{]\\s*"/.test(e.textContent)),
            header: !!document.querySelector('header'),
        };
    }""")


def test_page_on_fake_camera_then_offline(camera_browser, server, exported):
    """The camera path (getUserMedia on Chromium's fake device playing woman2 as MJPEG) at a
    phone's size: a loading indicator first, then the label and one bar per expression in the
    model's label order (as the live page shows them, no raw JSON, no debug header); then the same
    page reloaded with the network cut: served by its service worker alone."""
    labels = json.loads((exported / "edge-fer.json").read_text())["model"]["labels"]
    context = camera_browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        foreign = []
        page.on("request", lambda r: None if r.url.startswith(server.url) else foreign.append(r.url))
        goto(page, f"{server.url}/app/")
        start = _visible_ui(page)
        start_camera(page)
        online = wait_results(page, CAMERA_FRAMES)
        page.wait_for_function("() => document.querySelector('#faces .face .bar .num')?.textContent", timeout=10000)
        shown = _visible_ui(page)
        assert page.evaluate("() => navigator.serviceWorker.ready.then(r => !!r.active)")
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20000)
        context.set_offline(True)
        page.reload()
        start_camera(page)
        offline = wait_results(page, CAMERA_FRAMES)
        served_by_worker = page.evaluate("() => navigator.serviceWorker.controller !== null")
    finally:
        context.close()
    for results in (online, offline):
        faces = [len(r["faces"]) for r in results[:CAMERA_FRAMES]]
        assert sum(n == 1 for n in faces) >= 0.95 * len(faces), faces
        assert all(f["expression"] in f["scores"] for r in results for f in r["faces"])
    assert served_by_worker
    assert foreign == []  # nothing but the page's own server, not even MediaPipe's metrics
    assert start["loading"] and start["loadingText"].startswith(("downloading the page", "loading the model")), start
    assert not shown["loading"] and shown["error"] is None and not shown["header"], shown
    assert [label for label, _ in shown["bars"]] == labels, shown  # the model's label order
    assert all(0.0 <= float(num) <= 1.0 for _, num in shown["bars"]), shown
    assert abs(sum(float(num) for _, num in shown["bars"]) - 1.0) < 0.05, shown
    assert shown["label"] in labels and shown["labelPx"] >= 28, shown
    assert not shown["rawJson"], shown


#: A browser that has not been asked yet: Playwright's contexts answer "denied" at once, a real
#: browser "prompt" until the user answers its dialog (then this headless one refuses the camera).
NOT_ASKED_YET = """{
    const query = navigator.permissions.query.bind(navigator.permissions);
    navigator.permissions.query = d => d && d.name === 'camera' ? Promise.resolve({state: 'prompt'}) : query(d);
}"""


@pytest.mark.parametrize("asked", [False, True], ids=["blocked-before", "denied-at-the-prompt"])
def test_blocked_camera_says_how_to_allow_it(asked, playwright_driver, chromium_path, server):
    """A browser that refuses the camera (no fake permission UI, nothing granted): already blocked
    for the site, the page says how to allow it; not asked yet, the page first says what the
    camera is for and asks on a tap, then says how to allow it when the answer is no."""
    instance = playwright_driver.chromium.launch(executable_path=chromium_path,
                                                 args=["--use-fake-device-for-media-stream"])
    try:
        context = instance.new_context(permissions=[])
        if asked:
            context.add_init_script(NOT_ASKED_YET)
        page = context.new_page()
        goto(page, f"{server.url}/app/")
        page.wait_for_function("() => ['prompt', 'blocked', 'error'].includes(window.edgeFerState)", timeout=60000)
        if asked:
            assert page.evaluate("() => window.edgeFerState") == "prompt"
            assert page.is_visible("#edge-fer-start") and "camera" in page.text_content("#edge-fer-prompt")
            assert not page.is_visible("#edge-fer-loading") and not page.is_visible("#edge-fer-error")
            page.click("#edge-fer-start")
        page.wait_for_function("() => window.edgeFerState === 'blocked'", timeout=20000)
        ui = _visible_ui(page)
    finally:
        instance.close()
    assert ui["error"] and ui["error"].startswith("camera blocked: allow it in the browser's site settings"), ui
    assert not ui["loading"] and ui["bars"] == [], ui


def test_page_colours_match_the_live_page():
    """faces.js's colour table (the phone page's) is the live page's (edge_fer/draw.py COLORS_BGR,
    as page.html gets it)."""
    import re

    from edge_fer.draw import COLORS_BGR
    from edge_fer.web.export import STATIC_DIR

    table = (STATIC_DIR / "faces.js").read_text().split("export const COLORS = {", 1)[1].split("}", 1)[0]
    colours = dict(re.findall(r"(\w+): '(#[0-9a-f]{6})'", table))
    assert colours == {label: "#%02x%02x%02x" % (r, g, b) for label, (b, g, r) in COLORS_BGR.items()}


# -- the same page at /device/ of edge-fer run --serve, over HTTPS ------------------------------

@pytest.mark.parametrize("cert, key, message", [
    ("CERT", None, "go together"),
    ("missing.pem", "missing.pem", "no such file"),
    ("KEY", "CERT", "cannot load"),
])
def test_bad_tls_options_are_one_line(tls_pair, cert, key, message):
    from edge_fer.errors import OptionsError
    from edge_fer.serve import FerServer, ServeOptions

    pick = {"CERT": str(tls_pair[0]), "KEY": str(tls_pair[1])}
    with pytest.raises(OptionsError, match=message):
        with FerServer.create_from_options(ServeOptions(port=0, tls_cert=pick.get(cert, cert),
                                                        tls_key=pick.get(key, key) if key else None)):
            pass


def test_device_page_served_over_https(camera_browser, tls_pair):
    """FerServer with --tls-cert/--tls-key and the page at /device/ (as `edge-fer run --serve`
    mounts it): HTTPS, the page public while the live view keeps its token, and the page runs."""
    import ssl
    import urllib.error
    import urllib.request
    from contextlib import ExitStack

    from edge_fer.serve import FerServer, ServeOptions
    from edge_fer.web import mount_device_page

    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    with ExitStack() as stack:
        server = stack.enter_context(FerServer.create_from_options(
            ServeOptions(port=0, token="test-token-1", tls_cert=str(tls_pair[0]), tls_key=str(tls_pair[1]))))
        assert mount_device_page(server, stack) is not None
        base = f"https://127.0.0.1:{server.port}"
        assert server.url.startswith("https://")
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"{base}/healthz", context=insecure)
        with urllib.request.urlopen(f"{base}/device/edge-fer.json", context=insecure) as response:
            assert json.loads(response.read())["detector"]["name"] == "blazeface"
        context = camera_browser.new_context(ignore_https_errors=True)
        try:
            page = context.new_page()
            goto(page, f"{base}/device/")
            start_camera(page)
            results = wait_results(page, 10)
        finally:
            context.close()
    assert sum(len(r["faces"]) == 1 for r in results[:10]) >= 9
