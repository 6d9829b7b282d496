"""Tests for imdb_rnn.deploy.tflite and loading model files in other runtimes: TensorFlow Lite with
built-in ops only, and plain `keras.models.load_model`."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from conftest import tiny_config
from imdb_rnn.cli._app import app
from imdb_rnn.deploy.tflite import _interpreter, export_tflite, token_ids
from imdb_rnn.training.trainer import Trainer
from test_export import _hundred_reviews

# TensorFlow 2.21 announces that tf.lite.Interpreter moves to LiteRT; it still runs here.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory, imdb_archive):
    """A tiny model that keeps 32 tokens per review (the TFLite model unrolls 32 steps, which
    converts in seconds), with two stacked layers to cover sequences between layers."""
    from imdb_rnn.training.workflows import train

    output = tmp_path_factory.mktemp("short") / "run"
    config = tiny_config(epochs=3).replace(data={"max_length": 32}, model={"num_rnn_layers": 2})
    train(config, source=imdb_archive, output=output)
    return output


@pytest.fixture(scope="module")
def tflite_dir(tmp_path_factory, short_model_dir):
    return export_tflite(short_model_dir, tmp_path_factory.mktemp("tflite") / "export")


def _interpreter_logits(path, ids):
    """Runs the .tflite file in the stock interpreter, one review at a time and as one batch."""
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    return runner(token_ids=ids)["logit"]


@pytest.mark.slow
def test_tflite_matches_the_keras_model_on_100_reviews(
    tflite_dir, short_model_dir, fixture_reviews
):
    """The .tflite model in tf.lite.Interpreter gives the Keras model's probabilities on 100
    reviews (short, long, empty, odd characters, over the sequence length)."""
    texts = _hundred_reviews(fixture_reviews)
    trainer = Trainer.load(short_model_dir)
    config = json.loads((tflite_dir / "tflite_config.json").read_text())
    ids = token_ids(short_model_dir, texts, sequence_length=config["sequence_length"])
    assert ids.shape == (100, 32) and ids.dtype == np.int32
    logits = _interpreter_logits(tflite_dir / "model.tflite", ids)
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = trainer.predict_proba(texts)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert np.ptp(expected) > 0.2  # the reviews are told apart: the check compares something


@pytest.mark.slow
def test_tflite_has_only_builtin_ops(tflite_dir):
    """The model holds no Flex (TensorFlow) ops: the stock interpreter runs it."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel((tflite_dir / "model.tflite").read_bytes(), 0)
    custom = [
        model.OperatorCodes(i).CustomCode()
        for i in range(model.OperatorCodesLength())
        if model.OperatorCodes(i).CustomCode()
    ]
    assert custom == []


