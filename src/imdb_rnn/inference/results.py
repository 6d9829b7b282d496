"""What training and evaluation report: `EvaluationResult` (the metrics of a model on a labelled
split, computed from logits) and `TrainResult` (what `imdb_rnn.train` did; its `to_dict()` is
the JSON that `imdb-rnn train --json` prints and `metrics.json` holds).

Example:

>>> import numpy as np
>>> result = EvaluationResult.from_logits(np.array([2.0, -1.0, 0.5]), np.array([1, 0, 0]), 1.0)
>>> round(result.accuracy, 3), result.confusion
(0.667, [[1, 1], [0, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from imdb_rnn.data.splits import LABEL_NAMES
from imdb_rnn.inference.calibration import (
    average_precision,
    expected_calibration_error,
    macro_roc_auc,
    reliability_bins,
    roc_auc,
)
from imdb_rnn.inference.predictions import class_probabilities

__all__ = ["EvaluationResult", "TrainResult", "per_class_metrics"]


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of a model on a labelled split.

    Attributes:
        loss: mean binary cross-entropy (two classes) or categorical cross-entropy (more).
        accuracy: share of texts whose predicted class is the true one.
        precision, recall, f1: of the positive class (index 1) for two classes, at `threshold`;
            the macro averages over the classes for more.
        confusion: `n x n` counts, rows the true class, columns the predicted class (for two
            classes `[[tn, fp], [fn, tp]]`).
        examples: number of texts.
        seconds: wall time of tokenising and predicting.
        labels: the class names, in the order of the confusion matrix's rows.
        per_class: one `{"label", "precision", "recall", "f1", "support"}` per class.
        macro_f1: the mean of the classes' F1.
        roc_auc: two classes: the area under the ROC curve of the positive class's
            probability; more: the one-vs-rest ROC-AUC averaged over the classes (macro).
            None when a class is absent (two classes).
        pr_auc: two classes: the area under the precision-recall curve of the positive class
            (average precision); None for more classes.
        ece: the expected calibration error of the predicted class's probability (10 bins).
        reliability: the reliability diagram's bins (`calibration.reliability_bins`).
        threshold: two classes: the probability from which the positive class is predicted
            (0.5 unless a tuned one is saved with the model); None for more.
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
    roc_auc: float | None = None
    pr_auc: float | None = None
    ece: float | None = None
    reliability: list[dict[str, Any]] = field(default_factory=list)
    threshold: float | None = None

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
        threshold: float | None = None,
    ) -> EvaluationResult:
        """Computes the metrics from logits and class indices.

        Args:
            logits: one logit per text (two classes: of the class at index 1), or
                `(texts, classes)` logits for more classes.
            labels: the true class index of each text.
            seconds: the time it took, for the speed.
            label_names: the class names. Default `("neg", "pos")`.
            threshold: two classes: predict the positive class from this probability.
                Default None: 0.5 (a positive logit).
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
        probabilities = class_probabilities(logits)
        positive = probabilities[:, 1]
        if threshold is None:
            predicted = (logits > 0).astype(np.int64)
        else:
            predicted = (positive >= threshold).astype(np.int64)
        tp = int(np.sum((predicted == 1) & (labels == 1)))
        tn = int(np.sum((predicted == 0) & (labels == 0)))
        fp = int(np.sum((predicted == 1) & (labels == 0)))
        fn = int(np.sum((predicted == 0) & (labels == 1)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        confusion = [[tn, fp], [fn, tp]]
        per_class = per_class_metrics(confusion, label_names)
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
            roc_auc=roc_auc(positive, labels),
            pr_auc=average_precision(positive, labels),
            ece=expected_calibration_error(probabilities, labels),
            reliability=reliability_bins(probabilities, labels),
            threshold=0.5 if threshold is None else float(threshold),
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
        per_class = per_class_metrics(rows, label_names)
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
            roc_auc=macro_roc_auc(np.exp(log_probabilities), labels),
            ece=expected_calibration_error(np.exp(log_probabilities), labels),
            reliability=reliability_bins(np.exp(log_probabilities), labels),
        )


def per_class_metrics(
    confusion: list[list[int]], label_names: Sequence[str]
) -> list[dict[str, Any]]:
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
        train_seconds: wall time of `fit` in this process (validation included): the saved
            model's training alone, without a self-training teacher's.
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
        preset: the preset the run's config started from.
        tensorboard_logs: the folder of the TensorBoard logs (None without them).
        pseudo_labels: what self-training added to the training split
            (`imdb_rnn.training.selftrain.PseudoLabels.to_dict()`; None without self-training).
        word_vectors: the pre-trained word vectors the model started from
            (`imdb_rnn.data.wordvectors.WordVectors.to_dict()`; None without).
        ngrams: what fitting the n-gram part of a hybrid found (`imdb_rnn.ngrams.NgramFit.
            to_dict()`: each part's and the blend's validation accuracy, the blend's weights);
            None without an n-gram part.
        wall_seconds: wall time of the whole `train` call up to the save: reading the data, a
            self-training teacher, training and evaluating (None where not measured).
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
    preset: str = ""
    tensorboard_logs: str | None = None
    pseudo_labels: dict[str, Any] | None = None
    word_vectors: dict[str, Any] | None = None
    ngrams: dict[str, Any] | None = None
    wall_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["valid"] = self.valid.to_dict() if self.valid else None
        out["test"] = self.test.to_dict() if self.test else None
        return out
