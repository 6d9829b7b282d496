"""Shared fixtures: a tiny IMDB archive in the official layout, written by the tests themselves."""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Subprocesses started by tests (`python -m imdb_rnn ...`) import this checkout's package too.
_SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC, os.environ.get("PYTHONPATH")]))

_POSITIVE = [
    "great",
    "wonderful",
    "superb",
    "moving",
    "brilliant",
    "loved",
    "masterpiece",
    "excellent",
]
_NEGATIVE = ["awful", "boring", "terrible", "dull", "waste", "hated", "mess", "worst"]
_NEUTRAL = ["the", "film", "movie", "plot", "acting", "story", "was", "and", "a", "cast", "scene"]


def make_review(rng: random.Random, label: str) -> str:
    """A short made-up review whose sentiment words match its label."""
    words = _POSITIVE if label == "pos" else _NEGATIVE
    tokens = [rng.choice(_NEUTRAL) for _ in range(rng.randint(3, 12))]
    for _ in range(rng.randint(2, 4)):
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(words))
    text = " ".join(tokens).capitalize() + "."
    if rng.random() < 0.3:
        text += "<br /><br />" + " ".join(rng.choice(_NEUTRAL) for _ in range(rng.randint(1, 30)))
    return text


def build_reviews(
    seed: int = 0, *, train: int = 40, test: int = 20, unsup: int = 30
) -> dict[str, str]:
    """Archive member name -> text, in the official layout (counts are per class)."""
    rng = random.Random(seed)
    members: dict[str, str] = {}
    for part, count in (("train", train), ("test", test)):
        for label in ("neg", "pos"):
            for index in range(count):
                stars = rng.randint(1, 4) if label == "neg" else rng.randint(7, 10)
                members[f"aclImdb/{part}/{label}/{index}_{stars}.txt"] = make_review(rng, label)
    for index in range(unsup):
        text = make_review(rng, rng.choice(["neg", "pos"]))
        if index == 0:
            # IMDB text holds U+0085 (NEL), which once broke reloading a saved vocabulary.
            text += " odd\x85word and\u2028more"
        members[f"aclImdb/train/unsup/{index}_0.txt"] = text
    return members


def write_archive(
    path: Path, members: dict[str, str | bytes], *, extra: dict[str, bytes] | None = None
) -> Path:
    """Writes `members` as a .tar.gz in sorted order, like the official archive."""
    with tarfile.open(path, "w:gz") as archive:
        everything = {
            name: (text.encode("utf-8") if isinstance(text, str) else text)
            for name, text in members.items()
        }
        everything.update(extra or {"aclImdb/README": b"Large Movie Review Dataset (fixture)\n"})
        for name in sorted(everything):
            data = everything[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="session")
def fixture_reviews() -> dict[str, str]:
    return build_reviews()


@pytest.fixture(scope="session")
def imdb_archive(tmp_path_factory: pytest.TempPathFactory, fixture_reviews: dict[str, str]) -> Path:
    """A tiny aclImdb_v1.tar.gz: 80 train, 40 test, 30 unlabelled reviews."""
    return write_archive(tmp_path_factory.mktemp("archive") / "aclImdb_v1.tar.gz", fixture_reviews)


@pytest.fixture(scope="session")
def imdb_folder(tmp_path_factory: pytest.TempPathFactory, imdb_archive: Path) -> Path:
    """The same reviews extracted to a folder (the parent of aclImdb/)."""
    root = tmp_path_factory.mktemp("folder")
    with tarfile.open(imdb_archive) as archive:
        archive.extractall(root, filter="data")
    return root


