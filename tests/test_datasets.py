"""Tests for imdb_rnn.data.imdb: sources, splits and pipelines, on a tiny archive."""

import collections
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import build_reviews, write_archive
from imdb_rnn.data.batching import (
    TokenizedSplit,
    bucket_boundaries,
    bucketed_batches,
    bucketed_steps,
    length_sorted_batches,
    plain_batches,
    random_crops,
    sorted_window_batches,
    tokenize,
    windowed_steps,
)
from imdb_rnn.data.imdb import load_imdb, resolve_source
from imdb_rnn.data.splits import DATA_ENV_VAR
from imdb_rnn.errors import DataError
from imdb_rnn.layers import TextEncoder


def _pairs(dataset):
    return [(text.decode(), int(label)) for text, label in dataset.as_numpy_iterator()]


def test_archive_splits_and_sizes(imdb_archive):
    """The archive gives train/valid/test/unsupervised with the documented sizes and labels."""
    splits = load_imdb(imdb_archive)
    assert splits.sizes == {"train": 72, "valid": 8, "test": 40, "unsupervised": 30}
    assert {label for _, label in _pairs(splits.unsupervised)} == {-1}
    assert {label for _, label in _pairs(splits.test)} == {0, 1}
    train_text = {text for text, _ in _pairs(splits.train)}
    assert not train_text & {text for text, _ in _pairs(splits.valid)}


def test_folder_and_archive_agree(imdb_archive, imdb_folder):
    """An extracted folder (or its aclImdb/ child) yields exactly the archive's splits."""
    from_archive = load_imdb(imdb_archive)
    for folder in (imdb_folder, imdb_folder / "aclImdb"):
        from_folder = load_imdb(folder)
        for name in ("train", "valid", "test", "unsupervised"):
            assert _pairs(from_folder[name]) == _pairs(from_archive[name])


def test_labels_follow_folders(imdb_archive, fixture_reviews):
    """neg/ reviews are 0 and pos/ reviews are 1."""
    truth = {
        text: (0 if "/neg/" in name else 1)
        for name, text in fixture_reviews.items()
        if "/test/" in name
    }
    for text, label in _pairs(load_imdb(imdb_archive, splits=["test"]).test):
        assert truth[text] == label


def test_validation_split_is_mixed_and_stable(imdb_archive):
    """The validation split holds both classes and is the same on every call."""
    first = _pairs(load_imdb(imdb_archive, splits=["valid"]).valid)
    assert {label for _, label in first} == {0, 1}
    assert _pairs(load_imdb(imdb_archive, splits=["valid"]).valid) == first


def test_limit_keeps_mixed_subsets(imdb_archive):
    """limit caps the training pool and each split, and subsets still hold both classes."""
    splits = load_imdb(imdb_archive, limit=20)
    assert splits.sizes == {"train": 18, "valid": 2, "test": 20, "unsupervised": 20}
    assert {label for _, label in _pairs(splits.train)} == {0, 1}
    assert {label for _, label in _pairs(splits.test)} == {0, 1}


def test_source_resolution(monkeypatch, imdb_archive):
    """An explicit source wins over IMDB_RNN_DATA, which wins over TFDS."""
    monkeypatch.setenv(DATA_ENV_VAR, str(imdb_archive))
    assert resolve_source() == str(imdb_archive)
    assert resolve_source("other.tar.gz") == "other.tar.gz"
    assert resolve_source("tfds") is None
    monkeypatch.delenv(DATA_ENV_VAR)
    assert resolve_source() is None


def test_missing_path(tmp_path):
    """A missing path names --data and IMDB_RNN_DATA."""
    with pytest.raises(DataError, match="IMDB_RNN_DATA"):
        load_imdb(tmp_path / "nothing.tar.gz")


def test_archive_without_reviews(tmp_path):
    """An archive that is not aclImdb is refused."""
    path = write_archive(tmp_path / "other.tar.gz", {"data/file.txt": "hello"}, extra={})
    with pytest.raises(DataError, match="no aclImdb reviews"):
        load_imdb(path)


def test_not_an_archive(tmp_path):
    """A file that is no archive at all is refused."""
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"just text")
    with pytest.raises(DataError, match="not a readable aclImdb archive"):
        load_imdb(path)


