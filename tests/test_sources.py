"""Tests for imdb_rnn.data.sources: CSV, TSV, JSON Lines and class-folder data sets."""

import json

import numpy as np
import pytest

from conftest import topic_rows, write_topic_csv
from imdb_rnn.data.sources import TextFiles, label_names_of, load_text_files, read_texts
from imdb_rnn.data.splits import UNLABELLED
from imdb_rnn.errors import DataError


def _pairs(dataset, label_names):
    return sorted(
        (text.decode(), label_names[label]) for text, label in dataset.as_numpy_iterator()
    )


def _write_all_formats(folder, rows):
    """The same rows as CSV (custom column names), TSV, JSON Lines and a class-per-folder tree."""
    csv_path = folder / "data.csv"
    csv_path.write_text(
        "sentence,topic\n" + "".join(f'"{t}",{label}\n' for t, label in rows), encoding="utf-8"
    )
    tsv_path = folder / "data.tsv"
    tsv_path.write_text(
        "sentence\ttopic\n" + "".join(f"{t}\t{label}\n" for t, label in rows), encoding="utf-8"
    )
    jsonl_path = folder / "data.jsonl"
    jsonl_path.write_text(
        "".join(json.dumps({"sentence": t, "topic": label}) + "\n" for t, label in rows),
        encoding="utf-8",
    )
    tree = folder / "tree"
    for index, (text, label) in enumerate(rows):
        (tree / label).mkdir(parents=True, exist_ok=True)
        (tree / label / f"{index}.txt").write_text(text, encoding="utf-8")
    return [csv_path, tsv_path, jsonl_path, tree]


def test_every_format_reads_the_same_rows(tmp_path):
    """CSV, TSV, JSON Lines and a folder per class give the same texts and labels."""
    rows = topic_rows(0, 5)
    expected = sorted(rows)
    for path in _write_all_formats(tmp_path, rows):
        table = read_texts(path, text_column="sentence", label_column="topic")
        assert sorted(zip(table.texts, table.labels, strict=True)) == expected, path
        assert table.rows == len(rows) and table.bytes_read > 0


def test_labels_come_from_the_training_file(tmp_path):
    """Label names are the training file's, in a stable order; indices follow them."""
    path = write_topic_csv(tmp_path / "train.csv", topic_rows(0, 10))
    splits = load_text_files(TextFiles(train=path), splits=["train", "valid"])
    assert splits.label_names == ("animal", "colour", "number")
    assert splits.sizes == {"train": 27, "valid": 3}
    pairs = _pairs(splits.train, splits.label_names) + _pairs(splits.valid, splits.label_names)
    assert sorted(pairs) == sorted(topic_rows(0, 10))


def test_validation_is_carved_with_a_fixed_seed(tmp_path):
    """Without a valid file, the same texts go to validation on every load."""
    path = write_topic_csv(tmp_path / "train.csv", topic_rows(0, 20))
    first = load_text_files(TextFiles(train=path), splits=["valid"], valid_fraction=0.2)
    second = load_text_files(TextFiles(train=path), splits=["valid"], valid_fraction=0.2)
    assert first.sizes["valid"] == 12
    assert _pairs(first.valid, first.label_names) == _pairs(second.valid, second.label_names)


def test_separate_valid_test_and_unlabelled_files(tmp_path):
    """Given files are used as they are: nothing is carved from train, unlabelled is -1."""
    train = write_topic_csv(tmp_path / "train.csv", topic_rows(0, 6))
    valid = write_topic_csv(tmp_path / "valid.csv", topic_rows(1, 2))
    test = write_topic_csv(tmp_path / "test.csv", topic_rows(2, 3))
    unlabelled = tmp_path / "more.jsonl"
    unlabelled.write_text('{"text": "a cat"}\n{"text": "two dogs"}\n', encoding="utf-8")
    files = TextFiles(train=train, valid=valid, test=test, unlabelled=unlabelled)
    splits = load_text_files(files)
    assert splits.sizes == {"train": 18, "valid": 6, "test": 9, "unsupervised": 2}
    labels = [label for _, label in splits.unsupervised.as_numpy_iterator()]
    assert labels == [UNLABELLED, UNLABELLED]
    assert _pairs(splits.valid, splits.label_names) == sorted(topic_rows(1, 2))


