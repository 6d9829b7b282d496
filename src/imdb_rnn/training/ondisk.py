"""Training files larger than memory: tokenise once into a cache on disk, stream it in
length-sorted batches.

`train_on_disk` trains on a `TextFiles` data set without ever holding its training texts:

1. one streamed pass over the training file counts the labels and adapts the vocabulary
   (`TextVectorization.adapt` keeps word counts, not texts);
2. a second streamed pass tokenises the texts a chunk at a time and appends the token ids, the
   row lengths and the labels to three flat files in the cache folder (`ids.int32`,
   `lengths.int32`, `labels.int32`), read back as NumPy memory maps;
3. training batches come from those maps as `sorted` batches (reviews shuffled, sorted by length
   within windows of `batch_size x 50`, the batches of a window shuffled), validation batches
   in order of length.

Memory holds the vocabulary, one chunk of texts, the model, a window of batches, and a few
integers per row (an 8-byte row offset, and 4-byte row numbers and lengths); the texts and
their token ids stay on disk, read a batch at a time with `os.pread` (not through a memory map,
whose pages would count in the process's resident memory once read). Validation is carved
from the training file with a fixed seed when no valid file is given; a test file is read into
memory as usual (test sets are small). Checkpoints and resuming are not available in this mode.

Example (a tiny file; the same call trains on millions of rows):

>>> import pathlib, tempfile
>>> from imdb_rnn.config import get_preset
>>> from imdb_rnn.data.sources import TextFiles
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = "".join(f"a good film,pos\\na bad film,neg\\n" for i in range(32))
>>> _ = (folder / "train.csv").write_text("text,label\\n" + rows)
>>> config = get_preset("default").replace(
...     model={"max_tokens": 50, "embedding_dim": 4, "rnn_units": 2, "dense_units": (2,)},
...     training={"epochs": 1})
>>> result = train_on_disk(config, TextFiles(train=folder / "train.csv"))
>>> result.sizes, result.label_names
({'train': 58, 'valid': 6}, ['neg', 'pos'])
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import RunConfig
from imdb_rnn.data.batching import length_sorted_batches, tokenize
from imdb_rnn.data.sources import (
    BadRows,
    TextFiles,
    data_size,
    iter_rows,
    label_names_of,
    load_text_files,
)
from imdb_rnn.data.splits import SPLIT_SEED, ImdbSplits, valid_count
from imdb_rnn.devices import seed_everything
from imdb_rnn.errors import DataError
from imdb_rnn.inference.results import EvaluationResult, TrainResult
from imdb_rnn.layers import PAD_ID, TextEncoder
from imdb_rnn.models import build_encoder
from imdb_rnn.training.finish import RunData, finish_run, train_result
from imdb_rnn.training.trainer import Trainer, forward_in_batches

__all__ = ["CACHE_DIR", "TokenCache", "build_token_cache", "cache_batches", "train_on_disk"]

#: Name of the cache folder inside a model directory (removed once the model is saved).
CACHE_DIR = "token-cache"
_CHUNK = 8192
_WINDOW_BATCHES = 50


@dataclass
class TokenCache:
    """Token ids of a tokenised file, on disk.

    Attributes:
        directory: the cache folder.
        ids: all token ids, one row after the other (a read-only memory map, for inspection;
            `batch` reads the file instead).
        offsets: where each row starts in `ids` (`rows + 1` int64 values, in memory).
        labels: the class index of each row (a read-only memory map).
        bytes_read: size of the file(s) tokenised.
    """

    directory: Path
    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    bytes_read: int = 0

    def __post_init__(self) -> None:
        self._lengths: np.ndarray | None = None
        self._ids_fd: int | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Token count of each row (int32, computed once)."""
        if self._lengths is None:
            self._lengths = np.diff(self.offsets).astype(np.int32)
        return self._lengths

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded ids `(len(rows), longest)` and labels of some rows.

        The ids are read from the file (`os.pread`), not through the memory map: every page of a
        map that has been read counts in the process's resident memory until the kernel drops
        it, so an epoch over a map grows the resident size by the whole file; read, the pages
        stay in the kernel's page cache only.
        """
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        width = int((ends - starts).max()) if len(rows) else 0
        out = np.full((len(rows), width), PAD_ID, dtype=np.int32)
        if self._ids_fd is None:
            self._ids_fd = os.open(self.directory / "ids.int32", os.O_RDONLY)
        size = np.dtype(np.int32).itemsize
        for position, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if end > start:
                raw = os.pread(self._ids_fd, int(end - start) * size, int(start) * size)
                out[position, : end - start] = np.frombuffer(raw, dtype=np.int32)
        return out, np.asarray(self.labels[rows], dtype=np.int32)

    def close(self) -> None:
        """Closes the file `batch` reads (reopened if `batch` is called again)."""
        if self._ids_fd is not None:
            os.close(self._ids_fd)
            self._ids_fd = None


def _open(directory: Path, bytes_read: int) -> TokenCache:
    lengths = np.fromfile(directory / "lengths.int32", dtype=np.int32)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids_path = directory / "ids.int32"
    ids = (
        np.memmap(ids_path, dtype=np.int32, mode="r")
        if ids_path.stat().st_size
        else np.zeros(0, np.int32)
    )
    labels_path = directory / "labels.int32"
    labels = (
        np.memmap(labels_path, dtype=np.int32, mode="r")
        if labels_path.stat().st_size
        else np.zeros(0, np.int32)
    )
    return TokenCache(directory, ids, offsets, labels, bytes_read)


def build_token_cache(
    rows: Iterable[tuple[str, int]],
    encoder: TextEncoder,
    directory: str | os.PathLike[str],
    *,
    bytes_read: int = 0,
    chunk_rows: int = _CHUNK,
) -> TokenCache:
    """Tokenises `(text, class index)` rows a chunk at a time into a cache folder.

    Args:
        rows: the rows, streamed.
        encoder: an adapted `TextEncoder` (its length limit applies).
        directory: the cache folder (created; files in it are replaced).
        bytes_read: size of the source, for the record. Default 0.
        chunk_rows: rows tokenised per call. Default 8,192.

    Returns:
        The `TokenCache`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with (
        open(directory / "ids.int32", "wb") as ids_file,
        open(directory / "lengths.int32", "wb") as lengths_file,
        open(directory / "labels.int32", "wb") as labels_file,
    ):
        iterator = iter(rows)
        while True:
            chunk = [row for _, row in zip(range(chunk_rows), iterator, strict=False)]
            if not chunk:
                break
            texts = tf.constant([text for text, _ in chunk], dtype=tf.string)
            ids = encoder.encode_ragged(texts)
            ids_file.write(ids.flat_values.numpy().astype(np.int32).tobytes())
            lengths_file.write(ids.row_lengths().numpy().astype(np.int32).tobytes())
            labels_file.write(np.array([label for _, label in chunk], np.int32).tobytes())
    return _open(directory, bytes_read)


