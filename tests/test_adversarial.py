"""Tests for imdb_rnn.training.objectives: adversarial training on the embeddings."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from imdb_rnn.config import ModelConfig, TrainingConfig
from imdb_rnn.errors import ConfigError
from imdb_rnn.models import build_classifier
from imdb_rnn.training.objectives import (
    AdversarialObjective,
    CleanObjective,
    TrainingObjective,
    adversarial_perturbation,
    objective_for,
)

IDS = np.array([[2, 3, 4, 5], [6, 7, 0, 0], [8, 0, 0, 0], [9, 10, 11, 0]], dtype="int32")
LABELS = np.array([1, 0, 1, 0], dtype="int32")


class FitWith(keras.Model):
    """A functional model whose Keras `fit` steps minimise an objective: the reference the
    epoch loop is compared with."""

    def __init__(self, inputs, outputs, objective: TrainingObjective) -> None:
        super().__init__(inputs, outputs)
        self.objective = objective

    def train_step(self, data):
        ids, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, logits, gradients = self.objective.loss_and_gradients(
            self, ids, labels, sample_weight
        )
        for metric in self.metrics:  # the loss tracker, as Keras' own train_step updates it
            if metric.name == "loss":
                metric.update_state(loss, sample_weight=tf.shape(ids)[0])
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self.compute_metrics(ids, labels, logits, sample_weight=sample_weight)


def _model(seed: int = 0, objective: TrainingObjective | None = None, **config) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_classifier(
        ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=3, dense_units=(4,), **config)
    )
    if objective is not None:
        model = FitWith(model.inputs, model.outputs, objective)
        objective.prepare(model)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    return model


def test_perturbation_has_norm_epsilon_per_review_and_spares_padding():
    """Each review's perturbation has L2 norm epsilon; padded positions get none."""
    gradient = tf.random.normal((2, 3, 4), seed=1)
    mask = tf.constant([[True, True, False], [True, False, False]])
    r = adversarial_perturbation(gradient, mask, epsilon=0.7)
    np.testing.assert_allclose(tf.norm(r, axis=[1, 2]).numpy(), [0.7, 0.7], rtol=1e-5)
    assert float(tf.reduce_max(tf.abs(r[0, 2]))) == 0.0
    assert float(tf.reduce_max(tf.abs(r[1, 1:]))) == 0.0


def test_perturbation_raises_the_loss():
    """Moving the embeddings by the perturbation raises the loss more than a random move."""
    model = _model()
    embedding = model.get_layer("embedding")
    rest = keras.Model([embedding.output, embedding.output._keras_mask], model.output)
    embedded = tf.identity(embedding(IDS))
    mask = embedding.compute_mask(IDS)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        clean = loss_fn(LABELS[:, None], rest([embedded, mask]))
    r = adversarial_perturbation(tape.gradient(clean, embedded), mask, epsilon=0.5)
    random_r = adversarial_perturbation(tf.random.normal(embedded.shape, seed=2), mask, epsilon=0.5)
    adversarial = loss_fn(LABELS[:, None], rest([embedded + r, mask]))
    randomly_moved = loss_fn(LABELS[:, None], rest([embedded + random_r, mask]))
    assert float(adversarial) > float(clean)
    assert float(adversarial) > float(randomly_moved)


def test_logged_loss_is_the_clean_loss_and_the_update_differs():
    """The step logs the unperturbed loss (as plain training does) but takes another step."""
    plain, adversarial = _model(seed=3), _model(seed=3, objective=AdversarialObjective(1.0))
    logs_plain = plain.fit(IDS, LABELS, batch_size=4, epochs=1, verbose=0, shuffle=False)
    logs_adv = adversarial.fit(IDS, LABELS, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert logs_adv.history["loss"] == pytest.approx(logs_plain.history["loss"], rel=1e-5)
    assert logs_adv.history["accuracy"] == logs_plain.history["accuracy"]
    after_plain, after_adv = plain.get_weights(), adversarial.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(after_plain, after_adv, strict=True))


