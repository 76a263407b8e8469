"""Rebuild a trainable ``edgenet`` .keras file from an exported edgenet ONNX file.

The shipped model was exported with its batch norms folded into the convolutions and its Keras
source was not kept. This tool reads the folded weights back (conv kernels OIHW -> HWIO, the dense
head) into ``build_edgenet``. Each batch norm is set so that it reproduces the folded conv's bias
at inference *and* behaves the same in training mode on FER2013 batches: its moving mean and
variance are the statistics of the conv output on ``--data`` images, and gamma/beta undo them.
The result predicts what the ONNX file predicts (checked on ``--data`` before it is written), so
it can warm-start ``edge-fer train --init-from``.

    python tools/edgenet_from_onnx.py edge_fer/models/edgenet_fer2013.onnx ../runs/edgenet_shipped.keras \
        --data ../shared/data/fer2013/val
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def folded_weights(onnx_path: str):
    """The Conv nodes' (kernel OIHW, bias) of one edgenet branch, in graph order, and the dense
    head (kernel, bias): the MatMul fed by the last conv's channels and the Add after it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(onnx_path).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs, seen = [], set()
    for node in graph.node:
        if node.op_type == "Conv":
            if node.input[1] in seen:
                break  # the flip-TTA branch reuses the same weights: one branch is enough
            seen.add(node.input[1])
            convs.append((init[node.input[1]], init[node.input[2]]))
    if not convs:
        raise SystemExit(f"{onnx_path}: no convolutions found")
    channels = convs[-1][0].shape[0]
    for node in graph.node:
        weight = init.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is not None and weight.shape[0] == channels:
            add = next(n for n in graph.node if n.op_type == "Add" and n.input[0] == node.output[0])
            return convs, (weight, init[add.input[1]])
    raise SystemExit(f"{onnx_path}: no dense head on {channels} channels found")


def rebuild(onnx_path: str, images: np.ndarray):
    import keras

    from edge_fer.train.models import build_edgenet

    convs, (dense_w, dense_b) = folded_weights(onnx_path)
    model = build_edgenet(dense_w.shape[1])
    conv_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if len(conv_layers) != len(convs):
        raise SystemExit(f"{onnx_path}: {len(convs)} convolutions, edgenet has {len(conv_layers)}")
    x = images[..., None].astype("float32")
    for conv, (kernel, bias) in zip(conv_layers, convs):
        conv.set_weights([kernel.transpose(2, 3, 1, 0)])
        bn = model.get_layer(conv.name.replace("conv", "bn"))
        probe = keras.Model(model.input, conv.output)
        z = np.asarray(probe.predict(x, batch_size=256, verbose=0)).reshape(-1, kernel.shape[0])
        mean, var = z.mean(0), z.var(0)
        gamma = np.sqrt(var + bn.epsilon)
        bn.set_weights([gamma, mean + bias, mean, var])  # gamma (z - mean) / sqrt(var + eps) + beta = z + bias
    model.get_layer("probs").set_weights([dense_w, dense_b])
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("out")
    parser.add_argument("--data", required=True, help="a FER2013 folder for the batch statistics and the check")
    parser.add_argument("--limit", type=int, default=1500)
    args = parser.parse_args()

    import onnxruntime as ort

    from edge_fer.metadata import ModelMeta, read_model_meta
    from edge_fer.train.datasets import load_folder
    from edge_fer.train.keras_io import save_keras

    meta = read_model_meta(args.onnx)
    if meta is None:
        raise SystemExit(f"{args.onnx} carries no edge-fer metadata (labels)")
    labels = tuple(meta.labels)
    data = load_folder(args.data, (48, 48), labels)
    pick = np.random.default_rng(0).permutation(len(data))[:args.limit]
    images = data.images[pick]
    model = rebuild(args.onnx, images)
    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    ref = session.run(None, {session.get_inputs()[0].name: images[..., None].astype("float32")})[0]
    x = images[..., None].astype("float32")
    mine = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2  # the file has flip TTA
    agree = float((mine.argmax(1) == ref.argmax(1)).mean())
    worst = float(np.abs(mine - ref).max())
    print(f"top-1 agreement with {Path(args.onnx).name}: {agree:.4f}, largest probability difference {worst:.2e}")
    if agree < 0.999:
        raise SystemExit("the rebuilt model does not match the ONNX file; nothing written")
    save_keras(model, Path(args.out), ModelMeta(labels=labels, input_size_hw=(48, 48), color="gray",
                                               scale=1.0, offset=0.0, name="edgenet"))  # no flip TTA inside
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
