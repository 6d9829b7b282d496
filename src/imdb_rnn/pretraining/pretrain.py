"""Language-model pre-training of the classifier's embedding and bidirectional GRU.

`pretrain` trains the embedding and the first `Bidirectional(GRU)` layer of the classifier as two
language models over unlabelled text (ULMFiT, Howard & Ruder 2018; Dai & Le 2015): the forward
GRU's state at each word predicts the next word, the backward GRU's state (it reads the text
from the end) predicts the previous word. Both directions run in one `FastBidirectional` layer,
so on a CPU each direction is one call of the native GRU kernel over a whole window.

- The text (by default IMDB's training reviews and the 50,000 unlabelled ones; never the
  validation or test reviews) is tokenised with a `TextVectorization` vocabulary adapted as the
  classifier's would be, concatenated, and cut into windows of `sequence_length` tokens
  (truncated back-propagation through time, the state starting from zero in each window; each
  epoch starts at another offset and shuffles the windows with `seed + epoch`).
- The output layer is a sampled softmax (`tf.nn.sampled_softmax_loss`, `sampled_classes` words
  drawn per step from the log-uniform distribution that matches the frequency-sorted
  vocabulary), so that its cost does not grow with the vocabulary. Each direction has its own
  output weights.
- After every epoch, the exact perplexity of each direction (full softmax) is measured on the
  validation reviews, and the encoder folder is (re)written.

The encoder folder (`write_encoder`, `read_encoder`) holds `vocabulary.json`, `encoder.npz`
(the embedding and the GRU weights, in the classifier's layout) and `encoder.json` (the
settings and the validation perplexity curve). `imdb-rnn train --encoder DIR`
(`TrainingConfig.encoder`) starts the classifier from it (`load_encoder`) and fine-tunes it
(`imdb_rnn.training.finetune`).

Interrupted runs resume: a checkpoint (`checkpoint/` in the output folder: every variable, the
optimizer's included, and the step reached) is written atomically every
`checkpoint_every_steps` steps, at every epoch end and when training stops early (time budget,
SIGINT); running the same `pretrain` again continues from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import MAX_BATCH_SIZE, VALID_SPLITS, VOCABULARY_SOURCES, ModelConfig, RunConfig
from imdb_rnn.errors import (
    ConfigError,
    DataError,
    EncoderError,
    NonFiniteLossError,
    OutputPathError,
)
from imdb_rnn.files import atomic_path, check_output_folder, folder_lock, read_limited, write_json
from imdb_rnn.layers import FastBidirectional, TextEncoder
from imdb_rnn.modeldir import check_writable

__all__ = [
    "ENCODER_CONFIG_FILE",
    "ENCODER_WEIGHTS_FILE",
    "EncoderError",
    "PretrainConfig",
    "PretrainResult",
    "PretrainedEncoder",
    "encoder_vocabulary",
    "load_encoder",
    "pretrain",
    "read_encoder",
    "write_encoder",
]

ENCODER_CONFIG_FILE = "encoder.json"
ENCODER_WEIGHTS_FILE = "encoder.npz"
VOCABULARY_FILE = "vocabulary.json"
CHECKPOINT_DIR = "checkpoint"
_CHECKPOINT_STATE = "state.json"
_CHECKPOINT_VARIABLES = "variables.npz"
#: Bump when an encoder folder can no longer be read by older code.
ENCODER_FORMAT = 1
#: Names of the classifier's layers the encoder initialises (as `build_classifier` names them).
EMBEDDING_LAYER = "embedding"
RECURRENT_LAYER = "bidirectional_gru_0"
#: Config fields that may change between an interrupted run and the rerun that continues it.
_RESUMABLE_CHANGES = ("max_minutes", "checkpoint_every_steps", "epochs")

#: Reports a stage of the preparation ("Reading data", ...).
StageCallback = Callable[[str], None]


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"Expected {name} to be a positive integer. Received: {name}={value!r}", option=name
        )


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of a language-model pre-training run.

    Args:
        max_tokens: vocabulary size, padding and out-of-vocabulary included; must equal the
            classifier's `model.max_tokens`. Default 20,000 (the `default` preset's).
        embedding_dim: width of the word embeddings (the classifier's). Default 64.
        rnn_units: units of each GRU direction (the classifier's). Default 64.
        vocabulary_source: text the vocabulary is adapted on, as `DataConfig`. Default
            "train+unsupervised".
        valid_split: how the classifier's validation reviews are chosen (`"random"` or
            `"film"`); they are left out of the language model's text and measure its
            perplexity. Use the split the classifier will use. Default "random".
        sequence_length: tokens per window (back-propagation through time). Default 128.
        batch_size: windows per step. Default 64.
        epochs: passes over the text. Default 4.
        learning_rate: Adam's peak learning rate (linear warm-up over the first 2 % of the
            steps, then cosine decay to a tenth of it). Default 3e-3.
        sampled_classes: words drawn per step for the sampled softmax. Default 512.
        valid_tokens: at most this many validation tokens per perplexity measurement.
            Default 20,000.
        checkpoint_every_steps: write a checkpoint every this many steps (and at every epoch
            end). Default 500.
        max_minutes: stop (with a checkpoint and an encoder written) after this many minutes of
            training; running again continues. Default None (no limit).
        seed: seeds the initial weights and the order of the windows. Default 0.

    Raises:
        ConfigError: naming the setting (`option`) that is out of range.
    """

    max_tokens: int = 20_000
    embedding_dim: int = 64
    rnn_units: int = 64
    vocabulary_source: str = "train+unsupervised"
    valid_split: str = "random"
    sequence_length: int = 128
    batch_size: int = 64
    epochs: int = 4
    learning_rate: float = 3e-3
    sampled_classes: int = 512
    valid_tokens: int = 20_000
    checkpoint_every_steps: int = 500
    max_minutes: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "max_tokens",
            "embedding_dim",
            "rnn_units",
            "sequence_length",
            "batch_size",
            "epochs",
            "sampled_classes",
            "valid_tokens",
            "checkpoint_every_steps",
        ):
            _positive_int(name, getattr(self, name))
        if self.batch_size > MAX_BATCH_SIZE:
            raise ConfigError(
                f"Expected batch_size of at most {MAX_BATCH_SIZE:,}. "
                f"Received: batch_size={self.batch_size}",
                option="batch_size",
            )
        if self.max_tokens < 3:
            raise ConfigError(
                f"Expected max_tokens >= 3. Received: max_tokens={self.max_tokens}",
                option="max_tokens",
            )
        if self.sequence_length < 2:
            raise ConfigError(
                f"Expected sequence_length >= 2. Received: sequence_length={self.sequence_length}",
                option="sequence_length",
            )
        if self.vocabulary_source not in VOCABULARY_SOURCES:
            raise ConfigError(
                f"Expected vocabulary_source to be one of {list(VOCABULARY_SOURCES)}. "
                f"Received: vocabulary_source={self.vocabulary_source!r}",
                option="vocabulary_source",
            )
        if self.valid_split not in VALID_SPLITS:
            raise ConfigError(
                f"Expected valid_split to be one of {list(VALID_SPLITS)}. "
                f"Received: valid_split={self.valid_split!r}",
                option="valid_split",
            )
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
            raise ConfigError(
                f"Expected learning_rate in (0, 1]. Received: learning_rate={lr!r}",
                option="learning_rate",
            )
        minutes = self.max_minutes
        if minutes is not None and (
            isinstance(minutes, bool)
            or not isinstance(minutes, (int, float))
            or not math.isfinite(minutes)
            or minutes <= 0
        ):
            raise ConfigError(
                f"Expected max_minutes > 0 or None. Received: max_minutes={minutes!r}",
                option="max_minutes",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(
                f"Expected seed to be an integer >= 0. Received: seed={self.seed!r}", option="seed"
            )

    @classmethod
    def for_model(cls, model: ModelConfig, **overrides: Any) -> PretrainConfig:
        """The config whose encoder fits a classifier of `model`'s shape."""
        return cls(
            **{
                "max_tokens": model.max_tokens,
                "embedding_dim": model.embedding_dim,
                "rnn_units": model.rnn_units,
                **overrides,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PretrainResult:
    """What `pretrain` did.

    Attributes:
        directory: the encoder folder.
        complete: True when all epochs ran (False: stopped by the time budget; run again to
            continue).
        step: steps done (of `total_steps`).
        total_steps: steps of the whole run.
        tokens: training tokens per epoch.
        curve: one entry per measurement: `epoch` (fractional), `step`, `train_loss` (sampled
            softmax, both directions), `forward_perplexity` and `backward_perplexity` (exact,
            on the validation reviews).
        seconds: training seconds of this process (excluding reading and tokenising).
    """

    directory: Path
    complete: bool
    step: int
    total_steps: int
    tokens: int
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON values (what `imdb-rnn pretrain --json` prints)."""
        return {
            "output": str(self.directory),
            "complete": self.complete,
            "step": self.step,
            "total_steps": self.total_steps,
            "train_tokens_per_epoch": self.tokens,
            "seconds": round(self.seconds, 1),
            "curve": self.curve,
        }


@dataclass
class PretrainedEncoder:
    """An encoder folder read back.

    Attributes:
        vocabulary: the words, index 0 padding (`""`) and 1 out-of-vocabulary (`"[UNK]"`).
        embedding: `(max_tokens, embedding_dim)` float32.
        recurrent: the `Bidirectional(GRU)` weights in Keras' order (forward kernel, recurrent
            kernel, bias, then the backward ones).
        config: the `encoder.json` contents (settings, curve ...).
    """

    vocabulary: list[str]
    embedding: np.ndarray
    recurrent: list[np.ndarray]
    config: dict[str, Any]

    @property
    def embedding_dim(self) -> int:
        return int(self.embedding.shape[1])

    @property
    def rnn_units(self) -> int:
        return int(self.recurrent[1].shape[0])

    def text_encoder(self, *, max_length: int | None, truncation: str = "head") -> TextEncoder:
        """A `TextEncoder` with this vocabulary, for the classifier's pipelines."""
        return TextEncoder(
            max_tokens=int(self.embedding.shape[0]),
            max_length=max_length,
            truncation=truncation,
            vocabulary=self.vocabulary[2:],
            name="text_encoder",
        )

    def check_fits(self, model: ModelConfig) -> None:
        """Raises `EncoderError` unless a classifier of `model`'s shape can start from this
        encoder (a GRU, the same vocabulary size, embedding width and units)."""
        expected = (model.max_tokens, model.embedding_dim, model.rnn_units)
        found = (int(self.embedding.shape[0]), self.embedding_dim, self.rnn_units)
        if model.cell != "gru" or expected != found:
            raise EncoderError(
                "Expected an encoder of the model's shape (cell='gru', max_tokens="
                f"{expected[0]}, embedding_dim={expected[1]}, rnn_units={expected[2]}). "
                f"Received: an encoder with max_tokens={found[0]}, embedding_dim={found[1]}, "
                f"rnn_units={found[2]} for a model with cell={model.cell!r}. Pre-train with "
                "the model's settings (PretrainConfig.for_model) or give the model the "
                "encoder's max_tokens, embedding_dim and rnn_units."
            )


# -- the language model ------------------------------------------------------------------------


class _LanguageModel:
    """Embedding + FastBidirectional(GRU) with one sampled-softmax output layer per direction."""

    def __init__(self, config: PretrainConfig) -> None:
        self.config = config
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        self.embedding = keras.layers.Embedding(
            config.max_tokens, config.embedding_dim, name=EMBEDDING_LAYER
        )
        self.recurrent = FastBidirectional(
            keras.layers.GRU(config.rnn_units, return_sequences=True), name=RECURRENT_LAYER
        )
        self.body = keras.Model(token_ids, self.recurrent(self.embedding(token_ids)))
        initial = keras.initializers.RandomNormal(stddev=0.05, seed=config.seed)
        shape = (config.max_tokens, config.rnn_units)
        self.output_weights = [
            tf.Variable(initial(shape), name=f"{direction}_softmax_weights")
            for direction in ("forward", "backward")
        ]
        self.output_biases = [
            tf.Variable(tf.zeros([config.max_tokens]), name=f"{direction}_softmax_biases")
            for direction in ("forward", "backward")
        ]
        self.variables = [
            *self.body.trainable_variables,
            *self.output_weights,
            *self.output_biases,
        ]

    def directions(self, ids: tf.Tensor, *, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """`(forward states predicting ids[:, 1:], backward states predicting ids[:, :-1])`,
        each `(batch, time - 1, units)`."""
        states = self.body(ids, training=training)
        units = self.config.rnn_units
        return states[:, :-1, :units], states[:, 1:, units:]

    def sampled_loss(self, ids: tf.Tensor) -> tf.Tensor:
        """Mean sampled-softmax loss of both directions on a batch of windows."""
        forward, backward = self.directions(ids, training=True)
        targets = (ids[:, 1:], ids[:, :-1])
        losses = []
        for index, states in enumerate((forward, backward)):
            labels = tf.reshape(tf.cast(targets[index], tf.int64), [-1, 1])
            losses.append(
                tf.reduce_mean(
                    tf.nn.sampled_softmax_loss(
                        self.output_weights[index],
                        self.output_biases[index],
                        labels,
                        tf.reshape(states, [-1, self.config.rnn_units]),
                        self.config.sampled_classes,
                        self.config.max_tokens,
                    )
                )
            )
        return (losses[0] + losses[1]) / 2.0

    def full_losses(self, ids: tf.Tensor) -> tf.Tensor:
        """Summed exact cross-entropy `[forward, backward]` of a batch of windows."""
        forward, backward = self.directions(ids, training=False)
        targets = (ids[:, 1:], ids[:, :-1])
        sums = []
        for index, states in enumerate((forward, backward)):
            logits = (
                tf.matmul(
                    tf.reshape(states, [-1, self.config.rnn_units]),
                    self.output_weights[index],
                    transpose_b=True,
                )
                + self.output_biases[index]
            )
            sums.append(
                tf.reduce_sum(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=tf.reshape(targets[index], [-1]), logits=logits
                    )
                )
            )
        return tf.stack(sums)


def _windows(stream: np.ndarray, length: int, offset: int) -> np.ndarray:
    """Non-overlapping windows of `length` tokens of `stream` from `offset` on, `(n, length)`."""
    usable = (len(stream) - offset) // length
    return stream[offset : offset + usable * length].reshape(usable, length)


def _stream(encoder: TextEncoder, texts: tf.data.Dataset) -> np.ndarray:
    """All token ids of `texts`, one review after the other, as one int32 array."""
    from imdb_rnn.data.batching import tokenize

    return tokenize(texts, encoder).ids.flat_values.numpy().astype(np.int32)


def _learning_rate(config: PretrainConfig, total_steps: int) -> Any:
    warmup = max(1, round(total_steps * 0.02))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.1,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


# -- the encoder folder -------------------------------------------------------------------------


def write_encoder(
    directory: str | os.PathLike[str],
    *,
    vocabulary: list[str],
    embedding: np.ndarray,
    recurrent: list[np.ndarray],
    info: Mapping[str, Any],
) -> None:
    """Writes an encoder folder (each file atomically; `encoder.json` last).

    Args:
        directory: the folder (created if needed).
        vocabulary: the words, padding and out-of-vocabulary first.
        embedding: `(max_tokens, embedding_dim)`.
        recurrent: the `Bidirectional(GRU)` weights in Keras' order.
        info: what `encoder.json` records besides the format (settings, curve ...).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / VOCABULARY_FILE, vocabulary)
    arrays: dict[str, Any] = {
        "embedding": embedding,
        **{f"recurrent_{i}": w for i, w in enumerate(recurrent)},
    }
    with atomic_path(folder / ENCODER_WEIGHTS_FILE) as tmp, open(tmp, "wb") as stream:
        np.savez(stream, **arrays)
    write_json(folder / ENCODER_CONFIG_FILE, {"format": ENCODER_FORMAT, **info})


def read_encoder(directory: str | os.PathLike[str]) -> PretrainedEncoder:
    """Reads an encoder folder written by `pretrain`.

    Raises:
        EncoderError: if the folder or one of its files is missing, unreadable or inconsistent.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise EncoderError(
            f"Expected an encoder folder written by `imdb-rnn pretrain`. Received: {folder} "
            "(not a folder)."
        )
    try:
        info = json.loads(read_limited(folder / ENCODER_CONFIG_FILE, what="encoder config"))
        vocabulary = json.loads(read_limited(folder / VOCABULARY_FILE, what="vocabulary"))
        with np.load(folder / ENCODER_WEIGHTS_FILE, allow_pickle=False) as arrays:
            embedding = arrays["embedding"]
            count = sum(1 for name in arrays.files if name.startswith("recurrent_"))
            recurrent = [arrays[f"recurrent_{i}"] for i in range(count)]
    except (OSError, ValueError, KeyError) as error:
        raise EncoderError(f"Cannot read the encoder in {folder}: {error}") from None
    if not isinstance(info, dict) or info.get("format", 0) > ENCODER_FORMAT:
        raise EncoderError(
            f"The encoder in {folder} was written by a newer imdb-rnn (or is not an encoder)."
        )
    if (
        not isinstance(vocabulary, list)
        or vocabulary[:2] != ["", "[UNK]"]
        or embedding.ndim != 2
        or len(vocabulary) > embedding.shape[0]
        or len(recurrent) != 6
    ):
        raise EncoderError(
            f"The encoder in {folder} is inconsistent: {len(vocabulary)} words, embedding "
            f"{embedding.shape}, {len(recurrent)} recurrent weight arrays (expected 6)."
        )
    return PretrainedEncoder([str(word) for word in vocabulary], embedding, recurrent, info)


def encoder_vocabulary(directory: str | os.PathLike[str], config: RunConfig) -> TextEncoder:
    """The `TextEncoder` of a classifier that starts from the encoder in `directory`: the
    encoder's vocabulary, with `config`'s length limit.

    Raises:
        EncoderError: if the folder cannot be read or does not fit `config.model`.
    """
    encoder = read_encoder(directory)
    encoder.check_fits(config.model)
    return encoder.text_encoder(
        max_length=config.data.max_length, truncation=config.data.truncation
    )


#: Standard deviation the word vectors are rescaled to when only they are taken from an
#: encoder (`layers="embedding"`); a language model's vectors are several times larger than a
#: fresh embedding's, and the GRU that was trained with them is not taken.
EMBEDDING_ONLY_STD = 0.1


def load_encoder(
    model: keras.Model, directory: str | os.PathLike[str], *, layers: str = "all"
) -> PretrainedEncoder:
    """Sets a classifier's embedding and first bidirectional GRU to an encoder's weights.

    Args:
        model: a classifier built by `build_classifier` with `cell="gru"`.
        directory: an encoder folder written by `pretrain`.
        layers: `"all"` (the embedding and the GRU) or `"embedding"` (only the word vectors,
            rescaled to standard deviation `EMBEDDING_ONLY_STD`; the GRU keeps its weights).
            Default "all".

    Returns:
        The encoder read.

    Raises:
        EncoderError: if the folder cannot be read, or its shapes differ from the model's.
    """
    encoder = read_encoder(directory)
    try:
        embedding = model.get_layer(EMBEDDING_LAYER)
        recurrent = model.get_layer(RECURRENT_LAYER)
    except ValueError:
        raise EncoderError(
            f"Expected a model with layers {EMBEDDING_LAYER!r} and {RECURRENT_LAYER!r} (a GRU "
            f"classifier). Received: layers {[layer.name for layer in model.layers]}"
        ) from None
    expected = [tuple(w.shape) for w in (*embedding.get_weights(), *recurrent.get_weights())]
    found = [tuple(w.shape) for w in (encoder.embedding, *encoder.recurrent)]
    if expected != found:
        raise EncoderError(
            f"Expected encoder weights of shapes {expected} (the model's). Received: {found} "
            f"in {directory}. Pre-train with the model's max_tokens, embedding_dim and "
            "rnn_units."
        )
    if layers == "embedding":
        vectors = encoder.embedding
        embedding.set_weights([vectors / max(float(vectors[2:].std()), 1e-12) * EMBEDDING_ONLY_STD])
        return encoder
    if layers != "all":
        raise ValueError(f"Expected layers in ('all', 'embedding'). Received: layers={layers!r}")
    embedding.set_weights([encoder.embedding])
    recurrent.set_weights(encoder.recurrent)
    return encoder


# -- checkpoints ------------------------------------------------------------------------------


def _save_checkpoint(folder: Path, variables: list[Any], state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / _CHECKPOINT_VARIABLES) as tmp, open(tmp, "wb") as stream:
        np.savez(stream, *[np.asarray(v.numpy()) for v in variables])
    write_json(folder / _CHECKPOINT_STATE, state)


def _read_checkpoint(folder: Path) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    if not (folder / _CHECKPOINT_STATE).exists():
        return None
    try:
        state = json.loads(read_limited(folder / _CHECKPOINT_STATE, what="checkpoint state"))
        with np.load(folder / _CHECKPOINT_VARIABLES, allow_pickle=False) as arrays:
            values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    except (OSError, ValueError, KeyError) as error:
        raise EncoderError(
            f"The pre-training checkpoint in {folder} is damaged ({error}); delete the folder "
            "to start over."
        ) from None
    return state, values


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _RESUMABLE_CHANGES}


# -- the run ---------------------------------------------------------------------------------


def pretrain(
    data: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    config: PretrainConfig | None = None,
    limit: int | None = None,
    resume: bool = True,
    on_stage: StageCallback | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_measure: Callable[[dict[str, float]], None] | None = None,
    stop: Any = None,
) -> PretrainResult:
    """Pre-trains the embedding and bidirectional GRU as forward and backward language models
    and writes an encoder folder (see the module docstring).

    Args:
        data: the IMDB archive or folder (as `load_imdb`; None: `IMDB_RNN_DATA`, else TFDS).
        output: the encoder folder; it also holds the checkpoint of an unfinished run.
        config: the settings. Default `PretrainConfig()`.
        limit: reviews per split, for quick runs (as `load_imdb`). Default None.
        resume: continue from a checkpoint in `output`. Default True; False starts over.
        on_stage: called with a short description as each preparation stage starts.
        on_step: called after every step with `(step, total_steps, sampled loss)`.
        on_measure: called with each perplexity measurement (an entry of `curve`).
        stop: a `stopping.SignalStop`: its first signal stops training after the current
            step, with a checkpoint and an encoder written, and raises `TrainingInterrupted`.

    Returns:
        A `PretrainResult`.

    Raises:
        EncoderError: if `output` holds a checkpoint of other settings (pass `resume=False` or
            another folder) or a damaged one.
        DataError: if the data cannot be read, or holds too little text for one batch of
            windows (lower `batch_size` or `sequence_length`).
        TrainingInterrupted: when `stop` received a signal (after the checkpoint is written).
        NonFiniteLossError: if the loss becomes NaN or infinite (the last checkpoint is kept).
        FolderBusyError: if another run holds `output`.
        ConfigError: if `limit` is not a positive integer, or `output` breaks the output rule
            (it is, holds or is inside `data`, or is inside a model folder).
        OSError: if `output` cannot be created or written.
    """
    config = config or PretrainConfig()
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(
            f"Expected limit to be a positive integer or None. Received: {limit!r}", option="limit"
        )
    data_path = [data] if isinstance(data, (str, os.PathLike)) and os.path.lexists(data) else []
    try:  # the output rule: not the data, nor inside it or a model folder
        check_output_folder(output, inputs=data_path, data=data_path, what="output=")
    except OutputPathError as error:
        raise ConfigError(str(error)) from None
    check_writable(output)  # before reading any data
    # One run at a time in a folder: a second one fails at once (FolderBusyError).
    with folder_lock(output):
        return _pretrain(
            data,
            Path(output),
            config=config,
            limit=limit,
            resume=resume,
            stage=on_stage or (lambda name: None),
            on_step=on_step,
            on_measure=on_measure,
            stop=stop,
        )


@dataclass(frozen=True)
class _Corpus:
    """The language model's text, as token ids."""

    vocabulary: list[str]
    names: list[str]  # the splits the training text comes from
    train_stream: np.ndarray  # every training token, one review after the other
    valid_windows: np.ndarray  # (windows, sequence_length) validation tokens
    steps_per_epoch: int


def _read_corpus(
    data: str | os.PathLike[str] | None,
    folder: Path,
    *,
    config: PretrainConfig,
    limit: int | None,
    resumed: bool,
    stage: StageCallback,
) -> _Corpus:
    """Reads the reviews, adapts the vocabulary (or reads a resumed run's) and tokenises them.

    Raises:
        DataError: if the data cannot be read, or holds too little text for one batch.
    """
    from imdb_rnn.data.imdb import load_imdb

    stage("Reading reviews")
    splits = load_imdb(
        data,
        splits=["train", "valid", "unsupervised"],
        limit=limit,
        valid_split=config.valid_split,
    )
    corpus_names = [name for name in ("train", "unsupervised") if getattr(splits, name)]
    stage("Adapting the vocabulary")
    if resumed and (folder / VOCABULARY_FILE).exists():
        vocabulary = json.loads(read_limited(folder / VOCABULARY_FILE, what="vocabulary"))
        encoder = TextEncoder(max_tokens=config.max_tokens, vocabulary=vocabulary[2:])
    else:
        encoder = TextEncoder(max_tokens=config.max_tokens)
        source = {"unsupervised": ["unsupervised"], "train": ["train"]}.get(
            config.vocabulary_source, ["train", "unsupervised"]
        )
        encoder.adapt(splits.texts(*[name for name in source if getattr(splits, name)]))
    vocabulary = encoder.get_vocabulary()
    stage("Tokenising")
    train_stream = _stream(encoder, splits.texts(*corpus_names))
    valid_stream = _stream(encoder, splits.texts("valid"))[: config.valid_tokens + 1]
    length = config.sequence_length
    steps_per_epoch = len(_windows(train_stream, length, length - 1)) // config.batch_size
    if steps_per_epoch < 1:
        raise DataError(
            f"Expected at least {config.batch_size} windows of {length} tokens. Received: "
            f"{len(train_stream)} tokens; lower batch_size or sequence_length."
        )
    valid_windows = _windows(valid_stream, length, 0)
    if len(valid_windows) == 0:
        valid_windows = valid_stream[None, : max(2, len(valid_stream))]
    return _Corpus(vocabulary, corpus_names, train_stream, valid_windows, steps_per_epoch)


def _restore(
    saved: tuple[dict[str, Any], list[np.ndarray]] | None,
    variables: list[Any],
    checkpoint_folder: Path,
) -> tuple[int, list[dict[str, float]]]:
    """Puts a checkpoint's values into the model's and optimizer's `variables`; returns its
    `(step, curve)`, or `(0, [])` for a fresh run.

    Raises:
        EncoderError: if the checkpoint holds other variables.
    """
    if saved is None:
        return 0, []
    state, values = saved
    if len(values) != len(variables):
        raise EncoderError(f"The pre-training checkpoint in {checkpoint_folder} is damaged.")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
    return int(state["step"]), list(state["curve"])


def _perplexities(valid_step: Any, valid_windows: np.ndarray) -> tuple[float, float]:
    """The forward and backward language models' perplexities on the validation windows."""
    total = np.zeros(2)
    for start in range(0, len(valid_windows), 8):
        total += valid_step(tf.constant(valid_windows[start : start + 8])).numpy()
    count = valid_windows.shape[0] * (valid_windows.shape[1] - 1)
    forward, backward = np.exp(total / max(count, 1))
    return float(forward), float(backward)


def _pretrain(
    data: str | os.PathLike[str] | None,
    folder: Path,
    *,
    config: PretrainConfig,
    limit: int | None,
    resume: bool,
    stage: StageCallback,
    on_step: Callable[[int, int, float], None] | None,
    on_measure: Callable[[dict[str, float]], None] | None,
    stop: Any,
) -> PretrainResult:
    from imdb_rnn.devices import prepare_native_kernel, seed_everything
    from imdb_rnn.errors import TrainingInterrupted

    checkpoint_folder = folder / CHECKPOINT_DIR
    saved = _read_checkpoint(checkpoint_folder) if resume else None
    if saved is not None and _comparable(saved[0]["config"]) != _comparable(config.to_dict()):
        raise EncoderError(
            f"{folder} holds an unfinished pre-training run with other settings "
            f"({saved[0]['config']}); continue it with the same settings, or start over in "
            "another folder (or with resume=False)."
        )
    seed_everything(config.seed)

    corpus = _read_corpus(
        data, folder, config=config, limit=limit, resumed=saved is not None, stage=stage
    )
    vocabulary, corpus_names = corpus.vocabulary, corpus.names
    train_stream, valid_windows = corpus.train_stream, corpus.valid_windows
    length, steps_per_epoch = config.sequence_length, corpus.steps_per_epoch
    total_steps = steps_per_epoch * config.epochs

    stage("Building the language model")
    prepare_native_kernel("gru", on_stage=stage)
    model = _LanguageModel(config)
    optimizer = keras.optimizers.Adam(_learning_rate(config, total_steps), clipnorm=1.0)
    optimizer.build(model.variables)
    all_variables = [*model.variables, *optimizer.variables]
    step, curve = _restore(saved, all_variables, checkpoint_folder)
    if saved is not None:
        stage(f"Resuming at step {step:,} of {total_steps:,}")

    @tf.function(autograph=False, reduce_retracing=True)
    def train_step(ids: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = model.sampled_loss(ids)
        gradients = tape.gradient(loss, model.variables)
        optimizer.apply_gradients(zip(gradients, model.variables, strict=True))
        return loss

    @tf.function(autograph=False, reduce_retracing=True)
    def valid_step(ids: tf.Tensor) -> tf.Tensor:
        return model.full_losses(ids)

    def write(complete: bool) -> None:
        info = {
            "config": config.to_dict(),
            "complete": complete,
            "step": step,
            "total_steps": total_steps,
            "epochs_done": round(step / steps_per_epoch, 3),
            "train_tokens_per_epoch": len(train_stream),
            "valid_tokens": int(valid_windows.size),
            "corpus": corpus_names,
            "curve": curve,
        }
        write_encoder(
            folder,
            vocabulary=vocabulary,
            embedding=model.embedding.get_weights()[0],
            recurrent=model.recurrent.get_weights(),
            info=info,
        )

    def checkpoint() -> None:
        _save_checkpoint(
            checkpoint_folder,
            all_variables,
            {"config": config.to_dict(), "step": step, "curve": curve},
        )

    if saved is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / VOCABULARY_FILE, vocabulary)
    stage("Training")
    if stop is not None:
        stop.deferring = True  # a signal now ends the current step, then we checkpoint
    started = time.monotonic()
    budget = config.max_minutes * 60 if config.max_minutes is not None else None
    recent: list[float] = []
    stopped = False
    while step < total_steps and not stopped:
        epoch = step // steps_per_epoch
        offset = (config.seed + epoch) * 7919 % length
        windows = _windows(train_stream, length, offset)
        order = np.random.default_rng(config.seed + epoch).permutation(len(windows))
        first = step - epoch * steps_per_epoch
        for batch in range(first, steps_per_epoch):
            rows = order[batch * config.batch_size : (batch + 1) * config.batch_size]
            loss = float(train_step(tf.constant(windows[rows])))
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"The language model's loss became {loss} at step {step + 1}; lower "
                    "learning_rate. The last checkpoint is kept.",
                    epoch=epoch,
                    step=batch + 1,
                )
            step += 1
            recent.append(loss)
            if on_step is not None:
                on_step(step, total_steps, loss)
            out_of_time = budget is not None and time.monotonic() - started >= budget
            interrupted = stop is not None and bool(getattr(stop, "received", None))
            if out_of_time or interrupted:
                stopped = True
                break
            if step % config.checkpoint_every_steps == 0:
                checkpoint()
        if step % steps_per_epoch == 0 or stopped or step >= total_steps:
            forward, backward = _perplexities(valid_step, valid_windows)
            entry = {
                "epoch": round(step / steps_per_epoch, 3),
                "step": step,
                "train_loss": round(float(np.mean(recent)) if recent else float("nan"), 4),
                "forward_perplexity": round(forward, 2),
                "backward_perplexity": round(backward, 2),
            }
            recent = []
            curve.append(entry)
            if on_measure is not None:
                on_measure(entry)
            checkpoint()
            write(complete=step >= total_steps)
    if stop is not None:
        stop.deferring = False
        if stop.received is not None:
            raise TrainingInterrupted(stop.received)
    return PretrainResult(
        directory=folder,
        complete=step >= total_steps,
        step=step,
        total_steps=total_steps,
        tokens=len(train_stream),
        curve=curve,
        seconds=time.monotonic() - started,
    )
