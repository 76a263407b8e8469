"""Property-based tests over the option parsers (issue 24, "What must stay"): for any text an
option takes, edge-fer gives a checked value or one error line; never another exception or a
traceback. (The media openers' properties: test_media_properties.py.)

* ``ServeOptions.parse`` (``--serve [HOST:]PORT``): a ServeOptions whose host and port are valid,
  or one OptionsError line; an IP-address host it accepts resolves or fails with OptionsError.
* The detector lists of ``calibrate-framing --detectors a,b`` and ``bench --detector a,b``, the
  model lists of ``bench --model a,b`` and ``calibrate-framing --model``: run through the command
  line (click's CliRunner), exit code 2 with one ``edge-fer: error:`` line.
* ``edge_fer.classifier.parse_labels``: names (>= 2, stripped, no commas) or one OptionsError line;
  names it gives are then taken by ModelMeta or refused with one ModelError line.

The normal suite runs a bounded number of examples per property (a few seconds in all);
``-m slow`` runs the same properties with 6,800 examples in all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property-based tests need hypothesis (the test extra)")
from hypothesis import event, strategies as st  # noqa: E402
from property_settings import bounded_and_many, one_line  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from edge_fer.classifier import LABEL_PRESETS, parse_labels  # noqa: E402
from edge_fer.cli import main  # noqa: E402
from edge_fer.detectors import DETECTORS  # noqa: E402
from edge_fer.errors import ModelError, OptionsError  # noqa: E402
from edge_fer.metadata import ModelMeta  # noqa: E402
from edge_fer.serve import ServeOptions  # noqa: E402
from edge_fer.serve.options import valid_host  # noqa: E402
from edge_fer.serve.server import resolve  # noqa: E402

from conftest import MEDIA, REPO  # noqa: E402

MODELS = REPO / "edge_fer" / "models"
JUSTIN = MEDIA / "justin.jpg"


# texts --------------------------------------------------------------------------------------------
#: Unicode digits, fullwidth forms, controls, surrogates, separators: what str methods treat oddly.
ODD = ["\u00b2", "\u0668\u0660", "\uff18\uff10", "\u0000", "\n", "\r", "\t", " ", "\u00a0", "\u2028", "\ud800",
       "\udcff", "%", "[", "]", ":", ",", ".", "..", "-", "_", "\u00e9", "\u0131", "\u00df", "\ufb01", "xn--",
       "\u200b", "\u202e", "0x10", "1e3", "-1", "+1", "\u0660"]
TEXT = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(ODD + list("aZ09")), max_size=10).map("".join))
#: Texts a command line can hold: no NUL, and undecodable bytes as os.fsdecode gives them
#: (surrogate escapes U+DC80..U+DCFF), as Python's argv does.
ARGV = st.one_of(TEXT.map(lambda t: os.fsdecode(t.encode("utf-8", "replace").replace(b"\0", b""))),
                 st.binary(max_size=24).map(lambda b: os.fsdecode(b.replace(b"\0", b""))))
PORTS = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["", "0", "65535", "65536", "08080", "0" * 30 + "1",
                                                                    "9" * 4301, "1" * 13, " 80", "80 "]), TEXT)
LABELS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=63)
HOSTS = st.one_of(
    st.sampled_from(["", "127.0.0.1", "0.0.0.0", "localhost", "::1", "::", "fe80::1%lo", "::1%1", "::1%", "1.2.3",
                     "256.1.1.1", "a..b", ".", "a" * 64, "a" * 63, "-a", "a-", "_a", "xn--nxasmq6b", "\u00e9t\u00e9",
                     "\uff11\uff12\uff17.0.0.1", "[::1]"]),
    st.lists(LABELS, min_size=1, max_size=6).map(".".join),
    st.ip_addresses().map(str), TEXT)


@st.composite
def addresses(draw) -> str | None:
    """``--serve`` texts: HOST:PORT, [IPV6]:PORT, PORT, and anything."""
    host, port = draw(HOSTS), draw(PORTS)
    shape = draw(st.sampled_from(["host:port", "[host]:port", "port", "host", "any", "none", "padded"]))
    if shape == "none":
        return None
    if shape == "any":
        return draw(TEXT)
    text = {"host:port": f"{host}:{port}", "[host]:port": f"[{host}]:{port}", "port": port, "host": host,
            "padded": f" {host}:{port}\t"}[shape]
    return text


def serve_property(address: str | None) -> None:
    try:
        options = ServeOptions.parse(address)
    except OptionsError as exc:
        text = str(exc)
        one_line(text)
        assert re.match(r"ServeOptions\.(address|host|port)=", text) and "expected" in text, text
        event(text.split("=")[0])
        return
    event("valid")
    assert isinstance(options.port, int) and 0 <= options.port <= 65535
    assert isinstance(options.host, str) and valid_host(options.host)
    if _is_numeric(options.host):  # no DNS lookups here: an address resolves locally, or fails with one line
        try:
            resolve(options.host, options.port)
        except OptionsError as exc:
            one_line(str(exc))


def _is_numeric(host: str) -> bool:
    """An IP address, with at most a numeric IPv6 zone (a name getaddrinfo would look up in DNS: no)."""
    import ipaddress

    address, _, zone = host.partition("%")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return not zone or zone.isascii() and zone.isdigit()


# lists of detectors and models, through the command line -------------------------------------------
NAMES = list(DETECTORS)
DETECTOR_ITEMS = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES).map(str.upper),
                           st.sampled_from(NAMES).map(lambda n: f" {n} "), st.sampled_from(["", " ", "all", "none"]),
                           ARGV)
DETECTOR_LISTS = st.one_of(st.lists(DETECTOR_ITEMS, max_size=6).map(",".join), ARGV)
#: Files that are, or look like, model files (a README, a folder, the shipped models).
MODEL_ITEMS = st.one_of(st.sampled_from([str(MODELS / "edgenet_fer2013_int8.tflite"),
                                         str(MODELS / "edgenet_fer2013.onnx"), str(MODELS / "README.md"), str(MODELS),
                                         "", " ", "x.tflite", "y.onnx", ".tflite", "m.keras", "/dev/null",
                                         "/dev/null.onnx", "a,b"]), ARGV)
#: One item that is no model file here: a model list holding it fails before anything runs.
NOT_A_MODEL = st.one_of(ARGV, st.sampled_from(["x.tflite", "y.onnx", "/dev/null", str(MODELS), "README.md"])).map(
    lambda t: t if t.strip() and "," not in t and not (Path(t.strip()).suffix.lower() in (".tflite", ".onnx")
                                                       and Path(t.strip()).is_file()) else "missing.tflite")


def check_cli_error(args: list[str]) -> None:
    """The command fails with exit code 2 and one ``edge-fer: error:`` line (after, at most,
    edge-fer's notes), nothing on stdout."""
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and result.stdout == "", (args, result.exit_code, result.output)
    assert lines and all(line.startswith("edge-fer: ") for line in lines), (args, lines)
    errors = [line for line in lines if line.startswith("edge-fer: error: ")]
    assert errors == lines[-1:] and "Traceback" not in result.stderr, (args, lines)
    event(re.sub(r"'.*", "", errors[0][17:])[:40])


def calibrate_detectors_property(text: str) -> None:
    check_cli_error(["calibrate-framing", "--data", "/nonexistent/edge-fer-data", f"--detectors={text}"])


def calibrate_models_property(models: list[str]) -> None:
    check_cli_error(["calibrate-framing", "--data", "/nonexistent/edge-fer-data",
                     *(f"--model={m}" for m in models)])


def bench_models_property(models: list[str], junk: str, at: int, joined: bool) -> None:
    models = list(models)
    models.insert(at % (len(models) + 1), junk)
    given = [",".join(models)] if joined else models
    check_cli_error(["bench", "--images", str(JUSTIN), "--frames", "2", "--warmup", "1",
                     *(f"--model={m}" for m in given)])


def bench_detectors_property(text: str) -> None:
    check_cli_error(["bench", "--images", str(JUSTIN), "--model=/nonexistent/x.tflite", f"--detector={text}"])


# labels -----------------------------------------------------------------------------------------
LABEL_TEXTS = st.one_of(TEXT, st.sampled_from(sorted(LABEL_PRESETS)),
                        st.lists(st.one_of(st.sampled_from(["happy", "sad", "angry", " a ", ""]), TEXT),
                                 max_size=10).map(",".join))


def labels_property(text: str | None) -> None:
    try:
        names = parse_labels(text)
    except OptionsError as exc:
        one_line(str(exc))
        assert str(exc).startswith("ClassifierOptions.labels=") and "expected" in str(exc), str(exc)
        event("refused")
        return
    if text is None:
        assert names is None
        return
    assert isinstance(names, tuple) and len(names) >= 2
    assert all(type(n) is str and n and n == n.strip() and "," not in n for n in names), names
    try:
        ModelMeta(labels=names, input_size_hw=(48, 48))
        event("names")
    except ModelError as exc:  # duplicates, control characters, too long: the model's field check says so
        one_line(str(exc))
        assert "labels" in str(exc) and "expected" in str(exc), str(exc)
        event("names refused by ModelMeta")


# the tests: bounded in the suite, many more examples under -m slow --------------------------------
test_serve_address_gives_options_or_one_line, test_serve_address_gives_options_or_one_line_many = \
    bounded_and_many(500, 3000, address=addresses())(serve_property)
test_calibrate_detector_list_is_one_line, test_calibrate_detector_list_is_one_line_many = \
    bounded_and_many(100, 600, text=DETECTOR_LISTS)(calibrate_detectors_property)
test_calibrate_model_list_is_one_line, test_calibrate_model_list_is_one_line_many = \
    bounded_and_many(60, 400, models=st.lists(MODEL_ITEMS, min_size=1, max_size=4))(calibrate_models_property)
test_bench_model_list_is_one_line, test_bench_model_list_is_one_line_many = \
    bounded_and_many(60, 400, models=st.lists(MODEL_ITEMS, max_size=4), junk=NOT_A_MODEL, at=st.integers(0, 4),
                     joined=st.booleans())(bench_models_property)
test_bench_detector_list_is_one_line, test_bench_detector_list_is_one_line_many = \
    bounded_and_many(60, 400, text=DETECTOR_LISTS)(bench_detectors_property)
test_labels_give_names_or_one_line, test_labels_give_names_or_one_line_many = \
    bounded_and_many(500, 2000, text=st.one_of(st.none(), LABEL_TEXTS))(labels_property)
