"""Tests for imdb_rnn.training.ensemble: several seeds trained alike, their logits averaged."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from conftest import tiny_config
from imdb_rnn.cli._app import app
from imdb_rnn.config import ModelConfig, TrainingConfig
from imdb_rnn.data.sources import TextFiles
from imdb_rnn.errors import ConfigError
from imdb_rnn.inference.predictor import load
from imdb_rnn.models import build_classifier
from imdb_rnn.training.ensemble import ENSEMBLE_KEY, average_classifiers
from imdb_rnn.training.trainer import Trainer
from imdb_rnn.training.workflows import train


def _members(count, num_classes=3):
    config = ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2, dense_units=(3,))
    return [build_classifier(config, num_classes=num_classes) for _ in range(count)]


def test_average_classifiers_returns_the_mean_of_the_logits():
    """The ensemble's logits are the mean of its members' logits on the same ids."""
    keras.utils.set_random_seed(0)
    members = _members(3)
    ids = tf.constant([[2, 5, 7, 0], [3, 0, 0, 0]], dtype=tf.int32)
    expected = np.mean([member(ids).numpy() for member in members], axis=0)
    ensemble = average_classifiers(members)
    np.testing.assert_allclose(ensemble(ids).numpy(), expected, rtol=1e-6)
    assert ensemble.output_shape == (None, 3)


def test_average_classifiers_refuses_one_or_mixed_shapes():
    """One classifier, or classifiers of different outputs, are refused by name."""
    with pytest.raises(ValueError, match="at least two classifiers"):
        average_classifiers(_members(1))
    with pytest.raises(ValueError, match="one output shape"):
        average_classifiers([*_members(1, 3), *_members(1, 2)])


def test_ensemble_size_is_validated():
    """ensemble_size must be a positive integer."""
    with pytest.raises(ConfigError, match="ensemble_size"):
        TrainingConfig(ensemble_size=0)


@pytest.mark.slow
def test_train_an_ensemble_of_two_seeds(topic_files, tmp_path):
    """ensemble_size=2 trains seeds 42 and 43 (different weights), saves one model whose
    logits are the mean of its two members', and records each member in metrics.json; the
    directory loads and predicts like a single model."""
    output = tmp_path / "ensemble"
    config = tiny_config(epochs=3, ensemble_size=2)
    files = TextFiles(train=topic_files["train"], test=topic_files["test"])
    result = train(config, source=files, output=output)
    metrics = json.loads((output / "metrics.json").read_text())
    members = metrics[ENSEMBLE_KEY]["members"]
    assert [member["seed"] for member in members] == [42, 43]
    assert metrics["global_batch_size"] == config.data.batch_size
    assert result.test is not None and result.test.examples == 45
    classifier = Trainer.load(output).classifier
    first, second = (classifier.get_layer(f"member_{index}") for index in range(2))
    assert not np.allclose(first.get_weights()[0], second.get_weights()[0])
    ids = tf.constant([[2, 3, 4]], dtype=tf.int32)
    mean = (first(ids).numpy() + second(ids).numpy()) / 2
    np.testing.assert_allclose(classifier(ids).numpy(), mean, rtol=1e-6)
    predictions = load(output)(["One two three.", "Four five six."])
    assert all(row["label"] in result.label_names for row in predictions)


@pytest.mark.slow
def test_cli_ensemble_size(topic_files, tmp_path):
    """`imdb-rnn train --ensemble-size 2` writes an ensemble and says it in the config."""
    output = tmp_path / "cli-ensemble"
    arguments = ["train", "--train", str(topic_files["train"]), "--output", str(output)]
    tiny = ["--max-tokens", "50", "--embedding-dim", "8", "--rnn-units", "4", "--epochs", "1"]
    # The default preset (a hybrid, no self-training of its recurrent part) trains ensembles.
    result = CliRunner().invoke(app, [*arguments, *tiny, "--ensemble-size", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((output / "config.json").read_text())["training"]["ensemble_size"] == 2
    assert len(json.loads((output / "metrics.json").read_text())[ENSEMBLE_KEY]["members"]) == 2


@pytest.mark.slow
def test_a_two_class_ensemble_exports_as_a_saved_model_not_as_tflite(imdb_archive, tmp_path):
    """A two-class ensemble exports as a SavedModel whose probabilities are the loaded model's;
    the TensorFlow Lite export, which rebuilds one classifier, refuses it by name."""
    from imdb_rnn.deploy.export import export_saved_model
    from imdb_rnn.deploy.tflite import export_tflite

    output = tmp_path / "imdb-ensemble"
    train(tiny_config(epochs=1, ensemble_size=2), source=imdb_archive, output=output)
    export_saved_model(output, tmp_path / "serving" / "1")
    serve = tf.saved_model.load(str(tmp_path / "serving" / "1")).signatures["serving_default"]
    texts = ["a great film", "an awful film"]
    served = serve(text=tf.constant(texts))["probability"].numpy().reshape(-1)
    expected = Trainer.load(output).predict_proba(texts)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    with pytest.raises(ValueError, match="ensemble of 2"):
        export_tflite(output, tmp_path / "lite")
