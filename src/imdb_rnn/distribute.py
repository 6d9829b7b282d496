"""Training under `tf.distribute`: choosing a strategy, and the training loop that runs under it.

Strategies, by name (`Trainer(..., strategy=NAME)`, `train(..., strategy=NAME)`,
`imdb-rnn train --strategy NAME`):

- `"auto"` (the default): `MirroredStrategy` over all GPUs when more than one is visible, else the
  default strategy;
- `"default"`: TensorFlow's default strategy: one device, Keras' own `fit`;
- `"mirrored"`: `MirroredStrategy`: one replica per GPU, or per logical CPU device when there is
  no GPU (one replica on an ordinary CPU machine);
- `"multi-worker"`: `MultiWorkerMirroredStrategy`, the cluster read from the `TF_CONFIG`
  environment variable (docs/distributed.md).

`data.batch_size` is the batch of one replica: a training step takes `batch_size x replicas`
reviews (the global batch), which the strategy splits between the replicas.

Under any strategy but the default one, `fit_distributed` trains: Keras' `fit` cannot train
under `MultiWorkerMirroredStrategy` in Keras 3.15.1 (keras-team/keras#20585), so the loop is
ours, for every strategy alike. It runs Keras' own `train_step` and `test_step` on each replica
(`strategy.run`), reads the metrics summed over all replicas, and calls Keras callbacks as `fit`
does, so that checkpoints, early stopping, the learning-rate log, TensorBoard and the progress
display work unchanged.

Example (the default strategy needs nothing):

>>> resolve_strategy("default").num_replicas_in_sync
1
>>> resolve_strategy("ring")
Traceback (most recent call last):
...
imdb_rnn.config.ConfigError: Expected strategy to be one of ['auto', 'default', 'mirrored', \
'multi-worker']. Received: strategy='ring'
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.adversarial import training_objective
from imdb_rnn.config import ConfigError

__all__ = [
    "STRATEGIES",
    "TF_CONFIG",
    "ClusterTask",
    "agree_across_workers",
    "cluster_task",
    "fit_distributed",
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
            f"Expected strategy to be one of {list(STRATEGIES)}. Received: strategy={strategy!r}"
        )
    if strategy == "multi-worker":
        cluster_task()  # a clear error before TensorFlow reads it
        if _multi_worker_strategy is None:
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return _multi_worker_strategy
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([cpu.name for cpu in cpus])
    if strategy == "auto" and len(gpus) > 1:
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


def _distribute(strategy: tf.distribute.Strategy, batches: tf.data.Dataset) -> Any:
    # The batches are built in memory, the same on every worker: shard them by element (each
    # global batch is split between the replicas), never by file.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(batches.with_options(options))


def _count(batches: tf.data.Dataset) -> int:
    count = int(batches.cardinality())
    if count < 0:
        count = int(batches.reduce(np.int64(0), lambda total, _: total + 1))
    return count


def _build_metrics(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Creates the compiled metrics' variables in the strategy's scope. (Keras creates them on
    the first update; a metric's variables sum over replicas and cannot be updated outside a
    replica, so the first update runs on the replicas and is then reset.)"""
    zeros = tf.zeros((1, 1))
    strategy.run(tf.function(lambda: model.compute_metrics(None, zeros, zeros)))
    model.reset_metrics()


def _train_step(model: keras.Model, replicas: int) -> Any:
    """Keras' `train_step`, but with dense embedding gradients.

    The embedding's gradient is sparse (`IndexedSlices`), with one row per token of the
    replica's batch: replicas pad their share of a batch to different lengths, and the
    collective all-reduce of such gradients fails on shapes that differ between replicas. A
    dense gradient has the embedding's shape everywhere (Adam updates every row anyway).
    """
    loss_tracker = next(metric for metric in model.metrics if metric.name == "loss")

    def step(data: tuple[tf.Tensor, tf.Tensor]) -> None:
        ids, labels = data
        with tf.GradientTape() as tape:
            # Each replica's mean loss divided by the number of replicas: gradients are summed.
            # (The objective adds the adversarial loss when the model trains adversarially.)
            objective, loss, logits = training_objective(model, ids, labels)
        loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(ids)[0])
        variables = model.trainable_variables
        gradients = [
            tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient
            for gradient in tape.gradient(objective, variables)
        ]
        model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        model.compute_metrics(ids, labels, logits)

    return step


