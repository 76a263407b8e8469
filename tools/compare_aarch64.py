"""Compare the outputs tools/check_aarch64.sh wrote for x86 and one aarch64 root; print Markdown.

    python tools/compare_aarch64.py OUT aarch64-bookworm --cases OUT/cases-bookworm.tsv

``OUT/<side>/<case>.{out,err,rc}`` hold each command's stdout, stderr and exit code. A row
matches when: ``run`` cases have the same frames and, per frame, the same faces, boxes (and
landmarks) within 2 px, the same top-1 and every score within 0.02 (``video-*`` rows: top-1
and scores are reported, not required: the two sides' FFmpeg builds decode the same file to
pixels that differ by rounding, see the ``decode`` row; the ``frames-*`` rows feed both sides
the same decoded frames, as PNG, and require everything); bad-input cases exit
non-zero on both sides with one ``edge-fer: error:`` line, the same text once each side's paths
are replaced, and no traceback; ``--version`` prints the same; ``doctor --json`` parses, loads
LiteRT, and finds the same number of faces with each detector both sides timed. Exit 1 on any
mismatch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path

BOX_TOLERANCE_PX = 2.0
SCORE_TOLERANCE = 0.02
#: Decoded video pixels may differ by this much (colour-conversion rounding), 0..255 levels.
DECODE_TOLERANCE = 2
VERSIONED = ("numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime", "onnxruntime")


def read(out: Path, side: str, case: str) -> dict:
    base = out / side / case
    return {"out": base.with_suffix(".out").read_text(errors="replace"),
            "err": base.with_suffix(".err").read_text(errors="replace"),
            "rc": int(base.with_suffix(".rc").read_text().strip())}


def paths(out: Path, side: str) -> tuple[str, ...]:
    """The side's @MODELS@, @MEDIA@, @TMP@ (to put the placeholders back into messages)."""
    return tuple((out / side / "paths.tsv").read_text().rstrip("\n").split("\t"))


