"""MTCNN for edge-fer: facenet-pytorch's P/R/O-Net weights as three ONNX files, and the check of
edge-fer's detector against facenet-pytorch's own MTCNN.

PyTorch is needed here only, never by edge-fer at run time. In a separate virtual environment:

    python -m venv .venv-torch
    .venv-torch/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx onnxruntime "numpy<2.3" \\
        opencv-python-headless"<5" pillow requests tqdm
    .venv-torch/bin/pip install --no-deps facenet-pytorch==2.6.0   # MIT; its pins are older
    .venv-torch/bin/python tools/mtcnn_onnx.py convert --out edge_fer/detectors/models
    .venv-torch/bin/python tools/mtcnn_onnx.py compare --media ../shared/data/media \\
        --json docs/model_card/mtcnn_vs_pytorch.json

``convert`` exports each net (opset 17; P-Net with any input size, R/O-Net with any batch),
checks ONNX Runtime's outputs against PyTorch's on real face crops, writes the files atomically
and their size and sha256 into the detector manifest, and copies facenet-pytorch's licence.
``compare`` runs both detectors on every frame of the sample videos and on the sample images
(full size, smallest face 20 px) and reports how many of PyTorch's boxes edge-fer finds at
IoU >= 0.9, and the largest landmark distance, in pixels, on matched faces.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCE = "facenet-pytorch 2.6.0 (PyPI wheel, MIT), facenet_pytorch/data/{net}.pt"
LICENSE_FILE = "LICENSES/MIT-facenet-pytorch.txt"
#: facenet-pytorch 2.6.0's weight files (sha256, size in bytes): anything else is refused.
WEIGHTS = {"pnet": ("a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28570),
           "rnet": ("bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403147),
           "onet": ("165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1559269)}
#: Largest ONNX Runtime vs PyTorch difference accepted on the nets' outputs (probabilities, offsets).
TOLERANCE = 1e-4


def nets():
    """facenet-pytorch's three nets with their shipped weights (checked first), in eval mode."""
    import facenet_pytorch
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    from edge_fer.fileio import file_sha256

    for name, (digest, size) in WEIGHTS.items():
        path = Path(facenet_pytorch.__file__).parent / "data" / f"{name}.pt"
        if path.stat().st_size != size or file_sha256(path) != digest:
            sys.exit(f"mtcnn_onnx: {path} is not facenet-pytorch 2.6.0's {name} weights "
                     f"(expected {size} bytes, sha256 {digest[:12]}...)")
    return {"pnet": PNet().eval(), "rnet": RNet().eval(), "onet": ONet().eval()}


def export(net, name: str, path: Path) -> None:
    import torch

    from edge_fer.detectors.mtcnn import NETS

    side, outputs = NETS[name]
    example = torch.zeros(1, 3, side or 64, side or 48)
    axes = {"image": {0: "batch", 2: "height", 3: "width"} if side is None else {0: "batch"}}
    axes.update({o: {0: "batch"} for o in outputs})
    torch.onnx.export(net, (example,), str(path), input_names=["image"], output_names=list(outputs),
                      dynamic_axes=axes, opset_version=17, dynamo=False)


def check(net, path: Path, batch: np.ndarray) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch over the outputs."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(batch))]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": batch})
    return max(float(np.abs(e - g).max()) for e, g in zip(expected, got))


def face_batches(media: Path) -> dict[str, np.ndarray]:
    """Real inputs for the check: justin.jpg whole (P-Net) and crops around its face at 24 and 48."""
    import cv2

    from edge_fer.detectors.mtcnn import normalise

    rgb = cv2.cvtColor(cv2.imread(str(media / "justin.jpg")), cv2.COLOR_BGR2RGB)
    crops = [rgb[y:y + s, x:x + s] for x, y, s in ((85, 81, 200), (60, 60, 250), (100, 100, 150), (0, 0, 120))]
    return {"pnet": normalise(cv2.resize(rgb, (190, 192), interpolation=cv2.INTER_AREA)),
            "rnet": normalise(np.stack([cv2.resize(c, (24, 24), interpolation=cv2.INTER_AREA) for c in crops])),
            "onet": normalise(np.stack([cv2.resize(c, (48, 48), interpolation=cv2.INTER_AREA) for c in crops]))}


