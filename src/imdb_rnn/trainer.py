"""Trainer: adapt, compile, fit, evaluate, predict, save and load an imdb-rnn model.

Example (on any `ImdbSplits`, here a tiny in-memory one):

>>> import tensorflow as tf
>>> from imdb_rnn import ImdbSplits, RunConfig, Trainer
>>> texts = ["a great film", "an awful film"] * 8
>>> labels = [1, 0] * 8
>>> pairs = tf.data.Dataset.from_tensor_slices((texts, labels))
>>> splits = ImdbSplits(pairs, pairs, pairs, pairs.map(lambda t, l: (t, -1)),
...                     sizes=dict.fromkeys(["train", "valid", "test", "unsupervised"], 16),
...                     source="demo")
>>> config = RunConfig().replace(model={"max_tokens": 20, "embedding_dim": 4, "rnn_units": 2},
...                               training={"epochs": 1})
>>> trainer = Trainer(config)
>>> history = trainer.fit(splits)
>>> trainer.predict_proba(["a great film"]).shape
(1,)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn import native
from imdb_rnn.adversarial import use_adversarial_training
from imdb_rnn.checkpoints import (
    CHECKPOINT_DIR,
    Checkpoint,
    CheckpointMismatchError,
    SignalStop,
    TrainingGuard,
    check_free_space,
)
from imdb_rnn.config import ConfigError, RunConfig
from imdb_rnn.datasets import (
    LABEL_NAMES,
    ImdbSplits,
    bucketed_batches,
    length_sorted_batches,
    load_imdb,
    plain_batches,
    sorted_window_batches,
    tokenize,
)
from imdb_rnn.distribute import (
    agree_across_workers,
    fit_distributed,
    is_chief,
    is_distributed,
    is_multi_worker,
    resolve_strategy,
    strategy_name,
    strategy_scope,
)
from imdb_rnn.files import (
    InputError,
    folder_lock,
    read_limited,
    remove_temporaries,
    write_json,
    write_text,
)
from imdb_rnn.finetune import fine_tuning_optimizer
from imdb_rnn.layers import TextEncoder
from imdb_rnn.models import (
    ModelFileError,
    build_classifier,
    build_text_model,
    load_text_model,
    save_text_model,
    split_text_model,
)
from imdb_rnn.pretrain import encoder_vocabulary, load_encoder
from imdb_rnn.sources import BadRows, TextFiles, load_text_files
from imdb_rnn.tomlconfig import CONFIG_TOML_FILE, config_to_toml

__all__ = [
    "MODEL_FILE",
    "EvaluationResult",
    "TrainResult",
    "Trainer",
    "evaluate",
    "predict",
    "prepare_native_kernel",
    "rnn_kernel_name",
    "tensorboard_callback",
    "train",
]

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
#: The class names of a model, in the order of its outputs (written beside the model).
LABELS_FILE = "labels.json"

#: Reports a stage of a long operation ("Reading data", "Adapting vocabulary" ...).
StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of a model on a labelled split.

    Attributes:
        loss: mean binary cross-entropy (two classes) or categorical cross-entropy (more).
        accuracy: share of texts whose predicted class is the true one.
        precision, recall, f1: of the positive class (index 1) for two classes, at probability
            0.5; the macro averages over the classes for more.
        confusion: `n x n` counts, rows the true class, columns the predicted class (for two
            classes `[[tn, fp], [fn, tp]]`).
        examples: number of texts.
        seconds: wall time of tokenising and predicting.
        labels: the class names, in the order of the confusion matrix's rows.
        per_class: one `{"label", "precision", "recall", "f1", "support"}` per class.
        macro_f1: the mean of the classes' F1.
    """

    loss: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    confusion: list[list[int]]
    examples: int
    seconds: float
    labels: list[str] = field(default_factory=lambda: list(LABEL_NAMES))
    per_class: list[dict[str, Any]] = field(default_factory=list)
    macro_f1: float = 0.0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "examples_per_second": self.examples_per_second}

    @classmethod
    def from_logits(
        cls,
        logits: np.ndarray,
        labels: np.ndarray,
        seconds: float,
        *,
        label_names: Sequence[str] = LABEL_NAMES,
    ) -> EvaluationResult:
        """Computes the metrics from logits and class indices.

        Args:
            logits: one logit per text (two classes: of the class at index 1), or
                `(texts, classes)` logits for more classes.
            labels: the true class index of each text.
            seconds: the time it took, for the speed.
            label_names: the class names. Default `("neg", "pos")`.
        """
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim == 2 and logits.shape[1] > 1:
            return cls._from_class_logits(logits, labels, seconds, label_names)
        logits = logits.reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if logits.shape != labels.shape:
            raise ValueError(
                f"Expected as many logits as labels. Received: {logits.shape} and {labels.shape}"
            )
        if labels.size == 0:
            raise ValueError("Cannot evaluate on an empty split.")
        if np.any((labels != 0) & (labels != 1)):
            raise ValueError("Cannot evaluate on unlabelled reviews (labels must be 0 or 1).")
        # Numerically stable binary cross-entropy from logits.
        losses = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
        predicted = (logits > 0).astype(np.int64)
        tp = int(np.sum((predicted == 1) & (labels == 1)))
        tn = int(np.sum((predicted == 0) & (labels == 0)))
        fp = int(np.sum((predicted == 1) & (labels == 0)))
        fn = int(np.sum((predicted == 0) & (labels == 1)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        confusion = [[tn, fp], [fn, tp]]
        per_class = _per_class(confusion, label_names)
        return cls(
            loss=float(np.mean(losses)),
            accuracy=(tp + tn) / labels.size,
            precision=precision,
            recall=recall,
            f1=f1,
            confusion=confusion,
            examples=int(labels.size),
            seconds=float(seconds),
            labels=list(label_names),
            per_class=per_class,
            macro_f1=float(np.mean([row["f1"] for row in per_class])),
        )

    @classmethod
    def _from_class_logits(
        cls, logits: np.ndarray, labels: np.ndarray, seconds: float, label_names: Sequence[str]
    ) -> EvaluationResult:
        classes = logits.shape[1]
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if logits.shape[0] != labels.shape[0] or len(label_names) != classes:
            raise ValueError(
                f"Expected one row of {len(label_names)} logits per label. Received: "
                f"logits {logits.shape}, labels {labels.shape}"
            )
        if labels.size == 0:
            raise ValueError("Cannot evaluate on an empty split.")
        if np.any((labels < 0) | (labels >= classes)):
            raise ValueError(
                f"Cannot evaluate on unlabelled texts (labels must be in [0, {classes}))."
            )
        # Numerically stable categorical cross-entropy from logits.
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses = -log_probabilities[np.arange(labels.size), labels]
        predicted = logits.argmax(axis=1)
        confusion = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(confusion, (labels, predicted), 1)
        rows = confusion.tolist()
        per_class = _per_class(rows, label_names)
        return cls(
            loss=float(np.mean(losses)),
            accuracy=float(np.trace(confusion) / labels.size),
            precision=float(np.mean([row["precision"] for row in per_class])),
            recall=float(np.mean([row["recall"] for row in per_class])),
            f1=float(np.mean([row["f1"] for row in per_class])),
            confusion=rows,
            examples=int(labels.size),
            seconds=float(seconds),
            labels=list(label_names),
            per_class=per_class,
            macro_f1=float(np.mean([row["f1"] for row in per_class])),
        )


def _per_class(confusion: list[list[int]], label_names: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each class from a confusion matrix."""
    matrix = np.asarray(confusion, dtype=np.int64)
    out = []
    for index, name in enumerate(label_names):
        tp = int(matrix[index, index])
        predicted, actual = int(matrix[:, index].sum()), int(matrix[index, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(
            {"label": name, "precision": precision, "recall": recall, "f1": f1, "support": actual}
        )
    return out


@dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        output: model directory (None if nothing was saved).
        epochs: epochs run, resumed ones included (early stopping may end before the
            configured number).
        best_epoch: 1-based epoch whose weights were kept.
        train_seconds: wall time of `fit` in this process (validation included).
        train_examples_per_second: training reviews per second of training-batch time.
        epoch_train_seconds: training-batch time of each epoch (validation excluded).
        history: per-epoch `loss`, `accuracy`, `val_loss`, `val_accuracy`, `learning_rate`.
        valid: metrics on the validation split with the kept weights.
        test: metrics on the test split (None if not evaluated).
        sizes: reviews per split.
        decode_errors: review files that were not valid UTF-8 (read with replacement characters).
        strategy: the distribution strategy: `"default"`, `"mirrored"` or `"multi-worker"`.
        replicas: replicas that trained in sync (devices, over all workers).
        global_batch_size: reviews per training step: `data.batch_size x replicas`.
        chief: whether this process wrote the model (False only on the other workers of a
            multi-worker cluster, whose `output` is then None).
        rnn_kernel: what ran the recurrent layers: `"native"` (imdb-rnn's CPU kernel for GRUs),
            `"tensorflow"` (its TensorFlow loop, where the native kernel is unavailable),
            `"cudnn"` (a GPU was visible) or `"keras"` (Keras' own loop: LSTMs on a CPU).
        label_names: the classes, in the order of the model's outputs.
        source: where the data came from, in words.
        bad_rows: rows of the data files that were skipped, by reason.
        bytes_read: size of the data files read, in bytes (0 for TFDS).
        versions: the versions of imdb-rnn, TensorFlow and Keras that trained the model.
    """

    output: str | None
    epochs: int
    best_epoch: int
    train_seconds: float
    train_examples_per_second: float
    epoch_train_seconds: list[float]
    history: dict[str, list[float]]
    valid: EvaluationResult | None
    test: EvaluationResult | None
    sizes: dict[str, int] = field(default_factory=dict)
    decode_errors: int = 0
    strategy: str = "default"
    replicas: int = 1
    global_batch_size: int = 0
    chief: bool = True
    rnn_kernel: str = ""
    label_names: list[str] = field(default_factory=lambda: list(LABEL_NAMES))
    source: str = ""
    bad_rows: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["valid"] = self.valid.to_dict() if self.valid else None
        out["test"] = self.test.to_dict() if self.test else None
        return out


def _bytes_needed(classifier: keras.Model) -> int:
    """Disk space a checkpointed run needs, with room to spare."""
    # A checkpoint holds the weights about four times (weights, Adam's two slots, the best
    # weights); two exist while one replaces the other; the saved model and its temporary
    # copy add two more.
    return 4 * classifier.count_params() * 10


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's learning rate at each epoch end to the logs (`learning_rate`)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            optimizer = self.model.optimizer
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


# Named, not lambdas: autograph cannot find the source of a lambda that shares its line with
# another one, and warns.
def _ids_only(ids: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return ids


def _label_only(text: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return label


class Trainer:
    """Builds, trains, evaluates and saves one imdb-rnn model.

    Args:
        config: the `RunConfig` to follow.
        encoder: an adapted `TextEncoder` to reuse. Default None: built and adapted by `fit`.
        classifier: a token-id classifier to reuse. Default None: built by `fit`.
        strategy: where to train: `"auto"`, `"default"`, `"mirrored"` or `"multi-worker"`
            (see `imdb_rnn.distribute`), or a `tf.distribute.Strategy`. Each replica trains on
            `data.batch_size` reviews per step. Create a multi-worker trainer (or the strategy)
            before any other TensorFlow operation, such as `load_imdb`. Default "auto": all
            GPUs when there are several, else one device.
        label_names: the classes, in the order of the model's outputs. Two keep the reference
            head (`Dense(1)` logit, binary cross-entropy); more get `Dense(n)` logits and sparse
            categorical cross-entropy. Default None: `("neg", "pos")`, or the training data's
            labels when `fit` builds the model.

    Raises:
        ConfigError: on an unknown strategy, or `"multi-worker"` without a valid `TF_CONFIG`.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        encoder: TextEncoder | None = None,
        classifier: keras.Model | None = None,
        strategy: str | tf.distribute.Strategy = "auto",
        label_names: Sequence[str] | None = None,
    ) -> None:
        self.config = config
        self.encoder = encoder
        self.classifier = classifier
        self.strategy = resolve_strategy(strategy)
        self.history: dict[str, list[float]] = {}
        self._text_model: keras.Model | None = None
        self.label_names: tuple[str, ...] = tuple(label_names or LABEL_NAMES)
        self._labels_given = label_names is not None
        if len(self.label_names) < 2:
            raise ValueError(
                f"Expected at least two label names. Received: label_names={label_names!r}"
            )

    @property
    def num_classes(self) -> int:
        """Number of classes (two: one logit; more: one logit per class)."""
        return len(self.label_names)

    @property
    def replicas(self) -> int:
        """Replicas that train in sync (1 under the default strategy)."""
        return int(self.strategy.num_replicas_in_sync)

    @property
    def global_batch_size(self) -> int:
        """Reviews per training step: `data.batch_size` on each of the `replicas`."""
        return self.config.data.batch_size * self.replicas

    # -- building ------------------------------------------------------------------------------

    def adapt(self, splits: ImdbSplits) -> TextEncoder:
        """Builds the encoder and its vocabulary from the split(s) named by
        `config.data.vocabulary_source`."""
        data, model = self.config.data, self.config.model
        encoder = TextEncoder(
            max_tokens=model.max_tokens,
            max_length=data.max_length,
            truncation=data.truncation,
            name="text_encoder",
        )
        names = {"unsupervised": ["unsupervised"], "train": ["train"]}.get(
            data.vocabulary_source, ["train", "unsupervised"]
        )
        # A data set of one's own may have no unlabelled text: the vocabulary comes from train.
        names = [name for name in names if getattr(splits, name) is not None] or ["train"]
        encoder.adapt(splits.texts(*names))
        self.encoder = encoder
        self._text_model = None
        return encoder

    def build(self, steps_per_epoch: int) -> keras.Model:
        """Builds and compiles the classifier (binary cross-entropy on logits, Adam, accuracy),
        in the strategy's scope."""
        with strategy_scope(self.strategy):
            return self._build(steps_per_epoch)

    def _build(self, steps_per_epoch: int) -> keras.Model:
        if self.classifier is None:
            self.classifier = build_classifier(self.config.model, num_classes=self.num_classes)
            self._text_model = None
            if self.config.training.encoder is not None:  # pre-trained (imdb_rnn.pretrain)
                load_encoder(
                    self.classifier,
                    self.config.training.encoder,
                    layers=self.config.training.encoder_layers,
                )
        training = self.config.training
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = (
            training.learning_rate
        )
        if training.lr_schedule == "cosine":
            total = max(1, steps_per_epoch * training.epochs)
            warmup = min(total - 1, round(steps_per_epoch * training.warmup_epochs))
            learning_rate = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0 if warmup else training.learning_rate,
                decay_steps=total - warmup,
                warmup_target=training.learning_rate if warmup else None,
                warmup_steps=warmup,
            )
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=training.clip_norm)
        if training.layer_lr_decay != 1 or training.unfreeze_epochs:  # imdb_rnn.finetune
            optimizer = fine_tuning_optimizer(
                self.classifier,
                learning_rate=learning_rate,
                clip_norm=training.clip_norm,
                layer_lr_decay=training.layer_lr_decay,
                unfreeze_steps=round(steps_per_epoch * training.unfreeze_epochs),
            )
        if self.num_classes == 2:
            loss: keras.losses.Loss = keras.losses.BinaryCrossentropy(from_logits=True)
            accuracy: keras.metrics.Metric = keras.metrics.BinaryAccuracy(
                threshold=0.0, name="accuracy"
            )
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.classifier.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])
        if training.adversarial_epsilon:
            use_adversarial_training(self.classifier, epsilon=training.adversarial_epsilon)
        return self.classifier

    @property
    def text_model(self) -> keras.Model:
        """The end-to-end model: raw strings `(batch,)` -> logits `(batch, 1)` (two classes) or
        `(batch, classes)`."""
        if self.encoder is None or self.classifier is None:
            raise RuntimeError("The model is not built yet: call fit() or Trainer.load() first.")
        if self._text_model is None:
            self._text_model = build_text_model(self.encoder, self.classifier)
        return self._text_model

    # -- pipelines -----------------------------------------------------------------------------

    def _encoder(self) -> TextEncoder:
        if self.encoder is None:
            raise RuntimeError("The encoder is not adapted yet: call fit() or adapt() first.")
        return self.encoder

    def training_batches(
        self,
        dataset: tf.data.Dataset,
        *,
        seed: int | None = None,
        epochs: int | None = None,
        first_epoch: int = 0,
    ) -> tf.data.Dataset:
        """Training batches of a `(text, label)` split through the configured pipeline, of
        `global_batch_size` reviews (the strategy splits each between the replicas).

        Args:
            dataset: the split.
            seed: shuffle seed. Default None.
            epochs: None (the default): one epoch per iteration, reshuffled each time. A number:
                that many epochs one after the other, starting at epoch `first_epoch`; epoch `e`
                is shuffled with `seed + e`, so the batches of any epoch are the same in every
                process and a resumed run replays the epoch it was interrupted in.
            first_epoch: the first epoch's number, when `epochs` is given. Default 0.
        """
        data = self.config.data
        first_seed = None if seed is None else seed + first_epoch
        if data.pipeline == "plain":
            return plain_batches(
                dataset,
                self._encoder(),
                batch_size=self.global_batch_size,
                shuffle_buffer=data.shuffle_buffer,
                seed=first_seed,
                epochs=epochs,
            )
        batches = sorted_window_batches if data.pipeline == "sorted" else bucketed_batches
        return batches(
            tokenize(dataset, self._encoder()),
            batch_size=self.global_batch_size,
            shuffle_buffer=data.shuffle_buffer,
            seed=first_seed,
            epochs=epochs,
        )

    def _eval_batches(
        self, dataset: tf.data.Dataset, pipeline: str
    ) -> tuple[tf.data.Dataset, np.ndarray, np.ndarray | None]:
        """Returns `(batches of (ids, labels), labels in batch order, order or None)`."""
        data = self.config.data
        if pipeline == "plain":
            batches = plain_batches(
                dataset, self._encoder(), batch_size=data.batch_size, shuffle_buffer=None
            )
            labels = np.fromiter(dataset.map(_label_only).as_numpy_iterator(), dtype=np.int32)
            return batches, labels, None
        split = tokenize(dataset, self._encoder(), batch_size=max(data.eval_batch_size, 1024))
        batches, order = length_sorted_batches(split, batch_size=data.eval_batch_size)
        return batches, split.labels[order], order

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        splits: ImdbSplits,
        *,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        on_stage: StageCallback | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        stop: SignalStop | None = None,
        resume: bool = True,
    ) -> dict[str, list[float]]:
        """Adapts the vocabulary (unless an encoder was given), builds the model and trains it
        on `splits.train`, validating on `splits.valid` after every epoch.

        Under a distribution strategy, the model and optimizer are built in its scope and each
        step trains on `global_batch_size` reviews. On the workers of a multi-worker cluster
        other than the chief, checkpoints go to a temporary folder, deleted when `fit` returns;
        all workers resume from the checkpoint in `checkpoint_dir`.

        Args:
            splits: the data, from `load_imdb`.
            callbacks: extra Keras callbacks (progress display ...).
            on_stage: called with a short description as each preparation stage starts.
            checkpoint_dir: folder for resumable checkpoints, written every
                `training.checkpoint_every_steps` batches and at every epoch end. If it holds
                a checkpoint of this config, training resumes from it. Default None: none.
            stop: a `SignalStop` whose signals end training after the current batch, with a
                checkpoint. Default None.
            resume: resume from a checkpoint in `checkpoint_dir`. Default True; False ignores
                it (it is overwritten).

        Returns:
            The per-epoch history (`loss`, `accuracy`, `val_loss`, `val_accuracy`,
            `learning_rate`), resumed epochs included.

        Raises:
            CheckpointMismatchError: if `checkpoint_dir` holds a run of another config or data.
            CheckpointError: if the checkpoint is damaged.
            ConfigError: if the workers of a cluster disagree on the data or the checkpoint.
            NonFiniteLossError: if the loss becomes NaN or infinite (the last good checkpoint
                stays as it was).
            TrainingInterrupted: when `stop` received a signal.
            OSError: if the checkpoint folder's disk has too little free space.
        """
        checkpoint = Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        writer = checkpoint
        if checkpoint is not None and not is_chief(self.strategy):
            writer = Checkpoint(tempfile.mkdtemp(prefix="imdb-rnn-worker-checkpoint-"))
        try:
            return self._fit(
                splits,
                callbacks=callbacks,
                on_stage=on_stage,
                checkpoint=checkpoint,
                writer=writer,
                stop=stop,
                resume=resume,
            )
        finally:
            if writer is not checkpoint and writer is not None:
                writer.remove()

    def _fit(
        self,
        splits: ImdbSplits,
        *,
        callbacks: Iterable[keras.callbacks.Callback],
        on_stage: StageCallback | None,
        checkpoint: Checkpoint | None,
        writer: Checkpoint | None,
        stop: SignalStop | None,
        resume: bool,
    ) -> dict[str, list[float]]:
        stage = on_stage or (lambda name: None)
        training = self.config.training
        if self.classifier is None and not self._labels_given:
            self.label_names = tuple(splits.label_names)
        keras.utils.set_random_seed(training.seed)  # Python, NumPy and TensorFlow
        if training.deterministic:
            tf.config.experimental.enable_op_determinism()
        state = checkpoint.read_state() if checkpoint is not None and resume else None
        if checkpoint is not None and state is not None:
            checkpoint.check_resumable(state, self.config, train_size=splits.sizes["train"])
            if self.encoder is None:
                self.encoder = checkpoint.load_encoder(self.config)
        if self.encoder is None and training.encoder is not None:
            stage("Reading the pre-trained encoder")
            self.encoder = encoder_vocabulary(training.encoder, self.config)
        if self.encoder is None:
            stage("Adapting the vocabulary")
            self.adapt(splits)
        stage("Preparing batches")
        first_epoch = state.first_epoch if state is not None else 0
        epochs_left = max(1, training.epochs - first_epoch)  # 1: nothing is run when finished
        train_batches = self.training_batches(
            splits["train"],
            seed=training.seed,
            epochs=epochs_left,
            first_epoch=min(first_epoch, training.epochs - 1),
        )
        valid_batches, _, _ = self._eval_batches(splits["valid"], self.config.data.pipeline)
        steps = int(train_batches.cardinality()) // epochs_left
        if steps < 0:  # plain pipeline on a source of unknown size
            steps = math.ceil(splits.sizes["train"] / self.global_batch_size)
        if state is not None and state.steps_per_epoch != steps:
            batch = f" of {self.global_batch_size} reviews" if self.replicas > 1 else ""
            raise CheckpointMismatchError(
                f"The checkpoint in {checkpoint.directory if checkpoint else None} has "
                f"{state.steps_per_epoch} batches per epoch; this run has {steps}{batch} "
                f"({self.replicas} replica{'s' if self.replicas > 1 else ''} of "
                f"{self.config.data.batch_size}). Resume on as many devices, or pass "
                "resume=False to start over."
            )
        agree_across_workers(
            self.strategy,
            {
                "training reviews": splits.sizes["train"],
                "batches per epoch": steps,
                "vocabulary": zlib.crc32("\n".join(self._encoder().get_vocabulary()).encode()),
                "epoch to resume": first_epoch,
                "step to resume": state.step if state is not None else 0,
            },
        )
        prepare_native_kernel(self.config.model.cell, on_stage=stage)
        self.build(steps)
        assert self.classifier is not None
        if writer is not None:
            writer.directory.mkdir(parents=True, exist_ok=True)
            check_free_space(writer.directory, _bytes_needed(self.classifier))
            if state is None:
                writer.save_vocabulary(self._encoder())
        all_callbacks: list[keras.callbacks.Callback] = [LearningRateLogger()]
        self._early_stopping = None
        if training.early_stopping_patience:
            self._early_stopping = keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=training.early_stopping_patience,
                restore_best_weights=True,
            )
            all_callbacks.append(self._early_stopping)
        # After EarlyStopping, whose counters it saves and restores; before the caller's
        # callbacks, so that they never see a step with a non-finite loss.
        guard = TrainingGuard(
            self.config,
            steps_per_epoch=steps,
            train_size=splits.sizes["train"],
            checkpoint=writer,
            resume=state,
            resume_from=checkpoint,
            early_stopping=self._early_stopping,
            stop=stop,
        )
        all_callbacks.append(guard)
        all_callbacks.extend(callbacks)
        if state is not None:
            stage(f"Resuming from the checkpoint at {state.describe()}")
        if is_distributed(self.strategy):
            stage(
                f"Training on {self.replicas} replica{'s' if self.replicas > 1 else ''} "
                f"({strategy_name(self.strategy)}), {self.global_batch_size} reviews per step"
            )
            fit_distributed(
                self.classifier,
                self.strategy,
                train_batches,
                validation_batches=valid_batches,
                epochs=training.epochs,
                initial_epoch=first_epoch,
                steps_per_epoch=steps,
                callbacks=all_callbacks,
            )
        else:
            stage("Training")
            self.classifier.fit(
                train_batches,
                validation_data=valid_batches,
                epochs=training.epochs,
                initial_epoch=first_epoch,
                steps_per_epoch=steps,
                callbacks=all_callbacks,
                verbose=0,
                shuffle=False,
            )
        self.history = guard.history
        self.epoch_train_seconds = guard.epoch_train_seconds
        return self.history

    @property
    def best_epoch(self) -> int:
        """1-based epoch whose weights the model holds after `fit` (also for a loaded Trainer,
        from its history); 0 before any training."""
        losses = self.history.get("val_loss", [])
        # Early stopping, when configured, restores the weights of the lowest validation loss.
        if self.config.training.early_stopping_patience and losses:
            return int(np.argmin(losses)) + 1
        return len(self.history.get("loss", []))

    # -- inference -----------------------------------------------------------------------------

    def evaluate(
        self, dataset: tf.data.Dataset, *, pipeline: str | None = None
    ) -> EvaluationResult:
        """Evaluates on an unbatched `(text, label)` split.

        Args:
            dataset: labelled reviews.
            pipeline: `"plain"` (the reference pipeline), or `"sorted"` / `"bucketed"` (both:
                tokenise once, batch in order of length). Default: the config's pipeline.
        """
        if self.classifier is None:
            raise RuntimeError("The model is not built yet: call fit() or Trainer.load() first.")
        start = time.perf_counter()
        batches, labels, _ = self._eval_batches(dataset, pipeline or self.config.data.pipeline)
        logits = self._logits(batches.map(_ids_only))
        return EvaluationResult.from_logits(
            logits, labels, time.perf_counter() - start, label_names=self.label_names
        )

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Returns one logit per review (two classes), or a row of one logit per class, in the
        order given."""
        if self.classifier is None:
            raise RuntimeError("The model is not built yet: call fit() or Trainer.load() first.")
        texts = list(texts)
        if not texts:
            shape = (0,) if self.num_classes == 2 else (0, self.num_classes)
            return np.zeros(shape, dtype=np.float32)
        split = tokenize(texts, self._encoder())
        batches, order = length_sorted_batches(split, batch_size=self.config.data.eval_batch_size)
        sorted_logits = self._logits(batches.map(_ids_only))
        if sorted_logits.ndim == 2 and sorted_logits.shape[1] == 1:
            sorted_logits = sorted_logits.reshape(-1)
        logits = np.empty_like(sorted_logits)
        logits[order] = sorted_logits
        return logits

    def _logits(self, batches: tf.data.Dataset) -> np.ndarray:
        """The classifier's logits on batches of token ids, in order."""
        assert self.classifier is not None
        if not is_multi_worker(self.strategy):
            return np.asarray(self.classifier.predict(batches, verbose=0))
        # Each worker of a cluster predicts on its own, on every batch: Keras' predict would
        # share the batches between workers and gather the results with collective operations.
        classifier = self.classifier
        forward = tf.function(lambda ids: classifier(ids, training=False), reduce_retracing=True)
        parts = [forward(ids).numpy() for ids in batches]
        return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Returns the probability that each review is positive (of the class at index 1), or
        for more than two classes a row of class probabilities per text, in the order given."""
        logits = self.predict_logits(texts).astype(np.float64)
        if logits.ndim == 1:
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def known_words(self, texts: Sequence[str]) -> np.ndarray:
        """Returns how many words of each text are in the vocabulary (0: the model knows none
        of its words, and its prediction says nothing about the text)."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoder = self._encoder()
        counts = []
        for start in range(0, len(texts), 4096):
            chunk = tf.constant(texts[start : start + 4096], dtype=tf.string)
            ids = encoder.vectorizer(chunk)
            known = tf.cast(ids > 1, tf.int64)  # 0 is padding, 1 out-of-vocabulary
            counts.append(tf.reduce_sum(known, axis=1).numpy())
        return np.concatenate(counts)

    def class_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Returns `(texts, classes)` probabilities, columns in the order of `label_names`
        (for two classes: `[1 - p, p]`)."""
        probabilities = self.predict_proba(texts)
        if probabilities.ndim == 1:
            return np.stack([1.0 - probabilities, probabilities], axis=1)
        return probabilities

    # -- files ---------------------------------------------------------------------------------

    def save(
        self, directory: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None
    ) -> Path:
        """Writes `model.keras`, `config.json` (and the same config as `config.toml`, which
        `imdb-rnn train --config` reads), `history.json` and, if given, `metrics.json` into
        `directory`, each file atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_text_model(self.text_model, directory / MODEL_FILE)
        write_json(directory / CONFIG_FILE, self.config.to_dict())
        write_text(directory / CONFIG_TOML_FILE, config_to_toml(self.config))
        write_json(directory / HISTORY_FILE, self.history)
        write_json(directory / LABELS_FILE, list(self.label_names))
        if metrics is not None:
            write_json(directory / METRICS_FILE, metrics)
        remove_temporaries(directory)  # left by an earlier save that was killed
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Trainer:
        """Loads a model directory written by `save` (safe mode on).

        Raises:
            ModelFileError: if the directory, the model file or the config is missing or bad.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelFileError(f"No model directory at {directory}")
        model_path = directory / MODEL_FILE
        if not model_path.exists():
            raise ModelFileError(
                f"{directory} holds no {MODEL_FILE}: is it a directory written by 'imdb-rnn train'?"
            )
        config_path = directory / CONFIG_FILE
        try:
            config = (
                RunConfig.from_dict(_read_json(config_path, what="The config file"))
                if config_path.exists()
                else RunConfig()
            )
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise ModelFileError(f"{config_path} is not valid JSON ({error}).") from None
        except (ConfigError, InputError) as error:
            raise ModelFileError(f"{config_path}: {error}") from None
        model = load_text_model(model_path)
        encoder, classifier = split_text_model(model)
        label_names = _read_labels(directory, int(classifier.output_shape[-1]))
        trainer = cls(
            config,
            encoder=encoder,
            classifier=classifier,
            strategy="default",
            label_names=label_names,
        )
        trainer._text_model = model
        history_path = directory / HISTORY_FILE
        if history_path.exists():
            try:
                history = _read_json(history_path, what="The history file")
            except (ValueError, RecursionError, OSError):  # JSON, UTF-8 and size errors
                history = {}
            trainer.history = history if isinstance(history, dict) else {}
        return trainer


def _read_json(path: Path, *, what: str) -> Any:
    """Reads a JSON file of a model directory, refusing devices and files over the size limit.

    Raises:
        InputError: if it is not a regular file or is too large.
        ValueError: if it is not UTF-8 JSON.
    """
    return json.loads(read_limited(path, what=f"{what} {path}").decode("utf-8"))


def _read_labels(directory: Path, outputs: int) -> tuple[str, ...]:
    """The class names saved beside a model (`labels.json`); IMDB's without the file."""
    path = directory / LABELS_FILE
    if not path.exists():
        if outputs != 1:
            raise ModelFileError(f"{directory} holds no {LABELS_FILE} for its {outputs} classes.")
        return LABEL_NAMES
    try:
        names = _read_json(path, what="The labels file")
    except InputError as error:
        raise ModelFileError(str(error)) from None
    except (ValueError, RecursionError) as error:  # JSON and UTF-8 errors
        raise ModelFileError(f"{path} is not valid JSON ({error}).") from None
    expected = 2 if outputs == 1 else outputs
    if (
        not isinstance(names, list)
        or len(names) != expected
        or not all(isinstance(name, str) for name in names)
    ):
        raise ModelFileError(
            f"{path} should list the model's {expected} class names. Received: {names!r}"
        )
    return tuple(names)


