"""``edge-fer train --strategy``: where the training steps run, through ``tf.distribute``.

- ``default``: TensorFlow's default device placement (one GPU if it sees one, else the CPU).
- ``mirrored``: :class:`tf.distribute.MirroredStrategy`, one replica on every local GPU (on a
  machine without GPUs, one on every logical CPU device: that is how the test runs it).
- ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` across machines, which
  ``TF_CONFIG`` describes (every machine runs the same command with its own ``task``)::

      TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                  "task": {"type": "worker", "index": 0}}'

The batch size is per replica: each step takes ``batch x replicas`` images. Only the chief (task
``chief``, or ``worker`` 0 in a cluster without one) writes the run's files; the others keep a
private backup (for resuming) that a finished run removes.

Keras 3.15's ``fit`` does not run under MultiWorkerMirroredStrategy as shipped (keras-team/keras
#20585): :func:`prebuild_for_multiworker` builds the model on a local batch first and reduces
the step logs correctly; ``tests/train/test_train_distribute.py`` runs two real local workers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import OptionsError

STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass(frozen=True)
class Task:
    """This process's place in a cluster: ``type`` (chief, worker) and ``index``."""

    type: str = "chief"
    index: int = 0
    workers: int = 1  # chief + workers in the cluster
    has_chief: bool = False  # the cluster names a "chief" task

    @property
    def is_chief(self) -> bool:
        return self.type == "chief" or (self.type == "worker" and self.index == 0 and not self.has_chief)


def read_tf_config(text: str | None) -> Task:
    """The :class:`Task` that a ``TF_CONFIG`` value describes; OptionsError, naming the bad part,
    for anything malformed. None or empty: a single chief."""
    if not text:
        return Task()
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionsError(f"TF_CONFIG is not JSON ({exc.msg} at character {exc.pos})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise OptionsError(f"TF_CONFIG needs \"cluster\": {{\"worker\": [\"host:port\", ...]}}, got {text!r}")
    for role, hosts in cluster.items():
        if not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise OptionsError(f"TF_CONFIG cluster {role!r} must be a list of \"host:port\", got {hosts!r}")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise OptionsError(f"TF_CONFIG \"task\" must be {{\"type\": one of {sorted(cluster)}, \"index\": N}}, "
                           f"got {task!r}")
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise OptionsError(f"TF_CONFIG task index must be 0..{len(cluster[task['type']]) - 1} for "
                           f"{task['type']!r}, got {index!r}")
    workers = sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
    return Task(task["type"], index, workers, has_chief=bool(cluster.get("chief")))


def check_strategy(name: str, environ=os.environ) -> Task:
    """Validate ``--strategy`` (and ``TF_CONFIG`` for ``multiworker``) before anything loads."""
    if name not in STRATEGIES:
        raise OptionsError(f"TrainOptions.strategy={name!r}: expected one of {', '.join(STRATEGIES)}")
    if name != "multiworker":
        return Task()
    if not environ.get("TF_CONFIG"):
        raise OptionsError(f"TrainOptions.strategy={name!r}: expected TF_CONFIG describing the cluster, e.g. "
                           "'{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                           "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    return read_tf_config(environ["TF_CONFIG"])


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for ``name``; create it before any other TensorFlow work
    (MultiWorkerMirroredStrategy must come first in the process)."""
    import tensorflow as tf

    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    return tf.distribute.get_strategy()


def shard_by_data(dataset):
    """Tell a multi-worker run to split the in-memory dataset by element (it has no files)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def patch_keras_multiworker_reduce() -> None:
    """Keras 3 (3.15) reduces each step's logs across workers with ``strategy.reduce("MEAN", v,
    axis=0)``, which fails on scalars (the loss and metric values: "Invalid reduction dimension 0
    for input with 0 dimensions"). Reduce scalars with ``axis=None`` instead (the mean over all
    replicas); everything else goes to Keras as before. Idempotent."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "edge_fer_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not tf_trainer._collective_all_reduce_multi_worker(strategy):
            return original(values, strategy, reduction)

        def mean(value):
            if not isinstance(value, tf.distribute.DistributedValues):
                return value
            rank = strategy.experimental_local_results(value)[0].shape.rank
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tree.map_structure(mean, values)

    reduce_per_replica.edge_fer_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def prebuild_for_multiworker(model, strategy, train_ds) -> None:
    """Build the model, loss, metrics and optimizer on one local batch, before ``fit``.

    Keras 3 (3.15) ``fit`` builds them from the first *distributed* batch, which it first reduces
    eagerly (``strategy.reduce("MEAN", batch)``): MultiWorkerMirroredStrategy cannot, and fit
    fails with "Attempt to convert a value (PerReplica...)" (keras-team/keras#20585). Built here,
    that step has nothing to do, so it is skipped.
    """
    batch = next(iter(train_ds))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    patch_keras_multiworker_reduce()
