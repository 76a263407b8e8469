"""The model campaign in one call on a GPU machine: teachers, their ensemble, the distilled student.

Runs on any Keras 3 backend (the device image has PyTorch, not TensorFlow: tools/train_gpu.sh sets
``KERAS_BACKEND=torch``); reads tools/gpu_pack.py's pack, so it needs no ../shared there.

    KERAS_BACKEND=torch python tools/train_gpu.py --pack .gpudata --out $OUT \\
        [--teachers edgenet-l:0,edgenet-m:1,edgenet-l:2] [--teacher-epochs 60] [--student-epochs 60]

1. Each teacher (``ARCH:SEED``) trains on the FER2013 label mixed with FER+ votes (``--ferplus-share``:
   the share of people's vote distribution in the target, as ``edge-fer train --soft-labels``),
   with edge-fer's recipe (trainer.compile_model, augment.augmenter; augmentation on the device).
2. The ensemble: the teachers' flip-averaged probabilities, averaged; on train it is written as
   ``teacher_probs.npz`` in ``edge-fer teacher-probs``'s format (``train --teacher`` reads it).
3. The student (``--student-arch``, edgenet by default) distils from the ensemble (``--alpha``,
   ``--temperature``: distill.distill_loss), judged without flip averaging.

Every model is scored on the campaign's three sets (de-duplicated val, val against the FER+
plurality, CK+48's 6 shared classes) and saved as ``<name>.keras`` with edge-fer's metadata;
``summary.json`` (rewritten after each phase, so a call cut short still reports) holds the scores,
per-epoch histories and wall times. ``--budget-s`` keeps it all inside one device command;
``--pilots`` runs the recipe pilots instead. Convert and score on a CPU box with ``edge-fer
convert`` and ``tools/campaign.py``; docs/train_gpu.md has the device calls.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from campaign import measures  # noqa: E402
from gpu_pack import PackError, load  # noqa: E402

#: With --budget-s: the share of it kept for the student; the teachers split the rest.
STUDENT_SHARE = 0.3
#: edge-fer train's recipe, and the one-change pilots of issue 21 item 5 (``--pilots``): each
#: trains edgenet for ``--pilot-epochs`` on the teachers' targets, one row of one table.
RECIPE = {"augment": "full", "label_smoothing": None, "optimizer": None, "mix": "none"}
PILOTS = {
    "base": {},
    "erase": {"augment": "erase"},
    "no-smoothing": {"label_smoothing": 0.0},
    "smoothing-0.2": {"label_smoothing": 0.2},
    "sgd-nesterov": {"optimizer": "sgd-nesterov-cosine"},
    "flip-only": {"augment": "flip"},
    "mixup": {"mix": "mixup"},
    "cutmix": {"mix": "cutmix"},
    "wider": {"arch": "edgenet-m"},
    "squeeze-excite": {"arch": "edgenet-se"},
}


def parse_teachers(text: str) -> list[tuple[str, int]]:
    from edge_fer.train.models import ARCHS  # Keras-free

    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        arch, _, seed = item.partition(":")
        if arch not in ARCHS or not seed.isdigit():
            raise SystemExit(f"train_gpu: --teachers item {item!r}: expected ARCH:SEED with ARCH one of {sorted(ARCHS)}")
        out.append((arch, int(seed)))
    return out


def device_name() -> str:
    import keras

    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (torch)"
    return f"{keras.backend.backend()} backend"


def predict(net, images: np.ndarray, flip: bool, batch: int) -> np.ndarray:
    x = images[..., None].astype("float32")
    probs = np.asarray(net.predict(x, batch_size=batch, verbose=0), np.float64)
    if flip:
        probs = (probs + np.asarray(net.predict(x[:, :, ::-1], batch_size=batch, verbose=0), np.float64)) / 2
    return probs


def scores(net_or_probs, data: dict, flip: bool, batch: int) -> dict:
    """The campaign's three measures (and plain val) of a model, or of (val, ck) probabilities."""
    if isinstance(net_or_probs, tuple):
        val_p, ck_p = net_or_probs
    else:
        val_p, ck_p = (predict(net_or_probs, data[k], flip, batch) for k in ("val_images", "ck_images"))
    return measures(val_p, ck_p, data), (val_p, ck_p)


