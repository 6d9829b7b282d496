"""The n-gram part of a hybrid classifier: a linear score over a review's words and word pairs.

A recurrent network and a bag of n-grams make different mistakes; their logits combined beat
either alone. The n-gram part reads the same token ids as the recurrent part, inside the same
model, so the saved model still takes raw strings:

- `NgramFeatures` turns right-padded token ids into the set of a review's unigram ids and
  hashed bigram ids (`num_buckets` buckets: memory is bounded whatever the data);
- `NgramLogits` scores that set linearly, each feature's weight scaled by a fixed ratio: for
  two classes the naive-Bayes log-count ratio of the feature in the training reviews (NBSVM,
  Wang & Manning 2012), for more classes one;
- `Blend` adds the two parts' logits with weights fitted on the validation split.

`fit_ngram_logits` fits the n-gram part (logistic regression with an L2 penalty, early stopped
on validation loss) and `fit_blend` the blend, both after the recurrent part has trained.

Example:

>>> import numpy as np
>>> features = NgramFeatures(vocabulary_size=10, num_buckets=16)
>>> features(np.array([[2, 3, 2, 0]], "int32")).numpy().tolist()  # 2 once, 3, two pairs
[[0, 0, 2, 0, 3, 19, 21]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "Blend",
    "NgramFeatures",
    "NgramFit",
    "NgramLogits",
    "fit_blend",
    "fit_ngram_logits",
    "naive_bayes_ratios",
]

#: Multiplier of the left token id in a bigram's hash (a prime above any vocabulary size).
_PAIR_PRIME = 1_000_003


@keras.saving.register_keras_serializable(package="imdb_rnn")
class NgramFeatures(keras.layers.Layer):
    """Right-padded token ids -> the review's distinct n-gram feature ids, 0 for none.

    Unigram features are the token ids themselves (ids at or above `vocabulary_size` count as
    out-of-vocabulary); the bigram of ids `(a, b)` is feature `vocabulary_size + (a * 1000003 +
    b) mod num_buckets`. Each feature appears once per row (a binary bag, as NBSVM uses), in
    ascending order after the zeros.

    Args:
        vocabulary_size: number of unigram features (the classifier's `max_tokens`).
        num_buckets: number of bigram hash buckets.
        **kwargs: standard `Layer` arguments.
    """

    def __init__(self, vocabulary_size: int, num_buckets: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if vocabulary_size < 2 or num_buckets < 1:
            raise ValueError(
                "Expected vocabulary_size >= 2 and num_buckets >= 1. Received: "
                f"vocabulary_size={vocabulary_size}, num_buckets={num_buckets}"
            )
        self.vocabulary_size = vocabulary_size
        self.num_buckets = num_buckets

    @property
    def num_features(self) -> int:
        """Unigram and bigram features together (feature 0 is "none")."""
        return self.vocabulary_size + self.num_buckets

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, "int64")
        ids = tf.where(ids >= self.vocabulary_size, tf.ones_like(ids), ids)  # out of vocabulary
        present = ids > 0
        pairs = self.vocabulary_size + tf.math.floormod(
            ids[:, :-1] * _PAIR_PRIME + ids[:, 1:], self.num_buckets
        )
        pairs = tf.where(present[:, :-1] & present[:, 1:], pairs, tf.zeros_like(pairs))
        features = tf.sort(tf.concat([ids, pairs], axis=1), axis=1)
        repeated = tf.concat(
            [tf.zeros_like(features[:, :1], dtype="bool"), features[:, 1:] == features[:, :-1]],
            axis=1,
        )
        return tf.where(repeated, tf.zeros_like(features), features)

    def compute_output_spec(self, ids: Any) -> keras.KerasTensor:
        batch = ids.shape[0] if ids.shape else None
        return keras.KerasTensor((batch, None), dtype="int64")

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "num_buckets": self.num_buckets,
        }


@keras.saving.register_keras_serializable(package="imdb_rnn")
class NgramLogits(keras.layers.Layer):
    """A linear score of a bag of feature ids: `sum(kernel[f] * ratio[f]) + bias` over the
    features `f` of a row (0 is no feature).

    Args:
        num_features: number of feature ids (`NgramFeatures.num_features`).
        units: logits per row: 1 for two classes, else one per class.
        **kwargs: standard `Layer` arguments.
    """

    def __init__(self, num_features: int, units: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_features = num_features
        self.units = units

    def build(self, input_shape: Any = None) -> None:
        self.kernel = self.add_weight(
            shape=(self.num_features, self.units), initializer="zeros", name="kernel"
        )
        # Fixed per-feature scale (naive-Bayes ratios), set when the part is fitted.
        self.ratio = self.add_weight(
            shape=(self.num_features, 1), initializer="ones", trainable=False, name="ratio"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.built = True

    def call(self, features: tf.Tensor) -> tf.Tensor:
        weights = tf.gather(self.kernel, features) * tf.gather(self.ratio, features)
        present = tf.cast(features > 0, weights.dtype)[:, :, None]
        return tf.reduce_sum(weights * present, axis=1) + self.bias

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_features": self.num_features, "units": self.units}


@keras.saving.register_keras_serializable(package="imdb_rnn")
class Blend(keras.layers.Layer):
    """`weights[0] * recurrent + weights[1] * ngrams + bias`: the hybrid's logits.

    Starts as the recurrent part alone (weights `[1, 0]`, bias 0), so the recurrent part trains
    as it would without the n-gram part; `fit_blend` sets the weights. Not trained by `fit`.

    Args:
        units: logits per row.
        **kwargs: standard `Layer` arguments.
    """

    def __init__(self, units: int = 1, **kwargs: Any) -> None:
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape: Any = None) -> None:
        self.mix = self.add_weight(
            shape=(2,), initializer=keras.initializers.Constant([1.0, 0.0]), name="mix"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.built = True

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        recurrent, ngrams = inputs
        return self.mix[0] * recurrent + self.mix[1] * ngrams + self.bias

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@dataclass(frozen=True)
class NgramFit:
    """What fitting the n-gram part and the blend found (the `ngrams` record of a run).

    Attributes:
        epochs: epochs the n-gram part trained; `best_epoch` is the one kept.
        best_epoch: epoch of the lowest validation loss.
        valid_accuracy_recurrent: validation accuracy of the recurrent part alone.
        valid_accuracy_ngrams: validation accuracy of the n-gram part alone.
        valid_accuracy: validation accuracy of the blend.
        mix: the blend's weights of the recurrent and the n-gram logits.
        features_seen: distinct features in the training reviews.
        pseudo_labels: with self-training of the n-gram part, how many unlabelled texts the
            hybrid labelled and how many joined its training texts (`unlabelled`, `added`,
            `threshold`); None without.
    """

    epochs: int
    best_epoch: int
    valid_accuracy_recurrent: float
    valid_accuracy_ngrams: float
    valid_accuracy: float
    mix: tuple[float, float]
    features_seen: int
    pseudo_labels: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pseudo_labels": self.pseudo_labels,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "valid_accuracy_recurrent": round(self.valid_accuracy_recurrent, 4),
            "valid_accuracy_ngrams": round(self.valid_accuracy_ngrams, 4),
            "valid_accuracy": round(self.valid_accuracy, 4),
            "mix": [round(value, 4) for value in self.mix],
            "features_seen": self.features_seen,
        }

    def describe(self) -> str:
        labelled = (
            f" (trained with {self.pseudo_labels['added']:,} texts the hybrid labelled)"
            if self.pseudo_labels
            else ""
        )
        return (
            f"Validation accuracy: recurrent part {self.valid_accuracy_recurrent:.2%}, "
            f"n-gram part{labelled} {self.valid_accuracy_ngrams:.2%}, both "
            f"{self.valid_accuracy:.2%} (logits weighted {self.mix[0]:.2f} and {self.mix[1]:.2f})"
        )


def naive_bayes_ratios(
    features: tf.RaggedTensor, labels: np.ndarray, num_features: int, *, alpha: float = 1.0
) -> tuple[np.ndarray, int]:
    """The log-count ratio `log((p / |p|) / (q / |q|))` of each feature, `p` and `q` its
    smoothed counts in the positive (label 1) and negative (label 0) rows.

    Args:
        features: distinct feature ids of each row (0 is ignored).
        labels: 0 or 1 per row.
        num_features: number of feature ids.
        alpha: smoothing added to every count. Default 1.0.

    Returns:
        `(ratios, features seen)`: float32 ratios of shape `(num_features,)`, and how many
        features occur in the rows.
    """
    flat = features.flat_values.numpy()
    row_labels = np.repeat(np.asarray(labels, np.int8), features.row_lengths().numpy())
    keep = flat > 0
    if not keep.all():
        flat, row_labels = flat[keep], row_labels[keep]
    # All rows' counts and the positive rows' counts: the negative ones are the difference.
    counts = np.bincount(flat, minlength=num_features)
    in_positive = np.bincount(flat[row_labels == 1], minlength=num_features)
    positive = alpha + in_positive
    negative = alpha + counts - in_positive
    seen = int(np.count_nonzero(counts))
    ratios = np.log((positive / positive.sum()) / (negative / negative.sum()))
    ratios[0] = 0.0
    return ratios.astype(np.float32), seen


def _features(layer: NgramFeatures, ids: tf.RaggedTensor, batch_size: int = 256) -> tf.RaggedTensor:
    """Each row's distinct feature ids (without zeros), as an int32 ragged tensor."""
    parts = []
    for start in range(0, int(ids.nrows()), batch_size):
        found = tf.cast(layer(ids[start : start + batch_size].to_tensor(default_value=0)), "int32")
        # The zeros (padding, repeats) are dropped batch by batch: memory holds the features.
        parts.append(tf.ragged.boolean_mask(found, found > 0))
    if not parts:
        return tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
    return tf.concat(parts, axis=0)


def _scores(layer: NgramLogits, features: tf.RaggedTensor, batch_size: int = 4096) -> np.ndarray:
    outputs = [
        layer(features[start : start + batch_size].to_tensor(default_value=0)).numpy()
        for start in range(0, int(features.nrows()), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, layer.units), np.float32)


def _loss(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of logits `(n, units)`."""
    logits = logits.astype(np.float64)
    if logits.shape[1] == 1:
        z = logits[:, 0]
        loss = np.mean(np.logaddexp(0.0, z) - labels * z)
        return float(loss), float(np.mean((z > 0) == (labels == 1)))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.mean(log_softmax[np.arange(len(labels)), labels])
    return float(loss), float(np.mean(logits.argmax(axis=1) == labels))


def fit_ngram_logits(
    features_layer: NgramFeatures,
    logits_layer: NgramLogits,
    train: tuple[tf.RaggedTensor, np.ndarray],
    valid: tuple[tf.RaggedTensor, np.ndarray],
    *,
    l2: float = 0.1,
    epochs: int = 10,
    batch_size: int = 256,
    learning_rate: float = 0.01,
    seed: int = 42,
) -> tuple[int, int, int]:
    """Fits `logits_layer` by logistic regression on the n-gram features of `train` (the naive-
    Bayes ratios first, for two classes), keeping the weights of the epoch with the lowest loss
    on `valid`.

    The penalty is liblinear's: the summed loss plus `||kernel||^2 / (2 * l2)`, so `l2` plays
    the part of `C` in NBSVM (0.1 there).

    Args:
        features_layer: the model's `NgramFeatures`.
        logits_layer: the model's `NgramLogits` (built); its weights are replaced.
        train: `(token ids, labels)` of the training reviews.
        valid: `(token ids, labels)` of the validation reviews.
        l2: inverse strength of the L2 penalty (liblinear's `C`). Default 0.1.
        epochs: most passes over `train` (fewer when validation loss has not fallen for two).
            Default 10.
        batch_size: reviews per step. Default 256.
        learning_rate: Adam's learning rate. Default 0.01.
        seed: shuffle seed. Default 42.

    Returns:
        `(epochs run, best epoch, features seen in train)`.
    """
    train_features = _features(features_layer, train[0])
    valid_features = _features(features_layer, valid[0])
    train_labels = np.asarray(train[1], np.int32)
    valid_labels = np.asarray(valid[1], np.int32)
    units = logits_layer.units
    if units == 1:
        ratios, seen = naive_bayes_ratios(train_features, train_labels, logits_layer.num_features)
    else:
        ratios = np.ones(logits_layer.num_features, np.float32)
        ratios[0] = 0.0
        seen = int(np.unique(train_features.flat_values.numpy()).size)
    logits_layer.ratio.assign(ratios[:, None])
    logits_layer.kernel.assign(tf.zeros_like(logits_layer.kernel))
    logits_layer.bias.assign(tf.zeros_like(logits_layer.bias))
    count = len(train_labels)
    penalty = 1.0 / (2.0 * l2 * max(count, 1))  # per review: the mean loss is minimised
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    variables = [logits_layer.kernel, logits_layer.bias]
    targets = tf.constant(train_labels)

    @tf.function(reduce_retracing=True, autograph=False)
    def step(rows: tf.Tensor) -> None:
        batch = tf.gather(train_features, rows).to_tensor(default_value=0)
        labels = tf.gather(targets, rows)
        with tf.GradientTape() as tape:
            logits = logits_layer(batch)
            if units == 1:
                loss = tf.reduce_mean(
                    tf.nn.sigmoid_cross_entropy_with_logits(
                        labels=tf.cast(labels, logits.dtype), logits=logits[:, 0]
                    )
                )
            else:
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
                )
            loss += penalty * tf.reduce_sum(tf.square(logits_layer.kernel))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    rng = np.random.default_rng(seed)
    best = (math.inf, 0, [v.numpy() for v in variables])
    run = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(count).astype(np.int64)
        for start in range(0, count, batch_size):
            step(tf.constant(order[start : start + batch_size]))
        run = epoch
        loss, _ = _loss(_scores(logits_layer, valid_features), valid_labels)
        if loss < best[0]:
            best = (loss, epoch, [v.numpy() for v in variables])
        elif epoch - best[1] >= 2:  # two epochs without improvement
            break
    for variable, value in zip(variables, best[2], strict=True):
        variable.assign(value)
    return run, best[1], seen


def fit_blend(
    recurrent: np.ndarray, ngrams: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Fits `mix` and `bias` of `Blend` by (multinomial) logistic regression of the labels on
    the two parts' logits, with a small L2 penalty on `mix`.

    Args:
        recurrent: the recurrent part's logits on the validation reviews, `(n, units)`.
        ngrams: the n-gram part's logits on the same reviews, `(n, units)`.
        labels: their labels.
        l2: penalty on the two weights (per review). Default 1e-3.

    Returns:
        `(mix of shape (2,), bias of shape (units,))`.
    """
    recurrent = np.asarray(recurrent, np.float64).reshape(len(labels), -1)
    ngrams = np.asarray(ngrams, np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels)
    units = recurrent.shape[1]
    onehot = (
        labels[:, None].astype(np.float64) if units == 1 else np.eye(units)[labels.astype(np.int64)]
    )
    mix, bias = np.array([1.0, 1.0]), np.zeros(units)
    # Plain gradient descent with Adam steps on a convex problem of units + 2 parameters.
    m, v = np.zeros(units + 2), np.zeros(units + 2)
    for t in range(1, 3001):
        logits = mix[0] * recurrent + mix[1] * ngrams + bias
        if units == 1:
            error = 1.0 / (1.0 + np.exp(-logits)) - onehot
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            error = shifted / shifted.sum(axis=1, keepdims=True) - onehot
        gradient = np.concatenate(
            [
                [np.sum(error * recurrent) / len(labels) + 2 * l2 * mix[0]],
                [np.sum(error * ngrams) / len(labels) + 2 * l2 * mix[1]],
                error.mean(axis=0),
            ]
        )
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        update = 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        mix -= update[:2]
        bias -= update[2:]
    return mix.astype(np.float32), bias.astype(np.float32)
