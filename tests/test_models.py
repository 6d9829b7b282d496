"""Tests for imdb_rnn.models: the factory and safe model files."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import write_unknown_class_model
from imdb_rnn.config import ModelConfig
from imdb_rnn.errors import ModelFileError
from imdb_rnn.layers import TextEncoder
from imdb_rnn.models import build_classifier, build_text_model, load_text_model, save_text_model

TINY = {"max_tokens": 30, "embedding_dim": 4, "rnn_units": 3, "dense_units": (5,)}


def _text_model(**overrides):
    encoder = TextEncoder(max_tokens=30)
    encoder.adapt(
        tf.data.Dataset.from_tensor_slices(["good film", "bad film", "odd\x85token here"])
    )
    return build_text_model(encoder, build_classifier(ModelConfig(**{**TINY, **overrides})))


def _bidirectional(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]


@pytest.mark.parametrize("pooling", ["final", "max", "mean", "final_max_mean"])
def test_classifier_outputs_one_logit(pooling):
    """Any pooling gives one logit per review."""
    model = build_classifier(ModelConfig(**TINY, pooling=pooling))
    out = model(tf.constant([[2, 3, 0, 0], [4, 0, 0, 0]], dtype=tf.int32))
    assert out.shape == (2, 1)


@pytest.mark.parametrize("layers", [1, 3])
def test_depth_and_dense_layers(layers):
    """num_rnn_layers stacks Bidirectional layers; dense_units adds ReLU Dense layers."""
    model = build_classifier(ModelConfig(**{**TINY, "dense_units": (6, 5)}, num_rnn_layers=layers))
    assert len(_bidirectional(model)) == layers
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [6, 5, 1]
    assert dense[-1].activation is keras.activations.linear


@pytest.mark.parametrize(
    ("cell", "layer_class"), [("gru", keras.layers.GRU), ("lstm", keras.layers.LSTM)]
)
def test_cell_type(cell, layer_class):
    """cell chooses GRU or LSTM; the final states of both directions are concatenated."""
    model = build_classifier(ModelConfig(**TINY, cell=cell))
    (bidirectional,) = _bidirectional(model)
    assert isinstance(bidirectional.forward_layer, layer_class)
    assert bidirectional.output.shape == (None, 2 * TINY["rnn_units"])


def test_gru_keeps_cudnn_settings():
    """The GRU keeps the settings that let Keras use the fused cuDNN kernel on a GPU."""
    (bidirectional,) = _bidirectional(build_classifier(ModelConfig(**TINY, dropout=0.2)))
    gru = bidirectional.forward_layer
    assert gru.cell.reset_after and gru.cell.recurrent_dropout == 0 and not gru.unroll
    assert gru.cell.activation is keras.activations.tanh
    assert gru.cell.recurrent_activation is keras.activations.sigmoid


def test_embedding_masks_padding():
    """The embedding masks id 0, so padding does not change the prediction."""
    model = build_classifier(ModelConfig(**TINY))
    short = model(tf.constant([[5, 6]], dtype=tf.int32)).numpy()
    padded = model(tf.constant([[5, 6, 0, 0, 0]], dtype=tf.int32)).numpy()
    np.testing.assert_allclose(short, padded, rtol=1e-5, atol=1e-6)


def test_save_and_reload_give_the_same_predictions(tmp_path):
    """A reloaded text model (vocabulary with U+0085 in its source text) predicts the same."""
    model = _text_model()
    texts = tf.constant(["good film", "odd\x85token", "", "unknown words"])
    before = model(texts).numpy()
    save_text_model(model, tmp_path / "model.keras")
    after = load_text_model(tmp_path / "model.keras")(texts).numpy()
    np.testing.assert_array_equal(before, after)


def test_missing_and_corrupt_files_are_refused(tmp_path):
    """Missing, non-zip and truncated model files raise ModelFileError."""
    with pytest.raises(ModelFileError, match="No model file"):
        load_text_model(tmp_path / "none.keras")
    (tmp_path / "text.keras").write_text("not a zip")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_text_model(tmp_path / "text.keras")
    save_text_model(_text_model(), tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_text_model(tmp_path / "cut.keras")
    with pytest.raises(ModelFileError, match=r"\.keras"):
        load_text_model(tmp_path / "model.h5")


def test_lambda_layer_model_is_refused(tmp_path):
    """A model file holding a Lambda layer is refused (safe mode stays on)."""
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    assert zipfile.is_zipfile(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError):
        load_text_model(tmp_path / "lambda.keras")


def test_foreign_model_is_refused(tmp_path):
    """A valid Keras model that is not an imdb-rnn text model is refused."""
    inputs = keras.Input(shape=(3,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(tmp_path / "dense.keras")
    with pytest.raises(ModelFileError, match="not an imdb-rnn model"):
        load_text_model(tmp_path / "dense.keras")


def test_unknown_class_is_refused_by_name(tmp_path):
    """A model file naming a class imdb-rnn does not know is refused, and the class is named."""
    write_unknown_class_model(tmp_path / "unknown.keras")
    with pytest.raises(ModelFileError, match=r"holds '\S*Doubler', which imdb-rnn does not know"):
        load_text_model(tmp_path / "unknown.keras")


def test_encoder_built_from_a_vocabulary_reloads_and_predicts(tmp_path):
    """An encoder given its vocabulary (as a resumed run builds it from the checkpoint) is saved
    with it: the reloaded model predicts instead of failing with "Table not initialized"."""
    adapted = _text_model()
    encoder = TextEncoder(max_tokens=30, vocabulary=adapted.layers[1].get_vocabulary()[2:])
    model = build_text_model(encoder, adapted.layers[2])
    texts = tf.constant(["good film", "bad", "unknown words"])
    save_text_model(model, tmp_path / "model.keras")
    reloaded = load_text_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded(texts).numpy(), adapted(texts).numpy())


def test_model_without_its_vocabulary_is_refused(tmp_path):
    """A model file whose vocabulary asset is missing (as earlier versions wrote after a resumed
    run) is refused when loading, not at the first prediction."""
    save_text_model(_text_model(), tmp_path / "good.keras")
    with (
        zipfile.ZipFile(tmp_path / "good.keras") as source,
        zipfile.ZipFile(tmp_path / "novocab.keras", "w") as target,
    ):
        for item in source.infolist():
            if not item.filename.startswith("assets/"):
                target.writestr(item, source.read(item.filename))
    with pytest.raises(ModelFileError, match="holds no vocabulary"):
        load_text_model(tmp_path / "novocab.keras")


def _rewrite(source, target, *, extra=None, sizes=None):
    """Copies a model file, adding members, or faking the sizes its zip directory states."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(item, old.read(item.filename))
        for name, data in (extra or {}).items():
            new.writestr(name, data)
    if sizes:
        data = bytearray(target.read_bytes())
        for name, size in sizes.items():
            # The central directory entry: uncompressed size at offset 24 from its signature.
            at = data.rindex(b"PK\x01\x02", 0, data.rindex(name.encode()))
            data[at + 24 : at + 28] = size.to_bytes(4, "little")
        target.write_bytes(bytes(data))
    return target


