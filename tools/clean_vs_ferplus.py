"""Score an `edge-fer clean` report against the FER+ votes (10 people per face), and draw its flags.

    python tools/clean_vs_ferplus.py --clean OUT --data ../shared/data/fer2013/val \
        --votes ../shared/data/ferplus/ferplus_votes.csv --json scores.json --grid flagged.png

- "label wrong": the FER2013 label differs from the FER+ plurality (a unique maximum over the 10
  vote columns that falls on one of the 7 classes); faces without one are left out of this score.
  Precision = flagged `label` images whose label people call wrong / flagged; recall = wrong labels
  flagged / wrong labels; per given class and overall. `suggested_agrees` = flagged images whose
  suggested class is the people's plurality.
- "not a face": FER+'s NF column is the plurality, or the file has no FER+ row (FER+ dropped those
  rows, all with 10 NF votes; see ../shared/data/ferplus/README.md). Scored for `constant` and
  `no_face` flags together.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer.train.datasets import image_key, load_folder  # noqa: E402
from edge_fer.train.soft_labels import not_a_face, plurality_labels, read_votes  # noqa: E402


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> dict:
    hits = int((flagged & truth).sum())
    return {"scored": int(len(truth)), "flagged": int(flagged.sum()), "true": int(truth.sum()), "hits": hits,
            "precision": hits / flagged.sum() if flagged.any() else None,
            "recall": hits / truth.sum() if truth.any() else None}


def score(clean_dir: Path, data_dir: Path, votes_path: Path) -> tuple[dict, list[dict], object]:
    data = load_folder(data_dir)
    rows = list(csv.DictReader((clean_dir / "report.csv").open(newline="")))
    flag_of = {r["path"]: r for r in rows}
    keys = [Path(p).relative_to(data_dir).as_posix() for p in data.paths]
    issue = np.asarray([flag_of.get(k, {}).get("issue", "") for k in keys])
    suggested = [flag_of.get(k, {}).get("suggested", "") for k in keys]
    votes = read_votes(votes_path)
    people = plurality_labels(votes, data.paths, data.classes)
    listed = np.asarray([image_key(p) in votes for p in data.paths])
    nf_plural = not_a_face(votes, data.paths)

    scored = people >= 0
    wrong = scored & (people != data.labels)
    label_flag = issue == "label"
    result = {"images": len(data), "flagged": {i: int((issue == i).sum()) for i in ("constant", "no_face", "label")},
              "label_wrong": {"scored_faces": int(scored.sum()),
                              "overall": precision_recall(label_flag[scored], wrong[scored]), "per_class": {}}}
    for k, name in enumerate(data.classes):
        mask = scored & (data.labels == k)
        result["label_wrong"]["per_class"][name] = precision_recall(label_flag[mask], wrong[mask])
    agree = [suggested[i] == data.classes[people[i]] for i in np.flatnonzero(label_flag & scored & wrong)]
    result["label_wrong"]["suggested_agrees_with_people"] = (
        {"of": len(agree), "agree": int(sum(agree)), "share": sum(agree) / len(agree)} if agree else None)
    not_face = nf_plural | ~listed
    face_flag = (issue == "constant") | (issue == "no_face")
    result["not_a_face"] = {"nf_plurality": int(nf_plural.sum()), "no_ferplus_row": int((~listed).sum()),
                            **precision_recall(face_flag, not_face)}
    return result, rows, (data, keys, listed, people)


def markdown(result: dict, classes) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"
    lines = ["| given class | faces scored | labels people call wrong (share: a random flag's precision) "
             "| flagged `label` | precision | recall |", "|---|---|---|---|---|---|"]
    for name in [*classes, None]:
        r = result["label_wrong"]["per_class"][name] if name else result["label_wrong"]["overall"]
        row = (f"{name or '**all**'} | {r['scored']} | {r['true']} ({pct(r['true'] / r['scored'] if r['scored'] else None)}) "
               f"| {r['flagged']} | {pct(r['precision'])} | {pct(r['recall'])}")
        lines.append(f"| {row} |")
    f = result["not_a_face"]
    lines.append("")
    lines.append(f"Not a face (`constant` + `no_face`): {f['flagged']} flagged, {f['true']} per FER+ "
                 f"({f['nf_plurality']} NF plurality, {f['no_ferplus_row']} without a FER+ row): "
                 f"precision {pct(f['precision'])}, recall {pct(f['recall'])}.")
    return "\n".join(lines)


def grid(path: Path, data, keys, listed, people, rows, per_issue: int = 24, cols: int = 12) -> None:
    """Flags of each issue (``label``: the most confident; others spread over the report), captioned
    given > suggested and the FER+ plurality ("-": none; "no row": FER+ dropped the image)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {k: i for i, k in enumerate(keys)}
    picked = []
    for kind in ("constant", "no_face", "label"):
        these = [r for r in rows if r["issue"] == kind]
        if kind == "label":  # most confident first
            picked += these[:per_issue]
        else:  # no ranking (report order is class order): spread over the classes
            picked += [these[i] for i in np.unique(np.linspace(0, len(these) - 1, min(per_issue, len(these))).astype(int))] if these else []
    nrows = max(1, -(-len(picked) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 1.25, nrows * 1.55))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, r in zip(np.ravel(axes), picked):
        i = index[r["path"]]
        ax.imshow(data.images[i], cmap="gray", vmin=0, vmax=255)
        said = data.classes[people[i]] if people[i] >= 0 else ("-" if listed[i] else "no row")
        head = r["issue"] if r["issue"] != "label" else f"{r['given'][:4]}>{r['suggested'][:4]}"
        ax.set_title(f"{head}\nFER+ {said}", fontsize=7)
    fig.suptitle("edge-fer clean: flagged images (caption: issue or given>suggested; FER+ plurality)", fontsize=9)
    fig.tight_layout()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    Image.open(buffer).convert("L").save(path, optimize=True)  # gray faces, black text: 8-bit gray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean", required=True, type=Path, help="An `edge-fer clean` output folder.")
    parser.add_argument("--data", required=True, type=Path, help="The folder it checked.")
    parser.add_argument("--votes", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--grid", type=Path)
    args = parser.parse_args()
    result, rows, (data, keys, listed, people) = score(args.clean, args.data, args.votes)
    print(markdown(result, data.classes))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.grid:
        grid(args.grid, data, keys, listed, people, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
