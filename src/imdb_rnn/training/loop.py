"""The training loop: every run trains through `EpochLoop.run`, under any strategy.

One epoch loop, owned by imdb-rnn, for the default strategy, `MirroredStrategy` and
`MultiWorkerMirroredStrategy` alike (Keras' `fit` cannot train under the last one in Keras 3.15,
keras-team/keras#20585). Each step runs on every replica (`strategy.run`; under the default
strategy that is a plain call): the objective's forward pass, loss and gradients (the loop is
given its `objectives.TrainingObjective`: `CleanObjective`, or `AdversarialObjective` that adds
the loss on perturbed embeddings) and the optimizer's update. After each batch the loop checks
the loss, writes a checkpoint every `training.checkpoint_every_steps` batches and honours a stop
request; after each epoch it validates, adds the learning rate to the epoch's logs, records the
history (the one history of a run) and writes a checkpoint, then calls the callbacks (so a
process killed while they run keeps the epoch's checkpoint).

Keras callbacks are called as `fit` calls them (`on_train_begin`, `on_epoch_begin`,
`on_train_batch_end` with the running `loss` and `accuracy`, `on_test_begin` / `on_test_end`,
`on_epoch_end` with `val_loss`, `val_accuracy` and `learning_rate`, `on_train_end`), so that
early stopping, TensorBoard and the progress display work unchanged. A callback that sets
`model.stop_training` ends training after the current batch or epoch.

Resuming: the caller builds the training batches of the epochs left (epoch `e` shuffled with
`seed + e`, see `Trainer.training_batches`) and drops those the checkpoint covers with
`dataset.skip(state.step)`; `run(resume=state)` restores the variables (weights, random-seed
states, optimizer slots, the interrupted epoch's running loss and accuracy), the history and the
early-stopping counters. A resumed run computes what the uninterrupted run would have computed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import RunConfig
from imdb_rnn.errors import CheckpointMismatchError, NonFiniteLossError, TrainingInterrupted
from imdb_rnn.training.checkpoints import Checkpoint, CheckpointState, assign_arrays, numpy_arrays
from imdb_rnn.training.distribute import distribute_batches
from imdb_rnn.training.objectives import CleanObjective, TrainingObjective
from imdb_rnn.training.stopping import SignalStop

__all__ = ["EpochLoop"]


class EpochLoop:
    """Trains a compiled model for `training.epochs` epochs, safely stoppable and resumable.

    Args:
        model: a compiled model whose variables and optimizer were created in
            `strategy.scope()`.
        config: the run's config (`training.epochs`, `training.seed`,
            `training.checkpoint_every_steps`), recorded in checkpoints.
        steps_per_epoch: batches per epoch.
        train_size: reviews in the training split, recorded to refuse resuming on other data.
        data: the training data's `checkpoints.data_fingerprint`, recorded for the same reason.
            Default None: not recorded.
        strategy: the distribution strategy. Default None: TensorFlow's default strategy.
        callbacks: Keras callbacks (progress display, TensorBoard ...), called after the loop's
            own checks, so they never see a step with a non-finite loss.
        early_stopping: the run's `EarlyStopping` callback, if any (called before `callbacks`;
            its counters go into checkpoints).
        checkpoint: where to write checkpoints. Default None: none.
        stop: the `SignalStop` whose requests to honour. Default None.
        class_weights: the loss weight of each class, by class index (each text's loss is
            weighted by its class's). Default None: all 1.
        objective: what each step minimises (`objectives.objective_for(config.training)` is
            the run's). Default None: `CleanObjective()`, the compiled loss.

    Attributes:
        history: per-epoch logs (`loss`, `accuracy`, `val_loss`, `val_accuracy`,
            `learning_rate`), resumed epochs included.
        epoch_train_seconds: training-batch time of each epoch (validation excluded).
        last_saved: the state of the last checkpoint written or resumed from.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        config: RunConfig,
        steps_per_epoch: int,
        train_size: int,
        strategy: tf.distribute.Strategy | None = None,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        early_stopping: keras.callbacks.EarlyStopping | None = None,
        checkpoint: Checkpoint | None = None,
        stop: SignalStop | None = None,
        data: dict[str, Any] | None = None,
        class_weights: Sequence[float] | None = None,
        objective: TrainingObjective | None = None,
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"Expected steps_per_epoch >= 1. Received: {steps_per_epoch}")
        self.model = model
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.train_size = train_size
        self.data = data or {}
        self.strategy = strategy or tf.distribute.get_strategy()
        self.early_stopping = early_stopping
        self.checkpoint = checkpoint
        self.stop = stop
        #: The loss weight of each class (`training.class_weight`), or None: all 1.
        self.class_weights = None if class_weights is None else list(class_weights)
        self.objective = objective or CleanObjective()
        self.objective.prepare(model)
        lists = [
            keras.callbacks.CallbackList(
                group,
                add_history=False,
                add_progbar=False,
                model=model,
                epochs=config.training.epochs,
                steps=steps_per_epoch,
                verbose=0,
            )
            for group in ([early_stopping] if early_stopping is not None else [], list(callbacks))
        ]
        # Early stopping first: at an epoch's end its counters go into the checkpoint, which is
        # written before the other callbacks run (a process killed while they run keeps it).
        self._early_callbacks, self.callbacks = lists
        self.history: dict[str, list[float]] = {}
        self.epoch_train_seconds: list[float] = []
        self.last_saved: CheckpointState | None = None
        self._epoch = 0
        self._steps: tuple[Any, Any] | None = None
        self._epoch_start: float | None = None
        self._carried_seconds = 0.0
        #: The raw weights while validation sees the averaged ones (`_swap_averages`).
        self._raw_weights: list[np.ndarray] | None = None

    # -- the loop -------------------------------------------------------------------------------

    def run(
        self,
        batches: tf.data.Dataset,
        *,
        validation: tf.data.Dataset,
        resume: CheckpointState | None = None,
        resume_from: Checkpoint | None = None,
    ) -> dict[str, list[float]]:
        """Trains from the start, or from `resume`, to the last epoch or an early stop.

        Args:
            batches: global training batches of `(ids, labels)`, one epoch after the other
                from the first epoch to run, without the batches `resume` already covers.
            validation: `(ids, labels)` batches, all evaluated after every epoch.
            resume: the checkpoint state to continue from. Default None: a fresh run.
            resume_from: the checkpoint `resume` was read from. Default: `checkpoint` (the
                workers of a cluster other than the chief resume from the chief's checkpoint
                and write their own to a temporary folder).

        Returns:
            The history.

        Raises:
            NonFiniteLossError: when the loss or validation loss is NaN or infinite (the last
                good checkpoint stays as it was).
            TrainingInterrupted: when `stop` received a signal (after saving a checkpoint).
            CheckpointMismatchError: if `resume`'s variables do not fit this model.
        """
        model, training = self.model, self.config.training
        if self._steps is None:  # traced once per loop: `run` may be called again
            self._steps = self._compile_steps()
        train_step, test_step = self._steps
        iterator = iter(distribute_batches(self.strategy, batches))
        # Repeated, so that one iterator serves every epoch: making a distributed iterator
        # rewrites the dataset's graph, in-memory batches included, which takes seconds.
        valid_iterator = iter(distribute_batches(self.strategy, validation.repeat()))
        valid_steps = _count(validation)
        first_epoch, first_step, metric_values = 0, 0, None
        model.stop_training = False
        if self.stop is not None:
            self.stop.deferring = True
        try:
            self._early_callbacks.on_train_begin()
            self.callbacks.on_train_begin()
            if resume is not None:
                metric_values = self._restore(resume, resume_from or self.checkpoint)
                first_epoch = resume.first_epoch
                first_step = 0 if resume.finished else resume.step
            epoch_logs: dict[str, float] = {}
            for epoch in range(first_epoch, training.epochs):
                self._epoch = epoch
                model.reset_metrics()
                self._carried_seconds = 0.0
                start = first_step if epoch == first_epoch else 0
                if start and metric_values is not None:
                    # The interrupted epoch's running loss and accuracy, as they were.
                    assign_arrays(model.metrics_variables, metric_values, "running metrics")
                    self._carried_seconds = resume.epoch_seconds if resume else 0.0
                self._early_callbacks.on_epoch_begin(epoch)
                self.callbacks.on_epoch_begin(epoch)
                self._epoch_start = time.perf_counter()
                logs = self._train_epoch(train_step, iterator, epoch, start)
                epoch_logs = self._end_epoch(epoch, logs, test_step, valid_iterator, valid_steps)
                if self.checkpoint is not None:
                    finished = bool(model.stop_training) or epoch + 1 >= training.epochs
                    self._save(epoch + 1, 0, finished=finished)
                self._raise_if_stop_requested(save=False)
                self.callbacks.on_epoch_end(epoch, epoch_logs)
                if model.stop_training:
                    break
            # The model keeps the averaged weights (early stopping may then restore the best
            # epoch's, which are averaged too).
            model.optimizer.finalize_variable_values(model.trainable_variables)
            self._early_callbacks.on_train_end(epoch_logs)
            self.callbacks.on_train_end(epoch_logs)
        finally:
            if self.stop is not None:
                self.stop.deferring = False
        return self.history

    def _train_epoch(
        self, train_step: Any, iterator: Iterator[Any], epoch: int, start: int
    ) -> dict[str, float]:
        """Runs the epoch's batches from `start`, with the per-batch checks, checkpoints and
        callbacks; returns the last batch's logs (the epoch's running loss and metrics)."""
        logs: dict[str, float] = {}
        for step in range(start, self.steps_per_epoch):
            self.callbacks.on_train_batch_begin(step)
            logs = _floats(train_step(iterator))
            self._check_finite(logs, step + 1)
            done = step + 1
            every = self.config.training.checkpoint_every_steps
            if self.checkpoint is not None and done < self.steps_per_epoch and not (done % every):
                self._save(epoch, done)
            self._raise_if_stop_requested(save=True, step=done)
            self.callbacks.on_train_batch_end(step, logs)
            if self.model.stop_training:
                break
        self._close_epoch_timer()
        return logs

    def _end_epoch(
        self,
        epoch: int,
        logs: dict[str, float],
        test_step: Any,
        valid_iterator: Iterator[Any],
        valid_steps: int,
    ) -> dict[str, float]:
        """Validates, adds the learning rate, checks the losses, lets early stopping see the
        epoch and records it in the history; returns the epoch's logs."""
        model = self.model
        epoch_logs = dict(logs or _floats(model.get_metrics_result()))
        # With weight averaging, validation and early stopping (which keeps the best epoch's
        # weights) see the averaged weights; training goes on from the raw ones.
        self._swap_averages()
        try:
            epoch_logs.update(self._validate(test_step, valid_iterator, valid_steps))
            epoch_logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(model.optimizer.learning_rate)
            )
            self._check_finite(epoch_logs, 0)
            self._early_callbacks.on_epoch_end(epoch, epoch_logs)
        finally:
            self._swap_averages()
        for key, value in epoch_logs.items():
            self.history.setdefault(key, []).append(float(value))
        return epoch_logs

    def _swap_averages(self) -> None:
        """Swaps the model's trainable weights with the optimizer's moving averages of them
        (`training.ema_momentum`); does nothing without weight averaging. Two swaps restore
        both."""
        optimizer = self.model.optimizer
        if not optimizer.use_ema:
            return
        variables = self.model.trainable_variables
        if self._raw_weights is None:
            self._raw_weights = [keras.ops.convert_to_numpy(variable) for variable in variables]
            # Keras' public way to the averages: it assigns them to the variables.
            optimizer.finalize_variable_values(variables)
        else:
            for variable, value in zip(variables, self._raw_weights, strict=True):
                variable.assign(value)
            self._raw_weights = None

    def _validate(self, test_step: Any, iterator: Iterator[Any], steps: int) -> dict[str, float]:
        self.model.reset_metrics()
        self.callbacks.on_test_begin()
        logs: dict[str, float] = {}
        for step in range(steps):
            self.callbacks.on_test_batch_begin(step)
            logs = _floats(test_step(iterator))
            self.callbacks.on_test_batch_end(step, logs)
        self.callbacks.on_test_end(logs)
        return {f"val_{key}": value for key, value in logs.items()}

    # -- the compiled steps ---------------------------------------------------------------------

    def _compile_steps(self) -> tuple[Any, Any]:
        """The training and evaluation steps, each one `tf.function` over an iterator (one
        trace for batches of any length)."""
        model, strategy = self.model, self.strategy
        replicas = int(strategy.num_replicas_in_sync)
        class_weights = (
            None
            if self.class_weights is None
            else tf.constant(self.class_weights, dtype=tf.float32)
        )
        with strategy.scope():
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        _build_metrics(model, strategy)
        # The compiled model's loss tracker, through the public list of its metrics (the
        # running loss goes into checkpoints with the other metrics' variables).
        loss_tracker = next(metric for metric in model.metrics if metric.name == "loss")

        objective = self.objective

        def replica_step(data: tuple[tf.Tensor, tf.Tensor]) -> None:
            ids, labels = data
            weights = (
                None
                if class_weights is None
                else tf.gather(class_weights, tf.reshape(tf.cast(labels, tf.int32), [-1]))
            )
            # Under a strategy of several replicas Keras' `compute_loss` divides each replica's
            # mean loss by their number (the optimizer sums their gradients).
            loss, logits, gradients = objective.loss_and_gradients(model, ids, labels, weights)
            loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(ids)[0])
            variables = model.trainable_variables
            if replicas > 1:
                # The embedding's gradient is sparse, one row per token of the replica's share;
                # replicas pad their shares to different lengths, and the all-reduce of such
                # gradients fails on shapes that differ. A dense gradient has one shape.
                gradients = [
                    tf.convert_to_tensor(gradient)
                    if isinstance(gradient, tf.IndexedSlices)
                    else gradient
                    for gradient in gradients
                ]
            model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            model.compute_metrics(ids, labels, logits)

        @tf.function
        def train_step(iterator: Iterator[Any]) -> dict[str, tf.Tensor]:
            strategy.run(replica_step, args=(next(iterator),))
            # Read in cross-replica context: each metric summed over all replicas.
            return model.get_metrics_result()

        @tf.function
        def test_step(iterator: Iterator[Any]) -> dict[str, tf.Tensor]:
            strategy.run(model.test_step, args=(next(iterator),))
            return model.get_metrics_result()

        return train_step, test_step

    # -- checks, checkpoints and stopping -------------------------------------------------------

    def _check_finite(self, logs: Mapping[str, float], step: int) -> None:
        for key in ("loss", "val_loss"):
            value = logs.get(key)
            if value is not None and not math.isfinite(value):
                where = f"step {step}/{self.steps_per_epoch}" if step else "validation"
                raise NonFiniteLossError(
                    f"The training {key.replace('_', ' ')} became {value} in epoch "
                    f"{self._epoch + 1} ({where}); training stopped before keeping these weights. "
                    "Lower the learning rate or set clip_norm.",
                    epoch=self._epoch,
                    step=step,
                )

    def _raise_if_stop_requested(self, *, save: bool, step: int = 0) -> None:
        if self.stop is None or self.stop.received is None:
            return
        last = self.last_saved
        if (
            save
            and self.checkpoint is not None
            and (last is None or (last.epoch, last.step) != (self._epoch, step))
        ):
            self._save(self._epoch, step)
        raise TrainingInterrupted(self.stop.received)

    def _close_epoch_timer(self) -> None:
        if self._epoch_start is not None:
            seconds = self._carried_seconds + time.perf_counter() - self._epoch_start
            self.epoch_train_seconds.append(seconds)
            self._epoch_start = None

    def _restore(
        self, state: CheckpointState, source: Checkpoint | None
    ) -> list[np.ndarray] | None:
        """Puts `state`'s variables, history and counters back; returns the interrupted epoch's
        running metric values (None at an epoch boundary)."""
        if source is None:
            raise ValueError("Expected a checkpoint to resume from. Received: None")
        model = self.model
        arrays = source.load_arrays(state)
        assign_arrays(model.variables, arrays.get("model", []), "model variables")
        assign_arrays(model.optimizer.variables, arrays.get("optimizer", []), "optimizer variables")
        early = self.early_stopping
        if early is not None and state.early_stopping is not None:
            for name, value in state.early_stopping.items():
                setattr(early, name, value)
            best = arrays.get("best")
            early.best_weights = list(best) if best else None
        self.history = {key: list(values) for key, values in state.history.items()}
        self.epoch_train_seconds = list(state.epoch_train_seconds)
        self.last_saved = state
        if not state.step or state.finished:
            return None
        values = arrays.get("metrics", [])
        if len(values) != len(model.metrics_variables):
            raise CheckpointMismatchError(
                "The checkpoint's running metrics do not match this model's."
            )
        return values

    def _save(self, epoch: int, step: int, *, finished: bool = False) -> None:
        assert self.checkpoint is not None
        running = (
            self._carried_seconds + time.perf_counter() - self._epoch_start
            if step and self._epoch_start is not None
            else 0.0
        )
        early = self.early_stopping
        state = CheckpointState(
            epoch=epoch,
            step=step,
            steps_per_epoch=self.steps_per_epoch,
            seed=self.config.training.seed,
            finished=finished,
            train_size=self.train_size,
            data=self.data,
            config=self.config.to_dict(),
            history=self.history,
            epoch_train_seconds=self.epoch_train_seconds,
            epoch_seconds=running,
            early_stopping=None
            if early is None
            else {
                "wait": int(early.wait),
                "stopped_epoch": int(early.stopped_epoch),
                "best": None if early.best is None else float(early.best),
                "best_epoch": int(early.best_epoch),
            },
        )
        model = self.model
        arrays = {
            "model": numpy_arrays(model.variables),
            "optimizer": numpy_arrays(model.optimizer.variables),
            "metrics": numpy_arrays(model.metrics_variables),
        }
        if early is not None and early.best_weights is not None:
            arrays["best"] = [np.asarray(value) for value in early.best_weights]
        self.checkpoint.save(state, arrays)
        self.last_saved = state


def _build_metrics(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Creates the compiled metrics' variables before the first step. Keras creates them on
    their first update, which must happen on the replicas (a metric's variables sum over
    replicas); the update is then reset."""
    if all(getattr(metric, "built", True) for metric in model.metrics):
        return
    zeros = tf.zeros((1, 1))
    strategy.run(tf.function(lambda: model.compute_metrics(None, zeros, zeros)))
    model.reset_metrics()


def _count(batches: tf.data.Dataset) -> int:
    count = int(batches.cardinality())
    if count < 0:
        count = int(batches.reduce(np.int64(0), lambda total, _: total + 1))
    return count


def _floats(logs: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in logs.items()}
