"""Model factory: config -> Keras models, and safe saving and loading of model files.

Two models share their weights:

- the *classifier* takes right-padded token ids `(batch, time)` and returns one logit per review;
  it is what `fit` trains, so that training needs no strings on the accelerator and works under
  any distribution strategy;
- the *text model* wraps the classifier behind a `TextEncoder`: raw review strings in, logits
  out. It is what is saved (`model.keras`) and served, and it carries its vocabulary.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import keras

from imdb_rnn.config import ModelConfig
from imdb_rnn.files import atomic_path
from imdb_rnn.layers import TextEncoder, recurrent_stack

__all__ = [
    "ModelFileError",
    "build_classifier",
    "build_text_model",
    "load_text_model",
    "save_text_model",
    "split_text_model",
]

_KERAS_MEMBERS = {"config.json", "metadata.json"}


class ModelFileError(ValueError):
    """A model file is missing, corrupt or holds something imdb-rnn does not load."""


def build_classifier(config: ModelConfig) -> keras.Model:
    """Builds the token-id classifier described by `config`.

    `Embedding(max_tokens, embedding_dim, mask_zero=True)` -> `num_rnn_layers` x
    `Bidirectional(GRU | LSTM)` -> pooling -> `Dense` ReLU layers -> `Dense(1)` logits.

    Args:
        config: a `ModelConfig`.

    Returns:
        An uncompiled `keras.Model` from int32 ids `(batch, time)` to logits `(batch, 1)`.

    Example:

    >>> from imdb_rnn.config import ModelConfig
    >>> model = build_classifier(ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2))
    >>> model.output_shape
    (None, 1)
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        config.max_tokens, config.embedding_dim, mask_zero=True, name="embedding"
    )(token_ids)
    if config.word_dropout:
        # One draw per token, shared by its features: a dropped word's vector is all zeros.
        x = keras.layers.Dropout(
            config.word_dropout, noise_shape=(None, None, 1), name="word_dropout"
        )(x)
    if config.spatial_dropout:
        x = keras.layers.SpatialDropout1D(config.spatial_dropout, name="spatial_dropout")(x)
    x = recurrent_stack(
        x,
        cell=config.cell,
        rnn_units=config.rnn_units,
        num_rnn_layers=config.num_rnn_layers,
        pooling=config.pooling,
        dropout=config.dropout,
    )
    for index, units in enumerate(config.dense_units):
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="dropout_head")(x)
    logits = keras.layers.Dense(1, name="logits")(x)
    return keras.Model(token_ids, logits, name="classifier")


def build_text_model(encoder: TextEncoder, classifier: keras.Model) -> keras.Model:
    """Chains `encoder` and `classifier` into a model from raw strings `(batch,)` to logits."""
    texts = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(texts, classifier(encoder(texts)), name="imdb_rnn")


def split_text_model(model: keras.Model) -> tuple[TextEncoder, keras.Model]:
    """Returns the `(encoder, classifier)` inside a text model built by `build_text_model`.

    Raises:
        ModelFileError: if the model does not have that structure.
    """
    encoders = [layer for layer in model.layers if isinstance(layer, TextEncoder)]
    classifiers = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(encoders) != 1 or len(classifiers) != 1:
        raise ModelFileError(
            "The model file is not an imdb-rnn model (expected one TextEncoder and one classifier)."
        )
    return encoders[0], classifiers[0]


def save_text_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Saves `model` to a `.keras` file atomically: a failure leaves any older file intact."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_text_model(path: str | os.PathLike[str]) -> keras.Model:
    """Loads a text model saved by `save_text_model`, with Keras' safe mode on.

    Only a regular local `.keras` file that is a zip archive with the members Keras writes is
    passed to Keras; anything else is refused before deserialisation.

    Raises:
        ModelFileError: if the file is missing, not a `.keras` zip, corrupt, or holds layers
            that are not allowed (such as `Lambda`) or unknown.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"Expected a .keras model file. Received: {path}")
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            corrupt = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"The model file {path} is corrupt or truncated ({error}).") from None
    if corrupt is not None or not names >= _KERAS_MEMBERS:
        raise ModelFileError(f"The model file {path} is corrupt or not a Keras model file.")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many kinds (TypeError, ValueError, OSError ...)
        raise ModelFileError(_load_failure(path, error)) from None
    split_text_model(model)
    return model


def _load_failure(path: Path, error: BaseException) -> str:
    """Says in one line why Keras refused a model file, from the innermost error."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = str(error).strip()
    unknown = re.search(r"Could not (?:locate class|locate function|deserialize) '([^']+)'", text)
    if unknown:
        return (
            f"The model file {path} holds {unknown.group(1)!r}, which imdb-rnn does not know: "
            "only models written by 'imdb-rnn train' load."
        )
    if "Lambda" in text:
        return (
            f"The model file {path} holds a Lambda layer (Python code), which imdb-rnn never "
            "loads: only models written by 'imdb-rnn train' load."
        )
    first_line = text.splitlines()[0] if text else type(error).__name__
    return f"Could not load the model file {path}: {first_line}"
