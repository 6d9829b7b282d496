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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from imdb_rnn.config import RunConfig
from imdb_rnn.data.sources import BadRows, TextFiles
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.data.tfds import TfdsText

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


def _load(source: Any, config: RunConfig, *, evaluate_test: bool, data_dir: Any) -> ImdbSplits:
    """The splits `train` would read from `source`."""
    from imdb_rnn.training.workflows import read_splits, training_splits

    return read_splits(
        source,
        config,
        splits=training_splits(config, source, evaluate_test=evaluate_test),
        limit=config.data.limit,
        data_dir=data_dir,
    )


def train_ensemble(
    config: RunConfig,
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None = None,
    output: str | os.PathLike[str] | None = None,
    evaluate_test: bool = True,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    on_stage: Callable[[str], None] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Any:
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
    from imdb_rnn.devices import rnn_kernel_name
    from imdb_rnn.files import folder_lock, write_text
    from imdb_rnn.inference.results import TrainResult
    from imdb_rnn.modeldir import versions
    from imdb_rnn.training.trainer import Trainer

    stage = on_stage or (lambda name: None)
    size = config.training.ensemble_size
    lock = folder_lock(output) if output is not None else contextlib.nullcontext()
    with lock:
        stage("Reading data")
        splits = _load(source, config, evaluate_test=evaluate_test, data_dir=data_dir)
        if splits.bad_rows:
            stage(BadRows(Counter(splits.bad_rows), list(splits.bad_row_examples)).describe())
        members: list[Trainer] = []
        member_records: list[dict[str, Any]] = []
        encoder = None
        start = time.perf_counter()
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
        train_seconds = time.perf_counter() - start
        first = members[0]
        assert encoder is not None
        ensemble = Trainer(
            config,
            encoder=encoder,
            classifier=average_classifiers([member.classifier for member in members]),
            label_names=splits.label_names,
            strategy="default",
        )
        ensemble.history = first.history
        stage("Evaluating the ensemble")
        valid = ensemble.evaluate(splits["valid"])
        test = (
            ensemble.evaluate(splits["test"]) if evaluate_test and splits.test is not None else None
        )
        epoch_seconds = [s for member in members for s in member.epoch_train_seconds]
        epochs_run = sum(len(member.history.get("loss", [])) for member in members)
        result = TrainResult(
            output=os.fspath(output) if output is not None else None,
            epochs=len(first.history.get("loss", [])),
            best_epoch=first.best_epoch,
            train_seconds=train_seconds,
            train_examples_per_second=splits.sizes["train"] * epochs_run / sum(epoch_seconds)
            if sum(epoch_seconds)
            else 0.0,
            epoch_train_seconds=epoch_seconds,
            history=first.history,
            valid=valid,
            test=test,
            sizes=dict(splits.sizes),
            decode_errors=splits.decode_errors,
            rnn_kernel=rnn_kernel_name(config.model.cell),
            label_names=list(splits.label_names),
            source=splits.source,
            bad_rows=dict(splits.bad_rows),
            word_vectors=first.word_vectors_record(),
            bytes_read=splits.bytes_read,
            versions=versions(),
            preset=config.preset,
        )
        if output is not None:
            from imdb_rnn.deploy.card import CARD_FILE, model_card
            from imdb_rnn.deploy.plots import CURVES_FILE, save_training_curves

            stage("Saving")
            metrics = {
                **result.to_dict(),
                ENSEMBLE_KEY: {
                    "members": member_records,
                    "mean_member_valid_accuracy": float(
                        np.mean([record["valid_accuracy"] for record in member_records])
                    ),
                },
            }
            ensemble.save(output, metrics=metrics)
            name = Path(output).name
            write_text(Path(output) / CARD_FILE, model_card(result.to_dict(), config, name=name))
            save_training_curves(
                first.history,
                Path(output) / CURVES_FILE,
                best_epoch=first.best_epoch,
                title=f"{name}: loss and accuracy per epoch (first of {size} members)",
                classes=len(result.label_names),
            )
    return result
