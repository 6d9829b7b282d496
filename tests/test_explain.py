"""Tests for imdb_rnn.inference.explain: occlusion explanations."""

import random

import numpy as np
import pytest
import tensorflow as tf

from conftest import _NEGATIVE, _POSITIVE, real_data_path
from imdb_rnn.inference.explain import explain, predict_and_explain, words_of
from imdb_rnn.training.trainer import Trainer

REVIEW = "The plot was GREAT, superb<br />acting... but the ending was dull!"


@pytest.fixture(scope="module")
def trainer(trained_model_dir):
    return Trainer.load(trained_model_dir)


def _without(words, removed):
    return " ".join(word for word in words if word not in removed)


def test_words_are_the_tokens_the_model_sees(trainer):
    """Joining the words gives the same token ids as the raw review."""
    texts = [REVIEW, "odd\x85word and\u2028more", "  spaced   out  ", ""]
    for text, words in zip(texts, words_of(texts), strict=True):
        raw = trainer.encoder(tf.constant([text])).numpy()
        joined = trainer.encoder(tf.constant([" ".join(words)])).numpy()
        np.testing.assert_array_equal(raw, joined)
    assert words_of([REVIEW])[0][:4] == ["the", "plot", "was", "great"]


@pytest.mark.slow
def test_weights_are_the_change_when_a_word_is_removed(trainer):
    """Each weight equals P(review) - P(review without that word), scored separately."""
    (explanation,) = explain(trainer, [REVIEW])
    assert explanation.probability == pytest.approx(trainer.predict_proba([REVIEW])[0], abs=1e-5)
    assert {item.word for item in explanation.weights} == set(explanation.words)
    counts = {item.word: item.count for item in explanation.weights}
    assert counts["the"] == counts["was"] == 2 and counts["great"] == 1
    for item in explanation.weights:
        alone = trainer.predict_proba([_without(explanation.words, {item.word})])[0]
        assert item.weight == pytest.approx(explanation.probability - alone, abs=1e-5), item
    magnitudes = [abs(item.weight) for item in explanation.weights]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_sentiment_words_push_the_right_way(trainer, fixture_reviews):
    """On the fixture, its positive words get positive weights and its negative words negative."""
    texts = [text for name, text in sorted(fixture_reviews.items()) if "/test/" in name]
    positive, negative = [], []
    for explanation in explain(trainer, texts):
        positive += [item.weight for item in explanation.weights if item.word in _POSITIVE]
        negative += [item.weight for item in explanation.weights if item.word in _NEGATIVE]
    assert np.mean(positive) > 0 > np.mean(negative)


def test_removing_the_top_positive_words_lowers_the_probability(trainer, fixture_reviews):
    """For each review called positive, removing its two most positive words lowers P(pos)."""
    texts = [text for name, text in sorted(fixture_reviews.items()) if "/test/pos/" in name]
    explanations = explain(trainer, texts)
    edited = []
    for explanation in explanations:
        top = [item.word for item in explanation.weights if item.weight > 0][:2]
        edited.append(_without(explanation.words, set(top)))
    before = np.array([explanation.probability for explanation in explanations])
    after = trainer.predict_proba(edited)
    assert np.all(after < before)


def test_batching_keeps_each_review_apart(trainer):
    """Explaining several reviews at once gives what explaining each alone gives."""
    texts = [REVIEW, "", "awful awful wonderful", "great"]
    together = explain(trainer, texts)
    assert together[1].weights == [] and together[1].words == []
    for text, explanation in zip(texts, together, strict=True):
        (alone,) = explain(trainer, [text])
        assert [i.word for i in explanation.weights] == [i.word for i in alone.weights]
        np.testing.assert_allclose(
            [i.weight for i in explanation.weights], [i.weight for i in alone.weights], atol=1e-5
        )


