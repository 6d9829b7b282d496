"""Trainer: adapt, compile and fit an imdb-rnn model; evaluate, predict, save and load it as the
`Classifier` (`imdb_rnn.inference.classifier`) it extends.

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

import dataclasses
import math
import os
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import RunConfig
from imdb_rnn.data.batching import (
    bucketed_batches,
    plain_batches,
    sorted_window_batches,
    tokenize,
)
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.data.wordvectors import WordVectors, read_word_vectors
from imdb_rnn.devices import prepare_native_kernel, seed_everything
from imdb_rnn.errors import CheckpointMismatchError, ConfigError
from imdb_rnn.files import check_free_space
from imdb_rnn.inference.classifier import Classifier, forward_in_batches
from imdb_rnn.inference.workflows import StageCallback
from imdb_rnn.layers import TextEncoder
from imdb_rnn.models import build_classifier, build_encoder, build_hybrid
from imdb_rnn.ngrams import NgramFeatures, NgramFit, NgramLogits, fit_blend, fit_ngram_logits
from imdb_rnn.pretraining.pretrain import encoder_vocabulary, load_encoder
from imdb_rnn.training.checkpoints import Checkpoint, CheckpointState, data_fingerprint
from imdb_rnn.training.distribute import (
    agree_across_workers,
    is_chief,
    is_distributed,
    is_multi_worker,
    resolve_strategy,
    strategy_name,
    strategy_scope,
)
from imdb_rnn.training.finetune import fine_tuning_optimizer
from imdb_rnn.training.loop import EpochLoop
from imdb_rnn.training.objectives import objective_for
from imdb_rnn.training.selftrain import add_pseudo_labels
from imdb_rnn.training.stopping import SignalStop

__all__ = ["StageCallback", "Trainer", "forward_in_batches"]


def _bytes_needed(classifier: keras.Model) -> int:
    """Disk space a checkpointed run needs, with room to spare."""
    # A checkpoint holds the weights about four times (weights, Adam's two slots, the best
    # weights); two exist while one replaces the other; the saved model and its temporary
    # copy add two more.
    return 4 * classifier.count_params() * 10


# Named, not lambdas: autograph cannot find the source of a lambda that shares its line with
# another one, and warns.
def _ids_only(ids: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return ids


def _label_only(text: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return label


class Trainer(Classifier):
    """Builds and trains one imdb-rnn model; evaluates, predicts and saves it as a `Classifier`.

    Args:
        config: the `RunConfig` to follow.
        encoder: an adapted `TextEncoder` to reuse. Default None: built and adapted by `fit`.
        classifier: a token-id classifier to reuse. Default None: built by `fit`.
        strategy: where to train: `"auto"`, `"default"`, `"mirrored"` or `"multi-worker"`
            (see `training.distribute`), or a `tf.distribute.Strategy`. Each replica trains on
            `data.batch_size` reviews per step. Create a multi-worker trainer (or the strategy)
            before any other TensorFlow operation, such as `load_imdb`. Default "auto": all
            GPUs when there are several, else one device.
        label_names: the classes, in the order of the model's outputs. Two keep the reference
            head (`Dense(1)` logit, binary cross-entropy); more get `Dense(n)` logits and sparse
            categorical cross-entropy. Default None: `("neg", "pos")`, or the training data's
            labels when `fit` builds the model.

    Raises:
        ConfigError: on an unknown strategy, or `"multi-worker"` without a valid `TF_CONFIG`.
        ValueError: if fewer than two label names are given.
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
        # First: a multi-worker strategy must exist before any other TensorFlow operation.
        self.strategy = resolve_strategy(strategy)
        super().__init__(config, encoder=encoder, classifier=classifier, label_names=label_names)
        #: Training-batch time of each epoch of the last `fit` (validation excluded).
        self.epoch_train_seconds: list[float] = []
        self._early_stopping: keras.callbacks.EarlyStopping | None = None
        #: Pre-trained word vectors read for the vocabulary (`model.word_vectors`), or None.
        self.word_vectors: WordVectors | None = None
        #: What fitting the n-gram part found (`model.ngram_buckets`), once `fit` has run.
        self.ngram_fit: NgramFit | None = None
        self._labels_given = label_names is not None
        #: The loss weight of each class in the last `fit` (`training.class_weight`), or None.
        self.class_weights: list[float] | None = None

    @classmethod
    def _restored(
        cls,
        config: RunConfig,
        *,
        encoder: TextEncoder,
        classifier: keras.Model,
        label_names: Sequence[str] | None,
    ) -> Trainer:
        """A loaded model trains (or predicts) on one device."""
        return cls(
            config,
            encoder=encoder,
            classifier=classifier,
            strategy="default",
            label_names=label_names,
        )

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
        data = self.config.data
        encoder = build_encoder(self.config)
        names = {"unsupervised": ["unsupervised"], "train": ["train"]}.get(
            data.vocabulary_source, ["train", "unsupervised"]
        )
        # A data set of one's own may have no unlabelled text: the vocabulary comes from train.
        names = [name for name in names if getattr(splits, name) is not None] or ["train"]
        encoder.adapt(splits.texts(*names))
        self.encoder = self.add_word_vectors(encoder)
        self._text_model = None
        return self.encoder

    def add_word_vectors(self, encoder: TextEncoder) -> TextEncoder:
        """With `model.word_vectors`, reads the vectors of `encoder`'s words and returns an
        encoder whose vocabulary also holds the file's first `model.word_vectors_limit` words
        (`data.wordvectors`); the classifier `build` makes starts from them. Without, returns
        `encoder`.

        Raises:
            WordVectorsError: if the file cannot be read.
        """
        model = self.config.model
        if model.word_vectors is None:
            return encoder
        vectors = read_word_vectors(
            model.word_vectors, encoder.get_vocabulary()[2:], limit=model.word_vectors_limit
        )
        self.word_vectors = vectors
        return build_encoder(self.config, vocabulary=vectors.vocabulary)

    def _vectors(self) -> np.ndarray | None:
        # The matrix read with the vocabulary, or, for an encoder given or restored, the file's
        # vectors of that encoder's words (a resumed run then restores its own weights).
        path = self.config.model.word_vectors
        if path is None:
            return None
        words = self._encoder().get_vocabulary()[2:]
        if self.word_vectors is None or self.word_vectors.vocabulary != words:
            self.word_vectors = read_word_vectors(path, words)
        return self.word_vectors.matrix

    def word_vectors_record(self) -> dict[str, Any] | None:
        """`WordVectors.to_dict` of the vectors the model started from, or None."""
        path = self.config.model.word_vectors
        if path is None or self.word_vectors is None:
            return None
        return self.word_vectors.to_dict(path)

    def build(self, steps_per_epoch: int) -> keras.Model:
        """Builds and compiles the classifier (binary cross-entropy on logits, Adam, accuracy),
        in the strategy's scope."""
        with strategy_scope(self.strategy):
            return self._build(steps_per_epoch)

    def _build(self, steps_per_epoch: int) -> keras.Model:
        if self.classifier is None:
            self.classifier = build_classifier(
                self.config.model, num_classes=self.num_classes, word_vectors=self._vectors()
            )
            self._text_model = None
            if (
                self.config.training.encoder is not None
            ):  # pre-trained (imdb_rnn.pretraining.pretrain)
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
        # Weight averaging (training.ema_momentum): the optimizer keeps the averages; the epoch
        # loop validates and saves with them.
        ema: dict[str, Any] = (
            {"use_ema": True, "ema_momentum": training.ema_momentum}
            if training.ema_momentum
            else {}
        )
        optimizer = keras.optimizers.Adam(
            learning_rate=learning_rate, clipnorm=training.clip_norm, **ema
        )
        if training.layer_lr_decay != 1 or training.unfreeze_epochs:  # imdb_rnn.training.finetune
            optimizer = fine_tuning_optimizer(
                self.classifier,
                learning_rate=learning_rate,
                clip_norm=training.clip_norm,
                layer_lr_decay=training.layer_lr_decay,
                unfreeze_steps=round(steps_per_epoch * training.unfreeze_epochs),
                **ema,
            )
        if self.num_classes == 2:
            loss: keras.losses.Loss = keras.losses.BinaryCrossentropy(from_logits=True)
            accuracy: keras.metrics.Metric = keras.metrics.BinaryAccuracy(
                threshold=0.0, name="accuracy"
            )
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        # The objective (adversarial training ...) is the epoch loop's (`fit_batches`).
        self.classifier.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])
        return self.classifier

    # -- pipelines -----------------------------------------------------------------------------

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
        split = tokenize(dataset, self._encoder())
        common: dict[str, Any] = {
            "batch_size": self.global_batch_size,
            "shuffle_buffer": data.shuffle_buffer,
            "seed": first_seed,
            "epochs": epochs,
        }
        if data.pipeline == "bucketed":
            return bucketed_batches(split, **common)
        crops: dict[str, Any] = {
            "crop_fraction": data.crop_fraction,
            "crop_lengths": data.crop_lengths,
        }
        return sorted_window_batches(split, **common, **crops)

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
        self._size_epochs(splits.sizes["train"], stage)
        training = self.config.training
        if self.classifier is None and not self._labels_given:
            self.label_names = tuple(splits.label_names)
        seed_everything(training.seed)  # Python, NumPy and TensorFlow
        if training.deterministic:
            tf.config.experimental.enable_op_determinism()
        state = checkpoint.read_state() if checkpoint is not None and resume else None
        fingerprint = data_fingerprint(splits) if checkpoint is not None else None
        if checkpoint is not None and state is not None:
            checkpoint.check_resumable(
                state, self.config, train_size=splits.sizes["train"], data=fingerprint
            )
            if self.encoder is None:
                self.encoder = checkpoint.load_encoder(self.config)
        self._prepare_encoder(splits, stage)
        stage("Preparing batches")
        train_batches, valid_batches, steps = self._run_batches(splits, state, checkpoint)
        self.class_weights = self._class_weights(splits["train"])
        prepare_native_kernel(self.config.model.cell, on_stage=stage)
        self.build(steps)
        assert self.classifier is not None
        if writer is not None:
            writer.directory.mkdir(parents=True, exist_ok=True)
            check_free_space(writer.directory, _bytes_needed(self.classifier))
            if state is None:
                writer.save_vocabulary(self._encoder())
        if state is not None:
            stage(f"Resuming from the checkpoint at {state.describe()}")
            if state.step and not state.finished:
                # The batches of the interrupted epoch that the checkpoint covers.
                train_batches = train_batches.skip(state.step)
        if is_distributed(self.strategy):
            stage(
                f"Training on {self.replicas} replica{'s' if self.replicas > 1 else ''} "
                f"({strategy_name(self.strategy)}), {self.global_batch_size} reviews per step"
            )
        else:
            stage("Training")
        self.fit_batches(
            train_batches,
            validation=valid_batches,
            steps_per_epoch=steps,
            train_size=splits.sizes["train"],
            callbacks=callbacks,
            checkpoint=writer,
            stop=stop,
            data=fingerprint,
            resume=state,
            resume_from=checkpoint,
        )
        if self.config.model.ngram_buckets:
            self._fit_ngram_part(splits, stage)
        return self.history

    def _prepare_encoder(self, splits: ImdbSplits, stage: StageCallback) -> None:
        """The vocabulary: the encoder given or restored, else the pre-trained encoder's,
        else adapted on `splits`."""
        if self.encoder is None and self.config.training.encoder is not None:
            stage("Reading the pre-trained encoder")
            self.encoder = encoder_vocabulary(self.config.training.encoder, self.config)
        if self.encoder is None:
            stage("Adapting the vocabulary")
            self.adapt(splits)
            if self.word_vectors is not None and self.config.model.word_vectors is not None:
                stage(self.word_vectors.describe(self.config.model.word_vectors))

    def _run_batches(
        self,
        splits: ImdbSplits,
        state: CheckpointState | None,
        checkpoint: Checkpoint | None,
    ) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
        """`(training batches of the epochs left, validation batches, steps per epoch)`, the
        steps checked against the checkpoint's and agreed by the workers of a cluster.

        Raises:
            CheckpointMismatchError: if the checkpoint has another number of steps per epoch.
            ConfigError: if the workers of a cluster disagree.
        """
        training = self.config.training
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
        return train_batches, valid_batches, steps

    def fit_batches(
        self,
        batches: tf.data.Dataset,
        *,
        validation: tf.data.Dataset,
        steps_per_epoch: int,
        train_size: int,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        checkpoint: Checkpoint | None = None,
        stop: SignalStop | None = None,
        data: dict[str, Any] | None = None,
        resume: CheckpointState | None = None,
        resume_from: Checkpoint | None = None,
    ) -> dict[str, list[float]]:
        """Trains the built model (`build`) on batches made elsewhere, through the one epoch
        loop with the run's objective (`objectives.objective_for`), early stopping
        (`training.early_stopping_patience`, keeping the best epoch's weights) and class
        weights (`class_weights`). `fit` trains through it; so does a plan with batches of its
        own (`imdb_rnn.training.ondisk`).

        Args:
            batches: `(ids, labels)` training batches of every epoch to run, back to back.
            validation: `(ids, labels)` batches, all evaluated after every epoch.
            steps_per_epoch: batches per epoch.
            train_size: texts in the training split (recorded in checkpoints).
            callbacks: extra Keras callbacks.
            checkpoint: where the loop writes checkpoints. Default None: none.
            stop: a `SignalStop` whose signals end training after the current batch.
            data: the training data's fingerprint, recorded in checkpoints. Default None.
            resume: the checkpoint state to continue from. Default None: a fresh run.
            resume_from: the checkpoint `resume` was read from. Default: `checkpoint`.

        Returns:
            The history, also kept in `history` (and each epoch's training time in
            `epoch_train_seconds`).
        """
        if self.classifier is None:
            raise RuntimeError("The model is not built yet: call build() first.")
        training = self.config.training
        self._early_stopping = (
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=training.early_stopping_patience,
                restore_best_weights=True,
            )
            if training.early_stopping_patience
            else None
        )
        loop = EpochLoop(
            self.classifier,
            config=self.config,
            steps_per_epoch=steps_per_epoch,
            train_size=train_size,
            strategy=self.strategy,
            callbacks=callbacks,
            early_stopping=self._early_stopping,
            checkpoint=checkpoint,
            stop=stop,
            data=data,
            class_weights=self.class_weights,
            objective=objective_for(training),
        )
        try:
            self.history = loop.run(
                batches, validation=validation, resume=resume, resume_from=resume_from
            )
        finally:
            self.epoch_train_seconds = loop.epoch_train_seconds
        return self.history

    def _size_epochs(self, train_size: int, stage: StageCallback) -> None:
        """`training.epochs` raised, in the config this trainer runs and saves, to train at least
        `training.min_steps` batches of `global_batch_size` (`TrainingConfig.epochs_for`)."""
        training = self.config.training
        batches = math.ceil(train_size / self.global_batch_size)
        epochs = training.epochs_for(batches)
        if epochs != training.epochs:
            stage(
                f"Training up to {epochs} epochs of {batches:,} batches: at least "
                f"{training.min_steps:,} batches (training.min_steps)"
            )
            self.config = self.config.replace(training={"epochs": epochs})

    def _fit_ngram_part(self, splits: ImdbSplits, stage: StageCallback) -> None:
        """The n-gram part of a hybrid (`model.ngram_buckets`), self-trained on the unlabelled
        texts with `training.ngram_pseudo_label_threshold`."""
        stage("Fitting the n-gram part")
        self.ngram_fit = self.add_ngram_part(splits)
        stage(self.ngram_fit.describe())
        threshold = self.config.training.ngram_pseudo_label_threshold
        if threshold and splits.unsupervised is not None and splits.sizes.get("unsupervised"):
            stage(
                f"Labelling {splits.sizes['unsupervised']:,} unlabelled texts with the "
                "hybrid, for its n-gram part"
            )
            self.ngram_fit = self.self_train_ngram_part(splits, threshold=threshold)
            stage(self.ngram_fit.describe())

    def self_train_ngram_part(self, splits: ImdbSplits, *, threshold: float) -> NgramFit:
        """Self-training of a fitted hybrid's n-gram part
        (`training.ngram_pseudo_label_threshold`): the hybrid labels `splits.unsupervised`, and
        the n-gram part and the blend are fitted again (`add_ngram_part`) with the texts it
        labels with at least `threshold` added to `splits.train`; the recurrent part stays.

        Returns:
            The new `NgramFit`, with `pseudo_labels` saying what was added.
        """
        names = [layer.name for layer in self.classifier.layers] if self.classifier else []
        if "blend" not in names:
            raise RuntimeError("Expected a fitted hybrid: call fit() with model.ngram_buckets.")
        more, added = add_pseudo_labels(
            splits, self, threshold=threshold, seed=self.config.training.seed
        )
        assert self.classifier is not None
        self.classifier = self.classifier.get_layer("recurrent")
        self._text_model = None
        fit = self.add_ngram_part(more)
        record = {"unlabelled": added.unlabelled, "added": added.added, "threshold": threshold}
        return dataclasses.replace(fit, pseudo_labels=record)

    def add_ngram_part(self, splits: ImdbSplits) -> NgramFit:
        """Makes the trained recurrent classifier a hybrid (`model.ngram_buckets`,
        `imdb_rnn.ngrams`): fits the n-gram part on `splits.train`, early stopped on
        `splits.valid`, then the blend of the two parts' logits on `splits.valid`.

        Returns:
            An `NgramFit` saying what each part and the blend reach on validation.
        """
        if self.classifier is None:
            raise RuntimeError("The recurrent part is not trained yet: call fit() first.")
        config = self.config
        encoder = self._encoder()
        units = int(self.classifier.output_shape[-1])
        features = NgramFeatures(
            config.model.max_tokens, config.model.ngram_buckets, name="ngram_features"
        )
        ngram_logits = NgramLogits(features.num_features, units, name="ngram_logits")
        ngram_logits.build()
        train = tokenize(splits["train"], encoder)
        valid = tokenize(splits["valid"], encoder)
        epochs, best_epoch, seen = fit_ngram_logits(
            features,
            ngram_logits,
            (train.ids, train.labels),
            (valid.ids, valid.labels),
            l2=config.training.ngram_l2,
            seed=config.training.seed,
        )
        ngram_logits.trainable = False
        hybrid = build_hybrid(self.classifier, features, ngram_logits)
        batches, labels, _ = self._eval_batches(splits["valid"], self.config.data.pipeline)
        ids = batches.map(_ids_only)
        recurrent = self._logits(ids).reshape(len(labels), -1)
        ngram_part = keras.Model(hybrid.input, hybrid.get_layer("ngram_logits").output)
        ngrams = np.asarray(forward_in_batches(ngram_part, ids)).reshape(len(labels), -1)
        mix, bias = fit_blend(recurrent, ngrams, labels)
        hybrid.get_layer("blend").set_weights([mix, bias])

        def accuracy(logits: np.ndarray) -> float:
            if logits.shape[1] == 1:
                return float(np.mean((logits[:, 0] > 0) == (labels == 1)))
            return float(np.mean(logits.argmax(axis=1) == labels))

        fit = NgramFit(
            epochs=epochs,
            best_epoch=best_epoch,
            valid_accuracy_recurrent=accuracy(recurrent),
            valid_accuracy_ngrams=accuracy(ngrams),
            valid_accuracy=accuracy(mix[0] * recurrent + mix[1] * ngrams + bias),
            mix=(float(mix[0]), float(mix[1])),
            features_seen=seen,
        )
        self.classifier = hybrid
        self._text_model = None
        return fit

    def _class_weights(self, dataset: tf.data.Dataset) -> list[float] | None:
        if self.config.training.class_weight != "balanced":  # no counts needed
            return self.class_weights_from_counts([0] * self.num_classes)
        labels = np.fromiter(dataset.map(_label_only).as_numpy_iterator(), dtype=np.int64)
        counts = np.bincount(labels[labels >= 0], minlength=self.num_classes)
        return self.class_weights_from_counts([int(count) for count in counts])

    def class_weights_from_counts(self, counts: Sequence[int]) -> list[float] | None:
        """Each class's loss weight from `training.class_weight` and the training texts per
        class (in the order of `label_names`): `"balanced"` gives class `c` `texts / (classes x
        texts of c)` (scikit-learn's rule); `"neg=1,pos=9"` names them (unnamed classes weigh
        1); None: no weights.

        Raises:
            ConfigError: if the weights name a class the model does not have.
        """
        spec = self.config.training.class_weight
        if spec is None:
            return None
        if spec != "balanced":
            named = dict(item.split("=") for item in spec.split(","))
            unknown = sorted(set(named) - set(self.label_names))
            if unknown:
                raise ConfigError(
                    f"Expected class_weight to name the classes {list(self.label_names)}. "
                    f"Received: {', '.join(unknown)}"
                )
            return [float(named.get(name, 1.0)) for name in self.label_names]
        total = sum(counts)
        return [total / (self.num_classes * count) if count else 0.0 for count in counts]

    @property
    def best_epoch(self) -> int:
        """1-based epoch whose weights the model holds after `fit`, also for a loaded Trainer
        (from its history and config); 0 before any training."""
        losses = self.history.get("val_loss", [])
        # Early stopping, when configured, restores the weights of the lowest validation loss.
        if self.config.training.early_stopping_patience and losses:
            return int(np.argmin(losses)) + 1
        return len(self.history.get("loss", []))

    # -- inference (`Classifier`'s, on this trainer's devices) ----------------------------------

    def _logits(self, batches: tf.data.Dataset) -> np.ndarray:
        """The classifier's logits on batches of token ids, in order: Keras' predict under a
        strategy of one machine's devices, else `Classifier`'s one traced function."""
        assert self.classifier is not None
        if is_distributed(self.strategy) and not is_multi_worker(self.strategy):
            return np.asarray(self.classifier.predict(batches, verbose=0))
        # On the workers of a cluster, each predicts on its own, on every batch: Keras' predict
        # would share the batches between workers.
        return super()._logits(batches)