def test_bad_rows_are_counted_by_reason(tmp_path):
    """Missing text, missing label, bytes that are not UTF-8 and unknown labels are skipped and
    counted, with the first ones quoted by file and line."""
    train = tmp_path / "train.csv"
    train.write_bytes(
        b"text,label\n"
        b"a red cat,colour\n"
        b",animal\n"  # missing text
        b"a dog,\n"  # missing label
        b"caf\xe9 blue,colour\n"  # Latin-1, not UTF-8
        b"two cats,animal\n"
        b"a cow,animal\n"
    )
    test = tmp_path / "test.jsonl"
    test.write_text(
        '{"text": "a blue cow", "label": "colour"}\n'
        '{"text": "a shape", "label": "shape"}\n'  # a class the training file lacks
        "not json\n",
        encoding="utf-8",
    )
    splits = load_text_files(TextFiles(train=train, test=test), splits=["train", "valid", "test"])
    assert splits.bad_rows == {
        "missing text": 1,
        "missing label": 1,
        "not UTF-8": 1,
        "unknown label 'shape'": 1,
        "not a JSON object": 1,
    }
    assert splits.bad_row_examples[0] == f"{train}:3: missing text"
    assert f"{test}:2: unknown label 'shape'" in splits.bad_row_examples
    assert splits.sizes["train"] + splits.sizes["valid"] == 3 and splits.sizes["test"] == 1


def test_strict_makes_a_bad_row_fatal(tmp_path):
    """With strict on, the first bad row stops the load and is named."""
    train = tmp_path / "train.csv"
    train.write_text("text,label\na red cat,colour\n,animal\na dog,animal\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv:3: missing text"):
        load_text_files(TextFiles(train=train, strict=True), splits=["train"])


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("words,label\na,b\n", "has no column 'text'"),
        ("text,label\na red cat,colour\nblue,colour\n", "at least two classes"),
    ],
    ids=["missing-column", "one-class"],
)
def test_unusable_files_are_refused(tmp_path, content, needle):
    """A CSV without the text column, or with a single class, is a DataError that says so."""
    path = tmp_path / "train.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=needle):
        load_text_files(TextFiles(train=path), splits=["train"])


def test_unknown_suffix_and_missing_file(tmp_path):
    """A file of unknown format, or no file at all, is a DataError naming it."""
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="Cannot tell the format"):
        read_texts(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match="No data file"):
        read_texts(tmp_path / "none.csv")


def test_requested_split_without_a_file(tmp_path):
    """Asking for a test split without a test file says which option to pass."""
    path = write_topic_csv(tmp_path / "train.csv", topic_rows(0, 3))
    with pytest.raises(DataError, match=r"TextFiles\(test=PATH\)"):
        load_text_files(TextFiles(train=path), splits=["test"])


def test_given_label_names_fix_the_indices(tmp_path):
    """Evaluation passes the model's label names: indices follow them, not the file."""
    path = write_topic_csv(tmp_path / "test.csv", topic_rows(0, 2))
    splits = load_text_files(
        TextFiles(test=path), splits=["test"], label_names=("number", "colour", "animal")
    )
    labels = np.array([label for _, label in splits.test.as_numpy_iterator()])
    texts = [text.decode() for text, _ in splits.test.as_numpy_iterator()]
    truth = dict(topic_rows(0, 2))
    assert [("number", "colour", "animal")[i] for i in labels] == [truth[t] for t in texts]


def test_label_order_is_numeric_for_numbers():
    """Numeric labels sort as numbers; others alphabetically."""
    assert label_names_of(["10", "9", "1"]) == ("1", "9", "10")
    assert label_names_of(["pos", "neg"]) == ("neg", "pos")
