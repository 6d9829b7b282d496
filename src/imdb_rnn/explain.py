"""Explanations by occlusion: which words pushed a prediction, and by how much.

For each distinct word of a review, the review is scored again without that word (all its
occurrences removed). The word's weight is how much it moved the probability of a positive
review: `P(pos | review) - P(pos | review without the word)`. A positive weight means the word
pushed the prediction towards positive, a negative one towards negative. This is exact (no
sampling or gradients), works with any model, and costs one prediction per distinct word; all
the variants of all the reviews go through one batched prediction.

A model of more than two classes explains its predicted class: a word's weight is how much it
moved the probability of that class (positive: towards it, negative: away from it).

Words are the tokens the model sees: the review after the model's standardisation (lower-case,
`<br />` and punctuation removed), split on whitespace.

Example (with any trained `Trainer`):

    from imdb_rnn import Trainer
    from imdb_rnn.explain import explain

    (explanation,) = explain(Trainer.load("runs/default"), ["A moving, wonderful film."])
    explanation.weights[0]        # WordWeight(word='wonderful', weight=0.21, count=1)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from imdb_rnn.layers import imdb_standardize
from imdb_rnn.trainer import Trainer, prediction_rows

__all__ = [
    "Explanation",
    "WordWeight",
    "explain",
    "explained_rows",
    "predict_and_explain",
    "words_of",
]


@dataclass(frozen=True)
class WordWeight:
    """How much one word moved a prediction.

    Attributes:
        word: the word, as the model sees it (standardised).
        weight: `P(pos | review) - P(pos | review without the word)`; positive: the word pushed
            towards positive.
        count: occurrences of the word in the review (all were removed together).
    """

    word: str
    weight: float
    count: int


@dataclass(frozen=True)
class Explanation:
    """Why a review got its prediction.

    Attributes:
        text: the review as given.
        probability: probability of a positive review (of the second class), or for more than
            two classes of the predicted class `label`, as the model scores its words.
        words: the review's words as the model sees them, in order.
        weights: one `WordWeight` per distinct word, the largest effect (by absolute weight)
            first.
        label: the class whose probability the weights move (`"pos"` for IMDB; the predicted
            class for more than two classes).
    """

    text: str
    probability: float
    words: list[str]
    weights: list[WordWeight]
    label: str = "pos"

    def weight_of(self, word: str) -> float:
        """Returns the weight of `word` (0.0 if it is not in the review)."""
        return next((item.weight for item in self.weights if item.word == word), 0.0)

    def to_list(self) -> list[dict[str, Any]]:
        """Returns `[{"word", "weight"}, ...]`, largest effect first (JSON-ready)."""
        return [{"word": item.word, "weight": item.weight} for item in self.weights]


def words_of(texts: Sequence[str]) -> list[list[str]]:
    """Returns the words of each review as the model sees them (standardised, then split on
    whitespace exactly as `TextVectorization` splits).

    Example:

    >>> words_of(["A moving, <br />WONDERFUL film!", ""])
    [['a', 'moving', 'wonderful', 'film'], []]
    """
    if not texts:
        return []
    split = tf.strings.split(imdb_standardize(tf.constant(list(texts), dtype=tf.string)))
    return [[word.decode("utf-8", "replace") for word in row] for row in split.to_list()]


def explain(trainer: Trainer, texts: Sequence[str]) -> list[Explanation]:
    """Explains the model's prediction for each review by occluding each distinct word.

    Args:
        trainer: a trained or loaded `Trainer`.
        texts: the reviews.

    Returns:
        One `Explanation` per review, in order.
    """
    texts = list(texts)
    all_words = words_of(texts)
    variants: list[str] = []
    plans: list[tuple[int, list[str], list[int]]] = []  # (first variant, distinct, counts)
    for words in all_words:
        distinct = list(dict.fromkeys(words))
        counts = [words.count(word) for word in distinct]
        plans.append((len(variants), distinct, counts))
        variants.append(" ".join(words))
        variants.extend(" ".join(w for w in words if w != word) for word in distinct)
    classes = trainer.num_classes
    probabilities = trainer.class_probabilities(variants) if variants else np.zeros((0, classes))
    explanations = []
    for text, words, (start, distinct, counts) in zip(texts, all_words, plans, strict=True):
        # Two classes: the probability of the second ("pos"); more: of the predicted class.
        target = 1 if classes == 2 else int(np.argmax(probabilities[start]))
        full = float(probabilities[start, target])
        without = probabilities[start + 1 : start + 1 + len(distinct), target]
        weights = [
            WordWeight(word=word, weight=full - float(p), count=count)
            for word, p, count in zip(distinct, without, counts, strict=True)
        ]
        weights.sort(key=lambda item: -abs(item.weight))  # stable: ties keep text order
        explanations.append(
            Explanation(text, full, words, weights, label=trainer.label_names[target])
        )
    return explanations


def predict_and_explain(
    model_dir: str | os.PathLike[str], texts: Sequence[str]
) -> list[dict[str, Any]]:
    """Like `imdb_rnn.predict`, with an explanation for each review.

    Returns:
        One `{"text", "label", "probability", "explanation"}` dict per review, in order;
        `explanation` is `[{"word", "weight"}, ...]`, largest effect first.

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        ValueError: if `texts` is empty.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("No reviews to explain: give at least one text.")
    return explained_rows(Trainer.load(model_dir), texts)


def explained_rows(
    trainer: Trainer, texts: Sequence[str], *, threshold: float | None = None
) -> list[dict[str, Any]]:
    """`prediction_rows` of `texts`, each with `explanation` (`[{"word", "weight"}, ...]`,
    largest effect first) and `explained` (the class whose probability the weights move: the
    second class for two classes, the predicted class for more)."""
    texts = list(texts)
    return [
        {**row, "explained": explanation.label, "explanation": explanation.to_list()}
        for row, explanation in zip(
            prediction_rows(trainer, texts, threshold=threshold),
            explain(trainer, texts),
            strict=True,
        )
    ]