def test_truncated_archive(tmp_path, imdb_archive):
    """A truncated .tar.gz is refused with a hint to download again."""
    data = imdb_archive.read_bytes()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_imdb(path)


def test_folder_that_is_not_aclimdb(tmp_path):
    """A folder without train/ or test/ is refused."""
    with pytest.raises(DataError, match="not an aclImdb folder"):
        load_imdb(tmp_path)


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    """A review that is not UTF-8 is decoded with replacement and counted."""
    members = build_reviews(train=5, test=5, unsup=2)
    members["aclImdb/train/pos/99_9.txt"] = b"Caf\xe9 \xff good film"
    splits = load_imdb(write_archive(tmp_path / "bad.tar.gz", members))
    assert splits.decode_errors == 1
    texts = [t for t, _ in _pairs(splits.train)] + [t for t, _ in _pairs(splits.valid)]
    assert any("\ufffd" in text for text in texts)


def test_empty_split(tmp_path):
    """A requested split with no reviews is an error naming the split."""
    members = {
        k: v for k, v in build_reviews(train=5, test=5, unsup=2).items() if "/test/" not in k
    }
    with pytest.raises(DataError, match="test split"):
        load_imdb(write_archive(tmp_path / "notest.tar.gz", members), splits=["test"])


def test_tfds_without_data_names_the_offline_options(tmp_path):
    """Without prepared TFDS data or a download, the error names source= and IMDB_RNN_DATA."""
    with pytest.raises(DataError, match=r"source=PATH.*IMDB_RNN_DATA"):
        load_imdb("tfds", data_dir=tmp_path, download=False)


def test_gzip_of_garbage(tmp_path):
    """A gzip file holding no tar archive is refused."""
    path = tmp_path / "garbage.tar.gz"
    path.write_bytes(gzip.compress(b"x" * 2000))
    with pytest.raises(DataError):
        load_imdb(path)


# -- pipelines ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenized():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 120, size=500)
    ids = tf.RaggedTensor.from_row_lengths(
        rng.integers(2, 50, size=int(lengths.sum())).astype("int32"), lengths
    )
    return TokenizedSplit(ids, np.arange(500, dtype=np.int32))  # label = review index


def test_bucketed_batches_hold_every_review_once_per_epoch(tokenized):
    """Each epoch yields every review exactly once, with the advertised number of batches."""
    dataset = bucketed_batches(tokenized, batch_size=16, shuffle_buffer=100, seed=1)
    epochs = []
    for _ in range(2):
        seen, batches = [], 0
        for ids, labels in dataset:
            batches += 1
            assert ids.shape[0] <= 16
            _assert_rows_intact(tokenized, ids, labels)
            seen.extend(labels.numpy().tolist())
        assert sorted(seen) == list(range(500))
        assert batches == int(dataset.cardinality())
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled across epochs


def test_epoch_streams_can_be_replayed_from_any_epoch(tokenized, imdb_archive):
    """With `epochs`, epoch i of a stream seeded s holds the batches of epoch 0 of a new stream
    seeded s + i, in every pipeline: a resumed run can rebuild the epoch it stopped in."""

    def labels_by_epoch(dataset, steps):
        labels = [batch[1].numpy().tolist() for batch in dataset]
        return [labels[i : i + steps] for i in range(0, len(labels), steps)]

    for batches in (bucketed_batches, sorted_window_batches):
        options = {"batch_size": 16, "shuffle_buffer": 100}
        stream = batches(tokenized, seed=5, epochs=3, **options)
        steps = int(stream.cardinality()) // 3
        epochs = labels_by_epoch(stream, steps)
        assert len(epochs) == 3 and epochs[0] != epochs[1] != epochs[2]
        again = batches(tokenized, seed=7, epochs=1, **options)
        assert labels_by_epoch(again, steps) == [epochs[2]]

    test = load_imdb(imdb_archive, splits=["test", "unsupervised"])
    encoder = TextEncoder(max_tokens=40)
    encoder.adapt(test.unsupervised.map(lambda text, label: text))
    options = {"batch_size": 8, "shuffle_buffer": 100}
    plain = plain_batches(test.test, encoder, seed=5, epochs=2, **options)
    assert int(plain.cardinality()) == 10
    replayed = plain_batches(test.test, encoder, seed=6, epochs=1, **options)
    assert labels_by_epoch(plain, 5)[1] == labels_by_epoch(replayed, 5)[0]


