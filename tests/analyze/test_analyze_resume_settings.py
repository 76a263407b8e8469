"""``edge-fer analyze --resume`` refuses outputs made with other settings (model, detector,
detection, smoothing): the progress file's header and the sources file record them; a file of
an older edge-fer that recorded none is accepted with one warning."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_fer.analyze import AnalyzeOptions, WriteOptions, write_analysis
from edge_fer.analyze.settings import SETTINGS, check_settings, run_settings
from edge_fer.classifier import DEFAULT_MODEL
from edge_fer.cli import main
from edge_fer.errors import InputError
from edge_fer.pipeline import PipelineOptions

RUN = ("--workers", 1, "--no-progress")
TAIL = ": run with the same settings, or --overwrite to start again"


def invoke(*args):
    return CliRunner().invoke(main, ["analyze", *map(str, args)])


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def images(media_dir: Path, folder: Path) -> Path:
    """``folder`` with a face (a.jpg) and no face (b.jpg)."""
    folder.mkdir()
    shutil.copy(media_dir / "justin.jpg", folder / "a.jpg")
    shutil.copy(media_dir / "no-faces.jpg", folder / "b.jpg")
    return folder


def _models(tmp_path: Path) -> tuple[Path, Path]:
    """The shipped model, and another model's file under its name (a retrained model, say)."""
    (tmp_path / "m1").mkdir()
    (tmp_path / "m2").mkdir()
    first = shutil.copy(DEFAULT_MODEL, tmp_path / "m1" / DEFAULT_MODEL.name)
    shutil.copy(DEFAULT_MODEL.with_name("edgenet_fer2013_phone.tflite"), tmp_path / "m2" / DEFAULT_MODEL.name)
    return Path(first), tmp_path / "m2" / DEFAULT_MODEL.name


def _sha12(path: Path) -> str:
    from edge_fer.fileio import file_sha256

    return file_sha256(path)[:12]


# setting: (first run's flags, the resume's flags, what each made it) - {t}: tmp_path, {d}: detector_dir
CHANGES = {
    "model": ((), ("--model", DEFAULT_MODEL.with_name("edgenet_fer2013.onnx")),
              "--model edgenet_fer2013_int8.tflite", "--model edgenet_fer2013.onnx"),
    "model_sha256": (("--model", "{t}/m1/edgenet_fer2013_int8.tflite"), ("--model", "{t}/m2/edgenet_fer2013_int8.tflite"),
                     "--model edgenet_fer2013_int8.tflite (sha256 {m1})",
                     "--model edgenet_fer2013_int8.tflite (sha256 {m2})"),
    "detector": ((), ("--detector", "yunet"), "--detector blazeface", "--detector yunet"),
    "detector_model": ((), ("--detector-model", "{d}/blazeface_short_range.tflite"), "--detector-model (default)",
                       "--detector-model {d}/blazeface_short_range.tflite"),
    "detect_width": ((), ("--detect-width", 320), "--detect-width 256", "--detect-width 320"),
    "detect_every": ((), ("--detect-every", 3), "--detect-every 2", "--detect-every 3"),
    "min_face_px": ((), ("--min-face", 40), "--min-face 48", "--min-face 40"),
    "min_confidence": ((), ("--min-score", 0.6), "--min-score 0.5", "--min-score 0.6"),
    "smooth": (("--smooth", 0.3), (), "--smooth 0.3", "--smooth 0.5"),
}


def test_every_setting_is_covered():
    assert sorted(CHANGES) == sorted(SETTINGS)


def _progress_file(folder: Path, out: Path, flags: tuple) -> Path:
    """The progress file of a run with ``flags`` stopped (Ctrl-C) after its first source."""
    done = []

    def stop(kind, index, value):  # at the second source's "done": the first one is recorded by then
        done.extend([index] if kind == "done" else [])
        if len(done) == 2:
            raise KeyboardInterrupt

    options = dict(zip(flags[::2], flags[1::2]))
    assert set(options) <= {"--model", "--smooth"}
    pipeline = PipelineOptions(smooth=float(options.get("--smooth", 0.5)))
    if "--model" in options:
        pipeline = replace(pipeline, classifier=replace(pipeline.classifier, model_path=options["--model"]))
    with pytest.raises(KeyboardInterrupt):
        write_analysis([folder], WriteOptions(out=str(out), analyze=AnalyzeOptions(pipeline=pipeline, workers=1)),
                       stop)
    progress = out.with_name(out.name + ".progress.jsonl")
    assert not out.exists() and len(progress.read_text().splitlines()) == 2
    return progress


@pytest.mark.parametrize("where", ["output", "progress"])
@pytest.mark.parametrize("setting", list(CHANGES))
def test_resume_with_other_settings_is_one_line_naming_file_and_setting(media_dir, detector_dir, tmp_path,
                                                                       setting, where):
    """The first run (finished: r.csv.sources.csv; or stopped: r.csv.progress.jsonl) and a
    --resume that differ in one setting: one error line naming the file, the setting with both
    values and the way out, exit 2, nothing touched."""
    folder = images(media_dir, tmp_path / "in")
    out = tmp_path / "r.csv"
    m1, m2 = _models(tmp_path)
    names = dict(t=tmp_path, d=detector_dir, m1=_sha12(m1), m2=_sha12(m2))
    first, again = (tuple(str(v).format(**names) for v in flags) for flags in CHANGES[setting][:2])
    made, uses = (text.format(**names) for text in CHANGES[setting][2:])
    if where == "output":
        result = invoke(folder, "--out", out, *RUN, *first)
        assert result.exit_code == 0, result.output
        path = out.with_name("r.csv.sources.csv")
    else:
        path = _progress_file(folder, out, first)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = invoke(folder, "--out", out, *RUN, *again, "--resume")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"edge-fer: error: --resume: {path} was made with {made}; this run uses {uses}{TAIL}"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("where", ["output", "progress"])
