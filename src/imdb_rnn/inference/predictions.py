"""Typed predictions: the one probability function, the one rule for "two classes", and the
`Prediction` row that `imdb-rnn predict`, the Python `Predictor` and the server all return.

A model of two classes has one logit per text (of the second class, `"pos"` for IMDB): its
probability is the logit's sigmoid and the second class is predicted from a threshold (0.5
unless one was tuned). A model of more classes has one logit per class: softmax, and the most
probable class is predicted.

Example:

>>> import numpy as np
>>> class_probabilities(np.array([0.0, 2.0]), temperature=2.0).round(3).tolist()
[[0.5, 0.5], [0.269, 0.731]]
>>> row = prediction_of("a fine film", np.array([0.2, 0.8]), ("neg", "pos"), known_words=3)
>>> row.label, row.probability
('pos', 0.8)
>>> row.to_brief_dict()
{'text': 'a fine film', 'label': 'pos', 'probability': 0.8}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# No TensorFlow here: the server imports this module before it loads a model.
if TYPE_CHECKING:
    from imdb_rnn.inference.classifier import Classifier

__all__ = [
    "Prediction",
    "check_threshold",
    "class_probabilities",
    "label_of",
    "predicted_indices",
    "prediction_of",
    "prediction_rows",
    "predictions",
    "two_classes",
]


def two_classes(label_names: Sequence[str]) -> bool:
    """Whether a model of these classes is a two-class one (one logit, a threshold, a
    `probability` of the second class), rather than one of more classes (a logit each)."""
    return len(label_names) == 2


def class_probabilities(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """`(texts, classes)` probabilities from a model's logits, divided by `temperature` (the
    saved decision's) first: for two classes `[1 - p, p]` with `p` the sigmoid of the one
    logit, for more the softmax of each row.

    Args:
        logits: `[texts]` (two classes: the logit of the second) or `[texts, classes]`.
        temperature: what the logits are divided by. Default 1.0.
    """
    logits = np.asarray(logits).astype(np.float64) / temperature
    if logits.ndim == 1:
        positive = 1.0 / (1.0 + np.exp(-logits))
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predicted_indices(probabilities: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
    """The predicted class of each row of `(texts, classes)` probabilities: for two classes the
    second when its probability is at least `threshold` (as `label_of`; None: 0.5), else the
    most probable."""
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)
    return np.argmax(probabilities, axis=1)


def label_of(
    probability: float, label_names: Sequence[str] | None = None, *, threshold: float = 0.5
) -> str:
    """The second class (`"pos"`) when its probability is at least `threshold`, else the first
    (`"neg"`); `label_names` default None: IMDB's `("neg", "pos")`."""
    if label_names is None:
        from imdb_rnn.data.splits import LABEL_NAMES

        label_names = LABEL_NAMES
    return label_names[1] if probability >= threshold else label_names[0]


def check_threshold(threshold: float | None, label_names: Sequence[str]) -> None:
    """Checks a decision threshold for a model of these classes (None: nothing to check).

    Raises:
        ValueError: if `threshold` is given for more than two classes or is not in [0, 1].
    """
    if threshold is None:
        return
    if not two_classes(label_names):
        raise ValueError(
            f"A threshold needs a two-class model; this one has {len(label_names)} classes. "
            f"Received: threshold={threshold}"
        )
    if not 0 <= threshold <= 1:
        raise ValueError(f"Expected threshold in [0, 1]. Received: threshold={threshold}")


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one text.

    Attributes:
        text: the text, as given.
        label: the predicted class.
        score: the probability of `label`.
        scores: every class's probability, in the model's order of classes.
        known_words: words of the text in the model's vocabulary (0: the prediction says
            nothing about the text).
        probability: two-class models only: the probability of the second class (`"pos"` for
            IMDB); None for more classes.
    """

    text: str
    label: str
    score: float
    scores: Mapping[str, float]
    known_words: int
    probability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON row of `imdb-rnn predict --json` and `Predictor.predict`: `text`, `label`,
        `probability` (two classes only), `score`, `scores` and `known_words`."""
        row: dict[str, Any] = {"text": self.text, "label": self.label}
        if self.probability is not None:
            row["probability"] = self.probability
        row["score"] = self.score
        row["scores"] = dict(self.scores)
        row["known_words"] = self.known_words
        return row

    def to_brief_dict(self) -> dict[str, Any]:
        """The row `imdb_rnn.predict` returns: `text`, `label` and `probability` for two
        classes; `text`, `label`, `score` and `scores` for more."""
        if self.probability is not None:
            return {"text": self.text, "label": self.label, "probability": self.probability}
        return {
            "text": self.text,
            "label": self.label,
            "score": self.score,
            "scores": dict(self.scores),
        }


def prediction_of(
    text: str,
    probabilities: np.ndarray,
    label_names: Sequence[str],
    *,
    threshold: float | None = None,
    known_words: int = 0,
) -> Prediction:
    """The `Prediction` for one text from its row of class probabilities (see
    `class_probabilities`) and, for two classes, the decision `threshold` (None: 0.5)."""
    (index,) = predicted_indices(probabilities[np.newaxis], threshold=threshold)
    return Prediction(
        text=text,
        label=label_names[int(index)],
        score=float(probabilities[index]),
        scores={name: float(value) for name, value in zip(label_names, probabilities, strict=True)},
        known_words=int(known_words),
        probability=float(probabilities[1]) if two_classes(label_names) else None,
    )


def predictions(
    classifier: Classifier, texts: Sequence[str], *, threshold: float | None = None
) -> list[Prediction]:
    """One `Prediction` per text of `texts`, in order.

    Args:
        classifier: a trained or loaded `Classifier` (a `Trainer` is one).
        texts: the texts.
        threshold: two classes only: the second class is predicted when its probability is at
            least this. Default None: 0.5.

    Raises:
        ValueError: if `threshold` is given for more than two classes or is not in [0, 1].
    """
    names = classifier.label_names
    check_threshold(threshold, names)
    probabilities = classifier.class_probabilities(texts)
    known = classifier.known_words(texts)
    return [
        prediction_of(text, row, names, threshold=threshold, known_words=count)
        for text, row, count in zip(texts, probabilities, known, strict=True)
    ]


def prediction_rows(
    classifier: Classifier, texts: Sequence[str], *, threshold: float | None = None
) -> list[dict[str, Any]]:
    """`Prediction.to_dict` of each of `predictions(classifier, texts, threshold=threshold)`:
    one dict per text, in order, with `text`, `label`, `probability` (two classes only),
    `score`, `scores` and `known_words`.

    Raises:
        ValueError: if `threshold` is given for more than two classes or is not in [0, 1].
    """
    return [row.to_dict() for row in predictions(classifier, texts, threshold=threshold)]
