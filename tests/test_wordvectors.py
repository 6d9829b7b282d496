"""Pre-trained word vectors (`model.word_vectors`, imdb_rnn.data.wordvectors)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import _NEUTRAL, TOPIC_WORDS, tiny_config, topic_rows, write_topic_csv
from imdb_rnn.data.wordvectors import VECTOR_STD, read_word_vectors, vector_dimension
from imdb_rnn.errors import ConfigError, WordVectorsError

#: Topic words the training texts never use: only their vectors say which topic they are.
UNSEEN_WORDS = {
    "animal": ["lion", "tiger", "zebra", "wolf"],
    "colour": ["crimson", "violet", "amber", "teal"],
    "number": ["seven", "eight", "nine", "ten"],
}


def write_vectors(path: Path, *, header: bool = False) -> Path:
    """A 6-d vector file: each topic's words (seen and unseen) near one axis, the neutral
    words near none; punctuation and a capitalised word that the model can never see."""
    rng = np.random.default_rng(0)
    rows: list[tuple[str, np.ndarray]] = []
    for axis, topic in enumerate(TOPIC_WORDS):
        for word in [*TOPIC_WORDS[topic], *UNSEEN_WORDS[topic]]:
            vector = rng.normal(0, 0.1, 6)
            vector[axis] += 2.0
            rows.append((word, vector))
    rows += [(word, rng.normal(0, 0.3, 6)) for word in _NEUTRAL]
    rows += [(",", rng.normal(0, 1, 6)), ("Paris", rng.normal(0, 1, 6))]
    lines = [f"{word} " + " ".join(f"{x:.4f}" for x in vector) for word, vector in rows]
    if header:
        lines.insert(0, f"{len(rows)} 6")
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def unseen_rows(count: int) -> list[tuple[str, str]]:
    """Texts whose only topic words are ones no training text has."""
    rng = random.Random(5)
    rows = []
    for label, words in UNSEEN_WORDS.items():
        for _ in range(count):
            tokens = [rng.choice(_NEUTRAL) for _ in range(rng.randint(2, 5))]
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(words))
            rows.append((" ".join(tokens).capitalize() + ".", label))
    return rows


def test_read_word_vectors_adds_the_files_first_words_and_rescales(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "vectors.txt")
    vectors = read_word_vectors(path, ["cat", "red", "nowhere"], limit=30)
    assert vectors.vocabulary[:3] == ["cat", "red", "nowhere"]
    # The first 30 lines hold 24 topic words and 6 neutral ones; two are already asked for.
    assert vectors.added == 28
    assert vectors.found == 2  # "nowhere" has no vector
    assert vectors.vocabulary[3:6] == ["dog", "horse", "cow"]
    assert vectors.matrix.shape == (len(vectors.vocabulary) + 2, 6)
    assert not vectors.matrix[:2].any()  # padding and unknown
    assert not vectors.matrix[2 + 2].any()  # "nowhere"
    found = vectors.matrix[[i + 2 for i, w in enumerate(vectors.vocabulary) if w != "nowhere"]]
    assert found.std() == pytest.approx(VECTOR_STD, rel=1e-3)
    # Directions are kept: a topic's words stay closer to each other than to other topics.
    cat, lion, red = (
        vectors.matrix[vectors.vocabulary.index(w) + 2] for w in ("cat", "lion", "red")
    )
    assert cat @ lion > 5 * abs(cat @ red)


def test_words_the_model_cannot_see_are_not_added(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "vectors.txt")
    vectors = read_word_vectors(path, [], limit=10_000)
    assert "," not in vectors.vocabulary and "Paris" not in vectors.vocabulary
    assert "lion" in vectors.vocabulary and "the" in vectors.vocabulary


def test_word2vec_header_and_gzip(tmp_path: Path) -> None:
    plain = read_word_vectors(write_vectors(tmp_path / "a.txt"), ["cat", "dog"])
    packed = read_word_vectors(write_vectors(tmp_path / "b.vec.gz", header=True), ["cat", "dog"])
    np.testing.assert_array_equal(plain.matrix, packed.matrix)
    assert vector_dimension(tmp_path / "b.vec.gz") == 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("cat 1 2 3\ndog 1 2\n", "Expected 3 finite numbers"),
        ("cat 1 two 3\n", "Expected numbers after the word on line 1"),
        ("cat 1 nan 3\n", "finite"),
        ("fish 1 2 3\n", "Expected vectors for some of the 2 words"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WordVectorsError, match=message):
        read_word_vectors(path, ["cat", "dog"])


def test_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(WordVectorsError, match="Cannot read the word vectors"):
        read_word_vectors(tmp_path / "absent.txt", ["cat"])
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 1 2\n".encode("latin-1"))
    with pytest.raises(WordVectorsError, match="Cannot read the word vectors"):
        read_word_vectors(path, ["cat"])


def test_config_checks_and_clashes() -> None:
    with pytest.raises(ConfigError, match="word_vectors_limit"):
        tiny_config().replace(model={"word_vectors": "v.txt", "word_vectors_limit": -1})
    with pytest.raises(ConfigError, match="word_vectors to be a file path"):
        tiny_config().replace(model={"word_vectors": ""})
    with pytest.raises(ConfigError, match=r"training.layer_lr_decay"):
        tiny_config(layer_lr_decay=2.6).replace(model={"word_vectors": "v.txt"})
    with pytest.raises(ConfigError, match=r"training.encoder"):
        tiny_config(encoder="runs/lm").replace(model={"word_vectors": "v.txt"})


def _topic_config(vectors: Path | None):
    model = {"max_tokens": 40, "embedding_dim": 8, "rnn_units": 8, "dense_units": (8,)}
    if vectors is not None:
        # The trainable embedding keeps the 11 neutral words (the most frequent); the topic
        # words, seen or not, are read through their vectors only, as rare words are.
        # Frozen: fine-tuning would move the seen topic words away from the unseen ones.
        model |= {
            "max_tokens": 13,
            "word_vectors": str(vectors),
            "word_vectors_limit": 100,
            "word_vectors_trainable": False,
        }
    return tiny_config(epochs=8, learning_rate=1e-2, seed=3).replace(model=model)


def _accuracy(predictions: list[dict[str, object]], rows: list[tuple[str, str]]) -> float:
    return float(
        np.mean([p["label"] == label for p, (_, label) in zip(predictions, rows, strict=True)])
    )


@pytest.fixture(scope="module")
def vectors_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-class model trained with the vector file on `topic_rows(1, 40)` (shared,
    read-only); the folder beside it holds that vector file and training file."""
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.workflows import train

    folder = tmp_path_factory.mktemp("word-vectors")
    vectors = write_vectors(folder / "vectors.txt")
    train_csv = write_topic_csv(folder / "train.csv", topic_rows(1, 40))
    train(_topic_config(vectors), source=TextFiles(train=train_csv), output=folder / "vectors")
    return folder / "vectors"