def tiny_config(**training: object):
    """A model small enough to train in seconds on the fixture data."""
    from imdb_rnn.config import get_preset

    return get_preset("default").replace(
        data={"batch_size": 8, "eval_batch_size": 16, "shuffle_buffer": 100},
        model={
            "max_tokens": 50,
            "embedding_dim": 8,
            "rnn_units": 4,
            "dense_units": (4,),
            "word_dropout": 0.0,
            # The recurrent classifier alone; tests/test_ngrams.py covers the default's hybrid.
            "ngram_buckets": 0,
        },
        training={
            "epochs": 2,
            "learning_rate": 1e-2,
            "lr_schedule": "constant",
            "early_stopping_patience": None,
            # The default's epsilon is sized for 64-d embeddings of 256-token reviews.
            "adversarial_epsilon": 0.0,
            # The default's self-training would train every model twice.
            "pseudo_label_threshold": 0.0,
            # The default's 1,000 batches at least would train the fixture for many epochs.
            "min_steps": 0,
            **training,
        },
    )


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, imdb_archive: Path) -> Path:
    """A model directory written by `train` on the fixture archive (shared, read-only)."""
    from imdb_rnn.training.workflows import train

    output = tmp_path_factory.mktemp("model") / "run"
    train(tiny_config(epochs=3), source=imdb_archive, output=output)
    return output


def write_unknown_class_model(path: Path) -> Path:
    """Writes a valid `.keras` file at `path` whose layer is a class imdb-rnn has never heard of
    (`someone_else>Doubler`), as a model from elsewhere would be."""
    import json
    import zipfile

    import keras

    plain = path.with_name(f"plain-{path.name}")
    inputs = keras.Input(shape=(3,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = config["config"]["layers"][-1]
                layer.update(module="someone_else.layers", class_name="Doubler")
                layer["registered_name"] = "someone_else>Doubler"
                data = json.dumps(config).encode()
            target.writestr(item, data)
    plain.unlink()
    return path


def real_data_path() -> Path | None:
    """The real aclImdb archive: $IMDB_RNN_DATA, else ../shared/data/imdb beside the checkout."""
    candidates = [os.environ.get("IMDB_RNN_DATA")]
    root = Path(__file__).resolve().parents[1]
    candidates.append(str(root.parent / "shared" / "data" / "imdb" / "aclImdb_v1.tar.gz"))
    for candidate in candidates:
        if candidate and candidate != "tfds" and Path(candidate).exists():
            return Path(candidate)
    return None


def predict_in_new_process(model_dir: Path, texts: list[str]) -> list[float]:
    """Runs `imdb-rnn predict MODEL_DIR TEXTS --json` in a fresh process (the model reloaded from
    disk) and returns the probabilities; fails the test if the command fails."""
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
    return [row["probability"] for row in json.loads(done.stdout)]


# -- your own data: a made-up three-class set in CSV -------------------------------------------

TOPIC_WORDS = {
    "animal": ["cat", "dog", "horse", "cow", "sheep", "goat"],
    "colour": ["red", "blue", "green", "yellow", "purple", "orange"],
    "number": ["one", "two", "three", "four", "five", "six"],
}


def make_topic_text(rng: random.Random, label: str) -> str:
    """A short made-up text whose topic words match its label."""
    tokens = [rng.choice(_NEUTRAL) for _ in range(rng.randint(2, 6))]
    for _ in range(rng.randint(1, 3)):
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(TOPIC_WORDS[label]))
    return " ".join(tokens).capitalize() + "."


def topic_rows(seed: int, count: int) -> list[tuple[str, str]]:
    """`count` (text, label) pairs per class, shuffled."""
    rng = random.Random(seed)
    rows = [(make_topic_text(rng, label), label) for label in TOPIC_WORDS for _ in range(count)]
    rng.shuffle(rows)
    return rows


def write_topic_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Writes rows as a CSV with the header `label,text` (the text column last, as in TREC)."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["label", "text"])
        writer.writerows((label, text) for text, label in rows)
    return path


@pytest.fixture(scope="session")
def topic_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train.csv (40 texts per class) and test.csv (15 per class) of three made-up topics."""
    folder = tmp_path_factory.mktemp("topics")
    return {
        "train": write_topic_csv(folder / "train.csv", topic_rows(1, 40)),
        "test": write_topic_csv(folder / "test.csv", topic_rows(2, 15)),
    }


@pytest.fixture(scope="session")
def topic_model_dir(tmp_path_factory: pytest.TempPathFactory, topic_files: dict[str, Path]) -> Path:
    """A three-class model directory trained on `topic_files` (shared, read-only)."""
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.workflows import train

    output = tmp_path_factory.mktemp("topic-model") / "run"
    files = TextFiles(train=topic_files["train"], test=topic_files["test"])
    train(tiny_config(epochs=6), source=files, output=output)
    return output