def test_predict_and_explain_adds_explanations(trained_model_dir):
    """predict_and_explain returns predict()'s fields plus a {word, weight} list."""
    (item,) = predict_and_explain(trained_model_dir, ["superb film"])
    assert {"text", "label", "probability", "explanation"} <= set(item)
    assert {entry["word"] for entry in item["explanation"]} == {"superb", "film"}
    assert all(set(entry) == {"word", "weight"} for entry in item["explanation"])


DATA = real_data_path()


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(DATA is None, reason="real aclImdb archive not found (set IMDB_RNN_DATA)")
def test_real_reviews_top_positive_words_matter_most():
    """On real reviews (model trained for ~30 s), removing the three most positive words of a
    positive review lowers P(pos), and by more than removing three random words."""
    from imdb_rnn.config import get_preset
    from imdb_rnn.data.imdb import load_imdb

    splits = load_imdb(DATA, splits=["train", "valid", "test"], limit=4000)
    config = get_preset("default").replace(
        data={"vocabulary_source": "train", "max_length": 120, "truncation": "tail"},
        model={
            "max_tokens": 3000,
            "embedding_dim": 16,
            "rnn_units": 8,
            "dense_units": (8,),
            "word_dropout": 0.0,
        },
        # A quick plain model: the default's adversarial training learns more slowly at first.
        training={
            "epochs": 3,
            "min_steps": 0,
            "learning_rate": 1e-2,
            "early_stopping_patience": None,
            "adversarial_epsilon": 0.0,
            "pseudo_label_threshold": 0.0,
        },
    )
    config = config.replace(data={"batch_size": 32}, model={"pooling": "max"})
    trainer = Trainer(config)
    trainer.fit(splits)
    reviews = [
        text.decode() for text, label in splits["test"].take(300).as_numpy_iterator() if label == 1
    ]
    probabilities = trainer.predict_proba(reviews)
    confident = [text for text, p in zip(reviews, probabilities, strict=True) if p > 0.7][:30]
    assert len(confident) >= 10, "the quick model found too few positive reviews"
    explanations = explain(trainer, confident)
    rng = random.Random(0)
    top_edits, random_edits = [], []
    for explanation in explanations:
        top = {item.word for item in explanation.weights if item.weight > 0}
        top = [item.word for item in explanation.weights if item.word in top][:3]
        top_edits.append(_without(explanation.words, set(top)))
        distinct = sorted(set(explanation.words))
        random_edits.append(_without(explanation.words, set(rng.sample(distinct, 3))))
    before = np.array([explanation.probability for explanation in explanations])
    after_top = trainer.predict_proba(top_edits)
    after_random = trainer.predict_proba(random_edits)
    assert np.mean(after_top < before) >= 0.9
    assert np.mean(before - after_top) > 2 * np.mean(before - after_random)


def test_explained_words_are_capped_vocabulary_first(trainer):
    """A review with more distinct words than max_words has max_words explained, words of the
    model's vocabulary first; the rest are counted as unexplained."""
    made_up = [f"zz{index}" for index in range(40)]
    (explanation,) = explain(trainer, [" ".join([*made_up, "great", "awful"])], max_words=5)
    assert len(explanation.weights) == 5 and explanation.unexplained == 37
    assert {"great", "awful"} <= {item.word for item in explanation.weights}
    with pytest.raises(ValueError, match="max_words"):
        explain(trainer, ["great"], max_words=0)


def test_occlusions_are_scored_in_bounded_batches(trainer, monkeypatch):
    """A review of 1,000 distinct words costs at most 201 predictions (200 words explained),
    scored a few hundred at a time, not one prediction per word in a single batch."""
    sizes = []
    class_probabilities = trainer.class_probabilities

    def recording(texts):
        sizes.append(len(texts))
        return class_probabilities(texts)

    monkeypatch.setattr(trainer, "class_probabilities", recording)
    (explanation,) = explain(trainer, [" ".join(f"w{index}" for index in range(1000))])
    assert sum(sizes) == 201 and max(sizes) <= 256
    assert len(explanation.weights) == 200 and explanation.unexplained == 800
