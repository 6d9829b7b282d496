"""Pipelines: splits -> batches for Keras.

- `plain_batches`: the reference pipeline (shuffle raw text, batch, tokenise every epoch);
- `tokenize` + `bucketed_batches`: tokenise once, keep the ids in memory, batch reviews of
  similar length together (training);
- `tokenize` + `sorted_window_batches`: sort reviews by length within shuffled windows;
- `tokenize` + `length_sorted_batches`: batches in length order with the permutation to put
  results back in the caller's order (evaluation and prediction), bounded in tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from imdb_rnn.data.splits import UNLABELLED
from imdb_rnn.layers import TextEncoder

__all__ = [
    "EVAL_BATCH_TOKENS",
    "TokenizedSplit",
    "bucket_boundaries",
    "bucketed_batches",
    "bucketed_steps",
    "length_sorted_batches",
    "plain_batches",
    "random_crops",
    "sorted_window_batches",
    "tokenize",
    "windowed_steps",
]


@dataclass
class TokenizedSplit:
    """A split tokenised once and kept in memory.

    Attributes:
        ids: `tf.RaggedTensor` of int32 token ids, one row per review (never empty).
        labels: int32 NumPy array of labels.
    """

    ids: tf.RaggedTensor
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Token count of each review."""
        return self.ids.row_lengths().numpy()


