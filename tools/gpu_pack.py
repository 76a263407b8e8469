"""The campaign's data, packed to travel to a GPU machine (tools/train_gpu.sh reads it there).

A device call carries at most 64 MiB with the working tree (about 27 MB), and FER2013's training
JPEGs alone are 45 MB: the pack is split into parts of at most ``--part-mb`` MB, each small enough
to travel in a call of its own (docs/train_gpu.md gives the calls).

    python tools/gpu_pack.py --out .gpudata [--part-mb 28] [--limit-per-class N]

Parts (plain ``.npz``, no pickles), each naming the pack it belongs to and how many parts it has:
- ``train-K.npz``: the training faces as their JPEG bytes (exact: decoded there as here), labels,
  ``<class>/<file>`` keys (the teacher-probs names) and the FER+ vote distribution of each face
  (``soft_labels.soft_targets``: the FER2013 one-hot where a face has no usable votes);
- ``eval.npz``: val's pixels and labels, which val faces have no pixel twin in train (de-dup
  val), val's FER+ plurality (-1: none), and CK+48's faces of the 6 classes it shares with
  FER2013, as FER2013 class indexes: the campaign's three measures (tools/campaign.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from campaign import SHARED, eval_sets  # noqa: E402


class PackError(Exception):
    """A pack that is missing a part, mixes two packs, or is not a pack."""


def jpeg_blob(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The files' bytes end to end, and the offsets (len + 1) that cut them apart."""
    chunks = [Path(p).read_bytes() for p in paths]
    offsets = np.zeros(len(chunks) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    return np.frombuffer(b"".join(chunks), np.uint8), offsets


def decode_blob(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 gray faces from :func:`jpeg_blob`'s output."""
    import cv2

    faces = [cv2.imdecode(blob[offsets[i]:offsets[i + 1]], cv2.IMREAD_GRAYSCALE) for i in range(len(offsets) - 1)]
    if any(f is None for f in faces):
        raise PackError("a training face in the pack does not decode")
    return np.stack(faces)


def build(out: Path, part_mb: float, limit_per_class: int | None, shared: Path = SHARED) -> dict:
    from edge_fer.fileio import folder_atomic, sync_file
    from edge_fer.train.datasets import image_key, load_folder
    from edge_fer.train.soft_labels import soft_targets

    votes = shared / "ferplus" / "ferplus_votes.csv"
    train = load_folder(shared / "fer2013" / "train", limit_per_class=limit_per_class, seed=0)
    sets = eval_sets(shared, limit_per_class, train)
    sizes = np.asarray([Path(p).stat().st_size for p in train.paths])
    budget = int(part_mb * 1e6)
    cuts, start, used = [], 0, 0
    for i, size in enumerate(sizes):
        if used + size > budget and i > start:
            cuts.append((start, i))
            start, used = i, 0
        used += size
    cuts.append((start, len(sizes)))
    pack_id = hashlib.sha256("\n".join(train.paths).encode() + sizes.tobytes()).hexdigest()[:16]
    head = {"pack": np.asarray(pack_id), "parts": np.asarray(len(cuts)), "classes": np.asarray(train.classes)}
    ferplus = soft_targets(votes, train.paths, train.labels, train.classes).probs.astype(np.float16)
    with folder_atomic(out) as building:  # all parts or none
        for k, (a, b) in enumerate(cuts):
            blob, offsets = jpeg_blob(train.paths[a:b])
            np.savez(building / f"train-{k}.npz", **head, part=np.asarray(k), jpeg=blob, offsets=offsets,
                     labels=train.labels[a:b].astype(np.int8),
                     keys=np.asarray([image_key(p) for p in train.paths[a:b]]), ferplus=ferplus[a:b])
        np.savez_compressed(building / "eval.npz", **head, val=sets["val"].images,
                            val_labels=sets["val_labels"].astype(np.int8), val_dedup=sets["val_dedup"],
                            val_ferplus=sets["val_ferplus"].astype(np.int8), ck=sets["ck"].images,
                            ck_labels=sets["ck_labels"].astype(np.int8))
        for part in building.iterdir():
            sync_file(part)
    return {"pack": pack_id, "parts": len(cuts), "train": len(train), "val": len(sets["val"]),
            "val_dedup": int(sets["val_dedup"].sum()), "ckplus48": len(sets["ck"]), "files": sorted(p.name for p in out.glob("*.npz")),
            "megabytes": {p.name: round(p.stat().st_size / 1e6, 1) for p in sorted(out.glob("*.npz"))}}


def load(folder: Path) -> dict:
    """The whole pack from ``folder``: train (images, labels, keys, ferplus) and the eval sets.
    Raises PackError naming what is missing."""
    folder = Path(folder)
    if not (folder / "eval.npz").is_file():
        raise PackError(f"{folder}/eval.npz not found: expected tools/gpu_pack.py's output")
    ev = dict(np.load(folder / "eval.npz"))
    pack, parts = str(ev["pack"]), int(ev["parts"])
    train = []
    for k in range(parts):
        path = folder / f"train-{k}.npz"
        if not path.is_file():
            raise PackError(f"{path} not found: pack {pack} has {parts} training parts; carry each one "
                            "(docs/train_gpu.md)")
        part = dict(np.load(path))
        if str(part["pack"]) != pack:
            raise PackError(f"{path} belongs to pack {part['pack']}, not {pack}: pack again")
        train.append(part)
    return {"classes": tuple(str(c) for c in ev["classes"]), "pack": pack,
            "train_images": np.concatenate([decode_blob(p["jpeg"], p["offsets"]) for p in train]),
            "train_labels": np.concatenate([p["labels"] for p in train]).astype(np.int64),
            "train_keys": [str(k) for p in train for k in p["keys"]],
            "train_ferplus": np.concatenate([p["ferplus"] for p in train]).astype(np.float32),
            "val_images": ev["val"], "val_labels": ev["val_labels"].astype(np.int64), "val_dedup": ev["val_dedup"],
            "val_ferplus": ev["val_ferplus"].astype(np.int64), "ck_images": ev["ck"],
            "ck_labels": ev["ck_labels"].astype(np.int64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the pack's folder (e.g. .gpudata, git-ignored)")
    parser.add_argument("--part-mb", type=float, default=28.0,
                        help="JPEG bytes per training part, MB (default 28: two parts, each call under 64 MiB)")
    parser.add_argument("--limit-per-class", type=int, help="at most this many faces per class (tests)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    args = parser.parse_args()
    if args.out.exists():
        print(f"gpu_pack: --out {args.out} exists; expected a new folder (remove the old pack first)",
              file=sys.stderr)
        return 2
    print(json.dumps(build(args.out, args.part_mb, args.limit_per_class, args.shared), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
