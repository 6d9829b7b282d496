"""Tests for imdb_rnn.training.trainer on the fixture archive."""

import errno
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import build_reviews, tiny_config, write_archive
from imdb_rnn import native
from imdb_rnn.config import RunConfig
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.errors import ModelFileError
from imdb_rnn.inference.results import EvaluationResult
from imdb_rnn.training.trainer import Trainer
from imdb_rnn.training.workflows import evaluate, predict, train


def test_metrics_from_logits():
    """Metrics, confusion matrix and loss are computed from logits as documented."""
    logits = np.array([2.0, -1.0, 0.5, -3.0, 1.0])
    labels = np.array([1, 0, 0, 1, 1])
    result = EvaluationResult.from_logits(logits, labels, seconds=2.0)
    assert result.confusion == [[1, 1], [1, 2]]
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)
    expected_loss = np.mean(np.log1p(np.exp(-np.where(labels == 1, logits, -logits))))
    assert result.loss == pytest.approx(expected_loss)
    assert result.examples_per_second == pytest.approx(2.5)


def test_multiclass_metrics_from_logits():
    """Three classes: accuracy, confusion, per-class and macro metrics, categorical loss."""
    logits = np.array([[2.0, 0, 0], [0, 2, 0], [0, 0, 2], [2, 0, 0], [0, 2, 0]])
    labels = np.array([0, 1, 2, 1, 2])
    result = EvaluationResult.from_logits(logits, labels, 1.0, label_names=("a", "b", "c"))
    assert result.confusion == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert result.accuracy == pytest.approx(3 / 5)
    per_class = {row["label"]: row for row in result.per_class}
    assert per_class["a"]["precision"] == pytest.approx(0.5) and per_class["a"]["recall"] == 1
    assert per_class["c"]["precision"] == 1 and per_class["c"]["recall"] == pytest.approx(0.5)
    assert [row["support"] for row in result.per_class] == [1, 2, 2]
    f1 = [2 / 3, 0.5, 2 / 3]
    assert result.macro_f1 == pytest.approx(np.mean(f1)) == pytest.approx(result.f1)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert result.loss == pytest.approx(-np.mean(log_softmax[np.arange(5), labels]))


def test_binary_metrics_per_class():
    """Two classes also report per-class metrics; the positive class matches precision/recall."""
    result = EvaluationResult.from_logits(
        np.array([2.0, -1.0, 0.5, -3.0, 1.0]), np.array([1, 0, 0, 1, 1]), seconds=1.0
    )
    neg, pos = result.per_class
    assert (neg["label"], pos["label"]) == ("neg", "pos")
    assert pos["precision"] == result.precision and pos["recall"] == result.recall
    assert neg["support"] == 2 and pos["support"] == 3
    assert result.macro_f1 == pytest.approx((neg["f1"] + pos["f1"]) / 2)


def test_metrics_refuse_unlabelled():
    """Evaluating on unlabelled reviews (-1) is an error."""
    with pytest.raises(ValueError, match="unlabelled"):
        EvaluationResult.from_logits(np.zeros(2), np.array([-1, 1]), seconds=1.0)


def test_saved_run_learns_the_fixture(trained_model_dir):
    """A model trained on the fixture separates its made-up classes and records its run."""
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.8
    history = json.loads((trained_model_dir / "history.json").read_text())
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    config = json.loads((trained_model_dir / "config.json").read_text())
    assert config["model"]["rnn_units"] == 4
    # What ran the GRU is recorded: cuDNN where a GPU is visible, else the native kernel
    # wherever it builds.
    if tf.config.list_logical_devices("GPU"):
        assert metrics["rnn_kernel"] == "cudnn"
    else:
        assert metrics["rnn_kernel"] == ("native" if native.available() else "tensorflow")


def test_predict_keeps_the_callers_order(trained_model_dir):
    """Predictions come back in input order, whatever the lengths."""
    trainer = Trainer.load(trained_model_dir)
    texts = [
        "wonderful superb brilliant film " * 6,
        "awful",
        "great",
        "the worst boring dull mess " * 3,
        "",
    ]
    together = trainer.predict_proba(texts)
    one_by_one = np.array([trainer.predict_proba([text])[0] for text in texts])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)
    assert together[0] > 0.5 > together[3]