def frames(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def face_summary(frame_list: list[dict]) -> str:
    faces = [f for fr in frame_list for f in fr["faces"]]
    if not faces:
        return f"{len(frame_list)} frame(s), no face"
    first = faces[0]
    return (f"{len(frame_list)} frame(s), {len(faces)} face(s); first {first['expression']} "
            f"{first['score']:.4f} at {first['box_xywh']}")


def compare_run(x86: dict, arm: dict, strict_scores: bool = True) -> tuple[str, str, str, str, list[str]]:
    """(x86 cell, aarch64 cell, max box/landmark delta, max score delta, problems). With
    ``strict_scores`` False a different top-1 or score is a note ("(...)"), not a problem."""
    problems, notes = [], []
    for name, result in (("x86", x86), ("aarch64", arm)):
        if result["rc"] != 0:
            problems.append(f"{name} exit {result['rc']}: {last_line(result['err'])}")
    if problems:
        return last_line(x86["err"]) if x86["rc"] else "ok", last_line(arm["err"]) if arm["rc"] else "ok", "", "", problems
    a, b = frames(x86["out"]), frames(arm["out"])
    box_delta = score_delta = 0.0
    if [f["frame"] for f in a] != [f["frame"] for f in b]:
        problems.append(f"frames differ: {[f['frame'] for f in a]} vs {[f['frame'] for f in b]}")
    for fa, fb in zip(a, b):
        if len(fa["faces"]) != len(fb["faces"]):
            problems.append(f"frame {fa['frame']}: {len(fa['faces'])} vs {len(fb['faces'])} faces")
            continue
        for face_a, face_b in zip(sorted(fa["faces"], key=lambda f: f["box_xywh"]),
                                  sorted(fb["faces"], key=lambda f: f["box_xywh"])):
            deltas = [abs(p - q) for p, q in zip(face_a["box_xywh"], face_b["box_xywh"])]
            landmarks_a, landmarks_b = face_a.get("landmarks", {}), face_b.get("landmarks", {})
            if set(landmarks_a) != set(landmarks_b):
                problems.append(f"frame {fa['frame']}: landmarks {sorted(landmarks_a)} vs {sorted(landmarks_b)}")
            for key in set(landmarks_a) & set(landmarks_b):
                deltas += [abs(p - q) for p, q in zip(landmarks_a[key], landmarks_b[key])]
            box_delta = max(box_delta, *deltas)
            score_delta = max(score_delta, *(abs(face_a["scores"][k] - face_b["scores"].get(k, -1.0))
                                             for k in face_a["scores"]))
            if face_a["expression"] != face_b["expression"]:
                (problems if strict_scores else notes).append(
                    f"frame {fa['frame']}: top-1 {face_a['expression']} vs {face_b['expression']}")
    if box_delta > BOX_TOLERANCE_PX:
        problems.append(f"box/landmark delta {box_delta:.1f} px > {BOX_TOLERANCE_PX}")
    if score_delta > SCORE_TOLERANCE:
        (problems if strict_scores else notes).append(f"score delta {score_delta:.4f} > {SCORE_TOLERANCE}")
    if notes and not problems:
        problems = [f"(not required: {'; '.join(notes)})"]
    return face_summary(a), face_summary(b), f"{box_delta:.1f}", f"{score_delta:.4f}", problems


def compare_decode(out: Path, side: str) -> tuple[str, str, list[str]]:
    """The video's first frames as each side decoded them (PNG): shapes and pixel differences."""
    import cv2
    import numpy as np

    folders = [out / "x86" / "decoded", out / side / "decoded"]
    frames = [[cv2.imread(str(f)) for f in sorted(folder.glob("*.png"))] for folder in folders]
    if not frames[0] or len(frames[0]) != len(frames[1]):
        return f"{len(frames[0])} frames", f"{len(frames[1])} frames", ["frame counts differ"]
    if any(a.shape != b.shape for a, b in zip(*frames)):
        return str(frames[0][0].shape), str(frames[1][0].shape), ["frame shapes differ"]
    deltas = np.stack([np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(*frames)])
    cell = (f"{len(frames[0])} frames {frames[0][0].shape[1]}x{frames[0][0].shape[0]}; pixels differ by at most "
            f"{int(deltas.max())} levels, {100 * float((deltas > 0).mean()):.0f}% of values differ")
    problems = [] if deltas.max() <= DECODE_TOLERANCE else [f"pixel delta {int(deltas.max())} > {DECODE_TOLERANCE}"]
    return "the reference", cell, problems


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def compare_bad(x86: dict, arm: dict, x86_paths, arm_paths) -> tuple[str, str, list[str]]:
    problems, cells = [], []
    for name, result, side_paths in (("x86", x86, x86_paths), ("aarch64", arm, arm_paths)):
        line = last_line(result["err"])
        for value, marker in zip(side_paths, ("@MODELS@", "@MEDIA@", "@TMP@")):
            line = line.replace(value, marker)
        cells.append(f"exit {result['rc']}: `{line}`")
        if result["rc"] == 0:
            problems.append(f"{name} exited 0")
        if not line.startswith("edge-fer: error: "):
            problems.append(f"{name}: not one `edge-fer: error:` line")
        if "Traceback" in result["err"]:
            problems.append(f"{name}: traceback")
    # The runtime's own words in a trailing "(...)" may differ between its versions; edge-fer's not.
    x86_cell, arm_cell = (re.sub(r" \([^()]*\)`$", "`", cell) for cell in cells)
    if x86_cell != arm_cell:
        problems.append("messages or exit codes differ")
    return cells[0], cells[1], problems


def compare_doctor(x86: dict, arm: dict) -> tuple[str, str, list[str]]:
    problems, cells, reports = [], [], []
    for name, result in (("x86", x86), ("aarch64", arm)):
        try:
            report = json.loads(result["out"])
        except ValueError:
            problems.append(f"{name}: exit {result['rc']}, no JSON: {last_line(result['err'])}")
            return "", "", problems
        reports.append(report)
        runtimes = report.get("runtimes", {})
        litert = runtimes.get("litert", {})
        found = {f"{d['detector']}": d.get("faces", d.get("error", "?")) for d in report.get("benchmark", {}).get("detectors", [])
                 if d.get("threads") == 1}
        cells.append(f"{report['platform']['machine']}, litert {litert.get('version')} xnnpack {litert.get('xnnpack')}, "
                     f"ort {runtimes.get('onnxruntime', {}).get('providers')}, faces {{{', '.join(f'{k}: {v}' for k, v in found.items() if isinstance(v, int))}}}")
        if not (litert.get("available") or runtimes.get("tflite_runtime", {}).get("available")):
            problems.append(f"{name}: no LiteRT")
        if result["rc"] != 0:
            problems.append(f"{name}: exit {result['rc']}")
    if reports[1]["platform"]["machine"] != "aarch64":
        problems.append(f"aarch64 side reports machine {reports[1]['platform']['machine']}")
    faces = [{(d["detector"], d["threads"]): d["faces"] for d in r.get("benchmark", {}).get("detectors", []) if "faces" in d}
             for r in reports]
    for key in faces[0].keys() & faces[1].keys():
        if faces[0][key] != faces[1][key]:
            problems.append(f"doctor {key[0]} threads {key[1]}: {faces[0][key]} vs {faces[1][key]} faces")
    return cells[0], cells[1], problems


def versions(out: Path, side: str) -> str:
    """'Python 3.11.2, numpy 2.4.6, ...' from the side's doctor report."""
    try:
        report = json.loads((out / side / "doctor.out").read_text())
    except (OSError, ValueError):
        return "(no doctor report)"
    packages = report.get("packages", {})
    return ", ".join([f"Python {report['python']['version']}"] +
                     [f"{name} {packages[name]}" for name in VERSIONED if packages.get(name)])


def row(name: str, a: str, b: str, box: str, score: str, problems: list[str]) -> str:
    if not problems:
        verdict = "same"
    elif problems[0].startswith("(not required"):
        verdict = "boxes same; " + problems[0]
    else:
        verdict = "**MISMATCH**: " + "; ".join(problems)
    return f"| {name} | {a} | {b} | {box} | {score} | {verdict} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("side", help="e.g. aarch64-bookworm")
    parser.add_argument("--cases", type=Path, required=True)
    parser.add_argument("--wheel", default="?")
    parser.add_argument("--rev", default="?")
    args = parser.parse_args(argv)
    out, side = args.out, args.side
    names = [line.split("\t")[0] for line in args.cases.read_text().splitlines() if line.strip()]
    x86_paths, arm_paths = paths(out, "x86"), paths(out, side)
    rows, mismatches = [], 0
    for name in names:
        x86, arm = read(out, "x86", name), read(out, side, name)
        box = score = ""
        if name == "version":
            a, b = x86["out"].strip(), arm["out"].strip()
            problems = [] if a == b and x86["rc"] == arm["rc"] == 0 else ["versions differ"]
        elif name == "doctor":
            a, b, problems = compare_doctor(x86, arm)
        elif name.startswith("bad-"):
            a, b, problems = compare_bad(x86, arm, x86_paths, arm_paths)
        else:
            a, b, box, score, problems = compare_run(x86, arm, strict_scores=not name.startswith("video-"))
        rows.append(row(name, a, b, box, score, problems))
        mismatches += bool(problems) and not problems[0].startswith("(not required")
    if (out / "x86" / "decoded").is_dir() and (out / side / "decoded").is_dir():
        a, b, problems = compare_decode(out, side)
        rows.append(row("decode", a, b, "", "", problems))
        mismatches += bool(problems)
    install = out / f"{side}-install.seconds"
    run = out / f"{side}-run.seconds"
    print(f"### x86_64 vs {side}\n")
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, edge-fer {args.rev}, wheel `{args.wheel}`.  ")
    print(f"x86_64: {versions(out, 'x86')}.  ")
    print(f"{side}: {versions(out, side)}.  ")
    if install.exists() and run.exists():
        print(f"Emulated (qemu-user, nice 19, shared 2-core box): pip install {install.read_text().strip()} s, "
              f"the {len(names)} commands {run.read_text().strip()} s.")
    print("\nTolerances: boxes and landmarks within 2 px, same top-1, scores within 0.02 (video-* rows: "
          "boxes only, the decoded pixels differ: see the decode row; frames-* rows: the same frames as PNG, "
          f"everything); decoded pixels within {DECODE_TOLERANCE} levels.\n")
    print("| case | x86_64 | aarch64 | max box/landmark Δ px | max score Δ | result |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"\n{len(rows) - mismatches}/{len(rows)} rows pass.")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
