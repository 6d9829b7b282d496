"""Tests for imdb_rnn.data.tfds: any TFDS text classification set by name, on TFDS' mock data
(never the network)."""

import json

import pytest
import tensorflow_datasets as tfds
from typer.testing import CliRunner

from conftest import tiny_config
from imdb_rnn.cli._app import app
from imdb_rnn.data import tfds as tfdstext
from imdb_rnn.data.tfds import TfdsText, load_tfds_text, parse_tfds_source
from imdb_rnn.errors import EXIT_DATA, DataError
from imdb_rnn.training.workflows import evaluate, train

AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")


@pytest.fixture
def mock_tfds(monkeypatch):
    """TFDS' generated examples instead of prepared data; the network "reachable", so that
    the (mocked) download runs."""
    monkeypatch.setattr(tfdstext, "_network_problem", lambda: None)
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_parse_tfds_source():
    """`tfds:NAME` names a data set; `tfds` alone (IMDB) and paths are not TFDS names."""
    assert parse_tfds_source("tfds:ag_news_subset", text_key="title") == TfdsText(
        "ag_news_subset", text_key="title"
    )
    assert parse_tfds_source("tfds") is None and parse_tfds_source("a.tar.gz") is None
    with pytest.raises(ValueError, match="name"):
        parse_tfds_source("tfds:")


def test_keys_and_labels_come_from_the_builder(mock_tfds):
    """ag_news_subset: the text is its supervised key `description`, the four class names come
    from its ClassLabel, and validation is carved from train (it has no validation split)."""
    splits = load_tfds_text(TfdsText("ag_news_subset"), splits=["train", "valid", "test"])
    assert splits.label_names == AG_NEWS_LABELS
    assert splits.source == "tfds:ag_news_subset"
    assert set(splits.sizes) == {"train", "valid", "test"} and all(splits.sizes.values())
    text, label = next(iter(splits["train"]))
    assert text.dtype.name == "string" and 0 <= int(label) < 4


def test_a_text_key_that_is_not_a_feature_names_the_features(mock_tfds):
    """A text key the builder lacks is a DataError that lists its features."""
    with pytest.raises(DataError, match=r"no feature 'body'.*description \(Text\)"):
        load_tfds_text(TfdsText("ag_news_subset", text_key="body"), splits=["train"])
    load_tfds_text(TfdsText("ag_news_subset", text_key="title"), splits=["train"])


def test_unknown_name_is_one_clear_error():
    """A name TFDS does not know fails with a DataError naming it."""
    with pytest.raises(DataError, match="no data set named 'no_such_set_here'"):
        load_tfds_text(TfdsText("no_such_set_here"), splits=["train"])


def test_offline_and_not_prepared_fails_at_once(tmp_path, monkeypatch):
    """Not prepared and no network: one line, no download attempt (TFDS would retry for
    minutes)."""
    monkeypatch.setattr(tfdstext, "_network_problem", lambda: "cannot reach host: offline")

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    with pytest.raises(DataError) as raised:
        load_tfds_text(TfdsText("ag_news_subset", data_dir=tmp_path), splits=["train"])
    message = str(raised.value)
    assert "\n" not in message
    assert "not prepared" in message and "no network: cannot reach host" in message
    with pytest.raises(DataError, match="downloads are off"):
        load_tfds_text(TfdsText("ag_news_subset", data_dir=tmp_path, download=False))


@pytest.mark.slow
def test_train_and_evaluate_a_tfds_set(mock_tfds, tmp_path):
    """`train` and `evaluate` take a TfdsText: a four-class model with the ClassLabel's names;
    evaluation checks the classes against the model's."""
    output = tmp_path / "news"
    result = train(tiny_config(epochs=1), source=TfdsText("ag_news_subset"), output=output)
    assert json.loads((output / "labels.json").read_text()) == list(AG_NEWS_LABELS)
    assert result.test is not None and len(result.test.confusion) == 4
    assert evaluate(output, source=TfdsText("ag_news_subset")).examples == result.test.examples


@pytest.mark.slow
def test_cli_data_tfds_name(mock_tfds, tmp_path):
    """`imdb-rnn train --data tfds:ag_news_subset` trains on it and `eval --data` evaluates on
    it; an unknown name is a data error (exit code 3) in one line, without a traceback."""
    tiny = ["--max-tokens", "50", "--embedding-dim", "8", "--rnn-units", "4", "--epochs", "1"]
    output = tmp_path / "news"
    runner = CliRunner()
    result = runner.invoke(
        app, ["train", "--data", "tfds:ag_news_subset", "--output", str(output), *tiny]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((output / "labels.json").read_text()) == list(AG_NEWS_LABELS)
    result = runner.invoke(app, ["eval", str(output), "--data", "tfds:ag_news_subset", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == list(AG_NEWS_LABELS)
    result = runner.invoke(app, ["train", "--data", "tfds:no_such_set_here", "--output", "x"])
    assert result.exit_code == EXIT_DATA, result.output
    assert "no data set named 'no_such_set_here'" in result.stderr
    assert "Traceback" not in result.output
