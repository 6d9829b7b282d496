"""Run configuration: frozen dataclasses for data, model and training, validated when built.

A `RunConfig` is plain data: it can be printed, saved as JSON next to a model, loaded back and
overridden field by field. Every field is validated when the object is built, so a bad value
fails with a `ValueError` that names the field before any data is read or any model is built.

Example:

>>> from imdb_rnn.config import get_preset
>>> config = get_preset("reference")
>>> config.model.cell, config.model.rnn_units, config.data.batch_size
('gru', 64, 64)
>>> config.replace(model={"cell": "lstm"}).model.cell
'lstm'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imdb_rnn.errors import ConfigError

__all__ = [
    "CELLS",
    "ENCODER_LAYERS",
    "PIPELINES",
    "POOLINGS",
    "TRUNCATIONS",
    "VALID_SPLITS",
    "VOCABULARY_SOURCES",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainingConfig",
]

#: Bump when a saved config can no longer be read by older code.
#: 2: `training.checkpoint_every_steps` and `training.deterministic`.
#: 3: `data.valid_split`, `model.word_dropout` and `training.adversarial_epsilon`.
#: 4: `training.ensemble_size`.
#: 5: `training.encoder`, `training.encoder_layers`, `training.layer_lr_decay` and
#: `training.unfreeze_epochs`. 6: `training.ema_momentum`, `data.crop_fraction`,
#: `data.crop_lengths`, `training.pseudo_label_threshold`, `training.teacher`.
#: 7: `model.word_vectors`, `model.word_vectors_limit`, `model.word_vectors_trainable`.
#: 8: `model.ngram_buckets`, `training.ngram_l2`, `training.ngram_pseudo_label_threshold`,
#: `training.teacher_ngram_buckets` and `training.class_weight`. 9: `training.min_steps`.
CONFIG_VERSION = 9

CELLS = ("gru", "lstm")
POOLINGS = ("final", "max", "mean", "final_max_mean")
PIPELINES = ("sorted", "bucketed", "plain")
TRUNCATIONS = ("head", "tail")
VOCABULARY_SOURCES = ("unsupervised", "train", "train+unsupervised")
LR_SCHEDULES = ("constant", "cosine")
#: How validation reviews are chosen from train: at random, or whole films at a time.
VALID_SPLITS = ("random", "film")
#: What a classifier takes from a pre-trained encoder (`imdb_rnn.pretraining.pretrain`).
ENCODER_LAYERS = ("all", "embedding")
#: The fields that take one of a few strings, and those strings (the one list of each).
CHOICES: dict[str, tuple[str, ...]] = {
    "cell": CELLS,
    "pooling": POOLINGS,
    "pipeline": PIPELINES,
    "truncation": TRUNCATIONS,
    "vocabulary_source": VOCABULARY_SOURCES,
    "lr_schedule": LR_SCHEDULES,
    "valid_split": VALID_SPLITS,
    "encoder_layers": ENCODER_LAYERS,
}


#: Larger models are refused (4 GiB of float32 weights; the default preset has about 1.4 million).
MAX_PARAMETERS = 2**30


#: Larger batches are refused: 2**31 hung TensorFlow, and larger ones overflowed its sizes.
MAX_BATCH_SIZE = 65_536
#: Larger ensembles are refused (and every ensemble counts toward `MAX_PARAMETERS`).
MAX_ENSEMBLE_SIZE = 100


def _option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    default_help: str | None = "preset's",
    path: bool = False,
    switch: bool | None = None,
) -> Any:
    """A field that `imdb-rnn train` sets with an option of its own (every field can be set
    with `--set SECTION.FIELD=VALUE`); its metadata is the option's one description.

    Args:
        default: the field's default.
        help: the option's help text.
        flag: the option's name. Default None: `--` and the field's name in kebab case.
        default_help: what `--help` says the default is. Default "preset's"; None says nothing.
        path: the option takes a path (the field holds it as a string). Default False.
        switch: for a boolean field, the value that the flag (which takes no value) sets.
            Default None.
    """
    metadata = {
        "help": help,
        "flag": flag,
        "default_help": default_help,
        "path": path,
        "switch": switch,
    }
    return field(default=default, metadata=metadata)


def _option_name(name: str) -> str:
    """`name` as the field it is in the `RunConfig` (`"epochs"` -> `"training.epochs"`)."""
    for section, section_cls in SECTIONS.items():
        if name in section_cls.__dataclass_fields__:  # type: ignore[attr-defined]
            return f"{section}.{name}"
    return name


def _check_positive(
    name: str, value: Any, *, allow_none: bool = False, maximum: int | None = None
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ConfigError(
            f"Expected {name} to be {expected}. Received: {name}={value!r}",
            option=_option_name(name),
        )
    if maximum is not None and value > maximum:
        raise ConfigError(
            f"Expected {name} of at most {maximum:,}. Received: {name}={value!r}",
            option=_option_name(name),
        )


def _check_fraction(name: str, value: Any, *, low_inclusive: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0 <= value < 1 if low_inclusive else 0 < value < 1)
    if not ok:
        interval = "[0, 1)" if low_inclusive else "(0, 1)"
        raise ConfigError(
            f"Expected {name} in {interval}. Received: {name}={value!r}",
            option=_option_name(name),
        )


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"Expected {name} to be one of {list(choices)}. Received: {name}={value!r}",
            option=_option_name(name),
        )


@dataclass(frozen=True)
class DataConfig:
    """Where reviews come from and how they are batched.

    Args:
        valid_fraction: share of the training split held out for validation (the first part of
            train; for a local archive, after a fixed-seed shuffle). Default 0.1.
        limit: keep at most this many reviews of each split, for quick runs. Default None (all).
        batch_size: training mini-batch size. Default 64.
        eval_batch_size: batch size for evaluation and prediction (batches are length-sorted, so
            large ones waste no padding and run faster). Default 1024.
        shuffle_buffer: `tf.data` shuffle buffer for training. Default 10,000.
        pipeline: `"sorted"` tokenises once, keeps the token ids in memory and batches reviews of
            similar length together by sorting them within large shuffled windows; `"bucketed"`
            does the same with length buckets (`tf.data` `bucket_by_sequence_length`); `"plain"`
            is the reference pipeline (shuffle raw text, batch, tokenise every epoch, pad to the
            longest review of each batch). Default "sorted".
        max_length: keep at most this many tokens of each review, or None for all. Default 256
            (the median training review has 172 tokens; docs/performance.md has its measured
            effect).
        truncation: which tokens a too-long review keeps: `"head"` (the first `max_length`) or
            `"tail"` (the last `max_length`, where reviews tend to state their verdict).
            Default "tail".
        vocabulary_source: text the vocabulary is adapted on. Default "unsupervised".
        valid_split: how the validation reviews are chosen: `"random"` (the first
            `valid_fraction` of the shuffled training reviews) or `"film"` (whole films held
            out, so validation shares no film with training, as the test split does; needs the
            local archive, whose `urls_*.txt` name each review's film). Default "random".
        crop_fraction: augmentation for short texts: the share of training reviews that each
            epoch are replaced by a random span of their own tokens, with the review's label
            (`datasets.random_crops`; the `sorted` pipeline only). Default 0.0 (none).
        crop_lengths: `[shortest, longest]` span of a crop, in tokens. Default [8, 64].
    """

    valid_fraction: float = 0.1
    limit: int | None = _option(
        None,
        "Use at most N reviews per split (quick runs).",
        default_help=None,
    )
    batch_size: int = _option(64, "Training batch size (of each device, with --strategy).")
    eval_batch_size: int = 1024
    shuffle_buffer: int = 10_000
    pipeline: str = _option("sorted", "Input pipeline: sorted, bucketed or plain.")
    max_length: int | None = _option(256, "Keep at most N tokens per review.")
    truncation: str = _option("tail", "Tokens kept when truncating: head or tail.")
    vocabulary_source: str = "unsupervised"
    valid_split: str = _option(
        "random",
        "Validation reviews: random (10 % of train) or film (whole films held out, so that "
        "validation shares no film with training, as test does; needs the local archive).",
    )
    crop_fraction: float = _option(
        0.0,
        "Share of training reviews replaced each epoch by a random span of 8-64 of their tokens "
        "(augmentation for short texts); 0 is off.",
    )
    crop_lengths: tuple[int, int] = (8, 64)

    def __post_init__(self) -> None:
        _check_fraction("valid_fraction", self.valid_fraction, low_inclusive=False)
        _check_positive("limit", self.limit, allow_none=True)
        _check_positive("batch_size", self.batch_size, maximum=MAX_BATCH_SIZE)
        _check_positive("eval_batch_size", self.eval_batch_size, maximum=MAX_BATCH_SIZE)
        _check_positive("shuffle_buffer", self.shuffle_buffer)
        _check_choice("pipeline", self.pipeline, PIPELINES)
        _check_positive("max_length", self.max_length, allow_none=True)
        _check_choice("truncation", self.truncation, TRUNCATIONS)
        _check_choice("vocabulary_source", self.vocabulary_source, VOCABULARY_SOURCES)
        _check_choice("valid_split", self.valid_split, VALID_SPLITS)
        _check_fraction("crop_fraction", self.crop_fraction)
        lengths = self.crop_lengths
        if (
            not isinstance(lengths, (tuple, list))
            or len(lengths) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths)
            or not 1 <= lengths[0] <= lengths[1]
        ):
            raise ConfigError(
                "Expected crop_lengths to be [shortest, longest] with 1 <= shortest <= longest. "
                f"Received: crop_lengths={lengths!r}",
                option=_option_name("crop_lengths"),
            )
        object.__setattr__(self, "crop_lengths", tuple(lengths))
        if self.crop_fraction and self.pipeline != "sorted":
            raise ConfigError(
                "Expected pipeline='sorted' with crop_fraction > 0 (random crops change "
                f"review lengths). Received: pipeline={self.pipeline!r}",
                option=_option_name("pipeline"),
            )


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network.

    Args:
        max_tokens: vocabulary size, padding and out-of-vocabulary ids included. Default 10,000.
        embedding_dim: width of the word embeddings. Default 64.
        cell: recurrent cell, `"gru"` or `"lstm"`. Default "gru".
        rnn_units: units of each direction of each recurrent layer. Default 64.
        num_rnn_layers: number of stacked `Bidirectional` layers. Default 1.
        dense_units: widths of the hidden ReLU `Dense` layers, in order. Default (64,).
        pooling: how the last recurrent layer is summarised: `"final"` (the two final states,
            concatenated), `"max"` or `"mean"` over time (masked), or `"final_max_mean"` (all
            three, concatenated). Default "final".
        dropout: dropout rate before each `Dense` layer and on the recurrent layers' inputs.
            Default 0.0.
        spatial_dropout: rate at which whole embedding channels are dropped. Default 0.0.
        word_dropout: rate at which whole words are dropped in training (their embedding
            vectors set to zero, the others scaled up; the word still counts for the mask).
            Default 0.0.
        word_vectors: a text file of pre-trained word vectors (GloVe, word2vec or fastText
            format, optionally `.gz`; `imdb_rnn.data.wordvectors`): a second embedding, started from
            them and concatenated with `embedding`, reads the `max_tokens` words and the file's
            first `word_vectors_limit` words. Default None (no pre-trained vectors).
        word_vectors_limit: how many of the file's first (most frequent) words join the
            vocabulary, so that words never seen in training keep their meaning. Default 20,000.
        word_vectors_trainable: fine-tune the pre-trained vectors. Default True.
        ngram_buckets: a hybrid classifier (`imdb_rnn.ngrams`): beside the recurrent part, a
            linear n-gram part scores each review's distinct words (the `max_tokens` of the
            vocabulary) and word pairs (hashed into this many buckets), each weight scaled by
            its naive-Bayes log-count ratio for two classes (NBSVM); the two parts' logits are
            added with weights fitted on the validation split. The recurrent part trains as
            without it; the n-gram part is fitted after. Default 0 (no n-gram part).
    """

    max_tokens: int = _option(10_000, "Vocabulary size.")
    embedding_dim: int = _option(64, "Embedding width.")
    cell: str = _option("gru", "Recurrent cell: gru or lstm.")
    rnn_units: int = _option(64, "Units per direction.")
    num_rnn_layers: int = _option(1, "Stacked Bidirectional layers.")
    dense_units: tuple[int, ...] = _option(
        (64,),
        "Hidden Dense widths (repeat the option for more layers).",
    )
    pooling: str = _option("final", "final, max, mean or final_max_mean.")
    dropout: float = _option(0.0, "Dropout rate in [0, 1).")
    spatial_dropout: float = 0.0
    word_dropout: float = _option(
        0.0,
        "Rate at which whole words are dropped in training, in [0, 1).",
    )
    word_vectors: str | None = _option(
        None,
        "Pre-trained word vectors (GloVe, word2vec or fastText text file, or .gz): a second "
        "embedding started from them reads the training words and the file's first --word-vectors-"
        "limit words.",
        path=True,
    )
    word_vectors_limit: int = _option(
        20_000,
        "How many of the --word-vectors file's first words join the vocabulary.",
    )
    word_vectors_trainable: bool = _option(
        True,
        "Keep the --word-vectors as read (not fine-tuned).",
        flag="--freeze-word-vectors",
        switch=False,
    )
    ngram_buckets: int = _option(
        0,
        "Hybrid model: an n-gram part (words and hashed word pairs in this many buckets, naive-"
        "Bayes weighted) beside the recurrent one, their logits blended on validation; 0 is off.",
    )

    def __post_init__(self) -> None:
        _check_positive("max_tokens", self.max_tokens)
        buckets = self.ngram_buckets
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 0 <= buckets <= 2**26:
            raise ConfigError(
                f"Expected ngram_buckets in [0, {2**26:,}] (0 is off). Received: "
                f"ngram_buckets={buckets!r}",
                option=_option_name("ngram_buckets"),
            )
        if self.word_vectors is not None and (
            not isinstance(self.word_vectors, str) or not self.word_vectors
        ):
            raise ConfigError(
                "Expected word_vectors to be a file path or None. "
                f"Received: word_vectors={self.word_vectors!r}",
                option=_option_name("word_vectors"),
            )
        limit = self.word_vectors_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(
                f"Expected word_vectors_limit >= 0. Received: word_vectors_limit={limit!r}",
                option=_option_name("word_vectors_limit"),
            )
        if not isinstance(self.word_vectors_trainable, bool):
            raise ConfigError(
                "Expected word_vectors_trainable to be true or false. "
                f"Received: word_vectors_trainable={self.word_vectors_trainable!r}",
                option=_option_name("word_vectors_trainable"),
            )
        if self.max_tokens < 3:
            raise ConfigError(
                "Expected max_tokens >= 3 (padding, out-of-vocabulary and one word). "
                f"Received: max_tokens={self.max_tokens}",
                option=_option_name("max_tokens"),
            )
        _check_positive("embedding_dim", self.embedding_dim)
        _check_choice("cell", self.cell, CELLS)
        _check_positive("rnn_units", self.rnn_units)
        _check_positive("num_rnn_layers", self.num_rnn_layers)
        units = tuple(self.dense_units)
        object.__setattr__(self, "dense_units", units)
        for width in units:
            _check_positive("dense_units", width)
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_fraction("dropout", self.dropout)
        _check_fraction("spatial_dropout", self.spatial_dropout)
        _check_fraction("word_dropout", self.word_dropout)
        parameters = self.parameter_estimate
        if parameters > MAX_PARAMETERS:
            raise ConfigError(
                f"Expected a model of at most {MAX_PARAMETERS:,} parameters. Received: about "
                f"{parameters:,} (max_tokens={self.max_tokens}, embedding_dim="
                f"{self.embedding_dim}, rnn_units={self.rnn_units}, num_rnn_layers="
                f"{self.num_rnn_layers}, dense_units={list(self.dense_units)})"
            )

    @property
    def parameter_estimate(self) -> int:
        """The number of weights the classifier will have (to within the pooling's width)."""
        gates = 3 if self.cell == "gru" else 4
        total = self.max_tokens * self.embedding_dim
        width = self.embedding_dim
        for _ in range(self.num_rnn_layers):
            units = self.rnn_units
            total += 2 * gates * (width * units + units * units + 2 * units)
            width = 2 * units
        width *= 3 if self.pooling == "final_max_mean" else 1
        for units in (*self.dense_units, 1):
            total += width * units + units
            width = units
        if self.ngram_buckets:
            total += 2 * (self.max_tokens + self.ngram_buckets) + 3
        return total


@dataclass(frozen=True)
class TrainingConfig:
    """How the network is optimised.

    Args:
        epochs: maximum number of passes over the training split. Default 10.
        min_steps: train at least this many batches: when `epochs` passes over the training
            split are fewer batches (a small data set), the run takes
            `ceil(min_steps / batches_per_epoch)` epochs instead, early stopping still ending it
            sooner (`epochs_for`). Default 0 (exactly `epochs`); the `default` preset sets
            1,000. `imdb-rnn train --epochs N` sets it to 0: N epochs are what was asked for.
        learning_rate: Adam's (peak) learning rate. Default 1e-3.
        lr_schedule: `"constant"` or `"cosine"` decay to zero over all epochs, after
            `warmup_epochs` of linear warm-up. Default "constant".
        warmup_epochs: epochs of linear warm-up (cosine schedule only). Default 0.0.
        clip_norm: clip each gradient to this global norm. Default None (no clipping).
        early_stopping_patience: stop when validation loss has not improved for this many
            epochs, and restore the best weights. Default None (train all epochs).
        seed: seeds Python, NumPy, TensorFlow and every shuffle (epoch `e` of the training data
            is shuffled with `seed + e`, so a resumed run sees the same batches). Default 42.
        checkpoint_every_steps: write a resumable checkpoint every this many training batches,
            besides the one at every epoch end (only when training writes to a model
            directory). Default 200.
        deterministic: ask TensorFlow for deterministic kernels only
            (`tf.config.experimental.enable_op_determinism`, for the whole process). Runs on a
            CPU repeat exactly without it; on a GPU some kernels (cuDNN, atomic adds) vary from
            run to run unless it is on, at some cost in speed. Default False.
        adversarial_epsilon: adversarial training on the word embeddings (Miyato et al. 2017,
            `imdb_rnn.training.objectives`): each step also minimises the loss with every review's
            embedded sequence moved by this L2 norm in the direction that raises the loss
            most; about twice the cost of a step. Default 0.0 (off).
        ensemble_size: train this many classifiers, member `k` with seed `seed + k`, on the
            same data and vocabulary, and save one model that averages their logits
            (`training.ensemble`); costs as many times the training and prediction, and has no
            checkpoints. Default 1 (one model).
        ema_momentum: keep an exponential moving average of the weights (Polyak averaging;
            Keras' `use_ema`, updated after every step as `momentum * average + (1 - momentum)
            * weights`): validation, early stopping and the saved model use the averaged
            weights. Default 0.0 (off); 0.99 averages over about the last 100 steps.
        pseudo_label_threshold: self-training (`imdb_rnn.training.selftrain`): a teacher labels the
            unlabelled texts, and those it gives at least this probability join the training
            split with its label. Default 0.0 (off).
        teacher: folder of a saved model to be the teacher. Default None: the run first trains
            its own teacher with the same recipe (into `OUTPUT/teacher/`).
        teacher_ngram_buckets: the teacher the run trains itself is a hybrid with this many
            bigram buckets (`model.ngram_buckets`), whatever the student's model: a recurrent
            student of a hybrid teacher. Default 0 (the teacher has the student's model).
        encoder: folder of a pre-trained encoder (`imdb-rnn pretrain`, `imdb_rnn.pretraining`):
            the classifier takes its vocabulary and starts from its embedding and first
            bidirectional GRU, which must have the model's shape. Default None (from scratch).
        encoder_layers: what the classifier takes from `encoder` besides its vocabulary:
            `"all"` (the embedding and the first bidirectional GRU) or `"embedding"` (only the
            word vectors, rescaled to a standard deviation of 0.1; the GRU starts from random
            weights). Default "all".
        layer_lr_decay: discriminative learning rates (ULMFiT, `imdb_rnn.training.finetune`): each
            layer group below the head (the recurrent layers from the top, then the embedding)
            learns this many times slower than the group above it. Default 1.0 (all alike).
        unfreeze_epochs: gradual unfreezing (ULMFiT): only the head learns for this many
            epochs, then the top recurrent layer joins, and so on down to the embedding, one
            group every this many epochs. Default 0.0 (all layers learn from the start).
        class_weight: weigh each text's loss by its class, for imbalanced data: `"balanced"`
            (class `c` weighs `texts / (classes x texts of c)`, as scikit-learn's), or explicit
            weights `"neg=1,pos=9"` (a mapping `{"neg": 1, "pos": 9}` is accepted and written
            so; unnamed classes weigh 1). Default None: all classes weigh 1.
    """

    epochs: int = _option(10, "Maximum epochs.")
    min_steps: int = _option(
        0,
        "Train at least N batches: a small data set gets more epochs (early stopping still "
        "applies). --epochs sets it to 0: exactly the epochs asked for.",
    )
    learning_rate: float = _option(1e-3, "Adam learning rate.")
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    clip_norm: float | None = None
    early_stopping_patience: int | None = None
    seed: int = _option(42, "Random seed for everything.")
    checkpoint_every_steps: int = _option(
        200,
        "Write a resumable checkpoint every N batches (and at every epoch end).",
        flag="--checkpoint-every",
        default_help="200",
    )
    deterministic: bool = _option(
        False,
        "Use only deterministic TensorFlow kernels (for exact repeats on a GPU; CPU runs repeat "
        "exactly without it).",
        switch=True,
    )
    adversarial_epsilon: float = _option(
        0.0,
        "Adversarial training on the embeddings: L2 norm of each review's perturbation; 0 is off "
        "(about twice the cost per step).",
    )
    ensemble_size: int = _option(
        1,
        "Train this many models (seeds SEED, SEED+1, ...) and save one that averages their logits;"
        " as many times the cost, no checkpoints.",
    )
    ema_momentum: float = _option(
        0.0,
        "Keep an exponential moving average of the weights (e.g. 0.99); validation, early stopping"
        " and the saved model use it; 0 is off.",
    )
    pseudo_label_threshold: float = _option(
        0.0,
        "Self-training: a teacher labels the unlabelled texts and those it gives at least this "
        "probability (e.g. 0.9) join training; 0 is off.",
    )
    teacher: str | None = _option(
        None,
        "Saved model to be the teacher for self-training.",
        path=True,
        default_help="the run trains its own into OUTPUT/teacher",
    )
    teacher_ngram_buckets: int = 0
    encoder: str | None = _option(
        None,
        "Start from a pre-trained encoder folder (written by 'imdb-rnn pretrain'): its vocabulary,"
        " embedding and first bidirectional GRU.",
        path=True,
    )
    encoder_layers: str = _option(
        "all",
        "What --encoder gives besides its vocabulary: all (embedding and GRU) or embedding (only "
        "the word vectors, rescaled).",
    )
    layer_lr_decay: float = _option(
        1.0,
        "Discriminative learning rates: each layer group below the head learns this many times "
        "slower (ULMFiT: 2.6); 1 is off.",
    )
    unfreeze_epochs: float = _option(
        0.0,
        "Gradual unfreezing: the head trains alone for this many epochs, then each lower layer "
        "group joins after as many more; 0 is off.",
    )
    ngram_l2: float = 0.1
    ngram_pseudo_label_threshold: float = 0.0
    class_weight: str | None = _option(
        None,
        "Weigh each text's loss by its class, for imbalanced data: 'balanced' (inversely to the "
        "class's share of the training texts) or 'neg=1,pos=9'.",
        flag="--class-weight",
        default_help="preset's, all 1",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_weight", _class_weight_spec(self.class_weight))
        _check_positive("epochs", self.epochs)
        steps = self.min_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(
                f"Expected min_steps to be an integer >= 0. Received: min_steps={steps!r}",
                option=_option_name("min_steps"),
            )
        c = self.ngram_l2
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
            raise ConfigError(
                f"Expected ngram_l2 > 0. Received: ngram_l2={c!r}", option=_option_name("ngram_l2")
            )
        _check_positive("ensemble_size", self.ensemble_size, maximum=MAX_ENSEMBLE_SIZE)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
            raise ConfigError(
                f"Expected learning_rate in (0, 1]. Received: learning_rate={lr!r}",
                option=_option_name("learning_rate"),
            )
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        warmup = self.warmup_epochs
        if (
            isinstance(warmup, bool)
            or not isinstance(warmup, (int, float))
            or not math.isfinite(warmup)
            or warmup < 0
        ):
            raise ConfigError(
                f"Expected warmup_epochs >= 0. Received: warmup_epochs={self.warmup_epochs!r}",
                option=_option_name("warmup_epochs"),
            )
        if self.clip_norm is not None and (
            isinstance(self.clip_norm, bool)
            or not isinstance(self.clip_norm, (int, float))
            or not math.isfinite(self.clip_norm)
            or self.clip_norm <= 0
        ):
            raise ConfigError(
                f"Expected clip_norm > 0 or None. Received: clip_norm={self.clip_norm!r}",
                option=_option_name("clip_norm"),
            )
        _check_positive("early_stopping_patience", self.early_stopping_patience, allow_none=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(
                f"Expected seed to be an integer >= 0. Received: seed={self.seed!r}",
                option=_option_name("seed"),
            )
        # NumPy takes seeds below 2**32, and epoch `e` is shuffled with `seed + e`.
        if isinstance(self.epochs, int) and self.seed + self.epochs >= 2**32:
            raise ConfigError(
                f"Expected seed + epochs < 2**32 ({2**32:,}). Received: seed={self.seed}, "
                f"epochs={self.epochs}"
            )
        _check_positive("checkpoint_every_steps", self.checkpoint_every_steps)
        if not isinstance(self.deterministic, bool):
            raise ConfigError(
                f"Expected deterministic to be true or false. Received: {self.deterministic!r}",
                option=_option_name("deterministic"),
            )
        epsilon = self.adversarial_epsilon
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, (int, float))
            or not (0 <= epsilon < float("inf"))
        ):
            raise ConfigError(
                f"Expected adversarial_epsilon >= 0. Received: adversarial_epsilon={epsilon!r}",
                option=_option_name("adversarial_epsilon"),
            )
        if self.encoder is not None and (not isinstance(self.encoder, str) or not self.encoder):
            raise ConfigError(
                f"Expected encoder to be a folder path or None. Received: encoder={self.encoder!r}",
                option=_option_name("encoder"),
            )
        _check_choice("encoder_layers", self.encoder_layers, ENCODER_LAYERS)
        threshold = self.pseudo_label_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0 <= threshold <= 1
        ):
            raise ConfigError(
                "Expected pseudo_label_threshold in [0, 1] (0 is off). Received: "
                f"pseudo_label_threshold={threshold!r}",
                option=_option_name("pseudo_label_threshold"),
            )
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise ConfigError(
                f"Expected teacher to be a folder path or None. Received: teacher={self.teacher!r}",
                option=_option_name("teacher"),
            )
        ngram_threshold = self.ngram_pseudo_label_threshold
        if (
            isinstance(ngram_threshold, bool)
            or not isinstance(ngram_threshold, (int, float))
            or not 0 <= ngram_threshold <= 1
        ):
            raise ConfigError(
                "Expected ngram_pseudo_label_threshold in [0, 1] (0 is off). Received: "
                f"ngram_pseudo_label_threshold={ngram_threshold!r}",
                option=_option_name("ngram_pseudo_label_threshold"),
            )
        buckets = self.teacher_ngram_buckets
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 0 <= buckets <= 2**26:
            raise ConfigError(
                f"Expected teacher_ngram_buckets in [0, {2**26:,}]. Received: "
                f"teacher_ngram_buckets={buckets!r}",
                option=_option_name("teacher_ngram_buckets"),
            )
        if self.teacher is not None and not threshold:
            raise ConfigError(
                "A teacher labels unlabelled texts for self-training: set "
                "pseudo_label_threshold above 0 as well (e.g. 0.9).",
                option=_option_name("pseudo_label_threshold"),
            )
        momentum = self.ema_momentum
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not 0 <= momentum < 1
        ):
            raise ConfigError(
                f"Expected ema_momentum in [0, 1). Received: ema_momentum={momentum!r}",
                option=_option_name("ema_momentum"),
            )
        decay = self.layer_lr_decay
        if (
            isinstance(decay, bool)
            or not isinstance(decay, (int, float))
            or not math.isfinite(decay)
            or decay < 1
        ):
            raise ConfigError(
                f"Expected layer_lr_decay >= 1. Received: layer_lr_decay={decay!r}",
                option=_option_name("layer_lr_decay"),
            )
        unfreeze = self.unfreeze_epochs
        if (
            isinstance(unfreeze, bool)
            or not isinstance(unfreeze, (int, float))
            or not math.isfinite(unfreeze)
            or unfreeze < 0
        ):
            raise ConfigError(
                f"Expected unfreeze_epochs >= 0. Received: unfreeze_epochs={unfreeze!r}",
                option=_option_name("unfreeze_epochs"),
            )

    def epochs_for(self, batches_per_epoch: int) -> int:
        """The epochs a run takes when one pass over its training split is `batches_per_epoch`
        batches: `epochs`, or more where `min_steps` asks for more batches than that.

        Example:

        >>> TrainingConfig(epochs=5, min_steps=1000).epochs_for(77)  # 4,907 texts, 64 a batch
        13
        >>> TrainingConfig(epochs=5, min_steps=1000).epochs_for(352)  # 22,500 reviews
        5
        """
        if not self.min_steps or batches_per_epoch < 1:
            return self.epochs
        return max(self.epochs, math.ceil(self.min_steps / batches_per_epoch))