@pytest.mark.slow
def test_unseen_words_keep_their_meaning(tmp_path: Path, vectors_model_dir: Path) -> None:
    import imdb_rnn
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.workflows import train

    train_csv = vectors_model_dir.parent / "train.csv"
    train(_topic_config(None), source=TextFiles(train=train_csv), output=tmp_path / "none")
    rows = unseen_rows(10)
    texts = [text for text, _ in rows]
    accuracies = {
        # Read back from model.keras.
        name: _accuracy(imdb_rnn.load(folder)(texts), rows)
        for name, folder in (("vectors", vectors_model_dir), ("none", tmp_path / "none"))
    }
    # Without vectors the unseen topic words are all unknown: no better than chance.
    assert accuracies["none"] < 0.6, accuracies
    assert accuracies["vectors"] >= 0.9, accuracies
    card = (vectors_model_dir / "README.md").read_text(encoding="utf-8")
    assert "word vectors" in card.lower()


@pytest.mark.slow
def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    """A run killed mid-epoch resumes with the saved vocabulary (the file's words included) and
    ends with the history and logits of the run that never stopped."""
    import shutil

    from imdb_rnn.data.sources import TextFiles, load_text_files
    from imdb_rnn.training.trainer import Trainer
    from test_checkpoints import Snapshot

    vectors = write_vectors(tmp_path / "vectors.txt")
    files = TextFiles(train=write_topic_csv(tmp_path / "train.csv", topic_rows(1, 20)))
    splits = load_text_files(files, splits=["train", "valid"])
    config = _topic_config(vectors).replace(training={"epochs": 2, "checkpoint_every_steps": 2})
    folder, snapshot = tmp_path / "checkpoint", tmp_path / "snapshot"
    trainer = Trainer(config, label_names=splits.label_names)
    history = trainer.fit(
        splits, checkpoint_dir=folder, callbacks=[Snapshot(folder, snapshot, epoch=1, step=3)]
    )
    texts = [text for text, _ in unseen_rows(2)]
    stages: list[str] = []
    resumed = Trainer(config, label_names=splits.label_names)
    assert (
        resumed.fit(
            splits, checkpoint_dir=shutil.copytree(snapshot, tmp_path / "c"), on_stage=stages.append
        )
        == history
    )
    assert "Adapting the vocabulary" not in stages
    assert "lion" in resumed.encoder.get_vocabulary()
    np.testing.assert_array_equal(resumed.predict_logits(texts), trainer.predict_logits(texts))
    # Saved, then loaded from disk in a fresh process (without the vector file): same scores.
    resumed.save(tmp_path / "model")
    (tmp_path / "vectors.txt").unlink()
    reloaded = _scores_in_new_process(tmp_path / "model", texts, resumed.label_names)
    np.testing.assert_allclose(reloaded, resumed.class_probabilities(texts), rtol=1e-5, atol=1e-7)


