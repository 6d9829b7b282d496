"""Ranking and calibration metrics, and the decisions tuned from them (NumPy only).

`roc_auc` and `average_precision` (PR-AUC) say how well scores rank the positive class above
the negative; `macro_roc_auc` is the one-vs-rest mean over classes; `expected_calibration_error`
and `reliability_bins` say whether a probability of 0.8 is right 80 % of the time.
`tune_threshold` chooses the two-class threshold that maximises a metric on a split, and
`fit_temperature` the temperature that makes softmax / sigmoid probabilities calibrated.

Example:

>>> import numpy as np
>>> scores, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
>>> roc_auc(scores, labels)
0.75
>>> round(average_precision(scores, labels), 4)
0.8333
>>> threshold, f1 = tune_threshold(scores, labels, "f1")
>>> threshold, round(f1, 4)
(0.35, 0.8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "THRESHOLD_METRICS",
    "average_precision",
    "expected_calibration_error",
    "fit_temperature",
    "macro_roc_auc",
    "reliability_bins",
    "roc_auc",
    "tune_threshold",
]

#: What `tune_threshold` can maximise.
THRESHOLD_METRICS = ("accuracy", "f1", "balanced_accuracy", "precision", "recall", "youden")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The area under the ROC curve of `scores` for the positive class (`labels == 1`): the
    chance that a random positive scores above a random negative (ties count half). None when
    one class is absent."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) == 1
    count_positive, count_negative = int(positive.sum()), int((~positive).sum())
    if not count_positive or not count_negative:
        return None
    ranks = _average_ranks(scores)
    return float(
        (ranks[positive].sum() - count_positive * (count_positive + 1) / 2)
        / (count_positive * count_negative)
    )


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The area under the precision-recall curve (average precision, as scikit-learn's
    `average_precision_score`). None when there is no positive."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) == 1
    total = int(positive.sum())
    if not total:
        return None
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    # One point per distinct score (ties enter together).
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    true_positives = np.cumsum(positive)[last]
    precision = true_positives / (last + 1)
    recall = true_positives / total
    previous = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - previous) * precision))


def macro_roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """The one-vs-rest ROC-AUC of each class, averaged (classes absent from `labels` are left
    out). None when no class can be scored."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    areas = [
        area
        for index in range(probabilities.shape[1])
        if (area := roc_auc(probabilities[:, index], (labels == index).astype(int))) is not None
    ]
    return float(np.mean(areas)) if areas else None


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10
) -> list[dict[str, Any]]:
    """The reliability diagram's bins: the predicted class's probability (the confidence) in
    `bins` equal-width bins, each with its `count`, mean `confidence` and `accuracy`.

    Args:
        probabilities: `(texts, classes)` probabilities (for two classes `[1 - p, p]`).
        labels: the true class index of each text.
        bins: how many bins over [0, 1]. Default 10.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for number in range(bins):
        inside = index == number
        count = int(inside.sum())
        out.append(
            {
                "low": float(edges[number]),
                "high": float(edges[number + 1]),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return out


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10
) -> float:
    """The expected calibration error: the mean over `reliability_bins` of |accuracy -
    confidence|, weighted by the bins' counts (0 is perfectly calibrated)."""
    rows = reliability_bins(probabilities, labels, bins=bins)
    total = sum(row["count"] for row in rows)
    return float(
        sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in rows if row["count"])
        / max(total, 1)
    )


def tune_threshold(
    scores: np.ndarray, labels: np.ndarray, metric: str = "accuracy"
) -> tuple[float, float]:
    """The threshold on the positive class's probability that maximises `metric` on these
    texts, with the metric's value (ties: the threshold closest to 0.5).

    Args:
        scores: the positive class's probability of each text.
        labels: 0 or 1 for each text.
        metric: one of `THRESHOLD_METRICS`. Default "accuracy".

    Raises:
        ValueError: if `metric` is unknown or there are no texts.
    """
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"Expected metric in {THRESHOLD_METRICS}. Received: metric={metric!r}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) == 1
    if not scores.size:
        raise ValueError("Cannot tune a threshold on no texts.")
    candidates = np.unique(np.r_[scores, 0.5])
    best: tuple[float, float, float] | None = None
    for threshold in candidates:
        predicted = scores >= threshold
        value = _metric(metric, predicted, labels)
        key = (value, -abs(threshold - 0.5))
        if best is None or key > best[:2]:
            best = (value, -abs(threshold - 0.5), float(threshold))
    assert best is not None
    return round(best[2], 6), float(best[0])


def _metric(metric: str, predicted: np.ndarray, labels: np.ndarray) -> float:
    tp = float(np.sum(predicted & labels))
    fp = float(np.sum(predicted & ~labels))
    fn = float(np.sum(~predicted & labels))
    tn = float(np.sum(~predicted & ~labels))
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    if metric == "accuracy":
        return (tp + tn) / labels.size
    if metric == "f1":
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    if metric == "balanced_accuracy":
        return (recall + specificity) / 2
    if metric == "precision":
        return precision
    if metric == "recall":
        return recall
    return recall + specificity - 1  # youden


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, *, bounds: Sequence[float] = (0.05, 20.0)
) -> float:
    """The temperature `T` that minimises the cross-entropy of `logits / T` on these texts
    (Guo et al. 2017): above 1 softens over-confident probabilities, below 1 sharpens them.
    Dividing logits by `T` never changes the predicted class.

    Args:
        logits: one logit per text (two classes) or `(texts, classes)` logits.
        labels: the true class index of each text.
        bounds: the range searched. Default (0.05, 20).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)

    def loss(temperature: float) -> float:
        scaled = logits / temperature
        if scaled.ndim == 1 or scaled.shape[1] == 1:
            scaled = scaled.reshape(-1)
            return float(
                np.mean(np.maximum(scaled, 0) - scaled * labels + np.log1p(np.exp(-abs(scaled))))
            )
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.mean(log_p[np.arange(labels.size), labels]))

    # Golden-section search on log T: the loss is smooth and unimodal in practice.
    low, high = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(math.exp(a)), loss(math.exp(b))
    for _ in range(60):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(math.exp(a))
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(math.exp(b))
    return round(math.exp((low + high) / 2), 4)
