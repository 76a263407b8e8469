"""``convert`` (one output) and ``convert_all`` (every format into a folder).

Every output is verified on held-out real faces through the runtime before it is kept: it is
written to a temporary file beside the target and renamed into place only if its top-1
agreement with the source model reaches the threshold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path


from edge_fer.errors import ConversionError, EdgeFerError, OptionsError, OutputError
from edge_fer.fileio import atomic_path, check_writable_folder, output_error, write_json_atomic

from .faces import Faces, check_out, face_counts, load_faces, warn_without_framing
from .options import ALL_VARIANTS, SUFFIXES, ConversionReport, ConvertOptions
from .quiet import quiet
from .models import SourceModel, open_model
from .verify import verified_on

log = logging.getLogger("edge_fer.converters")

VARIANT_NAMES = {"none": "float32", "fp16": "fp16", "dynamic": "dynamic", "int8": "int8"}
SUMMARY_FILE = "summary.json"


def convert(options: ConvertOptions) -> ConversionReport:
    """Convert, verify and write one model file; raises ConversionError (writing nothing) when
    the converted model's agreement with the source is below the threshold."""
    target = options.target
    if target == "phone":
        from .phone import convert_phone

        return convert_phone(options)
    out = check_out(Path(options.out), target)
    if out.resolve() == Path(options.model_path).resolve():
        raise OptionsError(f"ConvertOptions.out={str(options.out)!r}: expected a file other than the source model")
    counts = face_counts(options, (options.quantize,))
    with quiet(), open_model(options) as source:
        report = _convert_one(source, load_faces(options, source, counts), options, target, out)
        meta = source.meta
    warn_without_framing(meta, out.name)  # after quiet(), which silences logging
    return report


def _convert_one(source: SourceModel, faces: Faces, options: ConvertOptions, target: str,
                 out: Path) -> ConversionReport:
    from edge_fer.metadata_write import add_onnx_metadata, add_tflite_metadata

    from .onnx_out import to_onnx
    from .tflite_out import to_tflite
    from .verify import verify

    quantization = options.quantize
    meta = source.meta.with_(quantization=quantization)
    calibration = faces.calibration if quantization == "int8" else None
    started = time.perf_counter()
    with atomic_path(out, SUFFIXES[target]) as tmp:  # renamed to ``out`` only if verified
        if target == "tflite":
            tmp.write_bytes(add_tflite_metadata(to_tflite(source, quantization, calibration, options.int8_io), meta))
        else:
            to_onnx(source, quantization, calibration, tmp)
            add_onnx_metadata(tmp, meta)
        seconds = time.perf_counter() - started
        check = verify(tmp, faces.verify, faces.reference, meta, options.num_threads)
        required = options.required_agreement
        if check.agreement < required:
            raise ConversionError(f"{target} {quantization} agrees with the source on {check.agreement:.1%} "
                                  f"of {check.faces} held-out faces, below the required {required:.1%} "
                                  f"(ConvertOptions.min_agreement); {out.name} not written")
        size = tmp.stat().st_size
    return ConversionReport(str(out), target, quantization, size, check.agreement, faces.source_accuracy,
                            check.converted_accuracy, check.max_prob_diff, round(seconds, 2), check.faces,
                            cpu=verified_on())



def variant_path(folder: Path, stem: str, target: str, quantization: str) -> Path:
    return folder / f"{stem}_{VARIANT_NAMES[quantization]}{SUFFIXES[target]}"


def convert_all(options: ConvertOptions, variants=ALL_VARIANTS) -> list[ConversionReport]:
    """Write every ``(target, quantization)`` variant into the folder ``options.out`` (created if
    its parent exists) and ``summary.json`` there. ``options.to``/``quantize`` must be left unset.

    A variant that fails is reported (``report.error``), not raised: the others still get written.
    """
    if options.to is not None or options.quantize != "none":
        raise OptionsError("convert_all writes every format: leave ConvertOptions.to and ConvertOptions.quantize unset")
    if options.calibration is None and any(q == "int8" for _, q in variants):
        raise OptionsError("every format includes full-int8 variants, which need ConvertOptions.calibration "
                           "(real face crops, folder per class)")
    folder = Path(options.out)
    if folder.exists() and not folder.is_dir():
        raise OptionsError(f"ConvertOptions.out={str(options.out)!r}: expected a folder for every format, not a file")
    if not folder.parent.is_dir():
        raise OptionsError(f"output folder does not exist: {folder.parent}")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise output_error(folder, exc) from None
    check_writable_folder(folder, "ConvertOptions.out")
    reports = []
    counts = face_counts(options, tuple(q for _, q in variants))
    with quiet(), open_model(options) as source:
        faces = load_faces(options, source, counts)
        stem = Path(options.model_path).stem or "model"
        for target, quantization in variants:
            out = variant_path(folder, stem, target, quantization)
            variant = replace(options, to=target, quantize=quantization, out=out)
            started = time.perf_counter()
            try:
                reports.append(_convert_one(source, faces, variant, target, out))
            except OutputError:  # a full disk fails every later variant too
                raise
            except EdgeFerError as exc:
                reports.append(ConversionReport(str(out), target, quantization, 0, None,
                                                faces.source_accuracy, None, None,
                                                round(time.perf_counter() - started, 2), len(faces.verify),
                                                error=str(exc), cpu=verified_on()))
        summary = {"source": str(options.model_path), "source_sha256": source.meta.source_sha256,
                   "meta": source.meta.to_dict(), "verify_faces": len(faces.verify),
                   "calibration_faces": 0 if faces.calibration is None else len(faces.calibration),
                   "verified_on": verified_on(),
                   "variants": [r.to_dict() for r in reports]}
    write_json_atomic(folder / SUMMARY_FILE, summary, indent=2)
    if any(r.ok for r in reports):
        warn_without_framing(source.meta, f"{folder}/{stem}_*")
    return reports


def format_summary(reports: list[ConversionReport]) -> str:
    """A plain-text table: one row per variant."""
    def pct(value):
        return "   n/a" if value is None else f"{100 * value:5.1f}%"

    lines = [f"{'file':34} {'format':6} {'quant':7} {'size KiB':>8} {'agree':>6} {'src acc':>7} "
             f"{'acc':>6} {'max dp':>6} {'conv s':>6}  status"]
    for r in reports:
        dp = "   n/a" if r.max_prob_diff is None else f"{r.max_prob_diff:6.3f}"
        lines.append(f"{Path(r.out_path).name:34} {r.format:6} {r.quantization:7} {r.size_bytes / 1024:8.1f} "
                     f"{pct(r.agreement)} {pct(r.source_accuracy):>7} {pct(r.converted_accuracy)} {dp} "
                     f"{r.seconds:6.1f}  {'ok' if r.ok else 'FAILED: ' + r.error}")
    if reports:
        lines.append(f"verified on {reports[0].cpu}")
    return "\n".join(lines)


def format_report(report: ConversionReport) -> str:
    """One line for one conversion."""
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}%"

    return (f"wrote {report.out_path} ({report.format} {report.quantization}, {report.size_bytes / 1024:.1f} KiB, "
            f"{report.seconds:.1f} s): agreement {pct(report.agreement)} on {report.faces} faces, accuracy "
            f"source {pct(report.source_accuracy)} / converted {pct(report.converted_accuracy)}, "
            f"max |dp| {report.max_prob_diff:.4f}; verified on {report.cpu}")