def convert(args) -> None:
    import facenet_pytorch

    from edge_fer.fileio import file_sha256, write_bytes_atomic, write_json_atomic

    out = args.out
    batches = face_batches(args.media)
    entries = []
    for name, net in nets().items():
        with tempfile.TemporaryDirectory() as tmp:
            exported = Path(tmp) / f"mtcnn_{name}.onnx"
            export(net, name, exported)
            diff = check(net, exported, batches[name])
            if diff > TOLERANCE:
                sys.exit(f"mtcnn_onnx: {name}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {TOLERANCE})")
            target = out / exported.name
            write_bytes_atomic(target, exported.read_bytes())
        print(f"{target.name}: {target.stat().st_size} bytes, sha256 {file_sha256(target)}, max |ORT - torch| {diff:.1e}")
        entries.append({"detector": "mtcnn", "file": target.name, "size_bytes": target.stat().st_size,
                        "sha256": file_sha256(target), "source": SOURCE.format(net=name), "source_sha256": WEIGHTS[name][0], "license": "MIT",
                        "license_file": LICENSE_FILE})
    licence = Path(facenet_pytorch.__file__).parent.parent / "facenet_pytorch-2.6.0.dist-info" / "LICENSE.md"
    (out / LICENSE_FILE).parent.mkdir(exist_ok=True)
    write_bytes_atomic(out / LICENSE_FILE, licence.read_bytes())
    manifest_path = out / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [e for e in manifest["files"] if e["detector"] != "mtcnn"] + entries
    write_json_atomic(manifest_path, manifest, indent=2)
    print(f"wrote {len(entries)} files and their manifest entries to {out}")


def frames(media: Path):
    """(source, index, RGB frame): the sample images, then every frame of the sample videos."""
    import cv2

    for image in ("justin.jpg", "no-faces.jpg"):
        yield image, 0, cv2.cvtColor(cv2.imread(str(media / image)), cv2.COLOR_BGR2RGB)
    for video in ("woman2.mp4", "test.mp4"):
        capture = cv2.VideoCapture(str(media / video))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield video, index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        capture.release()


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def compare(args) -> None:
    import cv2
    import torch
    from facenet_pytorch import MTCNN

    from edge_fer.detectors import DetectorOptions
    from edge_fer.detectors.mtcnn import MtcnnDetector

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    reference = MTCNN(keep_all=True, device="cpu")
    ours = MtcnnDetector(DetectorOptions("mtcnn", detect_width=0, min_face_px=1, num_threads=args.threads))
    per_source: dict[str, dict] = {}
    for source, _, rgb in frames(args.media):
        row = per_source.setdefault(source, {"frames": 0, "reference_faces": 0, "edge_fer_faces": 0, "matched": 0,
                                             "ious": [], "landmark_px": []})
        boxes, _, points = reference.detect(rgb, landmarks=True)
        boxes = [] if boxes is None else boxes
        got, _, got_points = ours.detect_corners(rgb)
        row["frames"] += 1
        row["reference_faces"] += len(boxes)
        row["edge_fer_faces"] += len(got)
        for box, marks in zip(boxes, [] if points is None else points):
            best = max(range(len(got)), key=lambda i: iou(box, got[i]), default=None)
            if best is None:
                continue
            overlap = iou(box, got[best])
            row["ious"].append(overlap)
            if overlap >= 0.9:
                row["matched"] += 1
                row["landmark_px"].append(float(np.abs(marks - got_points[best]).max()))
    report = {"command": "tools/mtcnn_onnx.py compare", "reference": "facenet-pytorch 2.6.0 MTCNN(keep_all=True), "
              "defaults (min face 20 px, thresholds 0.6/0.7/0.7, factor 0.709)", "iou_threshold": 0.9, "sources": {}}
    for source, row in per_source.items():
        ious, marks = np.array(row.pop("ious") or [0.0]), np.array(row.pop("landmark_px") or [0.0])
        row.update(matched_share=round(row["matched"] / max(1, row["reference_faces"]), 4),
                   iou_median=round(float(np.median(ious)), 4), iou_min=round(float(ious.min()), 4),
                   landmark_px_max=round(float(marks.max()), 2))
        report["sources"][source] = row
        print(f"{source}: {row}")
    if args.json:
        from edge_fer.fileio import write_json_atomic

        write_json_atomic(args.json, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="export the three nets to ONNX and record them in the manifest")
    c.add_argument("--out", type=Path, default=REPO / "edge_fer" / "detectors" / "models")
    c.add_argument("--media", type=Path, default=REPO.parent / "shared" / "data" / "media")
    c.set_defaults(run=convert)
    m = sub.add_parser("compare", help="edge-fer's MTCNN against facenet-pytorch's on the sample media")
    m.add_argument("--media", type=Path, default=REPO.parent / "shared" / "data" / "media")
    m.add_argument("--json", type=Path)
    m.add_argument("--threads", type=int, default=1, help="PyTorch's, OpenCV's and ONNX Runtime's")
    m.set_defaults(run=compare)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
