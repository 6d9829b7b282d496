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
import numpy as np

from imdb_rnn.config import ModelConfig, RunConfig
from imdb_rnn.errors import InputError, ModelFileError
from imdb_rnn.files import ENV_MAX_MODEL_BYTES, atomic_path, byte_limit
from imdb_rnn.layers import KnownIds, TextEncoder, recurrent_stack
from imdb_rnn.ngrams import Blend, NgramFeatures, NgramLogits

__all__ = [
    "ModelFileError",
    "build_classifier",
    "build_encoder",
    "build_hybrid",
    "build_text_model",
    "load_text_model",
    "save_text_model",
    "split_text_model",
]

_KERAS_MEMBERS = {"config.json", "metadata.json"}
# Everything Keras writes for a text model: the config, the weights, and vocabulary assets.
_KERAS_FILES = {*_KERAS_MEMBERS, "model.weights.h5"}
_ASSET = re.compile(r"assets/(?:[\w.-]+/)*vocabulary\.txt|assets/(?:[\w.-]+/)*")


def build_classifier(
    config: ModelConfig,
    *,
    num_classes: int = 2,
    word_vectors: np.ndarray | None = None,
) -> keras.Model:
    """Builds the token-id classifier described by `config`.

    `Embedding(max_tokens, embedding_dim, mask_zero=True)` -> `num_rnn_layers` x
    `Bidirectional(GRU | LSTM)` -> pooling -> `Dense` ReLU layers -> `Dense(1)` logits (two
    classes) or `Dense(num_classes)` logits (more).

    Args:
        config: a `ModelConfig`.
        num_classes: number of classes, at least 2. Default 2.
        word_vectors: with `config.word_vectors`, the pre-trained vectors: a `(vocabulary,
            dim)` matrix (`imdb_rnn.data.wordvectors.read_word_vectors`). Default None.

    Returns:
        An uncompiled `keras.Model` from int32 ids `(batch, time)` to logits `(batch, 1)`, or
        `(batch, num_classes)` for more than two classes.

    Raises:
        ValueError: if `num_classes` is below 2, or `word_vectors` is missing where
            `config.word_vectors` is set.

    Example:

    >>> from imdb_rnn.config import RunConfig
    >>> model = build_classifier(ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2))
    >>> model.output_shape
    (None, 1)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2. Received: num_classes={num_classes!r}")
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    if config.word_vectors is None:
        x = keras.layers.Embedding(
            config.max_tokens, config.embedding_dim, mask_zero=True, name="embedding"
        )(token_ids)
    else:
        x = _two_embeddings(config, token_ids, word_vectors)
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
    logits = keras.layers.Dense(1 if num_classes == 2 else num_classes, name="logits")(x)
    model = keras.Model(token_ids, logits, name="classifier")
    if word_vectors is not None:
        model.get_layer("word_vectors").set_weights([word_vectors])
    return model


def build_hybrid(
    recurrent: keras.Model, features: NgramFeatures, ngram_logits: NgramLogits
) -> keras.Model:
    """The hybrid classifier (`ModelConfig.ngram_buckets`): token ids -> `Blend` of the
    `recurrent` classifier's logits and the n-gram part's (`imdb_rnn.ngrams`).

    Args:
        recurrent: a classifier from `build_classifier`.
        features: the `NgramFeatures` layer.
        ngram_logits: the `NgramLogits` layer, with as many units as `recurrent` has logits.

    Returns:
        An uncompiled `keras.Model` from token ids to logits, with the blend at
        `[1, 0]` (the recurrent part alone) until `imdb_rnn.ngrams.fit_blend` sets it.

    Example:

    >>> config = ModelConfig(max_tokens=20, embedding_dim=4, rnn_units=2, ngram_buckets=8)
    >>> features = NgramFeatures(20, 8)
    >>> hybrid = build_hybrid(
    ...     build_classifier(config), features, NgramLogits(features.num_features)
    ... )
    >>> [layer.name for layer in hybrid.layers]
    ['token_ids', 'ngram_features', 'recurrent', 'ngram_logits', 'blend']
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    units = int(recurrent.output_shape[-1])
    if ngram_logits.units != units:
        raise ValueError(
            f"Expected an n-gram part with {units} logits. Received: units={ngram_logits.units}"
        )
    if recurrent.name != "recurrent":
        recurrent.name = "recurrent"  # Keras keys nested models' weights by name
    ngrams = ngram_logits(features(token_ids))
    logits = Blend(units, name="blend")([recurrent(token_ids), ngrams])
    return keras.Model(token_ids, logits, name="classifier")


