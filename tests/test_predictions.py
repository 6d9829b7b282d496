"""Tests for imdb_rnn.inference.predictions: one probability function, typed prediction rows."""

import numpy as np
import pytest

from imdb_rnn.inference.predictions import (
    Prediction,
    check_threshold,
    class_probabilities,
    label_of,
    predicted_indices,
    prediction_of,
    two_classes,
)


def test_two_class_probabilities_are_the_sigmoid_of_the_scaled_logit():
    """One logit per text gives `[1 - p, p]`, p the sigmoid of logit / temperature."""
    probabilities = class_probabilities(np.array([0.0, 3.0], np.float32), temperature=1.5)
    positive = 1.0 / (1.0 + np.exp(-np.array([0.0, 2.0])))
    np.testing.assert_array_equal(probabilities, np.stack([1.0 - positive, positive], axis=1))


def test_class_probabilities_are_the_softmax_of_the_scaled_logits():
    """A row of logits per text gives its softmax at the temperature, in float64."""
    logits = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]], np.float32)
    probabilities = class_probabilities(logits, temperature=2.0)
    scaled = logits.astype(np.float64) / 2.0
    expected = np.exp(scaled) / np.exp(scaled).sum(axis=1, keepdims=True)
    assert probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)


def test_two_class_rows_keep_the_json_keys_in_order():
    """A two-class prediction's dict is `text, label, probability, score, scores, known_words`."""
    row = prediction_of("meh", np.array([0.7, 0.3]), ("neg", "pos"), threshold=0.25)
    assert row.label == "pos" and row.score == 0.3
    assert list(row.to_dict()) == ["text", "label", "probability", "score", "scores", "known_words"]
    assert row.to_brief_dict() == {"text": "meh", "label": "pos", "probability": 0.3}


def test_rows_of_more_classes_have_no_probability():
    """More classes: the most probable class, its `score`, and no `probability` key."""
    row = prediction_of("a cat", np.array([0.1, 0.6, 0.3]), ("a", "b", "c"), known_words=2)
    assert row == Prediction("a cat", "b", 0.6, {"a": 0.1, "b": 0.6, "c": 0.3}, 2)
    assert list(row.to_dict()) == ["text", "label", "score", "scores", "known_words"]
    assert list(row.to_brief_dict()) == ["text", "label", "score", "scores"]


def test_the_threshold_decides_two_classes_only():
    """The threshold moves a two-class decision and is ignored for the argmax of more."""
    assert predicted_indices(np.array([[0.4, 0.6]]), threshold=0.7).tolist() == [0]
    assert predicted_indices(np.array([[0.4, 0.6]])).tolist() == [1]
    assert predicted_indices(np.array([[0.5, 0.2, 0.3]]), threshold=0.1).tolist() == [0]
    assert label_of(0.6, threshold=0.7) == "neg" and label_of(0.6) == "pos"


def test_thresholds_are_checked_against_the_classes():
    """A threshold for a model of three classes, or outside [0, 1], is refused."""
    assert two_classes(("neg", "pos")) and not two_classes(("a", "b", "c"))
    check_threshold(None, ("a", "b", "c"))
    with pytest.raises(ValueError, match="two-class model"):
        check_threshold(0.5, ("a", "b", "c"))
    with pytest.raises(ValueError, match=r"threshold in \[0, 1\]"):
        check_threshold(1.5, ("neg", "pos"))
