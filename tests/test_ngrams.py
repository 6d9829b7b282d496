"""Tests for imdb_rnn.ngrams: the n-gram part of a hybrid classifier, and hybrids end to end."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import predict_in_new_process, tiny_config
from imdb_rnn.config import get_preset
from imdb_rnn.ngrams import (
    NgramFeatures,
    NgramLogits,
    fit_blend,
    fit_ngram_logits,
    naive_bayes_ratios,
)
from imdb_rnn.training.trainer import Trainer
from imdb_rnn.training.workflows import train


def test_features_are_distinct_unigrams_and_hashed_bigrams():
    """Each unigram and bigram appears once per row; padding gives none; OOV ids are clipped."""
    layer = NgramFeatures(vocabulary_size=10, num_buckets=16)
    rows = layer(np.array([[2, 3, 2, 3, 0, 0], [12, 4, 0, 0, 0, 0]], "int32")).numpy()
    first = sorted(int(f) for f in rows[0] if f)
    # 2, 3 and the pairs (2, 3) and (3, 2): (2, 3) twice but counted once.
    assert first == [2, 3, 10 + (2 * 1_000_003 + 3) % 16, 10 + (3 * 1_000_003 + 2) % 16]
    second = sorted(int(f) for f in rows[1] if f)
    assert second == [1, 4, 10 + (1 * 1_000_003 + 4) % 16]  # 12 is out of the vocabulary


def test_naive_bayes_ratios_point_to_the_class():
    """A feature seen only in positive rows gets a positive ratio, only in negative a negative."""
    features = tf.ragged.constant([[2, 5], [2, 6], [3, 5], [3, 6]], dtype=tf.int64)
    ratios, seen = naive_bayes_ratios(features, np.array([1, 1, 0, 0]), 8)
    assert ratios[2] > 0 > ratios[3]
    assert ratios[5] == pytest.approx(ratios[6])  # in one row of each class
    assert seen == 4 and ratios[0] == 0


def _bag_rows(rng, count):
    """Token-id rows whose label is given by word 2 (pos) or 3 (neg) among noise words."""
    rows, labels = [], []
    for _ in range(count):
        label = int(rng.integers(2))
        row = list(rng.integers(4, 30, size=int(rng.integers(3, 9))))
        row.insert(int(rng.integers(len(row) + 1)), 2 if label else 3)
        rows.append(row)
        labels.append(label)
    return tf.ragged.constant(rows, dtype=tf.int32), np.array(labels, np.int32)


def test_fit_ngram_logits_learns_a_separable_bag():
    """The n-gram part alone classifies rows whose class is one word, on held-out rows."""
    rng = np.random.default_rng(0)
    features = NgramFeatures(vocabulary_size=32, num_buckets=64)
    logits = NgramLogits(features.num_features)
    logits.build()
    train_rows, valid_rows = _bag_rows(rng, 200), _bag_rows(rng, 60)
    epochs, best, seen = fit_ngram_logits(features, logits, train_rows, valid_rows, epochs=4)
    assert 1 <= best <= epochs <= 4 and seen > 30
    scores = logits(features(valid_rows[0].to_tensor())).numpy()[:, 0]
    assert np.mean((scores > 0) == (valid_rows[1] == 1)) == 1.0
    assert logits.kernel.numpy()[2, 0] * logits.ratio.numpy()[2, 0] > 0


def test_fit_blend_weights_the_informative_part():
    """The blend puts its weight on the part whose logits predict the labels."""
    rng = np.random.default_rng(1)
    labels = rng.integers(2, size=400)
    informative = (labels * 2.0 - 1.0) * 2 + rng.normal(size=400)
    noise = rng.normal(size=400)
    mix, bias = fit_blend(noise[:, None], informative[:, None], labels)
    assert mix[1] > 0.5 and abs(mix[0]) < 0.2 and bias.shape == (1,)
    mix, _ = fit_blend(informative[:, None], noise[:, None], labels)
    assert mix[0] > 0.5 and abs(mix[1]) < 0.2


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory, imdb_archive):
    """A hybrid model trained on the fixture archive."""
    output = tmp_path_factory.mktemp("hybrid") / "run"
    config = tiny_config(epochs=2).replace(model={"ngram_buckets": 256})
    assert get_preset("default").model.ngram_buckets
    assert config.training.ngram_pseudo_label_threshold == 0.9
    result = train(config, source=imdb_archive, output=output)
    return output, result


def test_hybrid_run_records_its_parts(hybrid_dir):
    """A hybrid run fits both parts and records each one's validation accuracy and the blend."""
    output, result = hybrid_dir
    record = json.loads((output / "metrics.json").read_text())["ngrams"]
    assert record == result.ngrams
    assert set(record) >= {"valid_accuracy_recurrent", "valid_accuracy_ngrams", "mix"}
    # The fixture's classes are given by sentiment words: the bag of words finds them.
    assert record["valid_accuracy_ngrams"] >= 0.9
    assert record["mix"][1] > 0
    # The default's self-training of the n-gram part: the hybrid labelled the unlabelled texts.
    assert record["pseudo_labels"]["unlabelled"] == 30
    assert 0 < record["pseudo_labels"]["added"] <= 30