#: The sections of a `RunConfig`, in order, and their classes.
SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run.

    Args:
        data: a `DataConfig`.
        model: a `ModelConfig`.
        training: a `TrainingConfig`.
        preset: name of the preset this config started from, for the record. Default "custom".
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    preset: str = "custom"

    def __post_init__(self) -> None:
        parameters = self.model.parameter_estimate * self.training.ensemble_size
        if parameters > MAX_PARAMETERS:
            raise ConfigError(
                f"Expected an ensemble of at most {MAX_PARAMETERS:,} parameters in all. "
                f"Received: about {parameters:,} (training.ensemble_size="
                f"{self.training.ensemble_size} models of {self.model.parameter_estimate:,})"
            )
        if self.model.word_vectors is None:
            return
        training = self.training
        clashes = [
            name
            for name, clash in (
                ("training.encoder", training.encoder is not None),
                ("training.layer_lr_decay", training.layer_lr_decay != 1),
                ("training.unfreeze_epochs", bool(training.unfreeze_epochs)),
            )
            if clash
        ]
        if clashes:
            raise ConfigError(
                "Expected model.word_vectors without a pre-trained encoder or layer-wise "
                f"fine-tuning. Received: word_vectors and {clashes}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON-ready nested dictionaries."""
        out: dict[str, Any] = {"version": CONFIG_VERSION, "preset": self.preset}
        for name in SECTIONS:
            section = dataclasses.asdict(getattr(self, name))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Builds a config from `to_dict()` output; unknown keys and future versions are errors.

        Raises:
            ConfigError: on an unknown section or field, a newer config version, or a bad value.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"Expected a config (a mapping of sections). Received: {str(values)[:80]!r}"
            )
        version = values.get("version", CONFIG_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigError(
                f"Expected version to be a whole number >= 1. Received: version={version!r}",
                option=_option_name("version"),
            )
        if version > CONFIG_VERSION:
            raise ConfigError(
                f"This config was written by a newer imdb-rnn (config version {version}; this "
                f"version reads up to {CONFIG_VERSION}). Upgrade imdb-rnn to use it."
            )
        unknown = set(values) - {*SECTIONS, "version", "preset"}
        if unknown:
            raise ConfigError(f"Unknown config sections: {sorted(unknown)}")
        sections = {}
        for name, section_cls in SECTIONS.items():
            sections[name] = _build_section(section_cls, values.get(name, {}), name)
        return cls(**sections, preset=str(values.get("preset", "custom")))

    def replace(self, **overrides: Mapping[str, Any]) -> RunConfig:
        """Returns a copy with some fields of some sections replaced.

        Args:
            **overrides: section name (`data`, `model`, `training`) to a mapping of field values.
                `None` values in the mapping are ignored, so CLI options left unset keep the
                preset's values.
        """
        changes: dict[str, Any] = {}
        for name, fields in overrides.items():
            if name not in SECTIONS:
                raise ConfigError(f"Unknown config section: {name!r}")
            current = dataclasses.asdict(getattr(self, name))
            current.update({k: v for k, v in fields.items() if v is not None})
            changes[name] = _build_section(SECTIONS[name], current, name)
        return dataclasses.replace(self, **changes)


def _class_weight_spec(value: Any) -> str | None:
    """`training.class_weight` in its one written form: None, "balanced" or "a=1.0,b=2.5"."""
    if value is None or value == "balanced":
        return value
    pairs: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str) and value.strip():
        pairs = [item.partition("=")[::2] for item in value.split(",")]
    else:
        pairs = []
    weights = {}
    for label, weight in pairs:
        try:
            number = float(weight)
        except (TypeError, ValueError):
            number = float("nan")
        name = str(label).strip()
        if not name or "," in name or "=" in name or not math.isfinite(number) or number < 0:
            pairs = []
            break
        weights[name] = number
    if not pairs:
        raise ConfigError(
            "Expected class_weight to be 'balanced' or weights per label such as "
            f"'neg=1,pos=9' (each >= 0). Received: class_weight={value!r}",
            option=_option_name("class_weight"),
        )
    return ",".join(f"{label}={weight:g}" for label, weight in weights.items())


def _build_section(section_cls: type, values: Any, name: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"Expected config section {name!r} to be a mapping. Received: {values!r}")
    known = {f.name for f in dataclasses.fields(section_cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"Unknown fields in config section {name!r}: {sorted(unknown)}")
    try:
        return section_cls(**values)
    except TypeError as error:  # e.g. a list where a number belongs
        raise ConfigError(f"Bad value in config section {name!r}: {error}") from None
