"""Explanations by occlusion: which words pushed a prediction, and by how much.

For each distinct word of a review, the review is scored again without that word (all its
occurrences removed). The word's weight is how much it moved the probability of a positive
review: `P(pos | review) - P(pos | review without the word)`. A positive weight means the word
pushed the prediction towards positive, a negative one towards negative. This is exact (no
sampling or gradients), works with any model, and costs one prediction per distinct word, so at
most `max_words` (default 200) distinct words are explained per review; the variants are scored
in batches of a few hundred.

A model of more than two classes explains its predicted class: a word's weight is how much it
moved the probability of that class (positive: towards it, negative: away from it).

Words are the tokens the model sees: the review after the model's standardisation (lower-case,
`<br />` and punctuation removed), split on whitespace.

Example (with any model directory written by `imdb-rnn train`):

    from imdb_rnn.inference.classifier import Classifier
    from imdb_rnn.inference.explain import explain

    (explanation,) = explain(Classifier.load("runs/default"), ["A moving, wonderful film."])
    explanation.weights[0]        # WordWeight(word='wonderful', weight=0.21, count=1)
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from imdb_rnn.inference.classifier import Classifier
from imdb_rnn.inference.predictions import prediction_rows, two_classes
from imdb_rnn.layers import imdb_standardize

__all__ = [
    "MAX_EXPLAINED_WORDS",
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
        weights: one `WordWeight` per explained distinct word, the largest effect (by
            absolute weight) first.
        unexplained: distinct words left out of `weights` by `explain`'s `max_words`.
        label: the class whose probability the weights move (`"pos"` for IMDB; the predicted
            class for more than two classes).
    """

    text: str
    probability: float
    words: list[str]
    weights: list[WordWeight]
    unexplained: int = 0
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


#: Distinct words explained per review, by default: each costs one prediction of the review.
MAX_EXPLAINED_WORDS = 200
#: Review variants scored per prediction call: bounds the memory of explaining long reviews.
_VARIANTS_PER_BATCH = 256


def explain(
    classifier: Classifier, texts: Sequence[str], *, max_words: int = MAX_EXPLAINED_WORDS
) -> list[Explanation]:
    """Explains the model's prediction for each review by occluding each distinct word.

    The cost is one prediction of the review per explained word, so it is bounded: a review
    with more than `max_words` distinct words has only `max_words` of them explained, those in
    the model's vocabulary first, then the most frequent, then the earliest; the others are
    left out of `weights` (`Explanation.unexplained` counts them). The variants are scored in
    batches of a few hundred.

    Args:
        classifier: a loaded `Classifier`, or a trained `Trainer`.
        texts: the reviews.
        max_words: the most distinct words explained per review. Default 200.

    Returns:
        One `Explanation` per review, in order.

    Raises:
        ValueError: if `max_words` is not a positive integer.
    """
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
        raise ValueError(
            f"Expected max_words to be a positive integer. Received: max_words={max_words!r}"
        )
    texts = list(texts)
    all_words = words_of(texts)
    encoder = classifier.encoder
    vocabulary = set(encoder.get_vocabulary()) if encoder is not None else set()
    variants: list[str] = []
    plans: list[tuple[int, list[str], list[int], int]] = []  # (first variant, words, counts, left)
    for words in all_words:
        counts_of = collections.Counter(words)
        distinct = list(counts_of)  # in order of first occurrence
        chosen = distinct
        if len(distinct) > max_words:
            rank = {word: index for index, word in enumerate(distinct)}
            chosen = sorted(distinct, key=lambda w: (w not in vocabulary, -counts_of[w], rank[w]))[
                :max_words
            ]
            chosen.sort(key=rank.__getitem__)
        plans.append(
            (len(variants), chosen, [counts_of[w] for w in chosen], len(distinct) - len(chosen))
        )
        variants.append(" ".join(words))
        variants.extend(" ".join(w for w in words if w != word) for word in chosen)
    probabilities = _scores(classifier, variants)
    explanations = []
    for text, words, (start, chosen, counts, left) in zip(texts, all_words, plans, strict=True):
        # Two classes: the probability of the second ("pos"); more: of the predicted class.
        target = 1 if two_classes(classifier.label_names) else int(np.argmax(probabilities[start]))
        full = float(probabilities[start, target])
        without = probabilities[start + 1 : start + 1 + len(chosen), target]
        weights = [
            WordWeight(word=word, weight=full - float(p), count=count)
            for word, p, count in zip(chosen, without, counts, strict=True)
        ]
        weights.sort(key=lambda item: -abs(item.weight))  # stable: ties keep text order
        explanations.append(
            Explanation(
                text, full, words, weights, unexplained=left, label=classifier.label_names[target]
            )
        )
    return explanations


def _scores(classifier: Classifier, variants: list[str]) -> np.ndarray:
    """The class probabilities of each variant (`(len(variants), classes)`), a batch of
    `_VARIANTS_PER_BATCH` at a time."""
    if not variants:
        return np.zeros((0, classifier.num_classes))
    parts = [
        classifier.class_probabilities(variants[start : start + _VARIANTS_PER_BATCH])
        for start in range(0, len(variants), _VARIANTS_PER_BATCH)
    ]
    return np.concatenate(parts)


def predict_and_explain(
    model_dir: str | os.PathLike[str], texts: Sequence[str]
) -> list[dict[str, Any]]:
    """Like `imdb_rnn.predict`, with an explanation for each review.

    Returns:
        One `{"text", "label", "probability", "explained", "explanation", "unexplained"}`
        dict per review, in order (see `explained_rows`): `explanation` is
        `[{"word", "weight"}, ...]`, largest effect first, and `unexplained` counts the distinct
        words left out (see `explain`).

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        ValueError: if `texts` is empty.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("No reviews to explain: give at least one text.")
    return explained_rows(Classifier.load(model_dir), texts)


def explained_rows(
    classifier: Classifier, texts: Sequence[str], *, threshold: float | None = None
) -> list[dict[str, Any]]:
    """`prediction_rows` of `texts`, each with `explanation` (`[{"word", "weight"}, ...]`,
    largest effect first) and `explained` (the class whose probability the weights move: the
    second class for two classes, the predicted class for more). For a hybrid model, `parts`
    says which part moved the answer: `{"recurrent": x, "ngrams": y}`, what each part adds to
    the logit of the explained class (`Classifier.part_logits`)."""
    texts = list(texts)
    rows = [
        {
            **row,
            "explained": explanation.label,
            "explanation": explanation.to_list(),
            "unexplained": explanation.unexplained,
        }
        for row, explanation in zip(
            prediction_rows(classifier, texts, threshold=threshold),
            explain(classifier, texts),
            strict=True,
        )
    ]
    parts = classifier.part_logits(texts)
    if parts is not None:
        for index, row in enumerate(rows):
            column = list(classifier.label_names).index(row["explained"])
            row["parts"] = {
                name: round(float(logits[index] if logits.ndim == 1 else logits[index, column]), 4)
                for name, logits in parts.items()
            }
    return rows
