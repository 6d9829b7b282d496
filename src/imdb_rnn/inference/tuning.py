"""Tuning a saved model's decision on a labelled split: the two-class threshold that maximises a
metric (`imdb-rnn eval --tune-threshold f1`) and the temperature that calibrates its
probabilities (`eval --calibrate`), saved as `decision.json` in the model directory (see
`imdb_rnn.inference.decision`), with the model card brought up to date.

Tune on the validation split (`split="valid"`) or on a file of your own, never on the test
split you report: a threshold chosen on the test split makes its metrics optimistic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imdb_rnn.data.sources import TextFiles
from imdb_rnn.data.tfds import TfdsText
from imdb_rnn.deploy.card import CARD_FILE, model_card
from imdb_rnn.devices import prepare_native_kernel
from imdb_rnn.files import write_text
from imdb_rnn.inference.calibration import fit_temperature, tune_threshold
from imdb_rnn.inference.classifier import Classifier
from imdb_rnn.inference.decision import Decision, write_decision
from imdb_rnn.inference.predictions import class_probabilities, two_classes
from imdb_rnn.inference.results import EvaluationResult
from imdb_rnn.inference.workflows import StageCallback, read_model_split
from imdb_rnn.modeldir import METRICS_FILE, read_json

__all__ = ["TunedDecision", "tune_decision"]


@dataclass(frozen=True)
class TunedDecision:
    """What `tune_decision` chose and saved.

    Attributes:
        decision: the saved `Decision`.
        before: the metrics on the split with the decision the model had before.
        after: the metrics on the split with the new decision.
        path: the `decision.json` written.
    """

    decision: Decision
    before: EvaluationResult
    after: EvaluationResult
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "path": str(self.path),
        }


def tune_decision(
    model_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None = None,
    split: str = "valid",
    metric: str | None = "accuracy",
    calibrate: bool = False,
    limit: int | None = None,
    on_stage: StageCallback | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> TunedDecision:
    """Chooses a saved model's threshold (and temperature) on a labelled split and saves them.

    Args:
        model_dir: a model directory written by `train`.
        source: the data, as `imdb_rnn.evaluate` takes it. Default None: `IMDB_RNN_DATA`,
            else TFDS.
        split: `"valid"` or `"test"`. Default "valid".
        metric: what the threshold maximises, one of `calibration.THRESHOLD_METRICS`; two
            classes only. None: keep the saved threshold. Default "accuracy".
        calibrate: also fit the temperature that minimises the split's cross-entropy (temperature
            scaling; it changes the probabilities, never the ranking). Default False.
        limit: use at most this many texts. Default None (all).
        on_stage: called with a short description as each stage starts.
        data_dir: TFDS data directory.

    Returns:
        A `TunedDecision`: the decision, and the split's metrics before and after.

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        DataError: if the data cannot be read.
        ValueError: if `split` or `metric` is unknown, `metric` is given for a model of more
            than two classes, or neither `metric` nor `calibrate` is given.
    """
    if split not in ("test", "valid"):
        raise ValueError(f"Expected split to be 'test' or 'valid'. Received: split={split!r}")
    if metric is None and not calibrate:
        raise ValueError("Nothing to tune: give metric= (the threshold) or calibrate=True.")
    stage = on_stage or (lambda name: None)
    prepare_native_kernel(on_stage=stage)
    stage("Loading the model")
    classifier = Classifier.load(model_dir)
    if metric is not None and not two_classes(classifier.label_names):
        raise ValueError(
            f"A threshold needs a two-class model; this one has {classifier.num_classes} classes. "
            f"Received: metric={metric!r}"
        )
    splits = read_model_split(
        classifier, source, split=split, limit=limit, data_dir=data_dir, on_stage=stage
    )
    stage("Predicting")
    logits, labels = classifier.logits_and_labels(splits[split], pipeline="sorted")
    old = classifier.decision
    before = _metrics(logits, labels, classifier, old)
    temperature = fit_temperature(logits, labels) if calibrate else old.temperature
    threshold, value = old.threshold, old.value
    if metric is not None:
        positive = class_probabilities(np.asarray(logits).reshape(-1), temperature=temperature)
        threshold, value = tune_threshold(positive[:, 1], labels, metric)
    decision = Decision(
        threshold=threshold,
        temperature=temperature,
        metric=metric if metric is not None else old.metric,
        split=_split_name(source, split),
        value=value,
    )
    after = _metrics(logits, labels, classifier, decision)
    stage("Saving the decision")
    path = write_decision(model_dir, decision)
    _refresh_card(Path(model_dir), classifier, decision)
    return TunedDecision(decision=decision, before=before, after=after, path=path)


def _metrics(
    logits: np.ndarray, labels: np.ndarray, classifier: Classifier, decision: Decision
) -> EvaluationResult:
    return EvaluationResult.from_logits(
        np.asarray(logits, dtype=np.float64) / decision.temperature,
        labels,
        0.0,
        label_names=classifier.label_names,
        threshold=decision.threshold,
    )


def _split_name(source: Any, split: str) -> str:
    if isinstance(source, TextFiles):
        chosen = source.test if split == "test" else (source.valid or source.train)
        return f"{split} ({Path(chosen).name})" if chosen is not None else split
    return split


def _refresh_card(directory: Path, classifier: Classifier, decision: Decision) -> None:
    """Rewrites the model card with the decision, where the run's metrics.json is there."""
    metrics_path = directory / METRICS_FILE
    if not metrics_path.is_file():
        return
    try:
        result = read_json(metrics_path, what="The metrics file")
    except (ValueError, OSError, RecursionError):
        return
    if isinstance(result, dict):
        card = model_card(result, classifier.config, name=directory.name, decision=decision)
        write_text(directory / CARD_FILE, card)