def _scores_in_new_process(model_dir: Path, texts: list[str], labels: tuple[str, ...]):
    """`imdb-rnn predict MODEL_DIR TEXTS --json` in a fresh process: every class's score."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "imdb_rnn", "predict", str(model_dir), *texts, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.array([[row["scores"][label] for label in labels] for row in json.loads(done.stdout)])


@pytest.mark.slow
def test_saved_model_export_serves_it_and_tflite_refuses(
    tmp_path: Path, vectors_model_dir: Path
) -> None:
    import tensorflow as tf

    import imdb_rnn
    from imdb_rnn.deploy.export import export_saved_model
    from imdb_rnn.deploy.tflite import export_tflite

    texts = ["the lion", "a crimson scene"]
    served = tf.saved_model.load(str(export_saved_model(vectors_model_dir, tmp_path / "sm")))
    outputs = served.signatures["serving_default"](text=tf.constant(texts))
    expected = imdb_rnn.load(vectors_model_dir).predict_proba(texts)
    np.testing.assert_allclose(outputs["scores"].numpy(), expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="word vectors"):
        export_tflite(vectors_model_dir, tmp_path / "lite")


def test_train_checks_the_file_before_reading_the_data(tmp_path: Path) -> None:
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.workflows import train

    stages: list[str] = []
    config = _topic_config(tmp_path / "absent.txt")
    files = TextFiles(train=tmp_path / "train.csv")  # absent too: the vectors are named first
    with pytest.raises(WordVectorsError, match=r"absent\.txt"):
        train(config, source=files, on_stage=stages.append)
    assert stages == []


@pytest.mark.slow
def test_on_disk_and_ensemble_runs_take_the_vectors(tmp_path: Path) -> None:
    """The streamed (`on_disk`) and ensemble paths extend the vocabulary and record the vectors
    as the in-memory path does, and their unseen topic words keep their meaning."""
    import imdb_rnn
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.workflows import train

    vectors = write_vectors(tmp_path / "vectors.txt")
    files = TextFiles(train=write_topic_csv(tmp_path / "train.csv", topic_rows(1, 40)))
    rows = unseen_rows(10)
    config = _topic_config(vectors)
    runs = {
        "on_disk": train(config, source=files, output=tmp_path / "disk", on_disk=True),
        "ensemble": train(
            config.replace(training={"ensemble_size": 2}), source=files, output=tmp_path / "ens"
        ),
    }
    for name, folder in (("on_disk", "disk"), ("ensemble", "ens")):
        record = runs[name].word_vectors
        assert record is not None and record["dim"] == 6, name
        predictor = imdb_rnn.load(tmp_path / folder)
        assert _accuracy(predictor([text for text, _ in rows]), rows) >= 0.8, name


@pytest.mark.slow
def test_adversarial_training_perturbs_both_embeddings(tmp_path: Path) -> None:
    """With word vectors, adversarial training perturbs the concatenated embeddings: the step
    runs, changes the loss it minimises, and the model still reads unseen words."""
    import keras
    import tensorflow as tf

    import imdb_rnn
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.models import build_classifier
    from imdb_rnn.training.objectives import AdversarialObjective
    from imdb_rnn.training.workflows import train

    config = _topic_config(write_vectors(tmp_path / "vectors.txt"))
    matrix = np.random.default_rng(0).normal(0, 0.1, (20, 6)).astype(np.float32)
    model = build_classifier(config.model, num_classes=3, word_vectors=matrix)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    ids = np.array([[2, 15, 3, 0], [18, 4, 0, 0]], "int32")
    labels = np.array([0, 2], "int32")
    clean = AdversarialObjective(1e-9).loss_and_gradients(model, ids, labels)
    step = AdversarialObjective(1.0).loss_and_gradients(model, ids, labels)
    assert float(step.loss) == pytest.approx(float(clean.loss))  # it reports the clean loss
    changed = [  # the perturbed loss is added: it changes what is minimised
        not np.allclose(tf.convert_to_tensor(a), tf.convert_to_tensor(b))
        for a, b in zip(step.gradients, clean.gradients, strict=True)
    ]
    assert any(changed)
    adversarial = config.replace(training={"adversarial_epsilon": 0.3})
    files = TextFiles(train=write_topic_csv(tmp_path / "train.csv", topic_rows(1, 40)))
    train(adversarial, source=files, output=tmp_path / "adv")
    rows = unseen_rows(10)
    predictor = imdb_rnn.load(tmp_path / "adv")
    assert _accuracy(predictor([text for text, _ in rows]), rows) >= 0.8