def tokenize(
    texts: tf.data.Dataset | Iterable[str], encoder: TextEncoder, *, batch_size: int = 1024
) -> TokenizedSplit:
    """Tokenises a split (or a list of strings) once with `encoder`.

    Args:
        texts: unbatched dataset of `(text, label)` pairs or of strings, or a list of strings
            (labels are then -1).
        encoder: an adapted `TextEncoder`.
        batch_size: reviews tokenised per call. Default 1024.

    Returns:
        A `TokenizedSplit`, in the order of the input.
    """
    if not isinstance(texts, tf.data.Dataset):
        strings = list(texts)
        labels_ds = tf.data.Dataset.from_tensor_slices(tf.fill([len(strings)], UNLABELLED))
        texts = tf.data.Dataset.zip(
            (tf.data.Dataset.from_tensor_slices(tf.constant(strings, dtype=tf.string)), labels_ds)
        )
    elif isinstance(texts.element_spec, tf.TensorSpec):
        texts = texts.map(lambda text: (text, tf.constant(UNLABELLED, tf.int32)))
    batches = texts.batch(batch_size).map(
        lambda text, label: (encoder.encode_ragged(text), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    id_parts, label_parts = [], []
    for ids, labels in batches:
        id_parts.append(ids)
        label_parts.append(labels.numpy())
    if not id_parts:
        return TokenizedSplit(
            tf.ragged.constant([], dtype=tf.int32, ragged_rank=1), np.zeros(0, np.int32)
        )
    return TokenizedSplit(tf.concat(id_parts, axis=0), np.concatenate(label_parts).astype(np.int32))


def _rows(ids: tf.RaggedTensor, labels: np.ndarray | tf.Tensor) -> tf.data.Dataset:
    """One `(ids, label)` element per review, the ids as a plain 1-D tensor."""
    # Each row is cut from the flat ids by its offset and length. Slicing the ragged tensor itself
    # (`from_tensor_slices(ids)`) gives the same rows, but TensorFlow's graph type inference
    # rejects that dataset and logs a 45-line "Type inference failed" warning on every run.
    values = ids.flat_values

    def row(start: tf.Tensor, length: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.slice(values, tf.reshape(start, [1]), tf.reshape(length, [1])), label

    return tf.data.Dataset.from_tensor_slices((ids.row_starts(), ids.row_lengths(), labels)).map(
        row
    )


def bucket_boundaries(lengths: np.ndarray, *, batch_size: int, max_buckets: int = 32) -> list[int]:
    """Chooses bucket boundaries at length quantiles, so buckets hold similar numbers of reviews.

    Each bucket gets at least about eight batches' worth of reviews on average, which bounds the
    partial batches left at the end of an epoch.
    """
    num_buckets = int(min(max_buckets, max(1, len(lengths) // (batch_size * 8))))
    if num_buckets <= 1:
        return []
    quantiles = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({math.ceil(q) + 1 for q in quantiles})


def bucketed_steps(lengths: np.ndarray, boundaries: list[int], batch_size: int) -> int:
    """Number of batches `bucketed_batches` yields per epoch (the same every epoch)."""
    bucket = np.searchsorted(np.asarray(boundaries, dtype=np.int64), lengths, side="right")
    counts = np.bincount(bucket, minlength=len(boundaries) + 1)
    return int(sum(math.ceil(c / batch_size) for c in counts))


def bucketed_batches(
    split: TokenizedSplit,
    *,
    batch_size: int = 64,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    max_buckets: int = 32,
    epochs: int | None = None,
) -> tf.data.Dataset:
    """Training batches of reviews of similar length, reshuffled every epoch.

    Reviews are shuffled, then routed to length buckets; a bucket emits a batch when it holds
    `batch_size` reviews and the remainders are emitted at the end of the epoch, so each review
    appears exactly once per epoch. Each batch is padded to its own longest review.

    Args:
        split: a `TokenizedSplit`.
        batch_size: reviews per batch. Default 64.
        shuffle_buffer: shuffle buffer before bucketing. Default 10,000.
        seed: shuffle seed. Default None.
        max_buckets: at most this many length buckets. Default 32.
        epochs: None (the default): one epoch per iteration of the dataset, reshuffled each
            time. A number: that many epochs back to back, epoch `i` shuffled with `seed + i`,
            so that any epoch's batches can be rebuilt in another process.

    Returns:
        A dataset of `(ids (batch, time) int32, labels (batch,) int32)` with known cardinality.
    """
    lengths = split.lengths
    boundaries = bucket_boundaries(lengths, batch_size=batch_size, max_buckets=max_buckets)
    steps = bucketed_steps(lengths, boundaries, batch_size)
    rows = _rows(split.ids, split.labels)

    def one_epoch(epoch_seed: Any) -> tf.data.Dataset:
        shuffled = rows.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=True)
        return shuffled.bucket_by_sequence_length(
            element_length_func=lambda ids, label: tf.shape(ids)[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        )

    dataset = _epochs(one_epoch, seed, epochs)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps * (epochs or 1)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _epochs(
    one_epoch: Callable[[Any], tf.data.Dataset], seed: int | None, epochs: int | None
) -> tf.data.Dataset:
    """`one_epoch(seed)` if `epochs` is None, else `epochs` epochs back to back, epoch `i` made
    by `one_epoch(seed + i)` (the data is captured once, however many epochs)."""
    if epochs is None:
        return one_epoch(seed)
    if seed is None:
        return tf.data.Dataset.range(epochs).flat_map(lambda index: one_epoch(None))
    return tf.data.Dataset.range(seed, seed + epochs).flat_map(one_epoch)


def windowed_steps(count: int, batch_size: int, window_batches: int) -> int:
    """Number of batches `sorted_window_batches` yields per epoch (the same every epoch)."""
    window = batch_size * window_batches
    return (count // window) * window_batches + math.ceil((count % window) / batch_size)


def sorted_window_batches(
    split: TokenizedSplit,
    *,
    batch_size: int = 64,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    window_batches: int = 50,
    epochs: int | None = None,
    crop_fraction: float = 0.0,
    crop_lengths: tuple[int, int] = (8, 64),
) -> tf.data.Dataset:
    """Training batches of reviews of similar length: sorted within large shuffled windows.

    Reviews are shuffled, taken `batch_size * window_batches` at a time, sorted by length within
    that window and cut into batches, which are shuffled again before they are yielded. Batches
    hold reviews of almost equal length (little padding), every review appears exactly once per
    epoch, and both the windows and the batch order change every epoch.

    Args:
        split: a `TokenizedSplit`.
        batch_size: reviews per batch. Default 64.
        shuffle_buffer: shuffle buffer for reviews. Default 10,000.
        seed: shuffle seed. Default None.
        window_batches: batches per sorting window. Default 50.
        epochs: None (the default): one epoch per iteration. A number: that many epochs back to
            back, epoch `i` shuffled with `seed + i` (see `bucketed_batches`).
        crop_fraction: share of the reviews that each epoch are replaced by a random span of
            their own tokens, with their label (`random_crops`). Default 0.0 (none).
        crop_lengths: the shortest and longest span, in tokens. Default (8, 64).

    Returns:
        A dataset of `(ids (batch, time) int32, labels (batch,) int32)` with known cardinality.
    """
    steps = windowed_steps(len(split), batch_size, window_batches)
    reviews = _rows(split.ids, split.labels)

    def sorted_batches(ids: tf.RaggedTensor, labels: tf.Tensor) -> tf.data.Dataset:
        order = tf.argsort(ids.row_lengths(), stable=True)
        return _rows(tf.gather(ids, order), tf.gather(labels, order)).padded_batch(batch_size)

    def one_epoch(epoch_seed: Any) -> tf.data.Dataset:
        rows = (
            random_crops(reviews, crop_fraction, crop_lengths, seed=epoch_seed)
            if crop_fraction
            else reviews
        )
        shuffled = rows.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=True)
        batches = shuffled.ragged_batch(batch_size * window_batches).flat_map(sorted_batches)
        batch_seed = None if epoch_seed is None else epoch_seed + 1
        return batches.shuffle(2 * window_batches, seed=batch_seed, reshuffle_each_iteration=True)

    dataset = _epochs(one_epoch, seed, epochs)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps * (epochs or 1)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def random_crops(
    rows: tf.data.Dataset,
    fraction: float,
    lengths: tuple[int, int] = (8, 64),
    *,
    seed: Any = None,
) -> tf.data.Dataset:
    """Replaces a random share of `(ids, label)` rows by a random span of their tokens.

    Training on such crops, with the whole review's label, teaches the model to read short
    texts (a sentence, the first words of a review) as well as whole reviews. Each row is cropped
    with probability `fraction`, to a length drawn uniformly from `lengths` (at most its own),
    at a uniformly drawn start. The draws of row `i` depend only on `(seed, i)`, so an epoch's
    crops are the same in every process and in a resumed run.

    Args:
        rows: unbatched `(ids, label)` pairs, ids a 1-D integer tensor.
        fraction: probability that a row is cropped, in [0, 1].
        lengths: `(shortest, longest)` span in tokens, 1 <= shortest <= longest.
        seed: an integer (or scalar integer tensor) for stateless draws. Default None: stateful
            draws (different every time).
    """
    low, high = int(lengths[0]), int(lengths[1])
    if not 1 <= low <= high:
        raise ValueError(f"Expected 1 <= shortest <= longest crop. Received: lengths={lengths!r}")
    if not 0 <= fraction <= 1:
        raise ValueError(f"Expected fraction in [0, 1]. Received: fraction={fraction!r}")

    def crop(index: tf.Tensor, row: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        ids, label = row
        if seed is None:
            draws = tf.random.uniform([3])
        else:
            pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
            draws = tf.random.stateless_uniform([3], seed=pair)
        size = tf.shape(ids, out_type=tf.int64)[0]
        span = tf.minimum(size, low + tf.cast(draws[1] * (high - low + 1), tf.int64))
        start = tf.minimum(
            size - span, tf.cast(draws[2] * tf.cast(size - span + 1, tf.float32), tf.int64)
        )
        whole = draws[0] >= fraction
        start = tf.where(whole, tf.constant(0, tf.int64), start)
        span = tf.where(whole, size, span)
        return ids[start : start + span], label

    return rows.enumerate().map(crop)


#: Most token ids in one evaluation batch (rows x padded length): 512 reviews of 256 tokens.
#: Batches of long reviews hold fewer rows, so evaluating whole reviews stays within memory.
EVAL_BATCH_TOKENS = 2**17


def length_sorted_batches(
    split: TokenizedSplit, *, batch_size: int = 1024, max_batch_tokens: int = EVAL_BATCH_TOKENS
) -> tuple[tf.data.Dataset, np.ndarray]:
    """Batches in order of length (least padding), for evaluation and prediction.

    Each batch holds at most `batch_size` reviews and, unless it is one review, at most
    `max_batch_tokens` token ids once padded: long reviews come in smaller batches, so memory
    does not grow with the longest review.

    Returns:
        `(dataset, order)`: the dataset yields `(ids, labels)` for the reviews `order[0], order[1],
        ...`; results `r` computed on it go back to the input order with `r[inverse]`, where
        `inverse = np.argsort(order)`.
    """
    order = np.argsort(split.lengths, kind="stable")
    ids = tf.gather(split.ids, order)
    sizes = _batch_sizes(split.lengths[order], batch_size, max_batch_tokens)
    rows = _rows(ids, split.labels[order])
    if len(set(sizes)) <= 1:  # all batches full (or one): a plain padded batch
        dataset = rows.padded_batch(batch_size)
    else:
        batch_of_row = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        size_of_batch = tf.constant(np.asarray(sizes, np.int64))
        dataset = tf.data.Dataset.zip(
            (tf.data.Dataset.from_tensor_slices(batch_of_row), rows)
        ).group_by_window(
            key_func=lambda batch, row: batch,
            reduce_func=lambda batch, window: window.map(lambda _, row: row).padded_batch(
                batch_size
            ),
            window_size_func=lambda batch: tf.gather(size_of_batch, batch),
        )
        # Keras' predict reads the number of batches from the dataset.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(sizes)))
    return dataset.prefetch(tf.data.AUTOTUNE), order


def _batch_sizes(sorted_lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> list[int]:
    """Rows per batch over reviews sorted by length: as many as fit `batch_size` and
    `max_batch_tokens` (the batch is padded to its last, longest review)."""
    sizes: list[int] = []
    start, count = 0, len(sorted_lengths)
    while start < count:
        end = min(start + batch_size, count)
        longest = max(int(sorted_lengths[end - 1]), 1)
        if (end - start) * longest > max_batch_tokens:
            # The longest review that fits with the rows before it: shrink until it fits.
            end = start + 1
            while end < count and end - start < batch_size:
                if (end + 1 - start) * max(int(sorted_lengths[end]), 1) > max_batch_tokens:
                    break
                end += 1
        sizes.append(end - start)
        start = end
    return sizes


def plain_batches(
    dataset: tf.data.Dataset,
    encoder: TextEncoder,
    *,
    batch_size: int = 64,
    shuffle_buffer: int | None = 10_000,
    seed: int | None = None,
    epochs: int | None = None,
) -> tf.data.Dataset:
    """The reference pipeline: shuffle raw text, batch, then tokenise every batch every epoch,
    padding it to its longest review.

    Args:
        dataset: unbatched `(text, label)` pairs.
        encoder: an adapted `TextEncoder`.
        batch_size: reviews per batch. Default 64.
        shuffle_buffer: shuffle buffer, or None for no shuffle (evaluation). Default 10,000.
        seed: shuffle seed. Default None.
        epochs: None (the default): one epoch per iteration. A number: that many epochs back to
            back, epoch `i` shuffled with `seed + i` (see `bucketed_batches`).
    """

    def one_epoch(epoch_seed: Any) -> tf.data.Dataset:
        shuffled = (
            dataset.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=True)
            if shuffle_buffer
            else dataset
        )
        return shuffled.batch(batch_size).map(lambda text, label: (encoder(text), label))

    batches = _epochs(one_epoch, seed, epochs)
    size = int(dataset.cardinality())
    if epochs is not None and size >= 0:
        steps = math.ceil(size / batch_size) * epochs
        batches = batches.apply(tf.data.experimental.assert_cardinality(steps))
    return batches.prefetch(tf.data.AUTOTUNE)