def test_extra_members_are_refused(tmp_path):
    """A .keras file holding members Keras does not write (here a script) is refused."""
    save_text_model(_text_model(), tmp_path / "good.keras")
    bad = _rewrite(tmp_path / "good.keras", tmp_path / "extra.keras", extra={"run.py": b"1"})
    with pytest.raises(ModelFileError, match=r"members Keras does not write \(run\.py\)"):
        load_text_model(bad)


def test_member_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    """A model whose zip directory announces more than IMDB_RNN_MAX_MODEL_BYTES is refused from
    the directory alone, before anything is decompressed; the variable raises the limit."""
    save_text_model(_text_model(), tmp_path / "good.keras")
    size = (tmp_path / "good.keras").stat().st_size
    monkeypatch.setenv("IMDB_RNN_MAX_MODEL_BYTES", str(size // 2))
    with pytest.raises(ModelFileError, match=r"over the limit.*IMDB_RNN_MAX_MODEL_BYTES"):
        load_text_model(tmp_path / "good.keras")
    bomb = _rewrite(
        tmp_path / "good.keras", tmp_path / "bomb.keras", sizes={"model.weights.h5": 4_000_000_000}
    )
    monkeypatch.delenv("IMDB_RNN_MAX_MODEL_BYTES")
    with pytest.raises(ModelFileError, match="unpacks to 4,0"):
        load_text_model(bomb)
    monkeypatch.setenv("IMDB_RNN_MAX_MODEL_BYTES", str(100 * size))
    load_text_model(tmp_path / "good.keras")
