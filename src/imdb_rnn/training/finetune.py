"""Fine-tuning a classifier that starts from a pre-trained encoder (ULMFiT's schedule).

Howard & Ruder (2018) fine-tune a pre-trained classifier with *discriminative learning rates*
(each layer group below the head learns `layer_lr_decay` times slower than the one above it;
they use 2.6) and *gradual unfreezing* (the head trains first, then each lower group joins, one
after another), so that the new head does not wreck what the encoder learnt before it has
learnt anything itself. `LayerwiseAdam` is Adam with both: every variable belongs to a group
(0 the head, 1 the top recurrent layer, ..., the embedding last), group `g`'s learning rate is
the schedule's divided by `layer_lr_decay ** g`, and it is zero until step `g *
unfreeze_steps`. The layer groups are read from the model (`layer_groups`), so the saved model
and its predictions are those of an ordinary classifier.

`TrainingConfig.layer_lr_decay` and `TrainingConfig.gradual_unfreezing_epochs` switch it on
(`imdb-rnn train --layer-lr-decay 2.6 --unfreeze-epochs 0.5`); with the defaults (1.0 and 0)
training uses plain Adam.

Example:

>>> from imdb_rnn.config import ModelConfig
>>> from imdb_rnn.models import build_classifier
>>> model = build_classifier(ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2))
>>> sorted(set(layer_groups(model).values()))
[0, 1, 2]
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from imdb_rnn.layers import sublayers

__all__ = ["LayerwiseAdam", "fine_tuning_optimizer", "layer_groups"]

_EMBEDDING = "embedding"
_RECURRENT_PREFIX = "bidirectional_"


def layer_groups(model: keras.Model) -> dict[str, int]:
    """The group of each trainable variable of a classifier, by its path.

    Group 0 is the head (every layer above the recurrent stack), groups 1 .. n the recurrent
    layers from the top one down, group n + 1 the embedding (and anything below it).

    Args:
        model: a classifier built by `build_classifier`.

    Returns:
        `{variable.path: group}` for every trainable variable.
    """
    recurrent = sorted(
        (layer for layer in model.layers if layer.name.startswith(_RECURRENT_PREFIX)),
        key=lambda layer: layer.name,
        reverse=True,
    )
    bottom = len(recurrent) + 1
    groups: dict[str, int] = {}
    for layer in model.layers:
        if layer.name == _EMBEDDING:
            group = bottom
        elif layer in recurrent:
            group = recurrent.index(layer) + 1
        else:
            group = 0
        for inner in (layer, *sublayers(layer)):
            for variable in inner.trainable_variables:
                groups.setdefault(variable.path, group)
    return groups


@keras.saving.register_keras_serializable(package="imdb_rnn")
class LayerwiseAdam(keras.optimizers.Adam):
    """Adam with a learning rate per layer group and gradual unfreezing (see the module).

    Args:
        variable_groups: `{variable.path: group}` (`layer_groups`); variables not listed are
            in group 0.
        layer_lr_decay: each group learns this many times slower than the group above it;
            >= 1. Default 1.0 (all groups alike).
        unfreeze_steps: group `g` starts learning after `g * unfreeze_steps` steps. Default 0
            (all groups learn from the first step).
        **kwargs: `keras.optimizers.Adam` arguments (`learning_rate`, `clipnorm` ...).

    Raises:
        ValueError: on `layer_lr_decay` below 1 or a negative `unfreeze_steps`.
    """

    def __init__(
        self,
        variable_groups: dict[str, int] | None = None,
        layer_lr_decay: float = 1.0,
        unfreeze_steps: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(layer_lr_decay, bool)
            or not isinstance(layer_lr_decay, (int, float))
            or not layer_lr_decay >= 1
        ):
            raise ValueError(
                f"Expected layer_lr_decay >= 1. Received: layer_lr_decay={layer_lr_decay!r}"
            )
        if isinstance(unfreeze_steps, bool) or not isinstance(unfreeze_steps, int):
            raise ValueError(
                f"Expected unfreeze_steps >= 0. Received: unfreeze_steps={unfreeze_steps!r}"
            )
        if unfreeze_steps < 0:
            raise ValueError(
                f"Expected unfreeze_steps >= 0. Received: unfreeze_steps={unfreeze_steps!r}"
            )
        self.variable_groups = dict(variable_groups or {})
        self.layer_lr_decay = float(layer_lr_decay)
        self.unfreeze_steps = unfreeze_steps

    def group_factor(self, group: int) -> Any:
        """The multiplier of group `group`'s learning rate at the current step."""
        factor = tf.constant(self.layer_lr_decay ** (-group), tf.float32)
        if self.unfreeze_steps and group:
            started = tf.cast(self.iterations >= group * self.unfreeze_steps, tf.float32)
            factor = factor * started
        return factor

    def build(self, variables: list[Any]) -> None:
        super().build(variables)
        # update_step may receive the backend's variable (TensorFlow's), which has no path:
        # its group is looked up by its index among the variables built here.
        self._groups_by_index = [self.variable_groups.get(v.path, 0) for v in variables]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        group = self._groups_by_index[self._get_variable_index(variable)]
        if group:
            factor = tf.cast(self.group_factor(group), tf.convert_to_tensor(learning_rate).dtype)
            learning_rate = learning_rate * factor
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "variable_groups": self.variable_groups,
            "layer_lr_decay": self.layer_lr_decay,
            "unfreeze_steps": self.unfreeze_steps,
        }


def fine_tuning_optimizer(
    model: keras.Model,
    *,
    learning_rate: Any,
    clip_norm: float | None = None,
    layer_lr_decay: float = 1.0,
    unfreeze_steps: int = 0,
    **kwargs: Any,
) -> LayerwiseAdam:
    """A `LayerwiseAdam` for `model`'s layer groups.

    Args:
        model: a classifier built by `build_classifier`.
        learning_rate: the head's learning rate (a float or a schedule).
        clip_norm: clip each gradient to this global norm. Default None.
        layer_lr_decay: see `LayerwiseAdam`. Default 1.0.
        unfreeze_steps: see `LayerwiseAdam`. Default 0.
        **kwargs: further `keras.optimizers.Adam` arguments (`use_ema` ...).
    """
    return LayerwiseAdam(
        variable_groups=layer_groups(model),
        layer_lr_decay=layer_lr_decay,
        unfreeze_steps=unfreeze_steps,
        learning_rate=learning_rate,
        clipnorm=clip_norm,
        **kwargs,
    )