@pytest.mark.slow
def test_hybrid_reloads_with_the_same_scores(hybrid_dir):
    """The saved hybrid, loaded in a fresh process, gives the scores of the model in memory."""
    output, _ = hybrid_dir
    texts = ["A wonderful, moving film.", "Dull and boring, a waste."]
    trainer = Trainer.load(output)
    assert [layer.name for layer in trainer.classifier.layers][-1] == "blend"
    in_memory = trainer.predict_proba(texts)
    assert predict_in_new_process(output, texts) == pytest.approx(in_memory.tolist(), abs=1e-6)
    assert in_memory[0] > 0.5 > in_memory[1]


def test_hybrid_off_is_the_recurrent_classifier(imdb_archive):
    """ngram_buckets=0 builds and saves the recurrent classifier alone."""
    trainer = Trainer(tiny_config(epochs=1).replace(model={"ngram_buckets": 0}))
    from imdb_rnn.data.imdb import load_imdb

    trainer.fit(load_imdb(imdb_archive, splits=["train", "valid", "unsupervised"]))
    assert trainer.ngram_fit is None
    assert "blend" not in [layer.name for layer in trainer.classifier.layers]


@pytest.mark.slow
def test_hybrid_exports_as_a_saved_model_with_the_same_scores(hybrid_dir, tmp_path):
    """The SavedModel of a hybrid serves the scores of the loaded model."""
    from imdb_rnn.deploy.export import export_saved_model

    output, _ = hybrid_dir
    texts = ["A wonderful, moving film.", "Dull and boring, a waste.", ""]
    exported = export_saved_model(output, tmp_path / "export")
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    probabilities = serve(text=tf.constant(texts))["probability"].numpy().reshape(-1)
    expected = Trainer.load(output).predict_proba(texts)
    assert probabilities.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_hybrid_tflite_export_is_refused_with_a_pointer(hybrid_dir, tmp_path):
    """TensorFlow Lite export of a hybrid says to export a SavedModel instead."""
    from imdb_rnn.deploy.tflite import export_tflite

    output, _ = hybrid_dir
    with pytest.raises(ValueError, match="SavedModel"):
        export_tflite(output, tmp_path / "tflite")
    assert not (tmp_path / "tflite").exists()


def test_explanations_say_which_part_moved_the_answer(hybrid_dir):
    """Each part's share of the logit is given, and with the bias they make the logit."""
    from imdb_rnn.inference.explain import explained_rows

    output, _ = hybrid_dir
    trainer = Trainer.load(output)
    texts = ["A wonderful, moving film.", "Dull and boring, a waste."]
    rows = explained_rows(trainer, texts)
    bias = float(trainer.classifier.get_layer("blend").get_weights()[1][0])
    logits = trainer.predict_logits(texts)
    for row, logit in zip(rows, logits, strict=True):
        parts = row["parts"]
        assert parts["recurrent"] + parts["ngrams"] + bias == pytest.approx(float(logit), abs=1e-3)
    assert rows[0]["parts"]["ngrams"] > 0 > rows[1]["parts"]["ngrams"]


@pytest.mark.slow
def test_an_interrupted_hybrid_resumes_to_the_same_model(imdb_archive, tmp_path):
    """A hybrid killed mid-epoch resumes from its checkpoint, fits its n-gram part again and
    ends with the uninterrupted run's scores, also saved and reloaded in a fresh process."""
    import shutil

    from imdb_rnn.data.imdb import load_imdb
    from test_checkpoints import Snapshot

    splits = load_imdb(imdb_archive)
    config = tiny_config(epochs=2, checkpoint_every_steps=3).replace(model={"ngram_buckets": 256})
    texts = ["A wonderful, moving film.", "Dull and boring, a waste."]
    folder, snapshot = tmp_path / "checkpoint", tmp_path / "killed"
    whole = Trainer(config)
    killed = Snapshot(folder, snapshot, epoch=1, step=5)
    whole.fit(splits, checkpoint_dir=folder, callbacks=[killed])
    expected = whole.predict_proba(texts)
    shutil.rmtree(folder)
    resumed = Trainer(config)
    stages: list[str] = []
    resumed.fit(splits, checkpoint_dir=snapshot, on_stage=stages.append)
    assert any(stage.startswith("Resuming from the checkpoint") for stage in stages)
    assert resumed.ngram_fit == whole.ngram_fit
    np.testing.assert_allclose(resumed.predict_proba(texts), expected, rtol=1e-6)
    resumed.save(tmp_path / "model")
    assert predict_in_new_process(tmp_path / "model", texts) == pytest.approx(
        expected.tolist(), abs=1e-6
    )
