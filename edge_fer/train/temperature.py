"""``edge-fer calibrate-confidence``: fit a model file's temperature on labelled faces, write it
into the file's metadata, and report the expected calibration error before and after.

The temperature is fitted on the model's own raw scores (any temperature already in the file is
undone first), per file: an int8 file and its float source score slightly differently. The
reliability diagram (``--out``) shows accuracy against confidence per bin, before and after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..confidence import ECE_BINS, expected_calibration_error, fit_temperature, reliability, soften
from ..errors import OptionsError


@dataclass(frozen=True)
class ConfidenceOptions:
    """``models``: .tflite/.onnx files (written in place unless ``write`` is False); ``data``:
    labelled faces, folder-per-class (FER2013 val); ``dedup_against``: report the ECE also on the
    faces of ``data`` with no twin there; ``out``: a folder for the reliability diagram and JSON."""

    models: tuple[str, ...]
    data: str
    dedup_against: str | None = None
    out: str | None = None
    write: bool = True
    num_threads: int = 2

    def __post_init__(self) -> None:
        if not self.models:
            raise OptionsError(f"ConfidenceOptions.models={self.models!r}: expected at least one model")
        bad = [m for m in self.models if Path(m).suffix.lower() not in (".tflite", ".onnx")]
        if bad:
            raise OptionsError(f"ConfidenceOptions.models={str(bad[0])!r}: expected a .tflite or .onnx file (a "
                               "temperature is written into it)")


def calibrate_confidence(options: ConfidenceOptions) -> list[dict]:
    """Fit, write and report each model's temperature; returns one dict per model."""
    from ..metadata_write import write_model_fields
    from .datasets import dedup_against
    from .evaluate import EvalOptions, label_map, open_runner, predict_proba
    from .loaders import LoadOptions, load_dataset

    if options.out:
        from .evaluate import check_out_folder
        check_out_folder(Path(options.out), "ConfidenceOptions.out")
    results = []
    for model in options.models:
        with open_runner(EvalOptions(model, options.data, num_threads=options.num_threads)) as runner:
            meta = runner.meta
            data = load_dataset(options.data, LoadOptions(size_hw=meta.input_size_hw, usage="PublicTest"))
            true = label_map(data.classes, meta.labels)[data.labels]
            raw = soften(predict_proba(runner, data.images, 256), 1.0 / meta.temperature)  # undo a stored one
        temperature = fit_temperature(raw, true)
        calibrated = soften(raw, temperature)
        row = {"model": str(model), "faces": int(len(true)), "temperature": temperature,
               "previous_temperature": meta.temperature,
               "ece_before": expected_calibration_error(raw, true),
               "ece_after": expected_calibration_error(calibrated, true),
               "reliability_before": reliability(raw, true), "reliability_after": reliability(calibrated, true)}
        if options.dedup_against:
            from .evaluate import load_reference

            keep = dedup_against(data, load_reference(options.dedup_against, meta.input_size_hw))
            row.update(dedup_faces=int(len(keep)), ece_before_dedup=expected_calibration_error(raw[keep], true[keep]),
                       ece_after_dedup=expected_calibration_error(calibrated[keep], true[keep]))
        if options.write:
            write_model_fields(model, temperature=temperature)
            row["written"] = True
        results.append(row)
    if options.out:
        write_report(results, Path(options.out))
    return results


def write_report(results: list[dict], out: Path) -> None:
    """``confidence.json`` and ``reliability.png`` (one panel per model), each atomically."""
    from ..fileio import write_with_atomic
    from .evaluate import prepare_out_folder

    prepare_out_folder(out, "ConfidenceOptions.out")
    write_with_atomic(out / "confidence.json", lambda h: h.write(json.dumps(results, indent=1).encode()))
    figure = reliability_figure(results)
    write_with_atomic(out / "reliability.png", lambda h: figure.savefig(h, format="png", dpi=110))


def reliability_figure(results: list[dict]):
    """Accuracy against confidence per bin, before and after; the diagonal is perfect calibration."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(results), 4.2))
    FigureCanvasAgg(figure)
    for i, row in enumerate(results):
        ax = figure.add_subplot(1, len(results), i + 1)
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
        for key, label in (("reliability_before", f"raw: ECE {100 * row['ece_before']:.1f}%"),
                           ("reliability_after", f"T={row['temperature']:.2f}: ECE {100 * row['ece_after']:.1f}%")):
            bins = [b for b in row[key] if b["confidence"] is not None]
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label=label)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top score)", ylabel="accuracy",
               title=f"{Path(row['model']).name} ({row['faces']} faces, {ECE_BINS} bins)")
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure


def format_rows(results: list[dict]) -> str:
    lines = []
    for r in results:
        dedup = (f"; de-duplicated ({r['dedup_faces']} faces) {100 * r['ece_before_dedup']:.2f}% -> "
                 f"{100 * r['ece_after_dedup']:.2f}%" if "dedup_faces" in r else "")
        lines.append(f"{r['model']}: temperature {r['temperature']:.4f} ({'written' if r.get('written') else 'not written'}); "
                     f"ECE ({ECE_BINS} bins, {r['faces']} faces) {100 * r['ece_before']:.2f}% -> "
                     f"{100 * r['ece_after']:.2f}%{dedup}")
    return "\n".join(lines)

