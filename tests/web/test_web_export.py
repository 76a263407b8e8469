"""``edge-fer export-web`` without a browser: the exported folder, the vendored runtime's
manifest, bad input (the page in a real browser: tests/web/test_web.py)."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.web import WebExportOptions, export_web
from edge_fer.web.export import PHONE_MODEL, VENDOR_DIR

INT8_MODEL = PHONE_MODEL.parent / "edgenet_fer2013_int8.tflite"
ONNX_MODEL = PHONE_MODEL.parent / "edgenet_fer2013.onnx"


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


# -- the export, no browser --------------------------------------------------------------------

def test_export_holds_page_runtime_models_and_config_from_metadata(exported):
    from edge_fer.metadata import read_model_meta

    config = json.loads((exported / "edge-fer.json").read_text())
    meta = read_model_meta(PHONE_MODEL)
    assert config["model"]["labels"] == list(meta.labels)
    assert config["model"]["input_size_hw"] == list(meta.input_size_hw)
    assert config["model"]["framing"] == (meta.framing.to_dict() if meta.framing else None)
    for key in ("file",):
        assert (exported / config["model"][key]).read_bytes() == PHONE_MODEL.read_bytes()
        assert (exported / config["detector"][key]).read_bytes()[4:8] == b"TFL3"
    manifest = json.loads((exported / "vendor" / "MANIFEST.json").read_text())
    package = manifest["packages"][0]
    assert package["license"] and (exported / "vendor" / package["folder"] / "LICENSE").stat().st_size > 1000
    for name, entry in package["files"].items():
        data = (exported / "vendor" / package["folder"] / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    sw = (exported / "sw.js").read_text()
    listed = json.loads(sw.split("const FILES = ", 1)[1].split(";\n", 1)[0])
    on_disk = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()} - {"sw.js"}
    assert set(listed) == {name for name in on_disk if not name.endswith(".gz")} | {"./"}
    html = (exported / "index.html").read_text()
    assert "connect-src 'self'" in html and "http" not in html.split("<body>", 1)[1]


def test_gzip_copies_are_the_files_themselves_and_do_not_change_between_exports(exported, tmp_path):
    import gzip

    packed = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*.gz"))
    assert "vendor/mediapipe-tasks-vision/vision_wasm_internal.wasm.gz" in packed and "index.html.gz" in packed
    assert not any(name.endswith(".tflite.gz") for name in packed)  # models barely compress: left alone
    for name in packed:
        assert gzip.decompress((exported / name).read_bytes()) == (exported / name[:-3]).read_bytes(), name
    again = export_web(tmp_path / "again", WebExportOptions(detector_model=exported / "models/blazeface_short_range.tflite"))
    for name in packed:
        assert (again.folder / name).read_bytes() == (exported / name).read_bytes(), name  # no timestamp inside
    wasm = "vendor/mediapipe-tasks-vision/vision_wasm_internal.wasm"
    assert again.sizes[wasm + ".gz"] < 0.4 * again.sizes[wasm]
    assert again.gzip_bytes < 0.5 * (again.total_bytes - sum(v for k, v in again.sizes.items() if k.endswith(".gz")))


def test_vendored_runtime_matches_its_manifest():
    manifest = json.loads((VENDOR_DIR / "MANIFEST.json").read_text())
    for package in manifest["packages"]:
        folder = VENDOR_DIR / package["folder"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(package["files"])
        for name, entry in package["files"].items():
            assert (folder / name).stat().st_size == entry["bytes"], name


@pytest.mark.parametrize("args, message", [
    (["--model", str(INT8_MODEL)], "takes gray input"),
    (["--model", str(ONNX_MODEL)], "reads .tflite files"),
    (["--model", "missing.tflite"], "not found"),
    (["--delegate", "webgpu"], "invalid value for --delegate: 'webgpu' is not one of 'cpu', 'gpu'"),
    (["--detect-every", "0"], "--detect-every 0: expected >= 1"),
    (["--smooth", "1.5"], "--smooth 1.5: expected 0 <= smooth < 1"),
    (["--detector-model", "MODEL_AS_DETECTOR"], "not a TFLite file"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"<html>not a model</html>")
    args = [str(bogus) if a == "MODEL_AS_DETECTOR" else a for a in args]
    out = tmp_path / "site"
    result = _cli("export-web", str(out), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bogus.tflite"]


def test_non_empty_folder_needs_force(tmp_path, detector_dir):
    out = tmp_path / "site"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    options = WebExportOptions(detector_model=detector_dir / "blazeface_short_range.tflite")
    from edge_fer.errors import OutputError

    with pytest.raises(OutputError, match="not empty"):
        export_web(out, options)
    assert (out / "keep.txt").read_text() == "mine"
    export_web(out, options, force=True)
    assert not (out / "keep.txt").exists() and (out / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no temp or old folder left




@pytest.mark.parametrize("target, what", [
    (".", "the working folder"), ("..", "a folder holding the working folder"), ("/", "the filesystem's root"),
    ("~", "the home folder"),
])
def test_force_never_replaces_a_folder_that_holds_the_user_s_files(target, what, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    folder = str(tmp_path / "home") if target == "~" else target
    result = _cli("export-web", folder, "--force")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"edge-fer: error: refusing to write the page over {folder} ({what}): "
                                     "give a new folder for it; nothing was changed")
    assert (work / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["home", "work"]


def test_the_suggested_local_server_binds_loopback_only(tmp_path):
    from edge_fer.commands.serve_web import serve_web_command

    result = _cli("export-web", str(tmp_path / "site"))
    assert result.exit_code == 0, result.output
    hint = next(line for line in result.output.splitlines() if "serve-web" in line)
    assert f"edge-fer serve-web {tmp_path / 'site'}," in hint and "http://127.0.0.1:8000/" in hint
    assert "0.0.0.0" not in result.output and "http.server" not in result.output
    (bind,) = [p for p in serve_web_command.params if p.name == "serve"]
    assert bind.default == "127.0.0.1:8000"