def cache_batches(
    cache: TokenCache,
    rows: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epochs: int,
    window_batches: int = _WINDOW_BATCHES,
) -> tf.data.Dataset:
    """Training batches of `rows` of a cache, `epochs` epochs back to back: epoch `e` shuffles
    the rows with `seed + e`, sorts windows of `batch_size * window_batches` rows by length and
    shuffles each window's batches.

    Returns:
        A dataset of `(ids (batch, time) int32, labels (batch,) int32)` of known cardinality.
    """
    window = batch_size * window_batches
    lengths = cache.lengths

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for epoch in range(epochs):
            rng = np.random.default_rng(seed + epoch)
            order = rng.permutation(rows)
            for start in range(0, len(order), window):
                part = order[start : start + window]
                part = part[np.argsort(lengths[part], kind="stable")]
                batches = [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
                for index in rng.permutation(len(batches)):
                    yield cache.batch(batches[index])

    steps = _steps(len(rows), batch_size, window)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=_SIGNATURE)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps * epochs))
    return dataset.prefetch(4)


def _steps(count: int, batch_size: int, window: int) -> int:
    full, rest = divmod(count, window)
    return full * math.ceil(window / batch_size) + math.ceil(rest / batch_size)


_SIGNATURE = (
    tf.TensorSpec((None, None), tf.int32),
    tf.TensorSpec((None,), tf.int32),
)


def _sorted_batches(
    cache: TokenCache, rows: np.ndarray, batch_size: int
) -> tuple[tf.data.Dataset, np.ndarray]:
    """Evaluation batches of `rows` in order of length, and their labels in that order."""
    ordered = rows[np.argsort(cache.lengths[rows], kind="stable")]

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(ordered), batch_size):
            yield cache.batch(ordered[start : start + batch_size])

    dataset = tf.data.Dataset.from_generator(generate, output_signature=_SIGNATURE)
    dataset = dataset.apply(
        tf.data.experimental.assert_cardinality(math.ceil(len(ordered) / batch_size))
    )
    return dataset.prefetch(2), np.asarray(cache.labels[ordered], dtype=np.int32)


