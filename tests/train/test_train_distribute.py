"""`edge-fer train --strategy`: TF_CONFIG parsing as a table, and a real `mirrored` run on two
logical CPU devices (in a subprocess: logical devices must be set before TensorFlow starts, and
this keeps them away from the other tests' TensorFlow)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edge_fer.cli import main
from edge_fer.errors import OptionsError
from edge_fer.train.distribute import Task, check_strategy, read_tf_config

CLUSTER = {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}


@pytest.mark.parametrize("config, task", [
    (None, Task()),
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 0}}, Task("worker", 0, 2)),
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}, Task("worker", 1, 2)),
    ({"cluster": {"chief": ["a:1"], **CLUSTER}, "task": {"type": "worker", "index": 0}},
     Task("worker", 0, 3, has_chief=True)),
    ({"cluster": {"chief": ["a:1"], **CLUSTER}, "task": {"type": "chief", "index": 0}},
     Task("chief", 0, 3, has_chief=True)),
])
def test_tf_config_task(config, task):
    assert read_tf_config(None if config is None else json.dumps(config)) == task


@pytest.mark.parametrize("config, chief", [
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 0}}, True),  # worker 0, no chief
    ({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["a:1"], **CLUSTER}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["a:1"], **CLUSTER}, "task": {"type": "chief", "index": 0}}, True),
])
def test_only_one_chief(config, chief):
    assert read_tf_config(json.dumps(config)).is_chief is chief


@pytest.mark.parametrize("text, message", [
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs "cluster"'),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}', "must be a list of"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker"}}', "must be a list of"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', '"task" must be'),
    ('{"cluster": {"worker": ["a:1"]}}', '"task" must be'),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "index must be 0..1"),
])
def test_bad_tf_config(text, message):
    with pytest.raises(OptionsError, match=re.escape(message)):
        read_tf_config(text)


def test_multiworker_needs_tf_config():
    with pytest.raises(OptionsError, match="TrainOptions.strategy='multiworker': expected TF_CONFIG"):
        check_strategy("multiworker", environ={})
    with pytest.raises(OptionsError, match="TrainOptions.strategy='ring': expected one of"):
        check_strategy("ring")


def test_train_cli_multiworker_without_tf_config(tmp_path, fer_val, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["train", "--data", str(fer_val), "--out", str(tmp_path / "o"),
                                       "--strategy", "multiworker"])
    assert result.exit_code == 2
    assert result.output.startswith("edge-fer: error: --strategy 'multiworker': expected TF_CONFIG"), result.output
    assert not (tmp_path / "o").exists()


MIRRORED = r"""
import json, shutil, sys
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edge_fer.train.trainer import TrainOptions, train
data, out = Path(sys.argv[1]), Path(sys.argv[2])
result = train(TrainOptions(data=(str(data),), out=str(out), epochs=1, batch_size=8,
                            strategy="mirrored", seed=0, verbose=0))
print("RESULT", json.dumps({"replicas": result.replicas, "per_replica": result.batch_per_replica,
                            "model": result.model_path, "epochs": result.epochs_run}))
"""


def test_mirrored_on_two_logical_cpus(fer_train, tmp_path):
    """2 classes x 32 real FER2013 faces, 1 epoch of edgenet, mirrored over 2 logical CPUs:
    2 replicas, each step 2 x 8 images, a model with metadata, the run's files from the chief."""
    from edge_fer.train.keras_io import read_keras_meta

    data = tmp_path / "data"
    for name in ("happy", "surprise"):
        (data / name).mkdir(parents=True)
        for path in sorted((fer_train / name).iterdir())[:32]:
            (data / name / path.name).symlink_to(path)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(data), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result == {"replicas": 2, "per_replica": 8, "model": str(out / "model.keras"), "epochs": 1}
    assert read_keras_meta(out / "model.keras").labels == ("happy", "surprise")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["strategy"] == "mirrored" and summary["replicas"] == 2
    assert summary["train_counts"] == {"happy": 32, "surprise": 32}
    assert sorted(p.name for p in out.iterdir()) == ["best.keras", "curve.png", "history.csv", "model.keras", "run.json",
                                                       "summary.json"]


WORKER = r"""
import json, sys
from edge_fer.train.trainer import TrainOptions, train
result = train(TrainOptions(data=(sys.argv[1],), out=sys.argv[2], epochs=1, batch_size=8,
                            strategy="multiworker", seed=0, verbose=0))
print("RESULT", json.dumps({"model": result.model_path, "replicas": result.replicas}))
"""


def free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_two_local_processes(fer_train, tmp_path):
    """Two workers on this machine (each with its own --out, as on two machines) train one epoch
    together: 2 replicas; worker 0 (the chief) writes the model, worker 1 leaves nothing behind."""
    import os

    data = tmp_path / "data"
    for name in ("happy", "surprise"):
        (data / name).mkdir(parents=True)
        for path in sorted((fer_train / name).iterdir())[:32]:
            (data / name / path.name).symlink_to(path)
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(data), str(tmp_path / f"w{index}")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    results = [json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:]) for out, _ in outputs]
    assert results[0] == {"model": str(tmp_path / "w0" / "model.keras"), "replicas": 2}
    assert results[1] == {"model": "", "replicas": 2}
    assert sorted(p.name for p in (tmp_path / "w0").iterdir()) == ["best.keras", "curve.png", "history.csv",
                                                                    "model.keras", "run.json", "summary.json"]
    assert list((tmp_path / "w1").iterdir()) == []
