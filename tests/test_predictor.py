"""Tests for imdb_rnn.inference.predictor (`imdb_rnn.load`) and models of more than two classes."""

import json

import numpy as np
import pytest

import imdb_rnn
from conftest import TOPIC_WORDS
from imdb_rnn.inference import classifier as classifier_module
from imdb_rnn.training.trainer import Trainer


def test_three_classes_train_with_a_softmax_head(topic_model_dir):
    """A three-class data set gets Dense(3) logits, learns its topics and saves its labels."""
    assert json.loads((topic_model_dir / "labels.json").read_text()) == sorted(TOPIC_WORDS)
    trainer = Trainer.load(topic_model_dir)
    assert trainer.classifier.output_shape == (None, 3)
    metrics = json.loads((topic_model_dir / "metrics.json").read_text())
    assert metrics["label_names"] == sorted(TOPIC_WORDS)
    assert metrics["test"]["accuracy"] >= 0.8
    assert len(metrics["test"]["confusion"]) == 3 and len(metrics["test"]["per_class"]) == 3


def test_two_classes_keep_the_single_logit(trained_model_dir):
    """The IMDB model keeps Dense(1) and its neg/pos labels."""
    trainer = Trainer.load(trained_model_dir)
    assert trainer.classifier.output_shape == (None, 1)
    assert trainer.label_names == ("neg", "pos")


def test_load_returns_the_pipeline_shape(topic_model_dir):
    """load(directory)(texts) gives [{label, score}], score the probability of the label."""
    classify = imdb_rnn.load(topic_model_dir)
    texts = ["a red and blue film", "the cat and the dog", "two three", "one"]
    results = classify(texts)
    assert [set(item) for item in results] == [{"label", "score"}] * 4
    assert [item["label"] for item in results[:3]] == ["colour", "animal", "number"]
    probabilities = classify.predict_proba(texts)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    for item, row in zip(results, probabilities, strict=True):
        assert item["score"] == pytest.approx(row.max())
        assert item["label"] == classify.labels[int(row.argmax())]
    assert classify("a green cat")[0]["label"] in TOPIC_WORDS  # a single string


def test_load_reads_the_model_once(topic_model_dir, monkeypatch):
    """Calls after load never read the model file again."""
    classify = imdb_rnn.load(topic_model_dir)

    def no_reload(*args, **kwargs):
        raise AssertionError("the model was read again")

    monkeypatch.setattr(classifier_module, "load_text_model", no_reload)
    assert len(classify(["one cat"])) == 1 and len(classify(["two dogs", "red"])) == 2


def test_unknown_words_are_counted(topic_model_dir):
    """A text with no word the model knows says so (known_words 0)."""
    classify = imdb_rnn.load(topic_model_dir)
    rows = classify.predict(["zzzz qqqq", "!!!", "a red cat"])
    assert [row["known_words"] for row in rows] == [0, 0, 3]
    assert set(rows[0]["scores"]) == set(TOPIC_WORDS)


def test_threshold_moves_the_binary_decision(trained_model_dir):
    """On a two-class model the threshold decides the label; the score follows the label."""
    texts = ["great superb film", "awful boring mess"]
    never = imdb_rnn.load(trained_model_dir, threshold=1.0).predict(texts)
    always = imdb_rnn.load(trained_model_dir, threshold=0.0).predict(texts)
    assert [row["label"] for row in always] == ["pos", "pos"]
    assert [row["label"] for row in never] == ["neg", "neg"]
    for row in never:
        assert row["score"] == pytest.approx(1 - row["probability"])


def test_threshold_needs_two_classes(topic_model_dir):
    """A threshold on a three-class model is refused, naming the argument."""
    with pytest.raises(ValueError, match="threshold"):
        imdb_rnn.load(topic_model_dir, threshold=0.5)


def test_explain_explains_the_predicted_class(topic_model_dir):
    """With more classes, the explanation is of the predicted class: its topic word pushes
    towards it."""
    from imdb_rnn.inference.explain import explained_rows

    (row,) = explained_rows(Trainer.load(topic_model_dir), ["the red plot"])
    assert row["label"] == row["explained"] == "colour"
    weights = {entry["word"]: entry["weight"] for entry in row["explanation"]}
    assert weights["red"] > 0 and weights["red"] == max(weights.values())


def test_model_card_and_versions(topic_model_dir, trained_model_dir):
    """Every model directory gets a README.md naming its data, labels, metrics, config and
    versions; metrics.json records the versions too."""
    import keras
    import tensorflow as tf

    metrics = json.loads((topic_model_dir / "metrics.json").read_text())
    assert metrics["versions"]["tensorflow"] == tf.__version__
    assert metrics["versions"]["keras"] == keras.__version__
    card = (topic_model_dir / "README.md").read_text()
    for needle in (
        "## Data",
        "train.csv",
        "`animal`, `colour`, `number`",
        f"| test | 45 | {metrics['test']['accuracy']:.4f}",
        "| colour |",
        "[model]",
        f"- keras: {keras.__version__}",
        "imdb_rnn.load",
    ):
        assert needle in card, needle
    imdb_card = (trained_model_dir / "README.md").read_text()
    assert "`neg`, `pos`" in imdb_card and "Dense(1) logit" in imdb_card
