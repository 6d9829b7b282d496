"""The one-call inference workflows, as the CLI runs them: `evaluate` and `predict`.

Each loads a saved model as a `Classifier` (no training code) and is one typed function with
keyword-only options; `imdb-rnn eval | predict` parse their options, call it and render its
result. `imdb_rnn.training.workflows.train` is the training one.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from imdb_rnn.data.reading import read_splits
from imdb_rnn.data.sources import BadRows, TextFiles
from imdb_rnn.data.splits import LABEL_NAMES, ImdbSplits
from imdb_rnn.data.tfds import TfdsText
from imdb_rnn.devices import prepare_native_kernel
from imdb_rnn.errors import DataError, ValidationOverlapWarning
from imdb_rnn.inference.classifier import Classifier
from imdb_rnn.inference.predictions import predictions
from imdb_rnn.inference.results import EvaluationResult

__all__ = ["StageCallback", "evaluate", "predict"]

#: Reports a stage of a long operation ("Reading data", "Adapting vocabulary" ...).
StageCallback = Callable[[str], None]


def read_model_split(
    classifier: Classifier,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    *,
    split: str,
    limit: int | None,
    data_dir: str | os.PathLike[str] | None,
    on_stage: StageCallback,
) -> ImdbSplits:
    """The labelled `split` of `source`, read with the model's config and classes, the bad rows
    it skipped said in a stage (what `evaluate` and the threshold tuning score on)."""
    on_stage("Reading data")
    splits = read_splits(
        source,
        classifier.config,
        splits=[split],
        limit=limit,
        data_dir=data_dir,
        label_names=classifier.label_names,
    )
    if splits.bad_rows:
        on_stage(BadRows(Counter(splits.bad_rows), list(splits.bad_row_examples)).describe())
    return splits


def evaluate(
    model_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None = None,
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
            among the model's classes; other rows are bad rows. Or a `TfdsText` (its classes
            must be the model's). Default None: `IMDB_RNN_DATA`, else TFDS.
        split: `"test"` or `"valid"`. Default "test".
        limit: evaluate on at most this many texts. Default None (all).
        on_stage: called with a short description as each stage starts.
        data_dir: TFDS data directory.

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        DataError: if the data cannot be read, or is IMDB's and the model has other classes.
        ValueError: if `split` is not `test` or `valid`.

    Warns:
        ValidationOverlapWarning: for `split="valid"` on a model trained with `data.limit`
            (`train --limit N`), evaluated without the same `limit`.
    """
    if split not in ("test", "valid"):
        raise ValueError(f"Expected split to be 'test' or 'valid'. Received: split={split!r}")
    stage = on_stage or (lambda name: None)
    prepare_native_kernel(on_stage=stage)
    stage("Loading the model")
    classifier = Classifier.load(model_dir)
    if not isinstance(source, (TextFiles, TfdsText)) and classifier.label_names != LABEL_NAMES:
        raise DataError(
            f"{model_dir} classifies {', '.join(classifier.label_names)}, not IMDB's "
            f"{', '.join(LABEL_NAMES)}: evaluate it on data with its classes (TextFiles(test=PATH)"
            " or a TFDS set)."
        )
    trained_limit = classifier.config.data.limit
    if split == "valid" and trained_limit is not None and limit != trained_limit:
        warnings.warn(
            f"{model_dir} was trained with limit={trained_limit}: its training texts overlap "
            "the full validation split, whose scores then read high. Evaluate with "
            f"limit={trained_limit} (its own validation texts) or on the test split.",
            ValidationOverlapWarning,
            stacklevel=2,
        )
    splits = read_model_split(
        classifier, source, split=split, limit=limit, data_dir=data_dir, on_stage=stage
    )
    stage("Evaluating")
    result = classifier.evaluate(splits[split], pipeline="sorted")
    rows = zip(result.labels, result.confusion, strict=True)
    present = [label for label, counts in rows if sum(counts)]
    if len(present) == 1:
        stage(
            f"Warning: the {split} split holds texts of one class only ({present[0]}): its "
            "accuracy says how often the model predicts that class, not how well it tells classes "
            "apart"
        )
    return result


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
    classifier = Classifier.load(model_dir)
    rows = predictions(classifier, texts, threshold=classifier.decision.threshold)
    return [row.to_brief_dict() for row in rows]
