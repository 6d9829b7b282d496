"""Tests for imdb_rnn.training.ondisk: training from a token cache on disk."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from imdb_rnn.data.sources import TextFiles
from imdb_rnn.layers import TextEncoder
from imdb_rnn.training.ondisk import build_token_cache, cache_batches
from imdb_rnn.training.trainer import Trainer


def _cache(tmp_path, count=300):
    rng = np.random.default_rng(0)
    texts = [" ".join(["word"] * int(rng.integers(1, 30))) + f" w{i % 7}" for i in range(count)]
    encoder = TextEncoder(max_tokens=20)
    encoder.adapt(tf.data.Dataset.from_tensor_slices(texts))
    rows = ((text, index % 3) for index, text in enumerate(texts))
    return build_token_cache(rows, encoder, tmp_path / "cache", chunk_rows=64), encoder, texts


def test_cache_holds_what_the_encoder_gives(tmp_path):
    """The cache's rows are the encoder's ids of each text, its labels the given ones."""
    cache, encoder, texts = _cache(tmp_path)
    assert len(cache) == 300 and list(cache.labels[:4]) == [0, 1, 2, 0]
    ids, labels = cache.batch(np.array([5, 17]))
    expected = encoder(tf.constant([texts[5], texts[17]])).numpy()
    np.testing.assert_array_equal(ids[:, : expected.shape[1]], expected)
    assert (ids[:, expected.shape[1] :] == 0).all() and list(labels) == [2, 2]
    assert (tmp_path / "cache" / "ids.int32").stat().st_size == 4 * int(cache.lengths.sum())


def test_batches_read_the_file_not_the_memory_map(tmp_path):
    """`batch` reads the ids with pread and gives the rows the memory map holds; it reopens
    the file after `close`."""
    cache, _, _ = _cache(tmp_path)
    rows = np.array([299, 0, 150])
    first, _ = cache.batch(rows)
    for position, row in enumerate(rows):
        start, end = cache.offsets[row], cache.offsets[row + 1]
        np.testing.assert_array_equal(first[position, : end - start], cache.ids[start:end])
    cache.close()
    np.testing.assert_array_equal(cache.batch(rows)[0], first)
    cache.close()


@pytest.mark.parametrize("batch_size", [16, 7])
def test_batches_cover_every_row_once_per_epoch(tmp_path, batch_size):
    """Each epoch yields every training row exactly once, in batches of similar length, and the
    cardinality is what is yielded."""
    cache, _, _ = _cache(tmp_path)
    rows = np.arange(20, 300)
    dataset = cache_batches(cache, rows, batch_size=batch_size, seed=3, epochs=2, window_batches=4)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == int(dataset.cardinality())
    labels = np.concatenate([labels for _, labels in batches])
    assert len(labels) == 2 * len(rows)
    lengths = [int((ids > 0).sum(axis=1).max() - (ids > 0).sum(axis=1).min()) for ids, _ in batches]
    assert np.median(lengths) <= 10  # sorted within windows (random batches span about 25)


@pytest.mark.slow
def test_train_on_disk_writes_a_model(tmp_path, topic_files):
    """--on-disk training streams the file, carves validation, evaluates the test file and
    saves a model directory that loads and predicts like any other."""
    from imdb_rnn.training.ondisk import train_on_disk

    output = tmp_path / "run"
    files = TextFiles(train=topic_files["train"], test=topic_files["test"])
    result = train_on_disk(tiny_config(epochs=8), files, output=output)
    assert result.sizes == {"train": 108, "valid": 12, "test": 45}
    assert result.label_names == ["animal", "colour", "number"]
    assert result.bytes_read == topic_files["train"].stat().st_size
    assert result.test.accuracy >= 0.6  # learns (chance: 0.33)
    metrics = json.loads((output / "metrics.json").read_text())
    assert "token cache" in metrics["source"] and not (output / "token-cache").exists()
    trainer = Trainer.load(output)
    assert trainer.label_names == ("animal", "colour", "number")
    assert (output / "README.md").is_file() and (output / "curves.png").is_file()


def test_train_on_disk_trains_through_fit_batches(tmp_path, topic_files, monkeypatch):
    """The on-disk plan trains through `Trainer.fit_batches` (the run's objective and early
    stopping) once, and its result records what every plan records (preset, batch size)."""
    from imdb_rnn.training.ondisk import train_on_disk

    steps: list[int] = []
    original = Trainer.fit_batches

    def spy(self, batches, **options):
        steps.append(options["steps_per_epoch"])
        return original(self, batches, **options)

    monkeypatch.setattr(Trainer, "fit_batches", spy)
    config = tiny_config(epochs=2).replace(training={"early_stopping_patience": 1})
    result = train_on_disk(config, TextFiles(train=topic_files["train"]))
    assert len(steps) == 1 and steps[0] >= 1
    assert result.preset == config.preset and result.global_batch_size == config.data.batch_size
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1
