"""A saved model, loaded once, as a callable for Python users (the Hugging Face pipeline shape).

Example (with any model directory written by `imdb-rnn train`):

    import imdb_rnn

    classify = imdb_rnn.load("runs/trec")
    classify(["Who wrote Hamlet ?"])           # [{'label': 'HUM', 'score': 0.97}]
    classify.predict_proba(["Who wrote Hamlet ?"])   # array of shape (1, 6)
    classify.labels                            # ('ABBR', 'DESC', 'ENTY', 'HUM', 'LOC', 'NUM')

The model is read from disk once, by `load`; every call reuses it (`imdb_rnn.predict` reads the
model again on every call).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from imdb_rnn.inference.classifier import Classifier
from imdb_rnn.inference.predictions import Prediction, check_threshold, predictions

__all__ = ["Predictor", "load"]


class Predictor:
    """Classifies texts with a loaded model.

    Args:
        classifier: a loaded `Classifier` (`Classifier.load`), or a trained `Trainer`.
        threshold: two-class models only: the second class (`"pos"` for IMDB) is predicted when
            its probability is at least this. Default None: the threshold saved with the model
            (`imdb-rnn eval --tune-threshold`, `decision.json`), else 0.5.

    Raises:
        ValueError: if `threshold` is given for a model of more than two classes, or is not in
            [0, 1].
    """

    def __init__(self, classifier: Classifier, *, threshold: float | None = None) -> None:
        self.classifier = classifier
        if threshold is None:
            threshold = classifier.decision.threshold
        check_threshold(threshold, classifier.label_names)
        self.threshold = threshold

    @property
    def trainer(self) -> Classifier:
        """The loaded model: `classifier`, under its earlier name."""
        return self.classifier

    @property
    def labels(self) -> tuple[str, ...]:
        """The classes, in the order of `predict_proba`'s columns."""
        return self.classifier.label_names

    def __call__(self, texts: str | Sequence[str]) -> list[dict[str, Any]]:
        """Returns `[{"label", "score"}]`, one per text, in order; `score` is the probability
        of `label`. A single string is classified as a list of one.

        Raises:
            ValueError: if a text is not a string.
        """
        return [{"label": row.label, "score": row.score} for row in self.predictions(texts)]

    def predict(self, texts: str | Sequence[str]) -> list[dict[str, Any]]:
        """Like calling the predictor, with more per text: `text`, `label`, `score`, `scores`
        (every class's probability), `known_words` (words of the text in the vocabulary; 0: the
        prediction says nothing about the text) and, for two classes, `probability` (of the
        second class): `Prediction.to_dict` of each of `predictions`."""
        return [row.to_dict() for row in self.predictions(texts)]

    def predictions(self, texts: str | Sequence[str]) -> list[Prediction]:
        """One typed `Prediction` per text, in order (see `predict` for what each holds)."""
        return predictions(self.classifier, _texts(texts), threshold=self.threshold)

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Returns `(texts, classes)` probabilities, columns in the order of `labels` (for two
        classes `[1 - p, p]`, as scikit-learn's `predict_proba`)."""
        return self.classifier.class_probabilities(_texts(texts))

    def known_words(self, texts: str | Sequence[str]) -> np.ndarray:
        """Returns how many words of each text the model knows (are in its vocabulary)."""
        return self.classifier.known_words(_texts(texts))

    def predict_file(
        self,
        source: str | os.PathLike[str],
        destination: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> int:
        """Classifies every row of a file into `destination`, one output row per input row, in
        order, with the input's columns: see `inference.batch.predict_file` (its options)."""
        from imdb_rnn.inference.batch import predict_file

        return predict_file(self, source, destination, **options)

    def __repr__(self) -> str:
        return f"Predictor(labels={list(self.labels)})"


def _texts(texts: str | Sequence[str]) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise ValueError(
                f"Expected texts to be strings. Received: {type(text).__name__} at {position}"
            )
    return items


def load(directory: str | os.PathLike[str], *, threshold: float | None = None) -> Predictor:
    """Loads a model directory written by `imdb-rnn train` (or `imdb_rnn.train`) once, as a
    `Predictor`.

    Args:
        directory: the model directory, or the name of a model packaged by `imdb-rnn package`
            and installed with pip.
        threshold: see `Predictor`. Default None: the saved threshold, else 0.5.

    Returns:
        A `Predictor`: call it on a list of strings for `[{"label", "score"}]`.

    Raises:
        ModelFileError: if the directory cannot be loaded.
    """
    return Predictor(Classifier.load(directory), threshold=threshold)
