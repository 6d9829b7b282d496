"""Tests for imdb_rnn.inference.classifier: a loaded model without the training code."""

import numpy as np

import imdb_rnn
from imdb_rnn.inference.classifier import Classifier
from imdb_rnn.inference.predictions import Prediction
from imdb_rnn.models import load_text_model
from imdb_rnn.training.trainer import Trainer

TEXTS = ["a great superb film", "an awful boring mess", "", "film"]


def test_a_trainer_is_a_classifier_and_a_loaded_classifier_is_no_trainer(trained_model_dir):
    """`Classifier.load` gives a plain classifier; `Trainer.load` a trainer that is one too."""
    loaded = Classifier.load(trained_model_dir)
    assert type(loaded) is Classifier and loaded.label_names == ("neg", "pos")
    assert isinstance(Trainer.load(trained_model_dir), Classifier)


def test_classifier_and_trainer_predict_the_same_numbers(trained_model_dir):
    """The loaded classifier's probabilities equal the trainer's, bit for bit."""
    classifier = Classifier.load(trained_model_dir)
    trainer = Trainer.load(trained_model_dir)
    np.testing.assert_array_equal(classifier.predict_proba(TEXTS), trainer.predict_proba(TEXTS))
    probabilities = classifier.class_probabilities(TEXTS)
    np.testing.assert_array_equal(probabilities[:, 1], classifier.predict_proba(TEXTS))


def test_a_classifier_wraps_a_text_model(topic_model_dir):
    """`from_text_model` on a saved text model predicts as the loaded directory does."""
    loaded = Classifier.load(topic_model_dir)
    model = load_text_model(topic_model_dir / "model.keras")
    wrapped = Classifier.from_text_model(model, loaded.config, label_names=loaded.label_names)
    assert wrapped.text_model is model
    np.testing.assert_array_equal(
        wrapped.class_probabilities(TEXTS), loaded.class_probabilities(TEXTS)
    )


def test_the_predictor_gives_typed_predictions(topic_model_dir):
    """`Predictor.predictions` are `Prediction`s whose dicts are `predict`'s rows."""
    classify = imdb_rnn.load(topic_model_dir)
    typed = classify.predictions(TEXTS)
    assert all(isinstance(row, Prediction) for row in typed)
    assert [row.to_dict() for row in typed] == classify.predict(TEXTS)
    assert classify.trainer is classify.classifier