def _floats(logs: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in logs.items()}


def fit_distributed(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_batches: tf.data.Dataset,
    *,
    validation_batches: tf.data.Dataset,
    epochs: int,
    initial_epoch: int = 0,
    steps_per_epoch: int,
    callbacks: Iterable[keras.callbacks.Callback] = (),
) -> None:
    """Trains `model` under `strategy` as `model.fit` would, with Keras callbacks.

    Each step distributes one global batch between the replicas and runs Keras' `train_step`
    (with dense embedding gradients) on every replica (`strategy.run`): the optimizer sums the
    gradients over replicas. After each
    batch the callbacks receive `loss` and `accuracy` over the epoch so far on all replicas, and
    at each epoch end also `val_loss` and `val_accuracy` on `validation_batches`. As in `fit`,
    `model.train_function` is what runs a step (callbacks may wrap it), `model.stop_training`
    ends training after the current batch or epoch.

    Args:
        model: a compiled model whose variables and optimizer were created in
            `strategy.scope()`.
        strategy: the strategy.
        train_batches: global training batches of `(ids, labels)`: at least
            `steps_per_epoch * (epochs - initial_epoch)` of them, consumed one after the other.
        validation_batches: `(ids, labels)` batches, all of them evaluated after every epoch.
        epochs: the epoch to stop before (as in `fit`).
        initial_epoch: the first epoch to run. Default 0.
        steps_per_epoch: batches per epoch.
        callbacks: Keras callbacks.
    """
    train_data = _distribute(strategy, train_batches)
    # Repeated, so that one iterator serves every epoch: making a distributed iterator rewrites
    # the dataset's graph, in-memory batches included, which takes seconds on real data.
    valid_data = _distribute(strategy, validation_batches.repeat())
    valid_steps = _count(validation_batches)
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    _build_metrics(model, strategy)
    train_step = _train_step(model, strategy.num_replicas_in_sync)

    @tf.function
    def train_function(iterator: Iterator[Any]) -> dict[str, tf.Tensor]:
        strategy.run(train_step, args=(next(iterator),))
        # Read in cross-replica context: each metric's variables summed over all replicas.
        return model.get_metrics_result()

    @tf.function
    def test_function(iterator: Iterator[Any]) -> dict[str, tf.Tensor]:
        strategy.run(model.test_step, args=(next(iterator),))
        return model.get_metrics_result()

    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=False,
        add_progbar=False,
        model=model,
        epochs=epochs,
        steps=steps_per_epoch,
        verbose=0,
    )
    model.train_function = train_function
    model.test_function = test_function
    model.stop_training = False
    try:
        callback_list.on_train_begin()
        iterator, valid_iterator = iter(train_data), iter(valid_data)
        epoch_logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            logs: dict[str, float] = {}
            for step in range(steps_per_epoch):
                callback_list.on_train_batch_begin(step)
                logs = _floats(model.train_function(iterator))
                callback_list.on_train_batch_end(step, logs)
                if model.stop_training:
                    break
            epoch_logs = dict(logs or _floats(model.get_metrics_result()))
            model.reset_metrics()
            callback_list.on_test_begin()
            val_logs: dict[str, float] = {}
            for step in range(valid_steps):
                callback_list.on_test_batch_begin(step)
                val_logs = _floats(model.test_function(valid_iterator))
                callback_list.on_test_batch_end(step, val_logs)
            callback_list.on_test_end(val_logs)
            epoch_logs.update({f"val_{key}": value for key, value in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
        callback_list.on_train_end(epoch_logs)
    finally:
        # Keras' own fit, evaluate and predict must not run these.
        model.train_function = None
        model.test_function = None
