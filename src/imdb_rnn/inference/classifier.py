"""A trained classifier for inference: load a model directory, then evaluate and predict.

`Classifier` holds what a saved model is (the text encoder, the token-id classifier, the run's
config, the class names and the saved decision) and everything that uses it without training:
logits in length-sorted batches through one traced function, probabilities, evaluation,
`part_logits` of a hybrid, saving. Predict, evaluate, serve, export, TFLite, explain, info and
tuning load one; `Trainer` (`imdb_rnn.training.trainer`) is one that can also train. Nothing
here imports the training code.

Example (with any model directory written by `imdb-rnn train`):

    from imdb_rnn.inference.classifier import Classifier

    classifier = Classifier.load("runs/default")
    classifier.predict_proba(["A moving, wonderful film."])   # array([0.97])
    classifier.evaluate(test_split).accuracy
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import RunConfig
from imdb_rnn.config.toml import CONFIG_TOML_FILE, config_to_toml
from imdb_rnn.data.batching import length_sorted_batches, plain_batches, tokenize
from imdb_rnn.data.splits import LABEL_NAMES
from imdb_rnn.errors import ConfigError, InputError, ModelFileError
from imdb_rnn.files import remove_temporaries, write_json, write_text
from imdb_rnn.inference.decision import Decision, read_decision
from imdb_rnn.inference.predictions import class_probabilities, two_classes
from imdb_rnn.inference.results import EvaluationResult
from imdb_rnn.layers import TextEncoder
from imdb_rnn.modeldir import (
    CONFIG_FILE,
    HISTORY_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    read_json,
    read_labels,
)
from imdb_rnn.models import build_text_model, load_text_model, save_text_model, split_text_model

__all__ = ["Classifier", "forward_in_batches"]

_Loaded = TypeVar("_Loaded", bound="Classifier")


# Named, not lambdas: autograph cannot find the source of a lambda that shares its line with
# another one, and warns.
def _ids_only(ids: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return ids


def _label_only(text: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return label


def forward_in_batches(model: keras.Model, batches: tf.data.Dataset) -> Any:
    """`model`'s outputs (in inference mode) on batches of token ids, concatenated in order: a
    NumPy array, or a list of them for a model of several outputs. One trace serves every shape
    of batch."""
    forward = tf.function(
        lambda ids: model(ids, training=False),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
    )
    parts = [tf.nest.map_structure(lambda t: t.numpy(), forward(ids)) for ids in batches]
    if not parts:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    if isinstance(parts[0], (list, tuple)):
        return [np.concatenate(column) for column in zip(*parts, strict=True)]
    return np.concatenate(parts)


class Classifier:
    """A trained imdb-rnn model: evaluates, predicts and saves.

    Args:
        config: the `RunConfig` the model was trained with (its batch sizes and pipeline are
            used here).
        encoder: the adapted `TextEncoder` (strings to token ids). Default None: not built yet.
        classifier: the token-id Keras classifier (token ids to logits). Default None: not
            built yet.
        label_names: the classes, in the order of the model's outputs (two: one logit, of the
            second class; more: one logit per class). Default None: `("neg", "pos")`.

    Raises:
        ValueError: if fewer than two label names are given.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        encoder: TextEncoder | None = None,
        classifier: keras.Model | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        self.config = config
        self.encoder = encoder
        self.classifier = classifier
        self.history: dict[str, list[float]] = {}
        self._text_model: keras.Model | None = None
        self.label_names: tuple[str, ...] = tuple(label_names or LABEL_NAMES)
        #: The saved decision (`decision.json`: tuned threshold, temperature) of a loaded model.
        self.decision = Decision()
        if len(self.label_names) < 2:
            raise ValueError(
                f"Expected at least two label names. Received: label_names={label_names!r}"
            )

    @classmethod
    def from_text_model(
        cls: type[_Loaded],
        model: keras.Model,
        config: RunConfig,
        *,
        label_names: Sequence[str] | None = None,
    ) -> _Loaded:
        """A classifier of a trained text model (`models.build_text_model`: strings to logits).

        Raises:
            ModelFileError: if `model` is not an encoder followed by a classifier.
        """
        encoder, classifier = split_text_model(model)
        loaded = cls._restored(
            config, encoder=encoder, classifier=classifier, label_names=label_names
        )
        loaded._text_model = model
        return loaded

    @classmethod
    def _restored(
        cls: type[_Loaded],
        config: RunConfig,
        *,
        encoder: TextEncoder,
        classifier: keras.Model,
        label_names: Sequence[str] | None,
    ) -> _Loaded:
        """An instance around a saved model's parts (`Trainer` puts it on one device)."""
        return cls(config, encoder=encoder, classifier=classifier, label_names=label_names)

    @property
    def num_classes(self) -> int:
        """Number of classes (two: one logit; more: one logit per class)."""
        return len(self.label_names)

    @property
    def text_model(self) -> keras.Model:
        """The end-to-end model: raw strings `(batch,)` -> logits `(batch, 1)` (two classes) or
        `(batch, classes)`."""
        if self.encoder is None or self.classifier is None:
            raise RuntimeError("The model is not built yet: call fit() or Trainer.load() first.")
        if self._text_model is None:
            self._text_model = build_text_model(self.encoder, self.classifier)
        return self._text_model

    def _encoder(self) -> TextEncoder:
        if self.encoder is None:
            raise RuntimeError("The encoder is not adapted yet: call fit() or adapt() first.")
        return self.encoder

    def _check_built(self) -> None:
        if self.classifier is None:
            raise RuntimeError("The model is not built yet: call fit() or Trainer.load() first.")

    # -- batches and logits --------------------------------------------------------------------

    def _eval_batches(
        self, dataset: tf.data.Dataset, pipeline: str
    ) -> tuple[tf.data.Dataset, np.ndarray, np.ndarray | None]:
        """Returns `(batches of (ids, labels), labels in batch order, order or None)`."""
        data = self.config.data
        if pipeline == "plain":
            batches = plain_batches(
                dataset, self._encoder(), batch_size=data.batch_size, shuffle_buffer=None
            )
            labels = np.fromiter(dataset.map(_label_only).as_numpy_iterator(), dtype=np.int32)
            return batches, labels, None
        split = tokenize(dataset, self._encoder(), batch_size=max(data.eval_batch_size, 1024))
        batches, order = length_sorted_batches(split, batch_size=data.eval_batch_size)
        return batches, split.labels[order], order

    def _logits(self, batches: tf.data.Dataset) -> np.ndarray:
        """The classifier's logits on batches of token ids, in order."""
        assert self.classifier is not None
        # One trace for every batch shape (Keras' predict retraces, and says so, as lengths and
        # batch sizes vary).
        return forward_in_batches(self.classifier, batches)

    def evaluate(
        self, dataset: tf.data.Dataset, *, pipeline: str | None = None
    ) -> EvaluationResult:
        """Evaluates on an unbatched `(text, label)` split.

        Args:
            dataset: labelled reviews.
            pipeline: `"plain"` (the reference pipeline), or `"sorted"` / `"bucketed"` (both:
                tokenise once, batch in order of length). Default: the config's pipeline.
        """
        self._check_built()
        start = time.perf_counter()
        logits, labels = self.logits_and_labels(dataset, pipeline=pipeline)
        return EvaluationResult.from_logits(
            logits / self.decision.temperature,
            labels,
            time.perf_counter() - start,
            label_names=self.label_names,
            threshold=self.decision.threshold,
        )

    def logits_and_labels(
        self, dataset: tf.data.Dataset, *, pipeline: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The raw logits (no temperature) and the labels of an unbatched `(text, label)`
        split, in the same (batch) order."""
        self._check_built()
        batches, labels, _ = self._eval_batches(dataset, pipeline or self.config.data.pipeline)
        return np.asarray(self._logits(batches.map(_ids_only))), labels

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Returns one logit per review (two classes), or a row of one logit per class, in the
        order given."""
        self._check_built()
        return self._predict_in_order(texts, self._logits)

    def part_logits(self, texts: Sequence[str]) -> dict[str, np.ndarray] | None:
        """For a hybrid classifier (`model.ngram_buckets`), what each part adds to the logits:
        `{"recurrent": ..., "ngrams": ...}`, each part's logits times its blend weight, shaped
        like `predict_logits` (which is their sum plus the blend's bias). None for a recurrent
        classifier alone."""
        self._check_built()
        assert self.classifier is not None
        if not any(layer.name == "blend" for layer in self.classifier.layers):
            return None
        blend = self.classifier.get_layer("blend")
        parts = keras.Model(self.classifier.input, blend.input)
        mix = blend.get_weights()[0]

        def forward(batches: tf.data.Dataset) -> np.ndarray:
            recurrent, ngrams = forward_in_batches(parts, batches)
            return np.stack([mix[0] * recurrent, mix[1] * ngrams], axis=0)

        recurrent, ngrams = self._predict_in_order(texts, forward, axis=1)
        return {"recurrent": recurrent, "ngrams": ngrams}

    def _predict_in_order(
        self,
        texts: Sequence[str],
        forward: Callable[[tf.data.Dataset], np.ndarray],
        *,
        axis: int = 0,
    ) -> np.ndarray:
        """`forward` on length-sorted batches of `texts`' token ids, back in the order given
        (reviews along `axis` of its result; a one-logit column becomes a vector)."""
        texts = list(texts)
        if not texts:
            shape = (0,) if two_classes(self.label_names) else (0, self.num_classes)
            empty = np.zeros(shape, dtype=np.float32)
            return np.stack([empty, empty]) if axis == 1 else empty
        split = tokenize(texts, self._encoder())
        batches, order = length_sorted_batches(split, batch_size=self.config.data.eval_batch_size)
        sorted_logits = np.moveaxis(np.asarray(forward(batches.map(_ids_only))), axis, 0)
        if sorted_logits.ndim == 2 and sorted_logits.shape[1] == 1:
            sorted_logits = sorted_logits.reshape(-1)
        elif sorted_logits.ndim == 3 and sorted_logits.shape[2] == 1:
            sorted_logits = sorted_logits[:, :, 0]
        logits = np.empty_like(sorted_logits)
        logits[order] = sorted_logits
        return np.moveaxis(logits, 0, axis)

    # -- probabilities -------------------------------------------------------------------------

    def class_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Returns `(texts, classes)` probabilities, columns in the order of `label_names`
        (for two classes: `[1 - p, p]`), with the saved decision's temperature."""
        return class_probabilities(
            self.predict_logits(texts), temperature=self.decision.temperature
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Returns the probability that each review is positive (of the class at index 1), or
        for more than two classes a row of class probabilities per text, in the order given."""
        probabilities = self.class_probabilities(texts)
        return probabilities[:, 1] if two_classes(self.label_names) else probabilities

    def known_words(self, texts: Sequence[str]) -> np.ndarray:
        """Returns how many words of each text are in the vocabulary (0: the model knows none
        of its words, and its prediction says nothing about the text)."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encoder = self._encoder()
        counts = []
        for start in range(0, len(texts), 4096):
            chunk = tf.constant(texts[start : start + 4096], dtype=tf.string)
            ids = encoder.vectorizer(chunk)
            known = tf.cast(ids > 1, tf.int64)  # 0 is padding, 1 out-of-vocabulary
            counts.append(tf.reduce_sum(known, axis=1).numpy())
        return np.concatenate(counts)

    # -- files ---------------------------------------------------------------------------------

    def save(
        self, directory: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None
    ) -> Path:
        """Writes `model.keras`, `config.json` (and the same config as `config.toml`, which
        `imdb-rnn train --config` reads), `history.json` and, if given, `metrics.json` into
        `directory`, each file atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_text_model(self.text_model, directory / MODEL_FILE)
        write_json(directory / CONFIG_FILE, self.config.to_dict())
        write_text(directory / CONFIG_TOML_FILE, config_to_toml(self.config))
        write_json(directory / HISTORY_FILE, self.history)
        write_json(directory / LABELS_FILE, list(self.label_names))
        if metrics is not None:
            write_json(directory / METRICS_FILE, metrics)
        remove_temporaries(directory)  # left by an earlier save that was killed
        return directory

    @classmethod
    def load(cls: type[_Loaded], directory: str | os.PathLike[str]) -> _Loaded:
        """Loads a model directory written by `save` (safe mode on).

        `directory` may also be the name of a model packaged by `imdb-rnn package` and
        installed with pip.

        Raises:
            ModelFileError: if the directory, the model file or the config is missing or bad.
        """
        from imdb_rnn.deploy.packaging import resolve_model_dir

        directory = resolve_model_dir(directory)
        if not directory.is_dir():
            raise ModelFileError(f"No model directory at {directory}")
        model_path = directory / MODEL_FILE
        if not model_path.exists():
            raise ModelFileError(
                f"{directory} holds no {MODEL_FILE}: is it a directory written by 'imdb-rnn train'?"
            )
        config_path = directory / CONFIG_FILE
        try:
            config = (
                RunConfig.from_dict(read_json(config_path, what="The config file"))
                if config_path.exists()
                else RunConfig()
            )
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise ModelFileError(f"{config_path} is not valid JSON ({error}).") from None
        except (ConfigError, InputError) as error:
            raise ModelFileError(f"{config_path}: {error}") from None
        model = load_text_model(model_path)
        encoder, classifier = split_text_model(model)
        label_names = read_labels(directory, int(classifier.output_shape[-1]))
        loaded = cls._restored(
            config, encoder=encoder, classifier=classifier, label_names=label_names
        )
        loaded._text_model = model
        history_path = directory / HISTORY_FILE
        if history_path.exists():
            try:
                history = read_json(history_path, what="The history file")
            except (ValueError, RecursionError, OSError):  # JSON, UTF-8 and size errors
                history = {}
            loaded.history = history if isinstance(history, dict) else {}
        loaded.decision = read_decision(directory)
        return loaded