@pytest.mark.slow
def test_works_with_the_loss_the_model_is_compiled_with():
    """A three-class model compiled with sparse categorical cross-entropy trains too."""
    keras.utils.set_random_seed(0)
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True, name="embedding")(ids)
    x = keras.layers.GRU(3)(x)
    model = keras.Model(ids, keras.layers.Dense(3)(x))
    model = FitWith(model.inputs, model.outputs, AdversarialObjective(0.5))
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    labels = np.array([0, 1, 2, 1], dtype="int32")
    history = model.fit(IDS, labels, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_bad_arguments_are_value_errors():
    """A non-positive epsilon, or a model without a masking "embedding" layer, is refused."""
    with pytest.raises(ValueError, match="epsilon=0"):
        AdversarialObjective(epsilon=0)
    ids = keras.Input(shape=(None,), dtype="int32")
    other = keras.Model(ids, keras.layers.Dense(1)(keras.layers.Embedding(5, 2, name="e")(ids)))
    with pytest.raises(ValueError, match="named 'embedding'"):
        AdversarialObjective(0.5).prepare(other)
    unmasked = keras.Model(
        ids, keras.layers.Dense(1)(keras.layers.Embedding(5, 2, name="embedding")(ids))
    )
    with pytest.raises(ValueError, match="mask_zero"):
        AdversarialObjective(0.5).prepare(unmasked)


def test_the_config_chooses_the_objective():
    """adversarial_epsilon above 0 gives the adversarial objective with that epsilon; 0 the
    clean one."""
    chosen = objective_for(TrainingConfig(adversarial_epsilon=0.25))
    assert isinstance(chosen, AdversarialObjective) and chosen.epsilon == 0.25
    assert isinstance(objective_for(TrainingConfig(adversarial_epsilon=0.0)), CleanObjective)


def test_the_objective_leaves_the_model_as_it_was():
    """Training adversarially through the loop attaches nothing to the model: its class and
    its train_step are Keras' own."""
    from imdb_rnn.config import RunConfig
    from imdb_rnn.training.loop import EpochLoop

    model = _model(seed=1)
    batches = tf.data.Dataset.from_tensor_slices((IDS, LABELS)).batch(2)
    loop = EpochLoop(
        model,
        config=RunConfig().replace(training={"epochs": 1}),
        steps_per_epoch=2,
        train_size=len(IDS),
        objective=AdversarialObjective(0.5),
    )
    loop.run(batches, validation=batches)
    assert type(model).__name__ == "Functional"
    assert "train_step" not in vars(model)


def test_config_validates_adversarial_epsilon():
    """training.adversarial_epsilon must be a number >= 0."""
    assert TrainingConfig(adversarial_epsilon=0.5).adversarial_epsilon == 0.5
    for bad in (-0.1, "0.5", True, float("inf")):
        with pytest.raises(ConfigError, match="adversarial_epsilon"):
            TrainingConfig(adversarial_epsilon=bad)


@pytest.mark.slow
def test_trainer_trains_adversarially_and_saves_a_plain_model(imdb_archive, tmp_path):
    """`train` with adversarial_epsilon lowers the loss on the fixture data; the saved model is
    an ordinary functional model that reloads, and its config records the setting."""
    from imdb_rnn.training.trainer import Trainer
    from imdb_rnn.training.workflows import train

    config = tiny_config(epochs=3, adversarial_epsilon=0.05)
    result = train(config, source=imdb_archive, output=tmp_path / "run")
    assert result.history["loss"][-1] < result.history["loss"][0]
    loaded = Trainer.load(tmp_path / "run")
    assert loaded.config.training.adversarial_epsilon == 0.05
    assert loaded.classifier is not None and type(loaded.classifier).__name__ == "Functional"


def test_cli_options_reach_the_config(tmp_path):
    """`train --adversarial-epsilon 0.3 --valid-split film --word-dropout 0.25` set their config
    fields, which the TOML config file also reads."""
    import json

    from typer.testing import CliRunner

    from imdb_rnn.cli._app import app

    runner = CliRunner()
    args = ["train", "--adversarial-epsilon", "0.3", "--valid-split", "film", "--show-config"]
    args += ["--word-dropout", "0.25"]
    shown = runner.invoke(app, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    values = json.loads(shown.stdout)
    assert values["training"]["adversarial_epsilon"] == 0.3
    assert values["data"]["valid_split"] == "film"
    assert values["model"]["word_dropout"] == 0.25
    path = tmp_path / "run.toml"
    path.write_text(runner.invoke(app, args).stdout, encoding="utf-8")
    again = runner.invoke(app, ["train", "--config", str(path), "--show-config", "--json"])
    assert json.loads(again.stdout) == values
    bad = runner.invoke(app, ["train", "--adversarial-epsilon", "-1", "--show-config"])
    assert bad.exit_code != 0 and "adversarial_epsilon" in bad.output
    assert "Traceback" not in bad.output


def test_word_dropout_drops_whole_words_in_training_only():
    """model.word_dropout zeroes whole embedding vectors in training, none at inference, and
    keeps the padding mask."""
    keras.utils.set_random_seed(0)
    model = build_classifier(
        ModelConfig(max_tokens=20, embedding_dim=6, rnn_units=2, word_dropout=0.5)
    )
    layer = model.get_layer("word_dropout")
    embedded = model.get_layer("embedding")(np.tile(IDS, (8, 1)))
    dropped = layer(embedded, training=True).numpy()
    zero_rows = np.all(dropped == 0, axis=-1)
    partly_zero = np.any(dropped == 0, axis=-1) & ~zero_rows
    assert 0.3 < zero_rows.mean() < 0.7 and not partly_zero.any()
    np.testing.assert_array_equal(layer(embedded, training=False).numpy(), embedded.numpy())
    assert layer.supports_masking
    with pytest.raises(ConfigError, match="word_dropout"):
        ModelConfig(word_dropout=1.0)


@pytest.mark.parametrize("adversarial", [True, False])
def test_the_epoch_loop_trains_like_keras_fit(adversarial):
    """`EpochLoop` (the one training loop, here under the default strategy) takes the same
    steps as Keras' `fit`, with and without adversarial training."""
    from imdb_rnn.config import RunConfig
    from imdb_rnn.training.loop import EpochLoop

    batches = tf.data.Dataset.from_tensor_slices((IDS, LABELS)).batch(2)
    objective = AdversarialObjective(1.0) if adversarial else CleanObjective()
    # Clean: Keras' own train_step; adversarial: a train_step of the same objective.
    with_fit = _model(seed=5, objective=objective if adversarial else None)
    with_loop = _model(seed=5)
    fit_history = with_fit.fit(batches, epochs=2, verbose=0, shuffle=False).history
    config = RunConfig().replace(training={"epochs": 2})
    loop = EpochLoop(
        with_loop, config=config, steps_per_epoch=2, train_size=len(IDS), objective=objective
    )
    history = loop.run(batches.repeat(2), validation=batches)
    for a, b in zip(with_fit.get_weights(), with_loop.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(history["loss"], fit_history["loss"], rtol=1e-5)
    assert len(history["val_loss"]) == 2 and len(loop.epoch_train_seconds) == 2
    if adversarial:
        plain = _model(seed=5)
        plain.fit(batches, epochs=2, verbose=0, shuffle=False)
        assert any(
            not np.allclose(a, c)
            for a, c in zip(with_fit.get_weights(), plain.get_weights(), strict=True)
        )


@pytest.mark.slow
def test_adversarial_run_resumes_mid_epoch_like_an_uninterrupted_one(imdb_archive, tmp_path):
    """A checkpointed adversarial run with word dropout, resumed from a copy of its checkpoint
    taken mid-epoch, ends with the history and predictions of the run that never stopped."""
    import shutil

    from imdb_rnn.data.imdb import load_imdb
    from imdb_rnn.training.trainer import Trainer

    config = tiny_config(epochs=2, adversarial_epsilon=0.05, checkpoint_every_steps=4).replace(
        data={"batch_size": 4}, model={"word_dropout": 0.2}
    )
    splits = load_imdb(imdb_archive)
    folder, copy = tmp_path / "checkpoint", tmp_path / "mid_epoch"

    class CopyAfterBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == 7 and not copy.exists():  # the last checkpoint was at batch 4
                shutil.copytree(folder, copy)

    texts = ["a great film", "awful boring mess", ""]
    trainer = Trainer(config)
    history = trainer.fit(splits, checkpoint_dir=folder, callbacks=[CopyAfterBatch()])
    resumed = Trainer(config)
    stages: list[str] = []
    resumed_history = resumed.fit(splits, checkpoint_dir=copy, on_stage=stages.append)
    assert any(stage.startswith("Resuming from the checkpoint at epoch 1/2") for stage in stages)
    assert resumed_history == history
    np.testing.assert_array_equal(resumed.predict_logits(texts), trainer.predict_logits(texts))
