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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import RunConfig
from imdb_rnn.data.sources import (
    BadRows,
    TextFiles,
    data_size,
    iter_rows,
    label_names_of,
    load_text_files,
)
from imdb_rnn.data.splits import SPLIT_SEED, valid_count
from imdb_rnn.errors import DataError
from imdb_rnn.layers import PAD_ID, TextEncoder
from imdb_rnn.models import build_encoder

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
) -> Any:
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
    from imdb_rnn.devices import rnn_kernel_name
    from imdb_rnn.inference.results import EvaluationResult, TrainResult
    from imdb_rnn.modeldir import versions
    from imdb_rnn.training.loop import EpochLoop
    from imdb_rnn.training.trainer import Trainer

    stage = on_stage or (lambda name: None)
    if files.train is None:
        raise DataError("No file for the train split: pass TextFiles(train=PATH).")
    data, training = config.data, config.training
    keras.utils.set_random_seed(training.seed)
    bad = BadRows()

    def rows() -> Iterator[tuple[str, str]]:
        stream = iter_rows(
            files.train,  # type: ignore[arg-type]
            text_column=files.text_column,
            label_column=files.label_column,
            bad=bad,
            strict=files.strict,
        )
        for number, (text, label) in enumerate(stream):
            if data.limit is not None and number >= data.limit:
                return
            yield text, label or ""

    stage("Reading the training file and adapting the vocabulary (one pass)")
    counts: Counter[str] = Counter()

    def texts() -> Iterator[str]:
        for text, label in rows():
            counts[label] += 1
            yield text

    encoder = build_encoder(config)
    encoder.adapt(
        tf.data.Dataset.from_generator(texts, output_signature=tf.TensorSpec((), tf.string))
    )
    label_names = label_names_of(counts)
    if len(label_names) < 2:
        raise DataError(f"Expected at least two classes in {files.train}. Received: {label_names}")
    trainer = Trainer(config, label_names=label_names, strategy="default")
    encoder = trainer.encoder = trainer.add_word_vectors(encoder)  # model.word_vectors
    index = {name: position for position, name in enumerate(label_names)}
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
        first_pass = dict(bad.counts)
        cache = build_token_cache(
            ((text, index[label]) for text, label in rows()), encoder, cache_dir, bytes_read=size
        )
        bad.counts = Counter(first_pass)  # the second pass met the same bad rows
        order = np.random.default_rng(SPLIT_SEED).permutation(len(cache))
        if len(cache) < 2**31:  # half the memory per row; the same order
            order = order.astype(np.int32)
        extra = (
            load_text_files(
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
            if files.valid is not None or files.test is not None
            else None
        )
        if files.valid is None:
            n_valid = valid_count(len(order), data.valid_fraction)
            valid_rows, train_rows = np.sort(order[:n_valid]), order[n_valid:]
        else:
            valid_rows, train_rows = np.zeros(0, np.int64), order
        del order
        batches = cache_batches(
            cache,
            train_rows,
            batch_size=data.batch_size,
            seed=training.seed,
            epochs=training.epochs,
        )
        steps = int(batches.cardinality()) // training.epochs
        if extra is not None and extra.valid is not None:
            validation = trainer._eval_batches(extra.valid, "sorted")[0]
        else:
            validation = _sorted_batches(cache, valid_rows, data.eval_batch_size)[0]
        trainer.build(steps)
        assert trainer.classifier is not None
        stopper = (
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=training.early_stopping_patience,
                restore_best_weights=True,
            )
            if training.early_stopping_patience
            else None
        )
        loop = EpochLoop(
            trainer.classifier,
            config=config,
            steps_per_epoch=steps,
            train_size=len(train_rows),
            callbacks=callbacks,
            early_stopping=stopper,
            class_weights=trainer.class_weights_from_counts([counts[n] for n in label_names]),
        )
        stage("Training (streamed from the token cache)")
        start = time.perf_counter()
        history = loop.run(batches, validation=validation)
        train_seconds = time.perf_counter() - start
        trainer.history = history
        stage("Evaluating")
        if extra is not None and extra.valid is not None:
            valid = trainer.evaluate(extra.valid, pipeline="sorted")
        else:
            valid_batches, valid_labels = _sorted_batches(cache, valid_rows, data.eval_batch_size)
            started = time.perf_counter()
            logits = trainer._logits(valid_batches.map(lambda ids, labels: ids))
            valid = EvaluationResult.from_logits(
                logits, valid_labels, time.perf_counter() - started, label_names=label_names
            )
        test = (
            trainer.evaluate(extra.test, pipeline="sorted")
            if extra is not None and extra.test is not None
            else None
        )
        epochs_run = len(trainer.history.get("loss", []))
        best = (
            int(np.argmin(trainer.history["val_loss"])) + 1
            if stopper is not None and trainer.history.get("val_loss")
            else epochs_run
        )
        batch_seconds = sum(loop.epoch_train_seconds)
        sizes = {"train": len(train_rows), "valid": len(valid_rows)}
        if extra is not None:
            sizes.update(extra.sizes)
        result = TrainResult(
            output=os.fspath(output) if output is not None else None,
            epochs=epochs_run,
            best_epoch=best,
            train_seconds=train_seconds,
            train_examples_per_second=len(train_rows) * epochs_run / batch_seconds
            if batch_seconds
            else 0.0,
            epoch_train_seconds=loop.epoch_train_seconds,
            history=trainer.history,
            valid=valid,
            test=test,
            sizes=sizes,
            strategy="default",
            replicas=1,
            global_batch_size=data.batch_size,
            rnn_kernel=rnn_kernel_name(config.model.cell),
            label_names=list(label_names),
            source=files.describe() + " (streamed from a token cache on disk)",
            bad_rows=dict(bad.counts),
            word_vectors=trainer.word_vectors_record(),
            bytes_read=size,
            versions=versions(),
        )
    finally:
        if cache is not None:
            cache.close()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    if output is not None:
        from imdb_rnn.deploy.card import CARD_FILE, model_card
        from imdb_rnn.files import write_text

        stage("Saving")
        trainer.save(output, metrics=result.to_dict())
        write_text(
            Path(output) / CARD_FILE, model_card(result.to_dict(), config, name=Path(output).name)
        )
        shutil.rmtree(Path(output) / CACHE_DIR, ignore_errors=True)
        from imdb_rnn.deploy.plots import CURVES_FILE, save_training_curves

        save_training_curves(
            trainer.history,
            Path(output) / CURVES_FILE,
            best_epoch=best,
            title=f"{Path(output).name}: loss and accuracy per epoch",
            classes=len(trainer.label_names),
        )
    elif cache_dir is not None and temporary is None:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return result