def _assert_rows_intact(tokenized, ids, labels):
    """Each batch row holds its review's own ids (the label is the review index), right-padded."""
    for row, label in zip(ids.numpy(), labels.numpy(), strict=True):
        expected = tokenized.ids[int(label)].numpy()
        assert row[: len(expected)].tolist() == expected.tolist()
        assert not row[len(expected) :].any()


def _padding_efficiency(dataset):
    """Share of the padded positions of all batches that hold a real token."""
    real = padded = 0
    for ids, _ in dataset:
        real += int(tf.reduce_sum(tf.cast(ids > 0, tf.int32)))
        padded += int(tf.size(ids))
    return real / padded


def test_bucketed_batches_group_similar_lengths(tokenized):
    """Bucketing pads far less than random batches of the same size."""

    bucketed = bucketed_batches(tokenized, batch_size=16, shuffle_buffer=500, seed=1, max_buckets=8)
    plain = tf.data.Dataset.from_tensor_slices((tokenized.ids, tokenized.labels)).map(
        lambda x, y: (x, y)
    )
    plain = plain.shuffle(500, seed=1).padded_batch(16)
    assert _padding_efficiency(bucketed) > _padding_efficiency(plain) + 0.2


def test_bucketed_steps_counts_partial_batches():
    """Steps per epoch = sum over buckets of ceil(count / batch)."""
    lengths = np.array([1, 2, 3, 10, 11, 50])
    assert bucketed_steps(lengths, [5, 20], 2) == 2 + 1 + 1
    assert bucket_boundaries(lengths, batch_size=64) == []


def test_length_sorted_batches_restore_order(tokenized):
    """Results computed on length-sorted batches go back to the input order."""
    dataset, order = length_sorted_batches(tokenized, batch_size=32)
    labels = np.concatenate([labels.numpy() for _, labels in dataset])
    lengths = np.concatenate([(ids.numpy() > 0).sum(axis=1) for ids, _ in dataset])
    assert (np.diff(lengths) >= 0).all()
    restored = np.empty_like(labels)
    restored[order] = labels
    assert restored.tolist() == list(range(500))


def test_length_sorted_batches_bound_the_tokens_per_batch():
    """Long reviews come in smaller batches: rows x padded length stays within the budget."""
    lengths = [10, 2, 3, 1, 10, 10, 50]
    ids = tf.ragged.constant([[index + 2] * n for index, n in enumerate(lengths)], dtype=tf.int32)
    split = TokenizedSplit(ids, np.arange(7, dtype=np.int32))
    dataset, order = length_sorted_batches(split, batch_size=4, max_batch_tokens=30)
    shapes = [tuple(ids.shape) for ids, _ in dataset]
    assert shapes == [(3, 3), (3, 10), (1, 50)]  # one review over the budget still gets a batch
    labels = np.concatenate([labels.numpy() for _, labels in dataset])
    assert labels.tolist() == order.tolist() == [3, 1, 2, 0, 4, 5, 6]
    unbounded, _ = length_sorted_batches(split, batch_size=4)
    assert [tuple(ids.shape) for ids, _ in unbounded] == [(4, 10), (3, 50)]


def test_tokenize_and_plain_batches_agree(imdb_archive):
    """tokenize and the plain pipeline produce the same ids for the same reviews."""
    splits = load_imdb(imdb_archive, splits=["test", "unsupervised"])
    encoder = TextEncoder(max_tokens=40)
    encoder.adapt(splits.unsupervised.map(lambda text, label: text))
    tokens = tokenize(splits.test, encoder)
    plain = plain_batches(splits.test, encoder, batch_size=1, shuffle_buffer=None)
    for index, (ids, label) in enumerate(plain):
        assert ids.numpy()[0].tolist() == tokens.ids[index].numpy().tolist()
        assert int(label[0]) == int(tokens.labels[index])
    assert collections.Counter(tokens.labels.tolist()) == {0: 20, 1: 20}


