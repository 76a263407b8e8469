"""Training speed of edgenet (or PyFER) on this machine against its compute floor, side by side.

Each configuration trains the architecture (``--arch``: same model, same optimizer, same full
augmentation) on real FER2013 faces for a fixed number of steps in a fresh process; configurations alternate over
rounds and the table gives the median images/s of the timed steps (after warm-up). The floor is
the model's training FLOPs per image against the FLOP/s this machine's cores reach on a large
float32 matrix product (NumPy's BLAS, the same thread count).

    python benchmarks/train_speed.py --rounds 3 --steps 60 --threads 2 \
        --config tf-b64 --config tf-b128 [--config torch-b64 --torch-python /path/venv-torch/bin/python] \
        --json benchmarks/results/train_speed.json

Configurations: ``tf-bN`` (``edge-fer train``'s own input pipeline and compile, TensorFlow,
batch N; ``tf-bN-bf16``: the same with ``--precision mixed_bfloat16``) and ``torch-bN`` (Keras 3
on PyTorch, edgenet, the augmentation's Keras layers run on each batch; needs a Python with torch
and keras: ``--torch-python``).

    python benchmarks/train_speed.py --arch pyfer --threads 1 --config tf-b16 --config tf-b16-bf16 \
        --json benchmarks/results/train_speed_pyfer_bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGE_FER_SHARED", REPO.parent / "shared")) / "data"


def edgenet_train_flops(size_hw=(48, 48), widths=(32, 48, 96, 192), classes=7) -> float:
    """Multiply-adds of one forward pass of edgenet x 2 (FLOPs) x 3 (forward + two backward)."""
    h, w = size_hw
    macs, channels = 0, 1
    for block, width in enumerate(widths):
        for _ in range(1 if block == 0 else 2):
            macs += h * w * 9 * channels * width
            channels = width
        if block < len(widths) - 1:
            h, w = h // 2, w // 2
    macs += channels * classes
    return 2.0 * macs * 3.0


def pyfer_train_flops(size_hw=(64, 64), widths=(64, 128, 256), dense=(512, 256), classes=6) -> float:
    """The same for PyFER: 3x3 valid convolutions, two per block, 2x2 pooling, dense layers."""
    h, w = size_hw
    macs, channels = 0, 1
    for width in widths:
        for _ in range(2):
            h, w = h - 2, w - 2
            macs += h * w * 9 * channels * width
            channels = width
        h, w = h // 2, w // 2
    features = h * w * channels
    for units in (*dense, classes):
        macs += features * units
        features = units
    return 2.0 * macs * 3.0


TRAIN_FLOPS = {"edgenet": edgenet_train_flops, "pyfer": pyfer_train_flops}
CONFIG = re.compile(r"^(tf|torch)-b(\d+)(-bf16)?$")


def blas_gflops(threads: int, size: int = 1536, repeats: int = 5) -> float:
    """float32 matrix-product GFLOP/s with ``threads`` BLAS threads (in a fresh process)."""
    code = (f"import time, numpy as np\nx = np.random.rand({size}, {size}).astype(np.float32)\n"
            f"x @ x\nbest = 1e9\nfor _ in range({repeats}):\n t = time.perf_counter(); x @ x; "
            f"best = min(best, time.perf_counter() - t)\nprint(2 * {size} ** 3 / best / 1e9)")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())


def faces(count: int, size_hw=(48, 48), classes=None):
    sys.path.insert(0, str(REPO))
    from edge_fer.train.datasets import load_folder

    per_class = max(1, count // (len(classes) if classes else 7) + 1)  # FER2013's 7 folders by default
    return load_folder(SHARED / "fer2013" / "train", size_hw=size_hw, classes=classes, limit_per_class=per_class,
                       seed=0)


def worker_tf(batch: int, steps: int, warmup: int, threads: int, arch: str = "edgenet",
              precision: str = "float32") -> float:
    sys.path.insert(0, str(REPO))
    from edge_fer.train.trainer import set_tf_threads

    set_tf_threads(threads)
    import keras

    from edge_fer.train.models import arch_spec, build_model
    from edge_fer.train.trainer import compile_model, make_tf_dataset

    from edge_fer.train.datasets import CLASS_SETS

    spec = arch_spec(arch)
    data = faces(batch * (steps + warmup), spec.input_size_hw, CLASS_SETS["pyfer"] if arch == "pyfer" else None)
    keras.utils.set_random_seed(0)
    model = build_model(arch, len(data.classes), precision=precision)
    compile_model(model, spec, steps_per_epoch=steps + warmup, epochs=40, lr=None)
    ds = make_tf_dataset(data, "gray", batch, True, 0, augment="full").repeat()
    timer = StepTimer(warmup)
    model.fit(ds, steps_per_epoch=steps + warmup, epochs=1, verbose=0, callbacks=[timer])
    return batch * steps / timer.seconds


def worker_torch(batch: int, steps: int, warmup: int, threads: int) -> float:
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import keras

    sys.path.insert(0, str(REPO))
    from edge_fer.train.models import build_edgenet
    from edge_fer.train.augment import augmenter

    data = faces(batch * (steps + warmup))
    keras.utils.set_random_seed(0)
    augment = augmenter("full", 0)
    net = build_edgenet(len(data.classes))
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, net(augment(inputs)))
    schedule = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1000, warmup_target=3e-3, warmup_steps=50)
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=5e-3),
                  keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    x = data.images[..., None].astype("float32")
    y = np.eye(len(data.classes), dtype="float32")[data.labels]
    timer = StepTimer(warmup)
    model.fit(x, y, batch_size=batch, steps_per_epoch=steps + warmup, epochs=1, verbose=0, shuffle=True,
              callbacks=[timer])
    return batch * steps / timer.seconds


class StepTimer:
    """Keras callback (built lazily, any backend): seconds of the steps after ``warmup``."""

    def __new__(cls, warmup: int):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds, self.started = 0.0, None

            def on_train_batch_end(self, batch, logs=None):
                if batch + 1 == warmup:
                    self.started = time.perf_counter()

            def on_train_end(self, logs=None):
                self.seconds = time.perf_counter() - self.started

        return Timer()


def run_config(config: str, args) -> float:
    kind = CONFIG.match(config).group(1)
    python = args.torch_python if kind == "torch" else sys.executable
    if kind == "torch" and not python:
        raise SystemExit("torch configurations need --torch-python (a Python with torch and keras)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([python, __file__, "--worker", config, "--steps", str(args.steps), "--warmup",
                           str(args.warmup), "--threads", str(args.threads), "--arch", args.arch],
                          env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default="edgenet", choices=sorted(TRAIN_FLOPS), help="tf configurations")
    parser.add_argument("--torch-python")
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, batch, bf16 = CONFIG.match(args.worker).groups()
        if kind == "torch":
            print(worker_torch(int(batch), args.steps, args.warmup, args.threads))
        else:
            print(worker_tf(int(batch), args.steps, args.warmup, args.threads, args.arch,
                            "mixed_bfloat16" if bf16 else "float32"))
        return
    configs = args.config or ["tf-b64"]
    bad = [c for c in configs if not CONFIG.match(c) or (c.startswith("torch") and (c.endswith("-bf16")
                                                                                   or args.arch != "edgenet"))]
    if bad:
        parser.error(f"configurations {bad}: expected tf-bN, tf-bN-bf16 or (edgenet only) torch-bN")
    samples = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:
            samples[c].append(run_config(c, args))
            print(f"round {r + 1}: {c} {samples[c][-1]:.1f} images/s", file=sys.stderr, flush=True)
    gflops = blas_gflops(args.threads)
    flops = TRAIN_FLOPS[args.arch]()
    floor = gflops * 1e9 / flops
    base = statistics.median(samples[configs[0]])
    print(f"compute floor: {args.arch} training {flops / 1e9:.3f} GFLOP/image; float32 matmul {gflops:.1f} GFLOP/s "
          f"on {args.threads} thread(s) -> {floor:.0f} images/s at full BLAS speed")
    print(f"| configuration | images/s (median of {args.rounds}) | vs {configs[0]} | share of the floor |")
    print("|---|---|---|---|")
    rows = []
    for c in configs:
        med = statistics.median(samples[c])
        rows.append({"config": c, "images_per_s": samples[c], "median": med})
        print(f"| {c} | {med:.1f} | {med / base:.2f}x | {100 * med / floor:.0f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": args.arch, "command": " ".join(["python", *sys.argv]),
                                               "threads": args.threads, "steps": args.steps, "rounds": args.rounds,
                                               "train_gflop_per_image": flops / 1e9, "blas_gflops": gflops,
                                               "floor_images_per_s": floor, "configs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