def test_empty_and_odd_reviews_predict(trained_model_dir):
    """Empty, whitespace-only, punctuation-only and very long reviews all predict."""
    probabilities = Trainer.load(trained_model_dir).predict_proba(
        ["", "   ", "?!", "film " * 20_000]
    )
    assert probabilities.shape == (4,) and np.isfinite(probabilities).all()


def test_reloaded_model_evaluates_like_the_original(trained_model_dir, imdb_archive):
    """evaluate() on the saved model reproduces the test accuracy recorded at training time."""
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    result = evaluate(trained_model_dir, source=imdb_archive, split="test")
    assert result.accuracy == pytest.approx(metrics["test"]["accuracy"])
    assert result.examples == 40


def test_plain_and_bucketed_evaluation_agree(trained_model_dir, imdb_archive):
    """Both pipelines give the same metrics on the same model and split."""
    trainer = Trainer.load(trained_model_dir)
    test = load_imdb(imdb_archive, splits=["test"]).test
    plain, bucketed = (
        trainer.evaluate(test, pipeline="plain"),
        trainer.evaluate(test, pipeline="bucketed"),
    )
    assert plain.confusion == bucketed.confusion
    assert plain.loss == pytest.approx(bucketed.loss, rel=1e-4)


def test_predict_function(trained_model_dir):
    """predict() returns text, label and probability per review."""
    (item,) = predict(trained_model_dir, ["a great film"])
    assert set(item) == {"text", "label", "probability"}
    assert item["label"] == ("pos" if item["probability"] >= 0.5 else "neg")
    with pytest.raises(ValueError, match="No reviews"):
        predict(trained_model_dir, [])


def test_load_refuses_bad_directories(tmp_path, trained_model_dir):
    """Missing, empty and future-version model directories raise ModelFileError."""
    with pytest.raises(ModelFileError, match="No model directory"):
        Trainer.load(tmp_path / "missing")
    with pytest.raises(ModelFileError, match=r"holds no model\.keras"):
        Trainer.load(tmp_path)
    future = tmp_path / "future"
    future.mkdir()
    (future / "model.keras").write_bytes((trained_model_dir / "model.keras").read_bytes())
    config = json.loads((trained_model_dir / "config.json").read_text())
    config["version"] = 99
    (future / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="newer"):
        Trainer.load(future)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["plain", "bucketed"])
def test_both_pipelines_train(imdb_archive, pipeline):
    """Each pipeline trains the same model to well above chance on the fixture."""
    splits = load_imdb(imdb_archive)
    trainer = Trainer(tiny_config(epochs=3).replace(data={"pipeline": pipeline}))
    history = trainer.fit(splits)
    assert len(history["val_loss"]) == 3
    assert trainer.evaluate(splits.test).accuracy >= 0.8


@pytest.fixture
def tf_config():
    """TensorFlow's internal config module; op determinism is switched off again afterwards,
    since it holds for the whole process."""
    from tensorflow.python.framework import config

    yield config
    config.disable_op_determinism()


@pytest.mark.slow
def test_same_seed_same_result(imdb_archive, tf_config):
    """Two runs with the same seed give exactly the same history and predictions (on a CPU,
    deterministic kernels or not); another seed gives another result."""
    splits = load_imdb(imdb_archive, limit=30)
    texts = ["a great film", "awful boring mess", ""]
    results = []
    for training in ({}, {"deterministic": True}, {"seed": 7}):
        trainer = Trainer(tiny_config(epochs=1, **training).replace(model={"dropout": 0.2}))
        results.append((trainer.fit(splits), trainer.predict_logits(texts).tolist()))
    assert results[0] == results[1]
    assert results[2][0]["loss"] != results[0][0]["loss"]
    assert tf_config.is_op_determinism_enabled()


def test_failed_model_save_keeps_the_old_model(trained_model_dir, tmp_path, monkeypatch):
    """A save that fails half-way (here: a full disk) leaves the previous model.keras intact and
    loadable, and no temporary file behind."""
    directory = shutil.copytree(trained_model_dir, tmp_path / "run")
    trainer = Trainer.load(directory)
    before = trainer.predict_proba(["a great film", "awful boring mess"])

    def half_written_save(model, path, *args, **kwargs):
        with open(path, "wb") as stream:
            stream.write(b"PK\x03\x04 half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", half_written_save)
    with pytest.raises(OSError, match="No space"):
        trainer.save(directory)
    monkeypatch.undo()
    after = Trainer.load(directory).predict_proba(["a great film", "awful boring mess"])
    np.testing.assert_array_equal(before, after)
    assert not [path for path in directory.iterdir() if path.name.startswith(".")]


