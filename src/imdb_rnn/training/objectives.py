"""What a training step minimises: the objective the epoch loop is given.

`EpochLoop` takes an objective and calls its `loss_and_gradients(model, ids, labels,
sample_weight)` on every batch: the loss to report, the logits for the metrics and the
gradients to apply. `Trainer` picks it from the config (`objective_for`):

- `CleanObjective()`: the compiled loss on the batch.
- `AdversarialObjective(epsilon)`: adversarial training on the word embeddings (Miyato, Dai and
  Goodfellow, ICLR 2017). The step computes the loss on the batch as usual, takes its gradient
  `g` with respect to the embedded sequence, and runs the batch a second time with the
  embeddings moved by

      r = epsilon * g / ||g||    (||g|| over the whole sequence of each review, per review)

  the direction in which a small change of the embeddings raises the loss most. It minimises
  `clean loss + adversarial loss`, so the classifier learns to keep its answer under the worst
  small change of the words' vectors, which regularises it much like (and more than) random
  noise would. The cost is a second forward and backward pass per step.

An objective changes the training step only: the model, its saved file and its predictions are
those of an ordinary classifier. Both use the loss the model was compiled with, so they work for
any loss (binary or sparse categorical cross-entropy ...).

Example:

>>> import numpy as np, keras
>>> from imdb_rnn.config import ModelConfig
>>> from imdb_rnn.models import build_classifier
>>> model = build_classifier(ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2))
>>> model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
>>> objective = AdversarialObjective(epsilon=0.5)
>>> objective.prepare(model)
>>> ids, labels = np.array([[2, 3, 4], [5, 6, 0]], "int32"), np.array([1, 0], "int32")
>>> step = objective.loss_and_gradients(model, ids, labels)
>>> len(step.gradients) == len(model.trainable_variables)
True
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import keras
import tensorflow as tf

from imdb_rnn.config import TrainingConfig

__all__ = [
    "EMBEDDING_LAYER",
    "AdversarialObjective",
    "CleanObjective",
    "ObjectiveStep",
    "TrainingObjective",
    "adversarial_perturbation",
    "objective_for",
]


class ObjectiveStep(NamedTuple):
    """What an objective computes on one batch."""

    #: The loss on the batch as given (unperturbed), to report: it compares with validation.
    loss: Any
    #: The model's logits on the batch as given, for the metrics.
    logits: Any
    #: The gradient of the objective for each of the model's trainable variables, in order.
    gradients: list[Any]


class TrainingObjective(Protocol):
    """What the epoch loop minimises (`CleanObjective`, `AdversarialObjective`)."""

    def prepare(self, model: keras.Model) -> None:
        """Checks that `model` suits the objective and builds what its steps need; called once
        by the loop, before the first step is traced.

        Raises:
            ValueError: if the model does not suit the objective.
        """

    def loss_and_gradients(
        self, model: keras.Model, ids: Any, labels: Any, sample_weight: Any = None
    ) -> ObjectiveStep:
        """The loss, logits and gradients of one batch (in training mode)."""


class CleanObjective:
    """The compiled loss of the model on the batch (ordinary training)."""

    def prepare(self, model: keras.Model) -> None:
        """Nothing to check: any compiled model trains on its loss."""

    def loss_and_gradients(
        self, model: keras.Model, ids: Any, labels: Any, sample_weight: Any = None
    ) -> ObjectiveStep:
        """The compiled loss (Keras' `compute_loss`), its logits and its gradients."""
        with tf.GradientTape() as tape:
            logits = model(ids, training=True)
            loss = model.compute_loss(
                x=ids, y=labels, y_pred=logits, sample_weight=sample_weight, training=True
            )
        return ObjectiveStep(loss, logits, tape.gradient(loss, model.trainable_variables))


#: Name of the embedding layer whose output is perturbed (as `build_classifier` names it).
EMBEDDING_LAYER = "embedding"
#: With pre-trained word vectors (`model.word_vectors`), the concatenation of the trainable
#: embedding and the vectors, which is perturbed instead.
EMBEDDINGS_LAYER = "embeddings"


def adversarial_perturbation(
    gradient: tf.Tensor, mask: tf.Tensor | None, *, epsilon: float
) -> tf.Tensor:
    """The perturbation of an embedded batch: `epsilon` times the gradient, normalised to unit
    L2 norm over each review's sequence (padding positions excluded and left at zero).

    Args:
        gradient: gradient of the loss with respect to the embeddings, `(batch, time, dim)`.
        mask: `(batch, time)` booleans, True for real tokens, or None (all real).
        epsilon: L2 norm of each review's perturbation.

    Returns:
        A tensor of the gradient's shape, with no gradient of its own.

    Example:

    >>> import tensorflow as tf
    >>> r = adversarial_perturbation(tf.ones((2, 3, 4)), None, epsilon=2.0)
    >>> [round(float(v), 4) for v in tf.norm(r, axis=[1, 2])]
    [2.0, 2.0]
    """
    gradient = tf.stop_gradient(gradient)
    if mask is not None:
        gradient = gradient * tf.cast(mask, gradient.dtype)[:, :, tf.newaxis]
    norm = tf.sqrt(tf.reduce_sum(tf.square(gradient), axis=[1, 2], keepdims=True) + 1e-12)
    return epsilon * gradient / norm


class AdversarialObjective:
    """The loss on the batch plus the loss on its adversarially perturbed embeddings (see the
    module's description). The reported loss and logits are those of the unperturbed batch, so
    they compare with validation.

    Args:
        epsilon: L2 norm of each review's perturbation, > 0.

    Raises:
        ValueError: if `epsilon` is not positive.
    """

    def __init__(self, epsilon: float) -> None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise ValueError(f"Expected epsilon > 0. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        # Per model: the part up to the embeddings, and the part after them.
        self._parts: dict[int, tuple[keras.Model | keras.layers.Layer, keras.Model]] = {}

    def __repr__(self) -> str:
        return f"AdversarialObjective(epsilon={self.epsilon})"

    def prepare(self, model: keras.Model) -> None:
        """Splits `model` at its embeddings into two models that share its weights.

        Args:
            model: a functional classifier from token ids, with a masking `Embedding` layer
                named `"embedding"` (as `build_classifier` builds it).

        Raises:
            ValueError: if the model has no masking `"embedding"` layer.
        """
        if id(model) in self._parts:
            return
        names = [layer.name for layer in model.layers]
        embed: keras.Model | keras.layers.Layer
        if EMBEDDINGS_LAYER in names:  # word vectors beside the trainable embedding: perturb both
            embedding = model.get_layer(EMBEDDINGS_LAYER)
            embed = keras.Model(model.input, embedding.output, name=f"{model.name}_embeddings")
        elif EMBEDDING_LAYER in names:
            embedding = embed = model.get_layer(EMBEDDING_LAYER)
        else:
            raise ValueError(
                f"Expected a model with an Embedding layer named {EMBEDDING_LAYER!r}. "
                f"Received: a model with layers {names}"
            )
        # The layers after the embedding, as a model of the embedded sequence and its mask (the
        # mask is an input of the recurrent and pooling layers in the graph). `_keras_mask` is
        # where Keras' masking guide says a tensor's mask lives.
        mask_input = getattr(embedding.output, "_keras_mask", None)
        if mask_input is None:
            raise ValueError(
                f"Expected the {EMBEDDING_LAYER!r} layer to mask padding (mask_zero=True)."
            )
        rest = keras.Model(
            [embedding.output, mask_input], model.output, name=f"{model.name}_after_embedding"
        )
        self._parts[id(model)] = (embed, rest)

    def loss_and_gradients(
        self, model: keras.Model, ids: Any, labels: Any, sample_weight: Any = None
    ) -> ObjectiveStep:
        """Clean loss plus adversarial loss, differentiated; the clean loss and logits."""
        self.prepare(model)
        embed, rest = self._parts[id(model)]
        with tf.GradientTape() as tape:
            # tf.identity: the sub-model takes the mask as an input, not attached to the tensor.
            embedded = tf.identity(embed(ids))
            mask = tf.not_equal(ids, 0)  # what the embeddings mask: the padding
            with tf.GradientTape() as inner:
                inner.watch(embedded)
                logits = rest([embedded, mask], training=True)
                loss = model.compute_loss(
                    x=ids, y=labels, y_pred=logits, sample_weight=sample_weight, training=True
                )
            perturbation = adversarial_perturbation(
                inner.gradient(loss, embedded), mask, epsilon=self.epsilon
            )
            adversarial_logits = rest([embedded + perturbation, mask], training=True)
            adversarial_loss = model.compute_loss(
                x=ids,
                y=labels,
                y_pred=adversarial_logits,
                sample_weight=sample_weight,
                training=True,
            )
            total = loss + adversarial_loss
        return ObjectiveStep(loss, logits, tape.gradient(total, model.trainable_variables))


def objective_for(training: TrainingConfig) -> TrainingObjective:
    """The objective a run's config asks for: `AdversarialObjective` when
    `training.adversarial_epsilon` is above 0, else `CleanObjective`.

    Example:

    >>> from imdb_rnn.config import TrainingConfig
    >>> objective_for(TrainingConfig(adversarial_epsilon=0.3))
    AdversarialObjective(epsilon=0.3)
    """
    if training.adversarial_epsilon:
        return AdversarialObjective(training.adversarial_epsilon)
    return CleanObjective()
