"""IMDB reviews: the Large Movie Review Dataset from TFDS or the official archive -> splits.

Sources, with the same semantics for each:

1. TensorFlow Datasets' `imdb_reviews` (`tfds.load(..., as_supervised=True)`), the default;
2. the official `aclImdb_v1.tar.gz`, read straight from the archive, or its extracted `aclImdb/`
   folder.

`load_imdb` picks the source from its argument, else the `IMDB_RNN_DATA` environment variable,
else TFDS, and returns four splits of `(text, label)` pairs (0 = neg, 1 = pos, -1 = unlabelled):
train, valid (the first `valid_fraction` of train), test and unsupervised.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import tensorflow as tf

from imdb_rnn.config import VALID_SPLITS
from imdb_rnn.data.splits import (
    DATA_ENV_VAR,
    SPLIT_SEED,
    SPLITS,
    UNLABELLED,
    ImdbSplits,
    check_split_request,
    valid_count,
)
from imdb_rnn.errors import DataError, InputError
from imdb_rnn.files import ENV_MAX_FILE_BYTES, ENV_MAX_REVIEW_BYTES, byte_limit, open_regular

__all__ = [
    "TFDS_NAME",
    "film_holdout",
    "load_imdb",
    "resolve_source",
]

TFDS_NAME = "imdb_reviews"
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(neg|pos|unsup)/(\d+)_(\d+)\.txt$")
# Line i of urls_<folder>.txt is the IMDB page of the film that review i_*.txt is about.
_URLS = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(neg|pos|unsup)\.txt$")
# Films are drawn for a by-film validation split in an order shuffled with this seed.
_FILM_SEED = 20110620
_LABELS = {"neg": 0, "pos": 1, "unsup": UNLABELLED}


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
