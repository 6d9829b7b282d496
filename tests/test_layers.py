"""Tests for imdb_rnn.layers."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from imdb_rnn import native
from imdb_rnn.layers import OOV_ID, FastBidirectional, MaskedPooling, TextEncoder, imdb_standardize


def _encoder(**kwargs):
    encoder = TextEncoder(max_tokens=30, **kwargs)
    encoder.adapt(tf.data.Dataset.from_tensor_slices(["one two three four five six", "one two"]))
    return encoder


def test_standardize_removes_breaks_and_punctuation():
    """<br /> tags, NEL and other line breaks become spaces; punctuation goes; case is lowered."""
    out = (
        imdb_standardize(tf.constant(["Good!<br /><br />Bad\x85Worse\u2028end."]))
        .numpy()[0]
        .decode()
    )
    assert out.split() == ["good", "bad", "worse", "end"]


def test_vocabulary_has_no_line_breaking_tokens():
    """No vocabulary token contains a character that str.splitlines() splits on."""
    encoder = TextEncoder(max_tokens=50)
    encoder.adapt(tf.data.Dataset.from_tensor_slices(["a\x85b c\x1cd e\x0bf g\u2029h <br />i"]))
    for token in encoder.get_vocabulary()[1:]:
        assert token.splitlines() == [token]


@pytest.mark.parametrize(
    ("truncation", "expected"), [("head", ["one", "two"]), ("tail", ["five", "six"])]
)
def test_truncation_keeps_documented_tokens(truncation, expected):
    """head keeps the first max_length tokens, tail the last."""
    encoder = _encoder(max_length=2, truncation=truncation)
    vocabulary = encoder.get_vocabulary()
    ids = encoder(tf.constant(["one two three four five six"])).numpy()[0]
    assert [vocabulary[i] for i in ids] == expected


def test_empty_review_gets_one_token():
    """An empty or punctuation-only review encodes to one OOV id, so no row is fully masked."""
    encoder = _encoder()
    ids = encoder(tf.constant(["", "!!!", "one"])).numpy()
    assert ids.shape == (3, 1)
    assert ids[:, 0].tolist()[:2] == [OOV_ID, OOV_ID]
    assert (ids != 0).any(axis=1).all()


def test_encoder_output_is_right_padded():
    """Shorter reviews are padded with 0 on the right."""
    ids = _encoder()(tf.constant(["one two three", "one"])).numpy()
    assert ids[1].tolist() == [ids[0][0], 0, 0]


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_masked_pooling_ignores_padding(mode):
    """Masked steps do not change max or mean pooling."""
    values = tf.constant([[[1.0], [3.0], [100.0]]])
    mask = tf.constant([[True, True, False]])
    out = MaskedPooling(mode)(values, mask=mask).numpy()
    assert out[0, 0] == pytest.approx(3.0 if mode == "max" else 2.0)
    assert np.isfinite(out).all()


def test_with_options_shares_the_vocabulary():
    """with_options keeps the vocabulary and ids, and changes only the length limit."""
    encoder = _encoder()
    short = encoder.with_options(max_length=2, truncation="tail")
    assert short.get_vocabulary() == encoder.get_vocabulary()
    full = encoder(tf.constant(["one two three four"])).numpy()[0]
    assert short(tf.constant(["one two three four"])).numpy()[0].tolist() == full[-2:].tolist()


def _same_weights_pair(**gru_options):
    import keras

    fused = FastBidirectional(keras.layers.GRU(4, **gru_options), fused="always")
    reference = FastBidirectional(keras.layers.GRU(4, **gru_options), fused="never")
    return fused, reference


@pytest.mark.parametrize("kernel", ["native", "graph"])
@pytest.mark.parametrize(
    "options",
    [{}, {"return_sequences": True}, {"return_sequences": True, "return_state": True}],
)
def test_fused_bidirectional_gru_matches_keras(options, kernel):
    """The fused CPU loop, with the native kernel or TensorFlow's graph loop, gives Keras'
    Bidirectional(GRU) outputs and gradients on masked input."""
    if kernel == "native" and not native.available():
        pytest.skip("the native kernel cannot be built here")
    scope = native.disabled() if kernel == "graph" else contextlib.nullcontext()
    with scope:
        _check_fused_matches_keras(options)


def _check_fused_matches_keras(options):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(5, 7, 6)).astype("float32"))
    mask = tf.sequence_mask([7, 3, 1, 5, 2], 7)
    valid = tf.cast(mask, "float32")[:, :, None]
    fused, reference = _same_weights_pair(**options)
    fused(x, mask=mask)
    reference(x, mask=mask)
    reference.set_weights(fused.get_weights())

    def loss_and_outputs(layer):
        with tf.GradientTape() as tape:
            outputs = layer(x, mask=mask)
            outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
            outputs = [o * valid if o.shape.rank == 3 else o for o in outputs]
            loss = sum(tf.reduce_sum(o**2) for o in outputs)
        return outputs, tape.gradient(loss, layer.trainable_weights)

    (out_fused, grad_fused), (out_ref, grad_ref) = (
        loss_and_outputs(fused),
        loss_and_outputs(reference),
    )
    for a, b in zip(out_fused, out_ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    for a, b in zip(grad_fused, grad_ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)


def test_fused_bidirectional_defers_for_lstm():
    """Anything but a plain GRU runs through Keras' own Bidirectional."""
    import keras

    layer = FastBidirectional(keras.layers.LSTM(3))
    assert not layer._fusable(None)
    assert layer(tf.zeros((2, 4, 5))).shape == (2, 6)


def test_sublayers_finds_every_recurrent_layer():
    """`sublayers` reaches the recurrent layers inside the classifier nested in a text model and
    inside each Bidirectional wrapper: the same ones Keras' own (private) recursive walk finds."""
    import keras

    from imdb_rnn.config import get_preset
    from imdb_rnn.layers import sublayers
    from imdb_rnn.models import build_classifier, build_text_model

    config = get_preset("deep").replace(model={"max_tokens": 50, "rnn_units": 2}).model
    model = build_text_model(TextEncoder(max_tokens=50), build_classifier(config))
    recurrent = (keras.layers.RNN, keras.layers.Bidirectional)
    found = [layer for layer in sublayers(model) if isinstance(layer, recurrent)]
    expected = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, recurrent)
    ]
    assert len(found) == len({id(layer) for layer in found}) == 3 * config.num_rnn_layers
    assert {id(layer) for layer in found} == {id(layer) for layer in expected}
