"""Training under `tf.distribute`: choosing a strategy, the cluster and its chief, and feeding
the replicas.

Strategies, by name (`Trainer(..., strategy=NAME)`, `train(..., strategy=NAME)`,
`imdb-rnn train --strategy NAME`):

- `"auto"` (the default): `MirroredStrategy` over all GPUs when more than one is visible, else the
  default strategy;
- `"default"`: TensorFlow's default strategy: one device;
- `"mirrored"`: `MirroredStrategy`: one replica per GPU, or per logical CPU device when there is
  no GPU (one replica on an ordinary CPU machine);
- `"multi-worker"`: `MultiWorkerMirroredStrategy`, the cluster read from the `TF_CONFIG`
  environment variable (docs/distributed.md).

`data.batch_size` is the batch of one replica: a training step takes `batch_size x replicas`
reviews (the global batch), which the strategy splits between the replicas.

Every strategy trains through the same loop, `imdb_rnn.training.loop.EpochLoop`: under a strategy of
several replicas each step runs on every replica (`strategy.run`) and the optimizer sums their
gradients.

Example (the default strategy needs nothing):

>>> resolve_strategy("default").num_replicas_in_sync
1
>>> resolve_strategy("ring")
Traceback (most recent call last):
...
imdb_rnn.errors.ConfigError: Expected strategy to be one of ['auto', 'default', 'mirrored', \
'multi-worker']. Received: strategy='ring'
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from imdb_rnn import devices
from imdb_rnn.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "TF_CONFIG",
    "ClusterTask",
    "agree_across_workers",
    "cluster_task",
    "distribute_batches",
    "is_chief",
    "is_distributed",
    "is_multi_worker",
    "resolve_strategy",
    "strategy_name",
    "strategy_scope",
]

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
#: The environment variable that describes a multi-worker cluster.
TF_CONFIG = "TF_CONFIG"

# A process can create MultiWorkerMirroredStrategy only once (it configures the runtime).
_multi_worker_strategy: tf.distribute.Strategy | None = None


def _is_chief_task(task_type: str | None, index: int | None, *, cluster_has_chief: bool) -> bool:
    """The one rule for which task of a cluster writes the model, checkpoints and logs: the
    `chief` task where the cluster has one, else worker 0 (TensorFlow's own rule). A process
    outside any cluster (`task_type` None) writes too."""
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and not cluster_has_chief


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a multi-worker cluster, from `TF_CONFIG`.

    Attributes:
        task_type: `"worker"` or `"chief"`.
        index: the task's index among the tasks of its type.
        workers: number of tasks that train (chief included).
        has_chief: whether the cluster has a `chief` task (then worker 0 is not the chief).
    """

    task_type: str
    index: int
    workers: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The task that writes the model: the chief, or worker 0 when there is no chief."""
        return _is_chief_task(self.task_type, self.index, cluster_has_chief=self.has_chief)


def cluster_task(environ: Mapping[str, str] | None = None) -> ClusterTask:
    """Reads and checks `TF_CONFIG` (from `environ`, default `os.environ`).

    `TF_CONFIG` is JSON: `{"cluster": {"worker": ["host1:port", "host2:port"]},
    "task": {"type": "worker", "index": 0}}`, the same on every machine but for the task.

    Raises:
        ConfigError: if `TF_CONFIG` is unset or not such a document.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG, "").strip()
    if not text:
        raise ConfigError(
            f"strategy='multi-worker' needs the {TF_CONFIG} environment variable, which lists "
            'the cluster and this worker\'s place in it: {"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}. See docs/distributed.md.'
        )
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{TF_CONFIG} is not valid JSON ({error}).") from None
    cluster = values.get("cluster") if isinstance(values, dict) else None
    task = values.get("task") if isinstance(values, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(
            f'Expected {TF_CONFIG} to hold "cluster" and "task" objects. Received: {text}'
        )
    task_type, index = task.get("type"), task.get("index", 0)
    members = cluster.get(task_type) if isinstance(task_type, str) else None
    if not isinstance(members, list) or isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(
            f'Expected {TF_CONFIG}\'s task to name a list in "cluster" and an integer index. '
            f"Received: task={task!r}"
        )
    if not 0 <= index < len(members):
        raise ConfigError(
            f"Expected {TF_CONFIG}'s task index in [0, {len(members)}) for the "
            f"{len(members)} {task_type} addresses of the cluster. Received: index={index}"
        )
    workers = sum(len(cluster.get(kind) or []) for kind in ("chief", "worker"))
    return ClusterTask(
        task_type=str(task_type), index=index, workers=workers, has_chief=bool(cluster.get("chief"))
    )


def resolve_strategy(strategy: str | tf.distribute.Strategy = "auto") -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` named by `strategy` (a strategy object is returned
    as it is).

    Create a `"multi-worker"` strategy before any other TensorFlow operation of the process
    (`train` does): TensorFlow configures its collective operations when it starts.

    Args:
        strategy: one of `STRATEGIES` (see the module doc), or a strategy object. Default "auto".

    Raises:
        ConfigError: on an unknown name, or `"multi-worker"` without a valid `TF_CONFIG`.
    """
    global _multi_worker_strategy
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"Expected strategy to be one of {list(STRATEGIES)}. Received: strategy={strategy!r}",
            option="strategy",
        )
    if strategy == "multi-worker":
        cluster_task()  # a clear error before TensorFlow reads it
        if _multi_worker_strategy is None:
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return _multi_worker_strategy
    gpus = devices.gpu_count()
    if strategy == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([cpu.name for cpu in cpus])
    if strategy == "auto" and gpus > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_distributed(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` is not TensorFlow's default (one-device) strategy."""
    with strategy.scope():
        return tf.distribute.has_strategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` is a `MultiWorkerMirroredStrategy`."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model, checkpoints and logs: always, but for the
    workers of a multi-worker cluster other than the chief (or worker 0 without a chief)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    return _is_chief_task(
        resolver.task_type,
        resolver.task_id,
        cluster_has_chief=bool(resolver.cluster_spec().as_dict().get("chief")),
    )


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """A short name for reports: `"default"`, `"mirrored"` or `"multi-worker"` (else the class
    name)."""
    if not is_distributed(strategy):
        return "default"
    if is_multi_worker(strategy):
        return "multi-worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return type(strategy).__name__


def strategy_scope(strategy: tf.distribute.Strategy) -> contextlib.AbstractContextManager[Any]:
    """`strategy.scope()`, or nothing at all for the default strategy (whose runs stay exactly
    as they were before strategies existed)."""
    return strategy.scope() if is_distributed(strategy) else contextlib.nullcontext()


def agree_across_workers(strategy: tf.distribute.Strategy, values: Mapping[str, int]) -> None:
    """Checks that every worker of a multi-worker cluster computed the same `values` (the
    number of batches, the checkpoint to resume ...); a no-op under other strategies.

    Workers that disagree would wait for each other for ever, or train on different data.

    Raises:
        ConfigError: naming the values that differ.
    """
    if not is_multi_worker(strategy) or not values:
        return
    local = tf.constant([[int(value) for value in values.values()]], dtype=tf.int64)

    def gather() -> tf.Tensor:
        return tf.distribute.get_replica_context().all_gather(local, axis=0)

    gathered = strategy.run(tf.function(gather))
    every = strategy.experimental_local_results(gathered)[0].numpy()  # one row per replica
    low, high = every.min(axis=0), every.max(axis=0)
    differ = [
        f"{name} ({low[index]} to {high[index]})"
        for index, name in enumerate(values)
        if low[index] != high[index]
    ]
    if differ:
        raise ConfigError(
            f"The workers of the cluster disagree on: {', '.join(differ)}. Give every worker "
            "the same data, options and version of imdb-rnn, and an output= folder that all "
            "of them see (shared storage), so that they resume the same checkpoint."
        )


def distribute_batches(strategy: tf.distribute.Strategy, batches: tf.data.Dataset) -> Any:
    """`batches` as the strategy feeds them to its replicas: each global batch split between
    them (by element, never by file: the batches are built in memory, the same on every
    worker). Under the default strategy, `batches` itself."""
    if not is_distributed(strategy):
        return batches
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(batches.with_options(options))