def _two_embeddings(
    config: ModelConfig,
    token_ids: keras.KerasTensor,
    word_vectors: np.ndarray | None,
) -> keras.KerasTensor:
    # The trainable embedding over the `max_tokens` training words (the rest are unknown to
    # it), beside the pre-trained vectors over the whole vocabulary (imdb_rnn.data.wordvectors).
    if word_vectors is None:
        raise ValueError(
            f"Expected word_vectors (the matrix) for word_vectors="
            f"{config.word_vectors!r}. Received: None"
        )
    rows, dim = word_vectors.shape
    learned = keras.layers.Embedding(
        config.max_tokens, config.embedding_dim, mask_zero=True, name="embedding"
    )(KnownIds(config.max_tokens, name="known_ids")(token_ids))
    vectors = keras.layers.Embedding(
        int(rows),
        int(dim),
        mask_zero=True,
        trainable=config.word_vectors_trainable,
        embeddings_initializer="zeros",  # the file's vectors are set once the model is built
        name="word_vectors",
    )(token_ids)
    return keras.layers.Concatenate(name="embeddings")([learned, vectors])


def build_encoder(config: RunConfig, *, vocabulary: list[str] | None = None) -> TextEncoder:
    """The `TextEncoder` a config describes (`model.max_tokens`, `data.max_length`,
    `data.truncation`): to adapt, or with a known `vocabulary` (without the padding and
    out-of-vocabulary entries, which Keras adds back)."""
    max_tokens = config.model.max_tokens
    if vocabulary is not None and config.model.word_vectors is not None:
        max_tokens = max(max_tokens, len(vocabulary) + 2)  # the vector file's words added
    return TextEncoder(
        max_tokens=max_tokens,
        max_length=config.data.max_length,
        truncation=config.data.truncation,
        vocabulary=vocabulary,
        name="text_encoder",
    )


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
        if not _has_vocabulary_asset(tmp):
            # A model without its vocabulary saves fine and fails at every prediction.
            raise RuntimeError(f"The model saved to {path} lacks its vocabulary; not kept.")


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
            members = archive.infolist()
            names = {member.filename for member in members}
            _check_members(path, members)  # before anything is decompressed
            corrupt = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"The model file {path} is corrupt or truncated ({error}).") from None
    if corrupt is not None or not names >= _KERAS_MEMBERS:
        raise ModelFileError(f"The model file {path} is corrupt or not a Keras model file.")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many kinds (TypeError, ValueError, OSError ...)
        raise ModelFileError(_load_failure(path, error)) from None
    _check_vocabulary(path, split_text_model(model)[0])
    return model


def _check_members(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuses members Keras does not write and sizes over `IMDB_RNN_MAX_MODEL_BYTES`, from the
    zip's directory alone: a small file can hold a "zip bomb" that unpacks to gigabytes."""
    try:
        limit = byte_limit(ENV_MAX_MODEL_BYTES)
    except InputError as error:
        raise ModelFileError(str(error)) from None
    extra = sorted(
        member.filename
        for member in members
        if member.filename not in _KERAS_FILES and not _ASSET.fullmatch(member.filename)
    )
    if extra:
        raise ModelFileError(
            f"The model file {path} holds members Keras does not write ({', '.join(extra[:5])}): "
            "only models written by 'imdb-rnn train' load."
        )
    total = sum(member.file_size for member in members)
    if total > limit:
        raise ModelFileError(
            f"The model file {path} unpacks to {total:,} bytes, over the limit of {limit:,}. "
            f"Set {ENV_MAX_MODEL_BYTES} to a larger number of bytes to load it."
        )


def _check_vocabulary(path: Path, encoder: TextEncoder) -> None:
    """Refuses a model whose encoder came back without its vocabulary (earlier versions saved one
    after a resumed run): it loads, but every prediction fails with "Table not initialized"."""
    import tensorflow as tf

    try:
        encoder(tf.constant(["a"]))
    except tf.errors.FailedPreconditionError:
        raise ModelFileError(
            f"The model file {path} holds no vocabulary (an earlier imdb-rnn lost it when a run "
            "was resumed) and cannot predict: train it again."
        ) from None


def _has_vocabulary_asset(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/vocabulary.txt") for name in archive.namelist())


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