def test_sorted_window_batches_hold_every_review_once_per_epoch(tokenized):
    """Sorted windows yield every review once per epoch, intact, and reshuffle across epochs."""
    dataset = sorted_window_batches(
        tokenized, batch_size=16, shuffle_buffer=100, seed=1, window_batches=4
    )
    assert int(dataset.cardinality()) == windowed_steps(500, 16, 4) == 7 * 4 + 4
    epochs = []
    for _ in range(2):
        seen = []
        for ids, labels in dataset:
            _assert_rows_intact(tokenized, ids, labels)
            seen.extend(labels.numpy().tolist())
        assert sorted(seen) == list(range(500))
        epochs.append(seen)
    assert epochs[0] != epochs[1]


def _crops(tokenized, fraction, lengths, seed):
    rows = tf.data.Dataset.from_tensor_slices((tokenized.ids.to_tensor(-1), tokenized.labels)).map(
        lambda ids, label: (tf.boolean_mask(ids, ids >= 0), label)
    )
    return [
        (ids.tolist(), int(label))
        for ids, label in random_crops(rows, fraction, lengths, seed=seed).as_numpy_iterator()
    ]


def test_random_crops_are_spans_of_their_own_review(tokenized):
    """A cropped row is a contiguous span of its review, of an allowed length, with the
    review's label; about `fraction` of the rows are cropped; the same seed draws the same
    crops, another seed others; fraction 0 keeps every review whole."""
    whole = tokenized.ids.to_list()
    crops = _crops(tokenized, 0.5, (3, 10), seed=7)
    cropped = 0
    for index, ((ids, label), review) in enumerate(zip(crops, whole, strict=True)):
        assert label == index
        if ids == review:
            continue
        cropped += 1
        assert 3 <= len(ids) <= 10
        starts = [i for i in range(len(review) - len(ids) + 1) if review[i : i + len(ids)] == ids]
        assert starts, "a crop must be a span of its review"
    assert 200 <= cropped <= 300  # 500 rows at 0.5 (a few whole-length crops look uncropped)
    assert crops == _crops(tokenized, 0.5, (3, 10), seed=7)
    assert crops != _crops(tokenized, 0.5, (3, 10), seed=8)
    assert [ids for ids, _ in _crops(tokenized, 0.0, (3, 10), seed=7)] == whole
    with pytest.raises(ValueError, match="shortest"):
        random_crops(tf.data.Dataset.range(1), 0.5, (5, 2))


def test_sorted_window_batches_with_crops_keep_their_steps(tokenized):
    """Crops change review lengths, not the number of batches or which reviews are seen."""
    dataset = sorted_window_batches(
        tokenized,
        batch_size=16,
        seed=1,
        window_batches=4,
        epochs=2,
        crop_fraction=0.5,
        crop_lengths=(2, 5),
    )
    assert int(dataset.cardinality()) == 2 * windowed_steps(500, 16, 4)
    labels, lengths = [], 0
    for ids, batch_labels in dataset:
        labels.extend(batch_labels.numpy().tolist())
        lengths += int(tf.math.count_nonzero(ids))
    assert sorted(labels) == sorted(2 * list(range(500)))
    assert lengths < 0.8 * 2 * int(tokenized.lengths.sum())


def test_sorted_windows_pad_less_than_buckets(tokenized):
    """Sorting within windows pads less than length buckets, which pad less than plain batches."""

    windows = sorted_window_batches(
        tokenized, batch_size=16, shuffle_buffer=500, seed=1, window_batches=10
    )
    buckets = bucketed_batches(tokenized, batch_size=16, shuffle_buffer=500, seed=1, max_buckets=4)
    assert _padding_efficiency(windows) > _padding_efficiency(buckets) > 0.5


_PIPELINE_SCRIPT = """
import numpy as np, tensorflow as tf
from imdb_rnn.data.batching import TokenizedSplit, length_sorted_batches, sorted_window_batches
ids = tf.ragged.constant([[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]] * 10, dtype=tf.int32)
split = TokenizedSplit(ids, np.arange(40, dtype=np.int32) % 2)
train = sum(1 for _ in sorted_window_batches(split, batch_size=4, seed=1, epochs=2))
evaluation = sum(1 for _ in length_sorted_batches(split, batch_size=8)[0])
print(train, evaluation)
"""