def train_on_disk(
    config: RunConfig,
    files: TextFiles,
    *,
    output: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    on_stage: Callable[[str], None] | None = None,
) -> TrainResult:
    """Trains on a training file larger than memory (see the module's description).

    Args:
        config: the run configuration (`data.pipeline` is ignored: batches are always
            length-sorted windows; `data.limit` keeps the first rows of the file).
        files: the data; `train` is streamed, `valid` (optional) and `test` (optional) are
            read into memory. `unlabelled` is not used.
        output: model directory to write, as `train` writes it. Default None: nothing saved.
        cache_dir: folder for the token cache. Default None: `output/token-cache`, else a
            temporary folder; removed when training ends.
        callbacks: extra Keras callbacks.
        on_stage: called with a short description as each stage starts.

    Returns:
        A `TrainResult` (with `bytes_read`: the size of the training data read).

    Raises:
        DataError: as `load_text_files`.
    """
    stage = on_stage or (lambda name: None)
    if files.train is None:
        raise DataError("No file for the train split: pass TextFiles(train=PATH).")
    seed_everything(config.training.seed)
    stream = _TrainingFile(files, limit=config.data.limit)
    stage("Reading the training file and adapting the vocabulary (one pass)")
    encoder, counts = stream.adapt(build_encoder(config))
    label_names = label_names_of(counts)
    if len(label_names) < 2:
        raise DataError(f"Expected at least two classes in {files.train}. Received: {label_names}")
    trainer = Trainer(config, label_names=label_names, strategy="default")
    encoder = trainer.encoder = trainer.add_word_vectors(encoder)  # model.word_vectors
    trainer.class_weights = trainer.class_weights_from_counts([counts[n] for n in label_names])
    temporary = None
    if cache_dir is None:
        if output is not None:
            cache_dir = Path(output) / CACHE_DIR
        else:
            cache_dir = temporary = Path(tempfile.mkdtemp(prefix="imdb-rnn-cache-"))
    size = data_size(files.train)
    cache: TokenCache | None = None
    try:
        stage(f"Tokenising {sum(counts.values()):,} rows ({size / 1e6:,.1f} MB) into {cache_dir}")
        index = {name: position for position, name in enumerate(label_names)}
        cache = stream.tokenise(encoder, cache_dir, index, bytes_read=size)
        extra = _read_extra(files, label_names)
        train_rows, valid_rows = _split_rows(
            len(cache), config.data.valid_fraction if files.valid is None else None
        )
        result = _train_from_cache(
            trainer,
            cache,
            train_rows,
            valid_rows,
            extra=extra,
            data=RunData(
                sizes={"train": len(train_rows), "valid": len(valid_rows)}
                | (extra.sizes if extra is not None else {}),
                source=files.describe() + " (streamed from a token cache on disk)",
                bad_rows=dict(stream.bad.counts),
                bytes_read=size,
            ),
            output=output,
            callbacks=callbacks,
            stage=stage,
        )
    finally:
        if cache is not None:
            cache.close()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    finish_run(trainer, result, output=output, on_stage=stage)
    if cache_dir is not None and temporary is None:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return result


class _TrainingFile:
    """The training file's rows, streamed (twice: to adapt, then to tokenise), with its bad
    rows counted once."""

    def __init__(self, files: TextFiles, *, limit: int | None) -> None:
        self.files, self.limit = files, limit
        self.bad = BadRows()

    def rows(self) -> Iterator[tuple[str, str]]:
        files = self.files
        stream = iter_rows(
            files.train,  # type: ignore[arg-type]
            text_column=files.text_column,
            label_column=files.label_column,
            bad=self.bad,
            strict=files.strict,
        )
        for number, (text, label) in enumerate(stream):
            if self.limit is not None and number >= self.limit:
                return
            yield text, label or ""

    def adapt(self, encoder: TextEncoder) -> tuple[TextEncoder, Counter[str]]:
        """Adapts `encoder` in one pass; returns it and the count of each label."""
        counts: Counter[str] = Counter()

        def texts() -> Iterator[str]:
            for text, label in self.rows():
                counts[label] += 1
                yield text

        encoder.adapt(
            tf.data.Dataset.from_generator(texts, output_signature=tf.TensorSpec((), tf.string))
        )
        return encoder, counts

    def tokenise(
        self,
        encoder: TextEncoder,
        directory: str | os.PathLike[str],
        index: dict[str, int],
        *,
        bytes_read: int,
    ) -> TokenCache:
        """The second pass: the rows' token ids into a cache folder."""
        first_pass = dict(self.bad.counts)
        cache = build_token_cache(
            ((text, index[label]) for text, label in self.rows()),
            encoder,
            directory,
            bytes_read=bytes_read,
        )
        self.bad.counts = Counter(first_pass)  # the second pass met the same bad rows
        return cache