@pytest.mark.parametrize("first", [(), ("--smooth", 0.3), ("--model", "{t}/m1/edgenet_fer2013_int8.tflite")],
                         ids=["defaults", "smooth", "model"])
def test_resume_with_the_same_settings_keeps_the_sources(media_dir, tmp_path, first, where):
    """The same settings (the CLI's flags, or a library run's options) resume: no error, no warning."""
    folder = images(media_dir, tmp_path / "in")
    out = tmp_path / "r.csv"
    _models(tmp_path)
    first = tuple(str(v).format(t=tmp_path) for v in first)
    if where == "output":
        assert invoke(folder, "--out", out, *RUN, *first).exit_code == 0
    else:
        _progress_file(folder, out, first)
    result = invoke(folder, "--out", out, *RUN, *first, "--resume")
    assert result.exit_code == 0, result.output
    assert "settings" not in result.stderr, result.stderr
    assert f"({2 if where == 'output' else 1} kept from the previous output)" in result.stderr, result.stderr


@pytest.mark.parametrize("first, again", [
    ((), ("--min-score", 0.5)),                                       # blazeface's own default, given
    (("--detector", "haar"), ("--detector", "haar", "--min-score", 0.9)),  # haar has no confidence to set
], ids=["default-given", "haar-min-score"])
def test_the_values_the_detector_uses_are_compared(media_dir, tmp_path, first, again):
    folder = images(media_dir, tmp_path / "in")
    out = tmp_path / "r.csv"
    assert invoke(folder, "--out", out, *RUN, *first).exit_code == 0
    result = invoke(folder, "--out", out, *RUN, *again, "--resume")
    assert result.exit_code == 0, result.output
    assert "(2 kept from the previous output)" in result.stderr, result.stderr


def test_the_library_names_the_option_fields(media_dir, tmp_path):
    folder = images(media_dir, tmp_path / "in")
    out = tmp_path / "r.csv"
    progress = _progress_file(folder, out, ())
    header = json.loads(progress.read_text().splitlines()[0])
    assert header["settings"] == run_settings(PipelineOptions(), 0.5)
    assert header["settings"]["detector"] == "blazeface" and header["settings"]["min_confidence"] == 0.5
    options = WriteOptions(out=str(out), resume=True,
                           analyze=AnalyzeOptions(pipeline=PipelineOptions(detect_every=3), workers=1))
    with pytest.raises(InputError) as raised:
        write_analysis([folder], options)
    assert str(raised.value) == (f"WriteOptions.resume: {progress} was made with PipelineOptions.detect_every=2; "
                                 "this run uses PipelineOptions.detect_every=3: run with the same settings, or "
                                 "WriteOptions.overwrite to start again")


def _without_settings(path: Path, where: str) -> None:
    """``path`` as an edge-fer before settings were recorded wrote it."""
    if where == "output":
        rows = read_csv(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            columns = [c for c in rows[0] if c not in SETTINGS]
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    else:
        lines = path.read_text().splitlines(keepends=True)
        header = json.loads(lines[0])
        del header["settings"]
        path.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))


@pytest.mark.parametrize("where", ["output", "progress"])
def test_a_file_without_settings_resumes_with_one_warning(media_dir, tmp_path, where):
    """A file of today's edge-fer before this change: its settings cannot be checked; it is
    accepted (its sources kept) with one warning saying so, and the new files record them."""
    folder = images(media_dir, tmp_path / "in")
    out = tmp_path / "r.csv"
    if where == "output":
        assert invoke(folder, "--out", out, *RUN).exit_code == 0
        path = tmp_path / "r.csv.sources.csv"
    else:
        path = _progress_file(folder, out, ())
    _without_settings(path, where)
    result = invoke(folder, "--out", out, *RUN, "--resume")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "could not be checked" in line]
    assert warnings == [f"edge-fer: --resume: {path.name} records no settings (an older edge-fer wrote it): they "
                        "could not be checked against this run's (model, detector, detection, smoothing)"]
    assert f"({2 if where == 'output' else 1} kept from the previous output)" in result.stderr
    recorded = read_csv(tmp_path / "r.csv.sources.csv")
    assert [row["detector"] for row in recorded] == ["blazeface"] * 2
    assert [row["model"] for row in recorded] == [DEFAULT_MODEL.name] * 2


def test_check_settings_reads_values_as_csv_and_json_give_them(tmp_path):
    """csv gives every value as text ("" for None): equal values compare equal whichever file
    holds them; a setting the file does not record (an older edge-fer's) is named in the warning."""
    current = {"model": "m.tflite", "model_sha256": "ab" * 32, "detector": "haar", "detector_model": None,
               "detect_width": 256, "detect_every": 2, "min_face_px": 48, "min_confidence": None, "smooth": 0.5}
    as_csv = {key: "" if value is None else str(value) for key, value in current.items()}
    assert check_settings(as_csv, current, tmp_path / "r.csv.sources.csv") is None
    assert check_settings(json.loads(json.dumps(current)), current, tmp_path / "p.jsonl") is None
    assert check_settings({k: v for k, v in current.items() if k != "smooth"}, current, tmp_path / "p.jsonl") == (
        "WriteOptions.resume: p.jsonl does not record smooth: not checked against this run's")
    with pytest.raises(InputError, match=r"made with DetectorOptions.min_confidence=0.5; this run uses "
                                         r"DetectorOptions.min_confidence=\(default\)"):
        check_settings({**as_csv, "min_confidence": "0.50"}, current, tmp_path / "r.csv.sources.csv")