@pytest.mark.slow
def test_pipelines_log_no_type_inference_warning():
    """The sorted pipelines run without TensorFlow's "Type inference failed" warning (45 lines
    on stderr for every Python user who keeps TensorFlow's default log level)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    result = subprocess.run(
        [sys.executable, "-c", _PIPELINE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["20", "5"]
    assert "Type inference failed" not in result.stderr


def test_archive_cut_anywhere_is_refused(tmp_path, imdb_archive):
    """The archive cut at any of 60 points is refused: stream-mode tarfile alone takes a cut
    inside a header for the end of the archive and loads fewer reviews without a word."""
    data = imdb_archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    accepted = []
    for index in range(60):
        size = len(data) * (index + 1) // 61
        cut.write_bytes(data[:size])
        try:
            load_imdb(cut)
        except DataError:
            continue
        accepted.append(size)
    assert accepted == []


def test_tar_without_its_end_marker_is_refused(tmp_path, imdb_archive):
    """A complete gzip stream around tar data that stops at a member boundary, without the two
    zero blocks that end a tar archive, is refused as truncated."""
    tar = gzip.decompress(imdb_archive.read_bytes())
    # The last member's header starts 512 bytes before its data; cut just after a full member.
    end = tar.rstrip(b"\0")
    cut_at = (len(end) + 511) // 512 * 512
    (tmp_path / "nomarker.tar.gz").write_bytes(gzip.compress(tar[:cut_at]))
    with pytest.raises(DataError, match="end-of-archive marker"):
        load_imdb(tmp_path / "nomarker.tar.gz")
    (tmp_path / "whole.tar.gz").write_bytes(gzip.compress(tar))
    assert load_imdb(tmp_path / "whole.tar.gz").sizes["train"] == 72


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_review_over_the_limit_is_refused_before_reading(tmp_path, monkeypatch, kind):
    """A review over IMDB_RNN_MAX_REVIEW_BYTES (1 MiB by default) is refused by name, with the
    variable that raises the limit; raising it reads the review."""
    members = build_reviews(train=3, test=2, unsup=1)
    members["aclImdb/train/pos/999_9.txt"] = "great " * 200_000  # 1.2 MB, compresses to ~2 KB
    archive = write_archive(tmp_path / "big.tar.gz", members)
    source = archive
    if kind == "folder":
        import tarfile

        with tarfile.open(archive) as opened:
            opened.extractall(tmp_path / "folder", filter="data")
        source = tmp_path / "folder"
    with pytest.raises(
        DataError, match=r"999_9\.txt has 1,200,000 bytes.*IMDB_RNN_MAX_REVIEW_BYTES"
    ):
        load_imdb(source)
    monkeypatch.setenv("IMDB_RNN_MAX_REVIEW_BYTES", "2000000")
    sizes = load_imdb(source).sizes
    assert sizes["train"] + sizes["valid"] == 7


def test_folder_skips_symbolic_links(tmp_path, imdb_folder):
    """A review file that is a link (here to a file outside the data) is skipped, as the
    archive reader skips links: its words never reach the vocabulary."""
    import shutil

    root = shutil.copytree(imdb_folder, tmp_path / "data", symlinks=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("topsecretword " * 5)
    (root / "aclImdb" / "train" / "pos" / "500_9.txt").symlink_to(secret)
    splits = load_imdb(root)
    assert splits.sizes["train"] + splits.sizes["valid"] == 80
    texts = [text.decode() for text in splits.texts("train", "valid").as_numpy_iterator()]
    assert not any("topsecretword" in text for text in texts)


def test_data_path_that_is_not_a_regular_file(tmp_path):
    """A FIFO or a device given as the data is refused at once, not read forever."""
    import os

    fifo = tmp_path / "fifo.tar.gz"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(DataError, match="not a regular file"):
            load_imdb(path)


def test_tfds_offline_fails_fast_with_the_data_hint(tmp_path, monkeypatch):
    """Offline, the TFDS default fails at once naming --data, instead of retrying for minutes."""
    import socket
    import time

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)

    def offline(address, timeout=None):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    start = time.monotonic()
    with pytest.raises(DataError, match=r"no network: cannot reach ai\.stanford\.edu.*source=PATH"):
        load_imdb("tfds", data_dir=tmp_path)
    assert time.monotonic() - start < 30