def fit(arch: str, seed: int, data: dict, soft: np.ndarray, alpha: float, temperature: float, epochs: int,
        args, recipe: dict | None = None, deadline: float | None = None) -> tuple[object, dict]:
    """Train ``arch`` on ``[one-hot | soft]`` targets with distill_loss(alpha, T); the net (no
    augmentation layers) and its per-epoch history. ``recipe``: a pilot's change (PILOTS).
    ``deadline`` (a time.perf_counter() value): stop after the epoch whose successor would end
    past it (``epochs_run`` says where)."""
    import keras

    from edge_fer.train.models import arch_spec, build_model
    from edge_fer.train.augment import augmenter
    from edge_fer.train.trainer import DEFAULT_LR, compile_model

    recipe = {**RECIPE, **(recipe or {})}
    keras.utils.set_random_seed(seed)
    classes, spec = len(data["classes"]), arch_spec(arch)
    net = build_model(arch, classes)
    inputs = keras.Input((*spec.input_size_hw, 1), name="face")
    model = keras.Model(inputs, net(augmenter(recipe["augment"], seed)(inputs)))
    x = data["train_images"][..., None].astype("float32")
    onehot = np.eye(classes, dtype="float32")[data["train_labels"]]
    y = np.concatenate([onehot, soft.astype("float32")], axis=1)
    val_onehot = np.eye(classes, dtype="float32")[data["val_labels"]]
    # a batch larger than the arch's own scales the rate by sqrt(batch / own)
    lr = args.lr or DEFAULT_LR[recipe["optimizer"] or spec.optimizer] * math.sqrt(args.batch / spec.batch_size)
    compile_model(model, spec, math.ceil(len(x) / args.batch), epochs, lr, recipe["optimizer"],
                  (alpha, temperature), recipe["label_smoothing"])
    started = time.perf_counter()
    val = (data["val_images"][..., None].astype("float32"), np.concatenate([val_onehot, val_onehot], axis=1))
    callbacks = [stop_before(deadline)] if deadline else []
    if recipe["mix"] == "none":
        history = model.fit(x, y, batch_size=args.batch, epochs=epochs, shuffle=True, verbose=2, validation_data=val,
                            callbacks=callbacks)
    else:
        history = model.fit(mixed_batches(x, y, args.batch, recipe["mix"], seed), epochs=epochs, verbose=2,
                            validation_data=val, callbacks=callbacks)
    seconds = time.perf_counter() - started
    ran = len(history.history["loss"])
    return net, {"arch": arch, "seed": seed, "recipe": recipe, "epochs": epochs, "epochs_run": ran,
                 "batch": args.batch, "lr": lr, "alpha": alpha, "temperature": temperature,
                 "seconds": round(seconds, 1), "images_per_s": round(len(x) * ran / seconds, 1),
                 "history": {k: [round(float(v), 4) for v in vals] for k, vals in history.history.items()}}


def parse_pilots(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in PILOTS]
    if unknown:
        raise SystemExit(f"train_gpu: --pilots {unknown}: expected names from {sorted(PILOTS)}")
    return names


def run_pilots(args, data: dict, summary: dict, write) -> None:
    """edgenet once per named pilot (PILOTS: one change to the recipe or the width), same seed,
    epochs and targets; scored with flip averaging like the teachers. No model is kept: the table
    is the result."""
    summary["pilots"] = []
    for name in parse_pilots(args.pilots):
        change = dict(PILOTS[name])
        net, record = fit(change.pop("arch", "edgenet"), 0, data, data["train_ferplus"], args.ferplus_share, 1.0,
                          args.pilot_epochs, args, change)
        record["scores_flip"] = scores(net, data, True, args.predict_batch)[0]
        summary["pilots"].append({"name": name, **record})
        write()


