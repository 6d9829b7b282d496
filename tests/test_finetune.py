"""Tests for imdb_rnn.training.finetune (discriminative learning rates, gradual unfreezing)."""

import keras
import numpy as np
import pytest

from imdb_rnn.config import ModelConfig, TrainingConfig
from imdb_rnn.errors import ConfigError
from imdb_rnn.models import build_classifier
from imdb_rnn.training.finetune import LayerwiseAdam, fine_tuning_optimizer, layer_groups

_MODEL = ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2, dense_units=(3,))
_IDS = np.array([[2, 3, 4, 5], [6, 7, 8, 0], [9, 10, 0, 0], [11, 12, 13, 14]], "int32")
_LABELS = np.array([1, 0, 1, 0], "int32")


def _weights(model: keras.Model, name: str) -> list[np.ndarray]:
    return [w.copy() for w in model.get_layer(name).get_weights()]


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def _compiled(**options: object) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_classifier(_MODEL)
    model.compile(
        optimizer=fine_tuning_optimizer(model, learning_rate=0.01, **options),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model


def test_layer_groups_go_from_the_head_down():
    """Head 0, recurrent layers from the top, embedding last."""
    model = build_classifier(
        ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2, num_rnn_layers=2)
    )
    groups = layer_groups(model)
    by_layer = {path.split("/")[0]: group for path, group in groups.items()}
    assert by_layer["logits"] == 0 and by_layer["dense_0"] == 0
    assert by_layer["bidirectional_gru_1"] == 1
    assert by_layer["bidirectional_gru_0"] == 2
    assert by_layer["embedding"] == 3
    assert len(groups) == len(model.trainable_variables)


def test_gradual_unfreezing_trains_the_head_first():
    """Before step 3 only the head moves; the GRU joins at step 3, the embedding at step 6."""
    model = _compiled(unfreeze_steps=3)
    embedding, recurrent, head = (
        _weights(model, n) for n in ("embedding", "bidirectional_gru_0", "logits")
    )
    model.fit(_IDS, _LABELS, batch_size=4, epochs=3, verbose=0)  # 3 steps: 0, 1, 2
    assert _changed(head, _weights(model, "logits"))
    assert not _changed(recurrent, _weights(model, "bidirectional_gru_0"))
    assert not _changed(embedding, _weights(model, "embedding"))
    model.fit(_IDS, _LABELS, batch_size=4, epochs=3, verbose=0)  # steps 3, 4, 5
    assert _changed(recurrent, _weights(model, "bidirectional_gru_0"))
    assert not _changed(embedding, _weights(model, "embedding"))
    model.fit(_IDS, _LABELS, batch_size=4, epochs=1, verbose=0)  # step 6
    assert _changed(embedding, _weights(model, "embedding"))


def test_lower_groups_learn_slower():
    """Adam's first step moves each weight by about its group's rate: 0.01 / 10 ** group."""
    model = _compiled(layer_lr_decay=10.0)
    before = {n: _weights(model, n) for n in ("logits", "bidirectional_gru_0", "embedding")}
    model.fit(_IDS, _LABELS, batch_size=4, epochs=1, verbose=0)
    steps = {
        name: max(
            float(np.abs(a - b).max())
            for a, b in zip(before[name], _weights(model, name), strict=True)
        )
        for name in before
    }
    assert steps["logits"] == pytest.approx(0.01, rel=0.05)
    assert steps["bidirectional_gru_0"] == pytest.approx(0.001, rel=0.05)
    assert steps["embedding"] == pytest.approx(0.0001, rel=0.05)


def test_optimizer_config_round_trips():
    """The optimizer saves its groups and settings with its config."""
    optimizer = LayerwiseAdam({"a/b": 1}, layer_lr_decay=2.6, unfreeze_steps=5, learning_rate=0.1)
    again = LayerwiseAdam.from_config(optimizer.get_config())
    assert (again.variable_groups, again.layer_lr_decay, again.unfreeze_steps) == (
        {"a/b": 1},
        2.6,
        5,
    )


@pytest.mark.parametrize(
    ("options", "name"),
    [({"layer_lr_decay": 0.5}, "layer_lr_decay"), ({"unfreeze_steps": -1}, "unfreeze_steps")],
)
def test_bad_optimizer_options_are_refused(options, name):
    """Out-of-range options fail with a ValueError naming them."""
    with pytest.raises(ValueError, match=name):
        LayerwiseAdam(**options)


@pytest.mark.parametrize(
    "field", [{"layer_lr_decay": 0.9}, {"unfreeze_epochs": -1.0}, {"encoder": ""}]
)
def test_bad_fine_tuning_config_is_refused(field):
    """The config refuses a decay below 1, negative unfreezing and an empty encoder path."""
    with pytest.raises(ConfigError, match=next(iter(field))):
        TrainingConfig(**field)