def _read_extra(files: TextFiles, label_names: Sequence[str]) -> ImdbSplits | None:
    """The valid and test files, read into memory (None without either)."""
    if files.valid is None and files.test is None:
        return None
    return load_text_files(
        TextFiles(
            valid=files.valid,
            test=files.test,
            text_column=files.text_column,
            label_column=files.label_column,
            strict=files.strict,
        ),
        splits=[name for name in ("valid", "test") if getattr(files, name) is not None],
        label_names=label_names,
    )


def _split_rows(count: int, valid_fraction: float | None) -> tuple[np.ndarray, np.ndarray]:
    """`(training rows, validation rows)` of the cache: validation carved with a fixed seed
    (`valid_fraction`; None: none, a valid file is given)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    if count < 2**31:  # half the memory per row; the same order
        order = order.astype(np.int32)
    if valid_fraction is None:
        return order, np.zeros(0, np.int64)
    n_valid = valid_count(len(order), valid_fraction)
    return order[n_valid:], np.sort(order[:n_valid])


def _train_from_cache(
    trainer: Trainer,
    cache: TokenCache,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    *,
    extra: ImdbSplits | None,
    data: RunData,
    output: str | os.PathLike[str] | None,
    callbacks: Iterable[keras.callbacks.Callback],
    stage: Callable[[str], None],
) -> TrainResult:
    """Trains `trainer` through `Trainer.fit_batches` on the cache's batches, evaluates it and
    returns the run's result."""
    config = trainer.config
    data_config, training = config.data, config.training
    batches = cache_batches(
        cache,
        train_rows,
        batch_size=data_config.batch_size,
        seed=training.seed,
        epochs=training.epochs,
    )
    steps = int(batches.cardinality()) // training.epochs
    if extra is not None and extra.valid is not None:
        validation = _memory_batches(trainer, extra.valid)[0]
    else:
        validation = _sorted_batches(cache, valid_rows, data_config.eval_batch_size)[0]
    trainer.build(steps)
    stage("Training (streamed from the token cache)")
    start = time.perf_counter()
    trainer.fit_batches(
        batches,
        validation=validation,
        steps_per_epoch=steps,
        train_size=len(train_rows),
        callbacks=callbacks,
    )
    train_seconds = time.perf_counter() - start
    stage("Evaluating")
    if extra is not None and extra.valid is not None:
        valid = trainer.evaluate(extra.valid, pipeline="sorted")
    else:
        valid_batches, valid_labels = _sorted_batches(
            cache, valid_rows, data_config.eval_batch_size
        )
        started = time.perf_counter()
        assert trainer.classifier is not None
        logits = forward_in_batches(trainer.classifier, valid_batches.map(_ids_only))
        valid = EvaluationResult.from_logits(
            logits, valid_labels, time.perf_counter() - started, label_names=trainer.label_names
        )
    test = (
        trainer.evaluate(extra.test, pipeline="sorted")
        if extra is not None and extra.test is not None
        else None
    )
    return train_result(
        trainer, data, valid=valid, test=test, train_seconds=train_seconds, output=output
    )


def _memory_batches(trainer: Trainer, dataset: tf.data.Dataset) -> tuple[tf.data.Dataset, Any]:
    """Length-sorted `(ids, labels)` batches of a split held in memory (a valid file)."""
    assert trainer.encoder is not None
    eval_batch_size = trainer.config.data.eval_batch_size
    split = tokenize(dataset, trainer.encoder, batch_size=max(eval_batch_size, 1024))
    return length_sorted_batches(split, batch_size=eval_batch_size)


def _ids_only(ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return ids