def mixed_batches(x: np.ndarray, y: np.ndarray, batch: int, kind: str, seed: int):
    """A Keras PyDataset of shuffled batches, each mixed by augment.mix_batch (numpy, on the host)."""
    import keras

    from edge_fer.train.augment import mix_batch

    class Mixed(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return math.ceil(len(x) / batch)

        def __getitem__(self, index):
            picked = self.order[index * batch:(index + 1) * batch]
            return mix_batch(x[picked], y[picked], kind, self.rng)

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

    return Mixed()


def stop_before(deadline: float):
    """A Keras callback that ends training when another epoch like the last would end past ``deadline``."""
    import keras

    class StopBefore(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if now + (now - self.began) > deadline:
                self.model.stop_training = True

    return StopBefore()


def student_epochs(args, summary: dict, elapsed_s: float) -> int:
    """``--student-epochs``, cut to what fits in what is left of ``--budget-s`` at the slowest
    teacher's pace (the student is no larger than a teacher); the cut is recorded."""
    if not args.budget_s or not summary["models"]:
        return args.student_epochs
    epoch_s = max(m["seconds"] / m["epochs_run"] for m in summary["models"])
    fits = int((args.budget_s - elapsed_s - 20.0) // epoch_s)  # 20 s: scoring and saving
    if fits < args.student_epochs:
        summary["student_epochs_cut"] = {"asked": args.student_epochs, "fit_in_budget": max(0, fits)}
    return max(0, min(args.student_epochs, fits))


def save(net, arch: str, data: dict, path: Path) -> None:
    from edge_fer.metadata import ModelMeta
    from edge_fer.train.keras_io import save_keras
    from edge_fer.train.models import arch_spec

    spec = arch_spec(arch)
    save_keras(net, path, ModelMeta(labels=data["classes"], input_size_hw=spec.input_size_hw, color=spec.color,
                                    scale=1.0, offset=0.0, name=arch))


def run(args) -> dict:
    started = time.perf_counter()
    teachers = parse_teachers(args.teachers)
    parse_pilots(args.pilots)  # a bad name fails before the pack loads
    data = load(Path(args.pack))  # before Keras: a missing part fails at once
    import keras

    if args.precision != "float32":
        keras.config.set_dtype_policy(args.precision)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"backend": keras.backend.backend(), "device": device_name(), "pack": data["pack"],
               "train_faces": len(data["train_labels"]), "options": vars(args),
               "load_s": round(time.perf_counter() - started, 1), "models": []}

    def write() -> None:
        summary["wall_s"] = round(time.perf_counter() - started, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    if args.pilots:
        run_pilots(args, data, summary, write)
        return summary
    val_probs, ck_probs, train_probs, names = [], [], [], []
    # --budget-s: the teachers share what the student's reserve leaves, each stopped at its deadline
    teachers_end = started + args.budget_s * (1.0 - (STUDENT_SHARE if args.student_epochs else 0.0))
    for k, (arch, seed) in enumerate(teachers):
        now = time.perf_counter()
        deadline = now + (teachers_end - now) / (len(teachers) - k) if args.budget_s else None
        net, record = fit(arch, seed, data, data["train_ferplus"], args.ferplus_share, 1.0, args.teacher_epochs, args,
                          deadline=deadline)
        name = f"teacher-{arch}-s{seed}"
        record["scores_flip"], (vp, cp) = scores(net, data, True, args.predict_batch)
        val_probs.append(vp)
        ck_probs.append(cp)
        train_probs.append(predict(net, data["train_images"], True, args.predict_batch))
        save(net, arch, data, out / f"{name}.keras")
        names.append(name)
        summary["models"].append({"name": name, **record})
        write()
    ensemble = np.mean(train_probs, axis=0)
    np.savez_compressed(out / "teacher_probs.npz", names=np.asarray(data["train_keys"]),
                        probs=ensemble.astype(np.float16), classes=np.asarray(data["classes"]),
                        teachers=np.asarray([f"{n}.keras" for n in names]))
    summary["ensemble"] = {"members": names, "train_agreement": float((ensemble.argmax(1) == data["train_labels"]).mean()),
                           "scores_flip": scores((np.mean(val_probs, axis=0), np.mean(ck_probs, axis=0)), data, True,
                                                 args.predict_batch)[0]}
    write()
    epochs = student_epochs(args, summary, time.perf_counter() - started)
    write()  # with the cut, if any
    if epochs:
        net, record = fit(args.student_arch, args.student_seed, data, ensemble, args.alpha, args.temperature,
                           epochs, args, deadline=started + args.budget_s - 20.0 if args.budget_s else None)
        record["scores"] = scores(net, data, False, args.predict_batch)[0]
        record["scores_flip"] = scores(net, data, True, args.predict_batch)[0]
        save(net, args.student_arch, data, out / "student.keras")
        summary["models"].append({"name": "student", **record})
        write()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default=".gpudata", help="tools/gpu_pack.py's folder")
    parser.add_argument("--out", required=True, help="where models, teacher_probs.npz and summary.json go")
    parser.add_argument("--teachers", default="edgenet-l:0,edgenet-m:1,edgenet-l:2", help="ARCH:SEED,...")
    parser.add_argument("--teacher-epochs", type=int, default=60)
    parser.add_argument("--ferplus-share", type=float, default=0.35,
                        help="share of the FER+ vote distribution in the teachers' targets")
    parser.add_argument("--student-arch", default="edgenet")
    parser.add_argument("--student-seed", type=int, default=0)
    parser.add_argument("--student-epochs", type=int, default=60, help="0: teachers only")
    parser.add_argument("--alpha", type=float, default=0.6, help="the student's share of the ensemble")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, help="peak rate (default: the optimizer's at batch 64 x sqrt(batch / 64))")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--pilots", help=f"only these one-change pilots of edgenet, comma-separated: {', '.join(PILOTS)}")
    parser.add_argument("--pilot-epochs", type=int, default=15)
    parser.add_argument("--predict-batch", type=int, default=1024)
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="wall seconds for the whole run (0: none): each teacher stops at its share of "
                             f"{1 - STUDENT_SHARE:.0%}% of it, the student's epochs are cut to fit the rest")
    args = parser.parse_args()
    try:
        summary = run(args)
    except PackError as exc:
        print(f"train_gpu: {exc}", file=sys.stderr)
        return 2
    for m in summary.get("pilots", []):
        print("pilot", m["name"], {k: round(v, 4) for k, v in m["scores_flip"].items()}, f"{m['seconds']} s")
    if args.pilots:
        return 0
    for m in summary["models"]:
        print(m["name"], {k: round(v, 4) for k, v in (m.get("scores") or m["scores_flip"]).items()},
              f"{m['seconds']} s, {m['images_per_s']} images/s")
    print("ensemble", {k: round(v, 4) for k, v in summary["ensemble"]["scores_flip"].items()})
    print(f"wall {summary['wall_s']} s on {summary['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