@pytest.mark.slow
def test_train_reports_review_files_that_are_not_utf8(tmp_path):
    """Reviews that are not UTF-8 are read with replacement characters, counted and reported."""
    members = build_reviews(train=5, test=5, unsup=4)
    members["aclImdb/train/pos/99_9.txt"] = b"Caf\xe9 \xff good film"
    stages = []
    result = train(
        tiny_config(epochs=1),
        source=write_archive(tmp_path / "latin1.tar.gz", members),
        evaluate_test=False,
        on_stage=stages.append,
    )
    assert result.decode_errors == 1
    assert "1 review files were not valid UTF-8: read with replacement characters" in stages


def test_best_epoch_of_an_unfitted_or_loaded_trainer(trained_model_dir):
    """`best_epoch` needs no `fit` in this process: 0 before training; for a loaded Trainer, the
    epoch its history says was kept (the lowest validation loss under early stopping, else the
    last epoch), as metrics.json records it."""
    assert Trainer(tiny_config()).best_epoch == 0
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    assert Trainer.load(trained_model_dir).best_epoch == metrics["best_epoch"] == 3
    early = Trainer(tiny_config(early_stopping_patience=2))
    early.history = {"loss": [0.7, 0.5, 0.3], "val_loss": [0.6, 0.4, 0.5]}
    assert early.best_epoch == 2


@pytest.mark.slow
def test_weight_averaging_validates_and_keeps_the_averaged_weights(imdb_archive):
    """With `ema_momentum`, the optimizer steps exactly as without it (the same training loss
    every epoch: the averages are swapped in for validation and out again), validation sees the
    averaged weights, and the model keeps them at the end."""
    splits = load_imdb(imdb_archive)
    plain = Trainer(tiny_config(epochs=2))
    plain_history = plain.fit(splits)
    averaged = Trainer(tiny_config(epochs=2, ema_momentum=0.9))
    history = averaged.fit(splits)
    assert history["loss"] == plain_history["loss"]
    assert history["val_loss"] != plain_history["val_loss"]
    # Early stopping (the preset's) restored the best epoch's weights: averaged ones.
    best = min(history["val_loss"])
    assert averaged.evaluate(splits.valid).loss == pytest.approx(best, rel=1e-5)
    # Without early stopping the model ends with the averages of the last epoch.
    values = tiny_config(epochs=2, ema_momentum=0.9).to_dict()
    values["training"]["early_stopping_patience"] = None
    last = Trainer(RunConfig.from_dict(values))
    history = last.fit(splits)
    assert last.evaluate(splits.valid).loss == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_min_steps_trains_a_small_data_set_for_more_epochs(imdb_archive):
    """With `training.min_steps`, a split of few batches trains more epochs than `epochs`, and
    the saved config says how many it ran; a checkpoint of that run resumes under the config
    given before the epochs were raised."""
    from imdb_rnn.training.checkpoints import config_differences

    splits = load_imdb(imdb_archive, splits=["train", "valid", "test"], limit=40)
    config = tiny_config(epochs=1, min_steps=9)  # 36 reviews, batches of 8: 5 per epoch
    trainer = Trainer(config)
    stages: list[str] = []
    history = trainer.fit(splits, on_stage=stages.append)
    assert len(history["loss"]) == 2 == trainer.config.training.epochs
    assert any("at least 9 batches" in stage for stage in stages)
    saved = trainer.config.to_dict()
    assert config_differences(saved, config) == []
    assert config_differences(saved, config.replace(training={"min_steps": 20})) != []
    assert config_differences(saved, config.replace(training={"epochs": 3})) != []


def test_seed_zero_trains_like_any_other_seed(imdb_archive):
    """Seed 0 trains, whatever the pipeline (TensorFlow reads a global seed of 0 with an epoch's
    tensor seed as a Python truth test, which fails inside a `tf.data` function), and it still
    seeds NumPy with 0."""
    splits = load_imdb(imdb_archive, splits=["train", "valid"], limit=30)
    for pipeline in ("sorted", "plain"):
        config = tiny_config(epochs=1, seed=0).replace(data={"pipeline": pipeline})
        assert len(Trainer(config).fit(splits)["loss"]) == 1
    np.random.seed(0)
    expected = np.random.rand()
    from imdb_rnn.devices import seed_everything

    seed_everything(0)
    assert np.random.rand() == expected