@pytest.mark.slow
def test_tflite_vocabulary_file_matches_the_encoder(tflite_dir, short_model_dir):
    """vocabulary.txt holds one word per line, line i being id i."""
    words = (tflite_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert words == Trainer.load(short_model_dir).encoder.get_vocabulary()
    assert words[:2] == ["", "[UNK]"]


@pytest.mark.slow
def test_cli_export_tflite(tmp_path, short_model_dir):
    """`imdb-rnn export --format tflite` writes the model, the vocabulary and its config."""
    out = tmp_path / "lite"
    result = CliRunner().invoke(
        app,
        [
            *("export", str(short_model_dir), str(out)),
            *("--format", "tflite", "--sequence-length", "8", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "tflite"
    assert summary["inputs"] == {"token_ids": "int32 [batch, 8]"}
    assert summary["outputs"] == {"logit": "float32 [batch]"}
    assert summary["labels"] == ["neg", "pos"]
    again = [*("export", str(short_model_dir), str(out)), *("--format", "tflite", "--overwrite")]
    result = CliRunner().invoke(app, [*again, "--sequence-length", "8"])
    assert result.exit_code == 0, result.output
    assert "token_ids int32 [batch, 8] -> logit float32 [batch]" in result.stderr
    with warnings.catch_warnings(record=True) as caught:  # the check made no deprecation warning
        warnings.simplefilter("always")
        _interpreter(out / "model.tflite")
    assert not [item for item in caught if "deprecated" in str(item.message)]
    assert {path.name for path in out.iterdir()} == {
        "model.tflite",
        "vocabulary.txt",
        "tflite_config.json",
    }


@pytest.mark.slow
def test_three_class_tflite_matches_the_keras_model_on_100_texts(tmp_path, topic_model_dir):
    """A three-class model exports `logits [batch, 3]`, with its labels in the config; their
    softmax in tf.lite.Interpreter gives the Keras model's class probabilities on 100 texts."""
    from conftest import topic_rows

    out = export_tflite(topic_model_dir, tmp_path / "lite", sequence_length=24)
    config = json.loads((out / "tflite_config.json").read_text())
    assert config["output"] == {"name": "logits", "dtype": "float32", "shape": [None, 3]}
    assert config["labels"] == ["animal", "colour", "number"]
    texts = [text for text, _ in topic_rows(3, 33)] + ["", "cat " * 20, "Unknown words only."]
    assert len(texts) == 102
    ids = token_ids(topic_model_dir, texts, sequence_length=24)
    interpreter = tf.lite.Interpreter(model_path=str(out / "model.tflite"))
    logits = interpreter.get_signature_runner()(token_ids=ids)["logits"].astype(np.float64)
    assert logits.shape == (102, 3)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = Trainer.load(topic_model_dir).class_probabilities(texts)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert set(np.argmax(expected, axis=1)) == {0, 1, 2}  # the texts are told apart


@pytest.mark.slow
def test_cli_export_tflite_of_three_classes(tmp_path, topic_model_dir):
    """`export --format tflite --json` names the three-class output and the labels."""
    out = tmp_path / "lite"
    result = CliRunner().invoke(
        app,
        [
            *("export", str(topic_model_dir), str(out)),
            *("--format", "tflite", "--sequence-length", "8", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["outputs"] == {"logits": "float32 [batch, 3]"}
    assert summary["labels"] == ["animal", "colour", "number"]


def test_overwrite_replaces_only_an_earlier_tflite_export(tmp_path, topic_model_dir):
    """--overwrite never deletes a folder that is not an export, nor the model folder."""
    from imdb_rnn.errors import ExportTargetError

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ExportTargetError):
        export_tflite(topic_model_dir, other, overwrite=True)
    with pytest.raises(ExportTargetError):
        export_tflite(topic_model_dir, topic_model_dir.parent, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    assert (topic_model_dir / "model.keras").is_file()


@pytest.mark.slow
def test_export_refuses_an_lstm_model(tmp_path, imdb_archive):
    """TensorFlow Lite export rebuilds GRUs only; an LSTM model is a clear ValueError."""
    from imdb_rnn.training.workflows import train

    output = tmp_path / "lstm"
    train(tiny_config(epochs=1).replace(model={"cell": "lstm"}), source=imdb_archive, output=output)
    with pytest.raises(ValueError, match="GRU"):
        export_tflite(output, tmp_path / "lite")
    assert not (tmp_path / "lite").exists()


# Runs in a fresh interpreter with plain Keras, with or without `import imdb_rnn.layers` first.
_PLAIN_KERAS_LOAD = r"""
import json, sys
import tensorflow as tf
import keras
path, texts, register = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
if register:
    import imdb_rnn.layers  # noqa: F401
else:
    assert not any(name.startswith("imdb_rnn") for name in sys.modules)
try:
    model = keras.models.load_model(path)
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
else:
    print(json.dumps({"logits": model(tf.constant(texts)).numpy().reshape(-1).tolist()}))
"""


def _plain_load(model_path, texts, *, register):
    result = subprocess.run(
        [
            *(sys.executable, "-c", _PLAIN_KERAS_LOAD, str(model_path), json.dumps(texts)),
            "1" if register else "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_plain_keras_load_says_to_import_imdb_rnn(trained_model_dir):
    """keras.models.load_model without imdb-rnn fails with an error that says to run
    `import imdb_rnn.layers` first; after that import it loads and predicts as imdb-rnn does."""
    texts = ["A moving, wonderful film.", "Awful and boring."]
    model_path = trained_model_dir / "model.keras"
    failed = _plain_load(model_path, texts, register=False)
    assert "import imdb_rnn.layers" in failed["error"]
    assert "TFSMLayer" in failed["error"]
    loaded = _plain_load(model_path, texts, register=True)
    expected = Trainer.load(trained_model_dir).predict_logits(texts)
    np.testing.assert_allclose(loaded["logits"], expected, atol=1e-5)