def versions() -> dict[str, str]:
    """The versions of imdb-rnn, TensorFlow and Keras (recorded with every model)."""
    from imdb_rnn import __version__

    return {"imdb_rnn": __version__, "tensorflow": tf.__version__, "keras": keras.__version__}


def rnn_kernel_name(cell: str = "gru") -> str:
    """What runs a recurrent layer of this kind here (see `TrainResult.rnn_kernel`)."""
    if tf.config.list_logical_devices("GPU"):
        return "cudnn"
    if cell != "gru":
        return "keras"
    return "native" if native.available() else "tensorflow"


def prepare_native_kernel(cell: str = "gru", *, on_stage: StageCallback | None = None) -> None:
    """Compiles the native GRU kernel now, announcing it with `on_stage`, when a CPU GRU will
    use it and it is not built on this machine yet (about 25 s, once). Otherwise does nothing;
    a kernel that cannot be built only warns (see `imdb_rnn.native`)."""
    if cell == "gru" and native.wanted() and not native.is_built():
        if on_stage is not None:
            on_stage("Compiling the native GRU kernel (once on this machine)")
        native.available()


# -- one-call workflows (what the CLI runs) ------------------------------------------------------


def tensorboard_callback(log_dir: str | os.PathLike[str]) -> keras.callbacks.TensorBoard:
    """Returns Keras' TensorBoard callback writing per-epoch scalars (loss, accuracy, learning
    rate; validation under `validation/`) into `log_dir`.

    Raises:
        ModuleNotFoundError: if the `tensorboard` package is not installed (TensorFlow writes
            summaries through it); checked here rather than after the first epoch.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise ModuleNotFoundError(
            "TensorBoard logging needs the tensorboard package: pip install tensorboard",
            name="tensorboard",
        )
    return keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir), write_graph=False)


def train(
    config: RunConfig,
    *,
    source: str | os.PathLike[str] | TextFiles | None = None,
    output: str | os.PathLike[str] | None = None,
    evaluate_test: bool = True,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    on_stage: StageCallback | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    tensorboard_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    stop: SignalStop | None = None,
    strategy: str | tf.distribute.Strategy = "auto",
) -> TrainResult:
    """Loads the data, trains a model, evaluates it and saves it, with a picture of its training
    curves (`curves.png`: loss and accuracy per epoch, training and validation).

    With an `output`, training writes resumable checkpoints to `output/checkpoint/` and, if that
    folder holds an unfinished run of the same config, continues it; the checkpoint is deleted
    once the model is saved.

    In a multi-worker cluster, run the same call on every worker: only the chief writes
    `output`, its checkpoints and `tensorboard_dir`; the other workers write theirs to temporary
    folders, which they delete.

    Args:
        config: the run configuration.
        source: data source: an IMDB source (see `load_imdb`), or a `TextFiles` naming your
            own CSV, TSV, JSON Lines files or class folders (see `imdb_rnn.sources`; the labels
            come from its training file). Default None: `IMDB_RNN_DATA`, else TFDS.
        output: model directory to write. Default None: nothing is saved.
        evaluate_test: evaluate on the test split after training (if the source has one).
            Default True.
        callbacks: extra Keras callbacks.
        on_stage: called with a short description as each stage starts.
        data_dir: TFDS data directory.
        tensorboard_dir: write TensorBoard event files here (`train/` and `validation/`: loss,
            accuracy and learning rate per epoch). Default None: no TensorBoard logs.
        resume: continue an unfinished run found in `output`. Default True; False discards it.
        stop: a `SignalStop` whose signals end training after the current batch.
        strategy: `"auto"`, `"default"`, `"mirrored"` or `"multi-worker"`, or a
            `tf.distribute.Strategy` (see `Trainer`). Default "auto".

    Returns:
        A `TrainResult`.

    Raises:
        ConfigError: on an unknown strategy, or `"multi-worker"` without a valid `TF_CONFIG`.
        ModuleNotFoundError: if `tensorboard_dir` is given and the `tensorboard` package,
            which TensorFlow needs to write summaries, is not installed.
        CheckpointMismatchError: if `output` holds an unfinished run of another config or data.
        NonFiniteLossError: if the loss becomes NaN or infinite.
        TrainingInterrupted: when `stop` received a signal.
        FolderBusyError: if another process is training into `output`.
    """
    # First: a multi-worker strategy must exist before any other TensorFlow operation.
    trainer = Trainer(config, strategy=strategy)
    chief = is_chief(trainer.strategy)
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="imdb-rnn-worker-"))
    # One run at a time writes into `output`: a second would corrupt the first's checkpoint.
    lock = folder_lock(output) if output is not None and chief else contextlib.nullcontext()
    try:
        with lock:
            return _train(
                trainer,
                source=source,
                output=output,
                write_to=(Path(output) if output is not None else None) if chief else scratch,
                evaluate_test=evaluate_test,
                callbacks=callbacks,
                on_stage=on_stage,
                data_dir=data_dir,
                tensorboard_dir=tensorboard_dir if chief or tensorboard_dir is None else scratch,
                resume=resume,
                stop=stop,
            )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _train(
    trainer: Trainer,
    *,
    source: str | os.PathLike[str] | TextFiles | None,
    output: str | os.PathLike[str] | None,
    write_to: Path | None,
    evaluate_test: bool,
    callbacks: Iterable[keras.callbacks.Callback],
    on_stage: StageCallback | None,
    data_dir: str | os.PathLike[str] | None,
    tensorboard_dir: str | os.PathLike[str] | None,
    resume: bool,
    stop: SignalStop | None,
) -> TrainResult:
    """`train`, with the model written to `write_to` (`output`, or a temporary folder on the
    workers of a cluster other than the chief)."""
    config = trainer.config
    chief = is_chief(trainer.strategy)
    stage = on_stage or (lambda name: None)
    callbacks = list(callbacks)
    if tensorboard_dir is not None:
        callbacks.append(tensorboard_callback(tensorboard_dir))
    # Every worker resumes from the chief's checkpoint; only the chief deletes it.
    checkpoint = Checkpoint(Path(output) / CHECKPOINT_DIR) if output is not None else None
    if checkpoint is not None:
        if not resume and chief:
            checkpoint.remove()
        state = checkpoint.read_state() if resume else None
        if state is not None:  # fail before reading the data if the options differ
            checkpoint.check_resumable(state, config)
    stage("Reading data")
    wanted = ["train", "valid", "unsupervised"] + (["test"] if evaluate_test else [])
    if config.data.vocabulary_source == "train":
        wanted.remove("unsupervised")
    if isinstance(source, TextFiles):
        # Own data: the splits it has files for (validation comes from train without one).
        given = {"test": source.test, "unsupervised": source.unlabelled}
        splits = load_text_files(
            source,
            splits=[name for name in wanted if given.get(name, True) is not None],
            valid_fraction=config.data.valid_fraction,
            limit=config.data.limit,
        )
        stage(_read_summary(splits))
    else:
        splits = load_imdb(
            source,
            splits=wanted,
            valid_fraction=config.data.valid_fraction,
            limit=config.data.limit,
            data_dir=data_dir,
            valid_split=config.data.valid_split,
        )
    if splits.bad_rows:
        stage(BadRows(Counter(splits.bad_rows), list(splits.bad_row_examples)).describe())
    if splits.decode_errors:
        stage(
            f"{splits.decode_errors} review files were not valid UTF-8: read with "
            "replacement characters"
        )
    start = time.perf_counter()
    history = trainer.fit(
        splits,
        callbacks=callbacks,
        on_stage=stage,
        checkpoint_dir=checkpoint.directory if checkpoint is not None else None,
        stop=stop,
        resume=resume,
    )
    train_seconds = time.perf_counter() - start
    stage("Evaluating")
    valid = trainer.evaluate(splits["valid"])
    test = trainer.evaluate(splits["test"]) if evaluate_test and splits.test is not None else None
    batch_seconds = sum(trainer.epoch_train_seconds)
    epochs_run = len(history.get("loss", []))
    result = TrainResult(
        output=os.fspath(output) if output is not None and chief else None,
        epochs=epochs_run,
        best_epoch=trainer.best_epoch,
        train_seconds=train_seconds,
        train_examples_per_second=splits.sizes["train"] * epochs_run / batch_seconds
        if batch_seconds
        else 0.0,
        epoch_train_seconds=trainer.epoch_train_seconds,
        history=history,
        valid=valid,
        test=test,
        sizes=dict(splits.sizes),
        decode_errors=splits.decode_errors,
        strategy=strategy_name(trainer.strategy),
        replicas=trainer.replicas,
        global_batch_size=trainer.global_batch_size,
        chief=chief,
        rnn_kernel=rnn_kernel_name(trainer.config.model.cell),
        label_names=list(trainer.label_names),
        source=splits.source,
        bad_rows=dict(splits.bad_rows),
        bytes_read=splits.bytes_read,
        versions=versions(),
    )
    if write_to is not None:
        # The other workers save too (to a temporary folder), as TensorFlow's multi-worker
        # guide prescribes: reading distributed variables may need every worker.
        stage("Saving" if chief else "Saving to a temporary folder (only the chief keeps it)")
        trainer.save(write_to, metrics=result.to_dict())
        from imdb_rnn.card import CARD_FILE, model_card

        name = Path(output).name if output is not None else write_to.name
        write_text(write_to / CARD_FILE, model_card(result.to_dict(), config, name=name))
    if output is not None and chief:
        from imdb_rnn.plots import CURVES_FILE, save_training_curves  # matplotlib: only here

        save_training_curves(
            history,
            Path(output) / CURVES_FILE,
            best_epoch=result.best_epoch,
            title=f"{Path(output).name}: loss and accuracy per epoch",
        )
        if checkpoint is not None:
            checkpoint.remove()  # the saved model supersedes it
    return result


def _read_summary(splits: ImdbSplits) -> str:
    """What was read, in words: sizes, classes and bytes."""
    sizes = ", ".join(f"{name} {count:,}" for name, count in splits.sizes.items())
    size = splits.bytes_read
    read = f"{size / 1e6:,.1f} MB" if size >= 1e5 else f"{size / 1e3:,.1f} kB"
    return (
        f"Read {read}: {sizes}; {len(splits.label_names)} classes "
        f"({', '.join(splits.label_names)})"
    )


def evaluate(
    model_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | TextFiles | None = None,
    split: str = "test",
    limit: int | None = None,
    on_stage: StageCallback | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> EvaluationResult:
    """Evaluates a saved model on the `test` or `valid` split.

    Args:
        model_dir: a model directory written by `train`.
        source: an IMDB source (see `load_imdb`) or a `TextFiles` (its `test` file, or for
            `split="valid"` its `valid` file or the part carved from `train`). Labels must be
            among the model's classes; other rows are bad rows. Default None: `IMDB_RNN_DATA`,
            else TFDS.
        split: `"test"` or `"valid"`. Default "test".
        limit: evaluate on at most this many texts. Default None (all).
        on_stage: called with a short description as each stage starts.
        data_dir: TFDS data directory.

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        DataError: if the data cannot be read.
        ValueError: if `split` is not `test` or `valid`.
    """
    if split not in ("test", "valid"):
        raise ValueError(f"Expected split to be 'test' or 'valid'. Received: split={split!r}")
    stage = on_stage or (lambda name: None)
    prepare_native_kernel(on_stage=stage)
    stage("Loading the model")
    trainer = Trainer.load(model_dir)
    stage("Reading data")
    if isinstance(source, TextFiles):
        splits = load_text_files(
            source,
            splits=[split],
            valid_fraction=trainer.config.data.valid_fraction,
            limit=limit,
            label_names=trainer.label_names,
        )
    else:
        splits = load_imdb(
            source,
            splits=[split],
            valid_fraction=trainer.config.data.valid_fraction,
            limit=limit,
            data_dir=data_dir,
            valid_split=trainer.config.data.valid_split,
        )
    if splits.bad_rows:
        stage(BadRows(Counter(splits.bad_rows), list(splits.bad_row_examples)).describe())
    stage("Evaluating")
    return trainer.evaluate(splits[split], pipeline="sorted")


def label_of(
    probability: float, label_names: Sequence[str] = LABEL_NAMES, *, threshold: float = 0.5
) -> str:
    """The second class (`"pos"`) when its probability is at least `threshold`, else the first
    (`"neg"`)."""
    return label_names[1] if probability >= threshold else label_names[0]


def predict(model_dir: str | os.PathLike[str], texts: Sequence[str]) -> list[dict[str, Any]]:
    """Predicts the sentiment (the class) of each review with a saved model, read from disk
    on every call (`imdb_rnn.load` reads it once and reuses it).

    Returns:
        One dict per review, in order: `text`, `label` and, for two-class models such as
        IMDB's, `probability` (of `"pos"`); for more classes `score` (of `label`) and `scores`
        (every class's). `imdb_rnn.load(model_dir).predict(texts)` gives all of these and the
        known-word count of each text.

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        ValueError: if `texts` is empty.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("No reviews to predict: give at least one text.")
    rows = prediction_rows(Trainer.load(model_dir), texts)
    keys = ("text", "label", "probability") if "probability" in rows[0] else ("text", "label")
    return [{**{key: row[key] for key in keys}, **_class_scores(row)} for row in rows]


def _class_scores(row: dict[str, Any]) -> dict[str, Any]:
    """`score` and `scores` of a row of a model of more than two classes; nothing for two."""
    return {} if "probability" in row else {"score": row["score"], "scores": row["scores"]}


def prediction_rows(
    trainer: Trainer, texts: Sequence[str], *, threshold: float | None = None
) -> list[dict[str, Any]]:
    """One dict per text of `texts`, in order: `text`, `label` (the predicted class), for two
    classes `probability` (of the second class, `"pos"` for IMDB), `score` (the probability of
    `label`), `scores` (every class's probability) and `known_words` (words of the text in the
    vocabulary; 0: the prediction says nothing).

    Args:
        trainer: a trained or loaded `Trainer`.
        texts: the texts.
        threshold: two classes only: the second class is predicted when its probability is at
            least this. Default None: 0.5.

    Raises:
        ValueError: if `threshold` is given for more than two classes or is not in [0, 1].
    """
    names = trainer.label_names
    if threshold is not None:
        if len(names) != 2:
            raise ValueError(
                f"A threshold needs a two-class model; this one has {len(names)} classes. "
                f"Received: threshold={threshold}"
            )
        if not 0 <= threshold <= 1:
            raise ValueError(f"Expected threshold in [0, 1]. Received: threshold={threshold}")
    probabilities = trainer.class_probabilities(texts)
    known = trainer.known_words(texts)
    rows = []
    for text, row, count in zip(texts, probabilities, known, strict=True):
        if len(names) == 2:
            index = names.index(
                label_of(float(row[1]), names, threshold=0.5 if threshold is None else threshold)
            )
            item: dict[str, Any] = {
                "text": text,
                "label": names[index],
                "probability": float(row[1]),
            }
        else:
            index = int(np.argmax(row))
            item = {"text": text, "label": names[index]}
        item["score"] = float(row[index])
        item["scores"] = {name: float(value) for name, value in zip(names, row, strict=True)}
        item["known_words"] = int(count)
        rows.append(item)
    return rows
