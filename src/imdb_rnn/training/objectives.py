"""Adversarial training on the word embeddings (Miyato, Dai and Goodfellow, ICLR 2017).

Each training step computes the loss on the batch as usual, takes its gradient `g` with respect
to the embedded sequence, and runs the batch a second time with the embeddings moved by

    r = epsilon * g / ||g||    (||g|| over the whole sequence of each review, per review)

the direction in which a small change of the embeddings raises the loss most. The step
minimises `clean loss + adversarial loss`, so the classifier learns to keep its answer under
the worst small change of the words' vectors, which regularises it much like (and more than)
random noise would. The cost is a second forward and backward pass per step.

The mechanism lives in the training step only: the model, its saved file and its predictions
are those of an ordinary classifier. It uses the loss and metrics the model was compiled with,
so it works for any loss (binary or sparse categorical cross-entropy ...).

Example:

>>> import numpy as np, keras
>>> from imdb_rnn.config import ModelConfig
>>> from imdb_rnn.models import build_classifier
>>> model = build_classifier(ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2))
>>> model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
>>> use_adversarial_training(model, epsilon=0.5)
>>> ids, labels = np.array([[2, 3, 4], [5, 6, 0]], "int32"), np.array([1, 0], "int32")
>>> history = model.fit(ids, labels, epochs=1, verbose=0)
>>> sorted(history.history)
['loss']
"""

from __future__ import annotations

import types
from typing import Any

import keras
import tensorflow as tf

__all__ = [
    "EMBEDDING_LAYER",
    "adversarial_perturbation",
    "training_objective",
    "use_adversarial_training",
]

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


def use_adversarial_training(model: keras.Model, *, epsilon: float) -> None:
    """Makes `model.fit` train adversarially on the embeddings (see the module docstring).

    Replaces the compiled model's `train_step` with one that adds the loss on adversarially
    perturbed embeddings to the ordinary loss. Logged training loss and metrics are those on
    the unperturbed batch, so they compare with validation. Evaluation, prediction and saving
    are unchanged. Call it after `compile` and before `fit`.

    Args:
        model: a functional classifier from token ids, with a masking `Embedding` layer
            named `"embedding"` (as `build_classifier` builds), compiled.
        epsilon: L2 norm of each review's perturbation, > 0.

    Raises:
        ValueError: if `epsilon` is not positive or the model has no masking `"embedding"`
            layer.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
        raise ValueError(f"Expected epsilon > 0. Received: epsilon={epsilon!r}")
    names = [layer.name for layer in model.layers]
    if EMBEDDINGS_LAYER in names:  # word vectors beside the trainable embedding: perturb both
        embedding = model.get_layer(EMBEDDINGS_LAYER)
        embed = keras.Model(model.inputs, embedding.output, name=f"{model.name}_embeddings")
    elif EMBEDDING_LAYER in names:
        embedding = embed = model.get_layer(EMBEDDING_LAYER)
    else:
        raise ValueError(
            f"Expected a model with an Embedding layer named {EMBEDDING_LAYER!r}. "
            f"Received: a model with layers {names}"
        )
    # The layers after the embedding, as a model of the embedded sequence and its mask (the
    # mask is an input of the recurrent and pooling layers in the graph); it shares weights.
    mask_input = getattr(embedding.output, "_keras_mask", None)
    if mask_input is None:
        raise ValueError(
            f"Expected the {EMBEDDING_LAYER!r} layer to mask padding (mask_zero=True)."
        )
    rest = keras.Model(
        [embedding.output, mask_input], model.output, name=f"{model.name}_after_embedding"
    )
    epsilon = float(epsilon)

    def objective(ids: Any, labels: Any, sample_weight: Any = None) -> tuple[Any, Any, Any]:
        """`(clean loss + adversarial loss, clean loss, clean logits)` of one batch."""
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
            inner.gradient(loss, embedded), mask, epsilon=epsilon
        )
        adversarial_logits = rest([embedded + perturbation, mask], training=True)
        adversarial_loss = model.compute_loss(
            x=ids, y=labels, y_pred=adversarial_logits, sample_weight=sample_weight, training=True
        )
        return loss + adversarial_loss, loss, logits

    def train_step(self: keras.Model, data: Any) -> dict[str, Any]:
        ids, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            total, loss, logits = objective(ids, labels, sample_weight)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(ids)[0])
        variables = self.trainable_variables
        gradients = tape.gradient(self.optimizer.scale_loss(total), variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self.compute_metrics(ids, labels, logits, sample_weight=sample_weight)

    # An instance attribute: Keras' fit calls `self.train_step`, and the model's class, config
    # and saved file stay those of an ordinary functional model.
    model.train_step = types.MethodType(train_step, model)
    model.train_function = None  # fit rebuilds its compiled step from the new train_step
    # For training loops of their own (`imdb_rnn.training.distribute`): see `training_objective`.
    model._adversarial_objective = objective


def training_objective(
    model: keras.Model, ids: Any, labels: Any, sample_weight: Any = None
) -> tuple[Any, Any, Any]:
    """What a training step of `model` minimises, for loops that do not call `train_step`.

    Returns:
        `(objective, loss, logits)`: the value to differentiate (the clean plus the adversarial
        loss after `use_adversarial_training`, else the loss), the loss on the unperturbed
        batch (to report) and the unperturbed logits (for the metrics).
    """
    objective = getattr(model, "_adversarial_objective", None)
    if objective is not None:
        return objective(ids, labels, sample_weight)
    logits = model(ids, training=True)
    loss = model.compute_loss(
        x=ids, y=labels, y_pred=logits, sample_weight=sample_weight, training=True
    )
    return loss, loss, logits
