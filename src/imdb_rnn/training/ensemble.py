"""Ensembles of seeds: several classifiers trained alike, their logits averaged in one model.

`training.ensemble_size = N` (`imdb-rnn train --ensemble-size N`) trains N classifiers on the
same data and vocabulary, member `k` with seed `training.seed + k` (its own initial weights,
dropout and batch order), and saves one model whose classifier returns the mean of the
members' logits. The model directory is an ordinary one: `eval`, `predict`, `imdb_rnn.load`,
`--explain` and `export` (SavedModel) take it as they take a single model; training costs N
times as much, and so does prediction.

Members differ only in their seeds, so they make partly different mistakes on small data sets,
where one run's accuracy moves by a point or two from seed to seed; the mean of their logits is
steadier than any one of them (docs/results.md has the TREC measurements).

Example:

>>> import keras
>>> from imdb_rnn.config import ModelConfig
>>> from imdb_rnn.models import build_classifier
>>> config = ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2)
>>> model = average_classifiers([build_classifier(config) for _ in range(3)])
>>> [layer.name for layer in model.layers]
['token_ids', 'member_0', 'member_1', 'member_2', 'mean_logits']
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np

from imdb_rnn.config import RunConfig
from imdb_rnn.data.sources import TextFiles
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.data.tfds import TfdsText
from imdb_rnn.files import folder_lock
from imdb_rnn.inference.results import TrainResult
from imdb_rnn.training.finish import RunData, finish_run, train_result
from imdb_rnn.training.reading import read_training_splits
from imdb_rnn.training.trainer import Trainer

__all__ = ["ENSEMBLE_KEY", "average_classifiers", "train_ensemble"]

#: Key of the members' seeds and validation metrics in `metrics.json`.
ENSEMBLE_KEY = "ensemble"


def average_classifiers(classifiers: Sequence[keras.Model]) -> keras.Model:
    """One classifier whose logits are the mean of `classifiers`' logits.

    Args:
        classifiers: token-id classifiers with the same output shape (as `build_classifier`
            makes them). They are renamed `member_0`, `member_1` ... (a model's layers need
            distinct names) and shared, not copied.

    Returns:
        A `keras.Model` named `classifier`, from token ids to the mean logits.

    Raises:
        ValueError: if fewer than two classifiers are given, or their outputs differ in shape.
    """
    if len(classifiers) < 2:
        raise ValueError(
            f"Expected at least two classifiers. Received: {len(classifiers)} classifier(s)"
        )
    shapes = {tuple(classifier.output_shape) for classifier in classifiers}
    if len(shapes) != 1:
        raise ValueError(f"Expected classifiers of one output shape. Received: {sorted(shapes)}")
    for index, classifier in enumerate(classifiers):
        classifier.name = f"member_{index}"
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    logits = keras.layers.Average(name="mean_logits")(
        [classifier(token_ids) for classifier in classifiers]
    )
    return keras.Model(token_ids, logits, name="classifier")


def train_ensemble(
    config: RunConfig,
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None = None,
    output: str | os.PathLike[str] | None = None,
    evaluate_test: bool = True,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    on_stage: Callable[[str], None] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Trains `training.ensemble_size` classifiers and saves the averaged model (see the
    module's description); what `train` runs when `ensemble_size` is above 1.

    The data is read once and the vocabulary adapted once, for all members. There are no
    checkpoints: an interrupted ensemble starts over.

    Args:
        config: the run configuration; member `k` trains with seed `training.seed + k`.
        source: as for `train`.
        output: model directory to write. Default None: nothing is saved.
        evaluate_test: evaluate the ensemble on the test split (if the source has one).
            Default True.
        callbacks: extra Keras callbacks, given to each member's training.
        on_stage: called with a short description as each stage starts.
        data_dir: TFDS data directory.

    Returns:
        A `TrainResult` of the ensemble: its validation and test metrics; the history,
        epochs and best epoch of the first member; the training time of all members. Each
        member's seed, best epoch and validation accuracy are in `metrics.json` under
        `ensemble`.
    """
    stage = on_stage or (lambda name: None)
    size = config.training.ensemble_size
    lock = folder_lock(output) if output is not None else contextlib.nullcontext()
    with lock:
        splits = read_training_splits(
            source, config, evaluate_test=evaluate_test, data_dir=data_dir, on_stage=stage
        )
        start = time.perf_counter()
        members, member_records = _train_members(config, splits, callbacks=callbacks, stage=stage)
        train_seconds = time.perf_counter() - start
        encoder = members[0].encoder
        first = members[0]
        ensemble = Trainer(
            config,
            encoder=encoder,
            classifier=average_classifiers([member.classifier for member in members]),
            label_names=splits.label_names,
            strategy="default",
        )
        ensemble.history = first.history
        ensemble.word_vectors = first.word_vectors
        stage("Evaluating the ensemble")
        valid = ensemble.evaluate(splits["valid"])
        test = (
            ensemble.evaluate(splits["test"]) if evaluate_test and splits.test is not None else None
        )
        result = train_result(
            ensemble,
            RunData.of(splits),
            valid=valid,
            test=test,
            train_seconds=train_seconds,
            output=output,
            epoch_train_seconds=[s for member in members for s in member.epoch_train_seconds],
            epochs_trained=sum(len(member.history.get("loss", [])) for member in members),
        )
        metrics = {
            **result.to_dict(),
            ENSEMBLE_KEY: {
                "members": member_records,
                "mean_member_valid_accuracy": float(
                    np.mean([record["valid_accuracy"] for record in member_records])
                ),
            },
        }
        return finish_run(
            ensemble,
            result,
            output=output,
            metrics=metrics,
            curves_note=f"(first of {size} members)",
            on_stage=stage,
        )


def _train_members(
    config: RunConfig,
    splits: ImdbSplits,
    *,
    callbacks: Iterable[keras.callbacks.Callback],
    stage: Callable[[str], None],
) -> tuple[list[Trainer], list[dict[str, Any]]]:
    """The members, trained one after the other on the first one's vocabulary, and what each
    reached (its seed, epochs, best epoch, validation accuracy and loss)."""
    size = config.training.ensemble_size
    members: list[Trainer] = []
    member_records: list[dict[str, Any]] = []
    encoder = None
    for index in range(size):
        seed = config.training.seed + index
        stage(f"Training member {index + 1} of {size} (seed {seed})")
        member = Trainer(
            config.replace(training={"seed": seed}),
            encoder=encoder,  # the first member's vocabulary, for all
            label_names=splits.label_names,
            strategy="default",
        )
        if members:  # the first member's word vectors too: the file is read once
            member.word_vectors = members[0].word_vectors
        member.fit(splits, callbacks=callbacks, on_stage=stage)
        encoder = member.encoder
        valid = member.evaluate(splits["valid"])
        member_records.append(
            {
                "seed": seed,
                "best_epoch": member.best_epoch,
                "epochs": len(member.history.get("loss", [])),
                "valid_accuracy": valid.accuracy,
                "valid_loss": valid.loss,
            }
        )
        stage(f"Member {index + 1}: validation accuracy {valid.accuracy:.2%}")
        members.append(member)
    return members, member_records
