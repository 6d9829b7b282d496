"""IMDB reviews: sources -> splits -> `tf.data` pipelines.

Sources, with the same semantics for each:

1. TensorFlow Datasets' `imdb_reviews` (`tfds.load(..., as_supervised=True)`), the default;
2. the official `aclImdb_v1.tar.gz`, read straight from the archive, or its extracted `aclImdb/`
   folder.

`load_imdb` picks the source from its argument, else the `IMDB_RNN_DATA` environment variable,
else TFDS, and returns four splits of `(text, label)` pairs (0 = neg, 1 = pos, -1 = unlabelled):
train, valid (the first `valid_fraction` of train), test and unsupervised.

Pipelines turn a split into batches for Keras:

- `plain_batches`: the reference pipeline (shuffle raw text, batch, tokenise every epoch);
- `tokenize` + `bucketed_batches`: tokenise once, keep the ids in memory, batch reviews of
  similar length together (training);
- `tokenize` + `length_sorted_batches`: batches in length order with the permutation to put
  results back in the caller's order (evaluation and prediction).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import tensorflow as tf

from imdb_rnn.config import VALID_SPLITS
from imdb_rnn.files import (
    ENV_MAX_FILE_BYTES,
    ENV_MAX_REVIEW_BYTES,
    InputError,
    byte_limit,
    open_regular,
)
from imdb_rnn.layers import TextEncoder

__all__ = [
    "DATA_ENV_VAR",
    "LABEL_NAMES",
    "SPLITS",
    "SPLIT_SEED",
    "UNLABELLED",
    "VALID_SPLITS",
    "DataError",
    "ImdbSplits",
    "TokenizedSplit",
    "bucketed_batches",
    "check_split_request",
    "length_sorted_batches",
    "load_imdb",
    "plain_batches",
    "random_crops",
    "resolve_source",
    "sorted_window_batches",
    "tokenize",
    "valid_count",
]

LABEL_NAMES = ("neg", "pos")
UNLABELLED = -1
SPLITS = ("train", "valid", "test", "unsupervised")
DATA_ENV_VAR = "IMDB_RNN_DATA"
TFDS_NAME = "imdb_reviews"

#: The local archive is sorted by class: it is shuffled with this fixed seed before the
#: validation split (and any `limit`) is taken, so every run sees the same mixed-class splits.
#: Own data (`imdb_rnn.sources`) carves its validation split with it too.
SPLIT_SEED = 20110619
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(neg|pos|unsup)/(\d+)_(\d+)\.txt$")
# Line i of urls_<folder>.txt is the IMDB page of the film that review i_*.txt is about.
_URLS = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(neg|pos|unsup)\.txt$")
# Films are drawn for a by-film validation split in an order shuffled with this seed.
_FILM_SEED = 20110620
_LABELS = {"neg": 0, "pos": 1, "unsup": UNLABELLED}


class DataError(ValueError):
    """The data source is missing, unreadable or not the IMDB data set."""


@dataclass
class ImdbSplits:
    """The four IMDB splits as unbatched `tf.data.Dataset`s of `(text: tf.string, label: int32)`.

    Attributes:
        train, valid, test, unsupervised: the splits (None where not requested).
        sizes: number of reviews in each split.
        source: where the reviews came from, in words.
        decode_errors: review files that were not valid UTF-8 (decoded with replacement).
        label_names: the class of each label index. Default `LABEL_NAMES` (IMDB's).
        bad_rows: rows skipped, by reason (own data sets; see `imdb_rnn.sources`).
        bad_row_examples: the first few bad rows, as `"file:line: reason"`.
        bytes_read: size of the files read, in bytes (0 where unknown).
    """

    train: tf.data.Dataset | None
    valid: tf.data.Dataset | None
    test: tf.data.Dataset | None
    unsupervised: tf.data.Dataset | None
    sizes: dict[str, int]
    source: str
    decode_errors: int = 0
    label_names: tuple[str, ...] = LABEL_NAMES
    bad_rows: dict[str, int] = field(default_factory=dict)
    bad_row_examples: list[str] = field(default_factory=list)
    bytes_read: int = 0

    def __getitem__(self, name: str) -> tf.data.Dataset:
        if name not in SPLITS:
            raise KeyError(f"Expected a split in {SPLITS}. Received: {name!r}")
        dataset = getattr(self, name)
        if dataset is None:
            raise KeyError(f"The {name!r} split was not loaded.")
        return dataset

    @classmethod
    def from_named(cls, datasets: dict[str, tf.data.Dataset | None], **fields: Any) -> ImdbSplits:
        """Builds the splits from `{name: dataset}` (a split not named is None); `fields` are
        the other attributes (`sizes`, `source`, ...)."""
        return cls(
            datasets.get("train"),
            datasets.get("valid"),
            datasets.get("test"),
            datasets.get("unsupervised"),
            **fields,
        )

    def texts(self, *names: str) -> tf.data.Dataset:
        """The review strings of the named splits, one split after the other."""
        if not names:
            raise ValueError("Expected at least one split name. Received: none")
        parts = [self[name].map(lambda text, label: text) for name in names]
        texts = parts[0]
        for part in parts[1:]:
            texts = texts.concatenate(part)
        return texts


def resolve_source(source: str | os.PathLike[str] | None = None) -> str | None:
    """Returns the local path to read, or None for TFDS.

    The explicit `source` wins, then the `IMDB_RNN_DATA` environment variable; `"tfds"` in
    either selects TFDS explicitly.
    """
    chosen = os.fspath(source) if source is not None else os.environ.get(DATA_ENV_VAR) or None
    if chosen is None or chosen == "tfds":
        return None
    return chosen


def load_imdb(
    source: str | os.PathLike[str] | None = None,
    *,
    splits: Iterable[str] = SPLITS,
    valid_fraction: float = 0.1,
    limit: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    valid_split: str = "random",
) -> ImdbSplits:
    """Loads the IMDB splits from TFDS or a local archive or folder.

    Args:
        source: path to `aclImdb_v1.tar.gz` or an extracted `aclImdb/` folder (or its parent),
            or `"tfds"`. Default None: `IMDB_RNN_DATA` if set, else TFDS.
        splits: which of `SPLITS` to load. Default all four.
        valid_fraction: share of train held out as validation. Default 0.1.
        limit: if set, the training pool is the first `limit` training reviews (then split into
            train and valid), and test and unsupervised keep `limit` reviews each. Local splits
            are shuffled with a fixed seed first, so every subset holds both classes.
        data_dir: TFDS data directory. Default None (TFDS' own default).
        download: let TFDS download and prepare the data if it is not there. Default True.
        valid_split: `"random"` holds out the first `valid_fraction` of the (shuffled) training
            reviews; `"film"` holds out whole films, drawn in a fixed-seed random order until
            `valid_fraction` of the reviews are held out, so that no film of the validation
            split is in the training split (IMDB's train and test splits are disjoint in the
            same way). `"film"` needs the local archive or folder with its `urls_*.txt` files,
            which name each review's film. Default "random".

    Returns:
        An `ImdbSplits`.

    Raises:
        DataError: if the source is missing, unreadable, not IMDB, or a requested split is empty;
            or if `valid_split` is `"film"` and the source does not say which film each
            review is about.
    """
    wanted = check_split_request(splits, valid_fraction=valid_fraction, limit=limit)
    if valid_split not in VALID_SPLITS:
        raise DataError(
            f"Expected valid_split to be one of {list(VALID_SPLITS)}. "
            f"Received: valid_split={valid_split!r}"
        )
    path = resolve_source(source)
    if path is None:
        if valid_split == "film":
            raise DataError(
                "valid_split='film' needs to know each review's film, which TFDS does not keep: "
                "pass the aclImdb_v1.tar.gz archive or its aclImdb/ folder as source=."
            )
        return _load_tfds(wanted, valid_fraction, limit, data_dir, download)
    return _load_local(Path(path), wanted, valid_fraction, limit, valid_split)


def check_split_request(
    splits: Iterable[str], *, valid_fraction: float, limit: int | None
) -> tuple[str, ...]:
    """Checks the splits asked of a data source and returns them as a tuple.

    Raises:
        DataError: on a split not in `SPLITS`, `valid_fraction` outside (0, 1) or `limit` < 1.
    """
    wanted = tuple(splits)
    for name in wanted:
        if name not in SPLITS:
            raise DataError(f"Expected splits among {list(SPLITS)}. Received: {name!r}")
    if not 0 < valid_fraction < 1:
        raise DataError(
            f"Expected valid_fraction in (0, 1). Received: valid_fraction={valid_fraction}"
        )
    if limit is not None and limit < 1:
        raise DataError(f"Expected limit >= 1. Received: limit={limit}")
    return wanted


def valid_count(pool: int, valid_fraction: float) -> int:
    """Reviews held out for validation from `pool` training reviews: at least one, none of one."""
    return max(1, round(pool * valid_fraction)) if pool > 1 else 0


# ---------------------------------------------------------------------------------------------
# Local archive or folder


@dataclass
class _Collected:
    texts: dict[str, list[str]] = field(
        default_factory=lambda: {"train": [], "test": [], "unsup": []}
    )
    labels: dict[str, list[int]] = field(
        default_factory=lambda: {"train": [], "test": [], "unsup": []}
    )
    ids: dict[str, list[int]] = field(
        default_factory=lambda: {"train": [], "test": [], "unsup": []}
    )
    folders: dict[str, list[str]] = field(
        default_factory=lambda: {"train": [], "test": [], "unsup": []}
    )
    urls: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    decode_errors: int = 0
    reviews_seen: int = 0  # review files of any split, kept or not

    def films(self, key: str) -> list[str] | None:
        """The film (its IMDB page) of each kept review of a split, or None where the
        `urls_*.txt` files are missing or do not cover every review."""
        films = []
        for folder, index in zip(self.folders[key], self.ids[key], strict=True):
            urls = self.urls.get((key, folder))
            if urls is None or index >= len(urls):
                return None
            films.append(urls[index])
        return films


def _decode(raw: bytes, collected: _Collected) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        collected.decode_errors += 1
        return raw.decode("utf-8", errors="replace")


#: A member is `(name in the archive, its size in bytes, a stream of its bytes)`.
_Member = tuple[str, int, "IO[bytes] | None"]


def _collect(members: Iterator[_Member], keep: set[str], source: Path) -> _Collected:
    collected = _Collected()
    limit = byte_limit(ENV_MAX_REVIEW_BYTES)
    for name, size, stream in members:
        if stream is None:
            continue
        urls = _URLS.search(name)
        if urls is not None:
            # The film of each review (50,000 lines for unsup: over a review's size limit).
            url_limit = byte_limit(ENV_MAX_FILE_BYTES)
            raw = stream.read(url_limit + 1)
            if len(raw) > url_limit:
                raise DataError(
                    f"{source}: {name} is over {url_limit:,} bytes. Set {ENV_MAX_FILE_BYTES} "
                    "to a larger number of bytes to read it."
                )
            lines = raw.decode("utf-8", errors="replace").splitlines()
            collected.urls[(urls.group(1), urls.group(2))] = [line.strip() for line in lines]
            continue
        match = _MEMBER.search(name)
        if match is None:
            continue
        part, folder = match.group(1), match.group(2)
        key = "unsup" if folder == "unsup" else part
        collected.reviews_seen += 1
        if key not in keep:
            continue
        # Sizes are checked before reading: a 3 GB "review" would otherwise fill the memory.
        raw = stream.read(limit + 1)
        if size > limit or len(raw) > limit:
            raise DataError(
                f"{source}: the review {name} has {max(size, len(raw)):,} bytes, over the limit "
                f"of {limit:,} (the longest IMDB review has about 14,000). Set "
                f"{ENV_MAX_REVIEW_BYTES} to a larger number of bytes to read it."
            )
        collected.texts[key].append(_decode(raw, collected))
        collected.labels[key].append(_LABELS[folder])
        collected.ids[key].append(int(match.group(3)))
        collected.folders[key].append(folder)
    return collected


class _TailKeeper(io.RawIOBase):
    """A read-only stream over `inner` that counts the bytes read and keeps the last ones, so
    that the end of a tar archive can be checked after `tarfile` has read it as a stream."""

    def __init__(self, inner: IO[bytes], keep: int = 1 << 16) -> None:
        self.inner, self.keep = inner, keep
        self.position = 0
        self.tail = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.inner.read(-1 if size is None else size)
        self.position += len(data)
        self.tail += data
        del self.tail[: max(0, len(self.tail) - self.keep)]
        return data


def _decompressed(raw: IO[bytes]) -> IO[bytes]:
    """The archive's decompressed stream; each of these checks its trailer (gzip: CRC and
    length) when read to the end, and raises `EOFError` on a truncated file."""
    magic = raw.peek(6)[:6] if isinstance(raw, io.BufferedReader) else b""
    if magic.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")
    return raw


def _archive_members(path: Path) -> Iterator[_Member]:
    """The members of a tar archive (gzip, bzip2, xz or plain), read once front to back without
    extracting anything. The archive must end as tar and its compression say it should:
    `tarfile` alone takes a stream cut inside a header for the end of the archive.

    Raises:
        DataError: if the archive ends early (no end-of-archive marker, or a truncated
            compressed stream).
        InputError: if it is not a regular file.
    """
    with open_regular(path, what=f"{path} (the data)") as raw:
        stream = _TailKeeper(_decompressed(raw))
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                yield (
                    member.name,
                    member.size,
                    archive.extractfile(member) if member.isfile() else None,
                )
            end = archive.offset  # where the end-of-archive marker should start
        while stream.read(1 << 20):  # the rest, so the decompressor checks its trailer
            pass
        # Two zero blocks, then zeros up to the end of the last record.
        after_last_member = stream.position - end
        marker = bytes(stream.tail[-min(after_last_member, len(stream.tail)) :])
        if after_last_member < 1024 or any(marker):
            raise DataError(
                f"{path} is truncated: its tar data ends without the end-of-archive marker. "
                "Download aclImdb_v1.tar.gz again."
            )


def _folder_members(root: Path) -> Iterator[_Member]:
    """The review files of an extracted aclImdb folder. Symbolic links are skipped, as the
    archive reader skips them: a link could put any file of the system into the vocabulary."""
    for part in ("train", "test"):
        for folder in ("neg", "pos", "unsup"):
            urls = root / part / f"urls_{folder}.txt"
            if urls.is_file() and not urls.is_symlink():
                with open(urls, "rb") as stream:
                    yield f"aclImdb/{part}/{urls.name}", urls.stat().st_size, stream
            directory = root / part / folder
            if directory.is_symlink() or not directory.is_dir():
                continue
            for file in sorted(directory.iterdir()):
                info = file.lstat()
                if stat.S_ISREG(info.st_mode):
                    with open(file, "rb") as stream:
                        yield f"aclImdb/{part}/{folder}/{file.name}", info.st_size, stream


def _load_local(
    path: Path,
    wanted: tuple[str, ...],
    valid_fraction: float,
    limit: int | None,
    valid_split: str = "random",
) -> ImdbSplits:
    if not path.exists():
        raise DataError(
            f"No IMDB data at {path}. Pass the path to aclImdb_v1.tar.gz or an extracted aclImdb/ "
            f"folder (source= or {DATA_ENV_VAR})."
        )
    keep = {
        "train" if n in ("train", "valid") else "unsup" if n == "unsupervised" else n
        for n in wanted
    }
    if path.is_dir():
        root = path if (path / "train").is_dir() or (path / "test").is_dir() else path / "aclImdb"
        if not ((root / "train").is_dir() or (root / "test").is_dir()):
            raise DataError(f"{path} is not an aclImdb folder (expected train/ and test/ inside).")
        try:
            collected = _collect(_folder_members(root), keep, path)
        except InputError as error:
            raise DataError(str(error)) from None
    else:
        try:
            collected = _collect(_archive_members(path), keep, path)
        except InputError as error:
            raise DataError(str(error)) from None
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as error:
            raise DataError(
                f"{path} is not a readable aclImdb archive ({type(error).__name__}: {error}). "
                "It may be truncated; download aclImdb_v1.tar.gz again."
            ) from None
    if collected.reviews_seen == 0:
        raise DataError(
            f"{path} holds no aclImdb reviews (expected aclImdb/{{train,test}}/{{neg,pos}}/*.txt)."
        )
    rng = np.random.default_rng(SPLIT_SEED)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    train_order = np.zeros(0, dtype=np.int64)
    for key in ("train", "test", "unsup"):
        texts = np.array(collected.texts[key], dtype=object)
        labels = np.array(collected.labels[key], dtype=np.int32)
        order = rng.permutation(len(texts))
        if limit is not None:
            order = order[:limit]
        texts, labels = texts[order], labels[order]
        arrays[key] = (texts, labels)
        if key == "train":
            train_order = order
    train_texts, train_labels = arrays["train"]
    n_valid = valid_count(len(train_texts), valid_fraction)
    if valid_split == "film" and ("valid" in wanted or "train" in wanted):
        all_films = collected.films("train")
        if all_films is None:
            raise DataError(
                f"{path} does not say which film each training review is about (expected "
                "aclImdb/train/urls_neg.txt and urls_pos.txt): use valid_split='random'."
            )
        in_valid = film_holdout(
            [all_films[index] for index in train_order], n_valid, seed=_FILM_SEED
        )
    else:
        in_valid = np.arange(len(train_texts)) < n_valid
    parts = {
        "train": (train_texts[~in_valid], train_labels[~in_valid]),
        "valid": (train_texts[in_valid], train_labels[in_valid]),
        "test": arrays["test"],
        "unsupervised": arrays["unsup"],
    }
    datasets: dict[str, tf.data.Dataset | None] = dict.fromkeys(SPLITS)
    sizes = {}
    for name in wanted:
        texts, labels = parts[name]
        if len(texts) == 0:
            raise DataError(f"The {name} split of {path} is empty.")
        datasets[name] = tf.data.Dataset.from_tensor_slices(
            (tf.constant(texts.tolist(), dtype=tf.string), tf.constant(labels, dtype=tf.int32))
        )
        sizes[name] = len(texts)
    return ImdbSplits.from_named(
        datasets, sizes=sizes, source=str(path), decode_errors=collected.decode_errors
    )


def film_holdout(films: list[str], count: int, *, seed: int) -> np.ndarray:
    """Chooses whole films for a held-out split of about `count` reviews.

    Films are taken in a random order (seeded) until the held-out reviews reach `count`; every
    review of a chosen film is held out. When there are two or more films, at least one film
    stays outside.

    Args:
        films: the film of each review.
        count: how many reviews to hold out, at least.
        seed: seed of the film order.

    Returns:
        A boolean mask over `films`: True for the held-out reviews.

    Example:

    >>> film_holdout(["a", "b", "a", "c"], 2, seed=0).tolist()
    [True, False, True, True]
    """
    names, index = np.unique(np.asarray(films, dtype=object), return_inverse=True)
    counts = np.bincount(index, minlength=len(names))
    chosen = np.zeros(len(names), dtype=bool)
    held = 0
    for film in np.random.default_rng(seed).permutation(len(names)):
        if held >= count or (len(names) > 1 and chosen.sum() == len(names) - 1):
            break
        chosen[film] = True
        held += int(counts[film])
    return np.asarray(chosen[index], dtype=bool)


# ---------------------------------------------------------------------------------------------
# TensorFlow Datasets


def _load_tfds(
    wanted: tuple[str, ...],
    valid_fraction: float,
    limit: int | None,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
) -> ImdbSplits:
    import tensorflow_datasets as tfds

    hint = (
        f"TFDS could not provide '{TFDS_NAME}'{{why}}. Download aclImdb_v1.tar.gz once and pass "
        f"it as source=PATH (or set {DATA_ENV_VAR}=PATH); no network is needed then."
    )
    builder = tfds.builder(
        TFDS_NAME, data_dir=os.fspath(data_dir) if data_dir is not None else None
    )
    if not _tfds_prepared(builder):
        if not download:
            raise DataError(hint.format(why=" (not prepared in the TFDS data directory)"))
        unreachable = _download_host_unreachable()
        if unreachable is not None:
            raise DataError(hint.format(why=f" (no network: {unreachable})"))
        try:
            builder.download_and_prepare()
        except Exception as error:  # network errors come in many types from requests/urllib/tfds
            raise DataError(
                hint.format(why=f" (download failed: {type(error).__name__})")
            ) from None
    n_train = builder.info.splits["train"].num_examples
    pool = min(n_train, limit) if limit is not None else n_train
    n_valid = valid_count(pool, valid_fraction)
    cap = f":{limit}" if limit is not None else ""
    spec = {
        "train": f"train[{n_valid}:{pool}]",
        "valid": f"train[:{n_valid}]",
        "test": f"test[{cap}]" if cap else "test",
        "unsupervised": f"unsupervised[{cap}]" if cap else "unsupervised",
    }
    datasets: dict[str, tf.data.Dataset | None] = dict.fromkeys(SPLITS)
    sizes = {}
    for name in wanted:
        dataset = builder.as_dataset(split=spec[name], as_supervised=True, shuffle_files=False)
        datasets[name] = dataset.map(lambda text, label: (text, tf.cast(label, tf.int32)))
        total = builder.info.splits[spec[name]].num_examples
        if total == 0:
            raise DataError(f"The {name} split of TFDS '{TFDS_NAME}' is empty.")
        sizes[name] = total
    return ImdbSplits.from_named(datasets, sizes=sizes, source=f"tfds:{TFDS_NAME}")


#: Where TFDS downloads `imdb_reviews` from (http://ai.stanford.edu/~amaas/data/sentiment/).
_DOWNLOAD_HOST = ("ai.stanford.edu", 80)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


def _download_host_unreachable(timeout: float = 10.0) -> str | None:
    """Why TFDS could not download the data, or None when the host answers: checked first,
    because offline TFDS retries for minutes before it fails. Skipped behind a proxy, which a
    direct connection does not use."""
    import socket

    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    host, port = _DOWNLOAD_HOST
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host} ({error.strerror or type(error).__name__})"
    return None


def _tfds_prepared(builder: Any) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:  # older TFDS
        return bool(tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json")))


# ---------------------------------------------------------------------------------------------
# Pipelines


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
