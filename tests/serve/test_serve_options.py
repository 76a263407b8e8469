"""Serve options, the image --json lines, looping and pacing of served files (the served
video, the server object and its security rules: tests/serve/test_serve.py)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from edge_fer.sources.capture import ImageSource, Pacer, SourceOptions, VideoSource, open_source
from edge_fer.cli import main
from edge_fer.commands.run import run_command
from edge_fer.draw import DisplayUnavailable
from edge_fer.errors import OptionsError
from edge_fer.serve import FerServer, ServeOptions

from conftest import REPO
from test_serve import JSON_KEYS


def test_serve_options_parse_and_defaults():
    assert ServeOptions.parse(None) == ServeOptions() == ServeOptions(host="127.0.0.1", port=8080)
    assert ServeOptions.parse("9000").host == "127.0.0.1"
    assert (ServeOptions.parse("0.0.0.0:9000").host, ServeOptions.parse("[::1]:0").host) == ("0.0.0.0", "::1")
    assert ServeOptions(port=80, allow_privileged_port=True).port == 80  # the Python API may
    defaults = {p.name: p for p in run_command.params}
    assert defaults["serve"].flag_value == "127.0.0.1:8080"
    assert defaults["max_clients"].default == ServeOptions().max_clients
    with pytest.raises(OptionsError, match="mount prefix"):
        with FerServer(ServeOptions(port=0)) as server:
            server.mount("device", REPO)


def test_image_json_names_its_file_and_the_note_mentions_serve(media_dir, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("justin.jpg", "no-faces.jpg"):
        (folder / name).write_bytes((media_dir / name).read_bytes())
    monkeypatch.setenv("DISPLAY", ":0")
    def no_window(title):
        raise DisplayUnavailable("no GUI")

    monkeypatch.setattr("edge_fer.sinks.live.open_window", no_window)
    result = CliRunner().invoke(main, ["run", "--image", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["source"] for d in lines] == [str(folder / "justin.jpg"), str(folder / "no-faces.jpg")]
    assert set(lines[0]) == JSON_KEYS | {"source"} and len(lines[0]["faces"]) == 1
    (note,) = [line for line in result.stderr.splitlines() if "note: no display" in line]
    assert "--serve" in note


# bad --serve values: one error line each, never a traceback (issue 24 item 10) ---------------
@pytest.mark.parametrize("args, pattern", [
    (["--serve", "127.0.0.1:\u00b2"], r"--serve '127\.0\.0\.1:\u00b2': expected \[HOST:\]PORT"),
    (["--serve", "[::1]:\u00b2"], r"expected \[HOST:\]PORT"),
    (["--serve", "127.0.0.1:\u0668\u0660"], r"expected \[HOST:\]PORT"),  # Arabic-Indic digits
    (["--serve", "a..b:8080"], r"--serve 'a\.\.b': expected an address or host name"),
    (["--serve", "a" * 64 + ".example:8080"], r"expected an address or host name \(dot-separated labels of 1 to 63"),
    (["--serve", ("a" * 60 + ".") * 5 + "b:0"], r"expected an address or host name"),
    (["--serve", ".:8080"], r"expected an address or host name"),
    (["--serve", "0", "--token", "abcdefgh1234\n"], r"--token: expected 8 to 128 characters .* control character"),
    (["--serve", "0", "--token", "abcd efgh 1234"], r"--token: expected 8 to 128 characters"),
])
def test_bad_serve_values_are_one_line(args, pattern):
    result = CliRunner().invoke(main, ["run", "--demo", "--headless", *args])
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.output, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("edge-fer: error: ") and re.search(pattern, line), line


@pytest.mark.parametrize("address", ["127.0.0.1:\u00b2", "a..b:8080", "a" * 64 + ".example:8080", "[::1]:\u00b2",
                                     "x:" + "9" * 6, "[::1]", "\u00b2"])
def test_serve_options_parse_raises_options_error_only(address):
    with pytest.raises(OptionsError, match=r"^ServeOptions\.(address|host|port)="):
        ServeOptions.parse(address)


# file sources: loop and pacing -----------------------------------------------------------------
def test_loop_repeats_a_video_with_growing_indexes_and_times(media_dir):
    with open_source(SourceOptions(video=str(media_dir / "test.mp4"), loop=True)) as source:
        frames = [(i, t) for i, t, _ in itertools.islice(source, 250)]
        assert source.passes == 2 and source.frame_count == 115
    assert [i for i, _ in frames] == list(range(250))
    assert all(b[1] > a[1] for a, b in zip(frames, frames[1:]))
    with ImageSource(media_dir / "justin.jpg", loop=True) as images:
        assert [f.index for f in itertools.islice(images, 3)] == [0, 1, 2]
        assert images.image_path(2) == media_dir / "justin.jpg"


def test_pacer_releases_frames_at_the_period_and_never_bursts():
    now, slept = [0.0], []
    pacer = Pacer(0.04, clock=lambda: now[0], sleep=lambda s: (slept.append(round(s, 6)), now.__setitem__(0, now[0] + s)))
    for work_s in (0.01, 0.01, 0.01, 0.2, 0.01):  # the fourth frame takes far too long
        pacer.wait()
        now[0] += work_s
    assert slept == [0.03, 0.03, 0.03]  # frames 2-4 wait for their time; after the late one, none
    pacer.wait()
    assert slept[-1] == 0.03  # a fresh clock from the late frame: no catch-up burst
    with VideoSource(Path(__file__), capture_factory=lambda t: FakeVideo(), realtime=True) as video:
        assert video.pacer.period_s == pytest.approx(1 / 25)


class FakeVideo:
    def isOpened(self):
        return True

    def get(self, prop):
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass
