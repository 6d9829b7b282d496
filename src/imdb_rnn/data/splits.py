"""Splits: the labelled and unlabelled `tf.data` datasets every data source returns.

Every source (the IMDB archive or TFDS in `imdb_rnn.data.imdb`, your own files in
`imdb_rnn.data.sources`, any TFDS text set in `imdb_rnn.data.tfds`) returns an `ImdbSplits`:
train, valid, test and unsupervised, each of `(text, label)` pairs (label -1 = unlabelled).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from imdb_rnn.errors import DataError

__all__ = [
    "DATA_ENV_VAR",
    "LABEL_NAMES",
    "SPLITS",
    "SPLIT_SEED",
    "UNLABELLED",
    "DataError",
    "ImdbSplits",
    "check_split_request",
    "valid_count",
]

LABEL_NAMES = ("neg", "pos")
UNLABELLED = -1
SPLITS = ("train", "valid", "test", "unsupervised")
DATA_ENV_VAR = "IMDB_RNN_DATA"

#: The local archive is sorted by class: it is shuffled with this fixed seed before the
#: validation split (and any `limit`) is taken, so every run sees the same mixed-class splits.
#: Own data (`imdb_rnn.data.sources`) carves its validation split with it too.
SPLIT_SEED = 20110619


@dataclass
class ImdbSplits:
    """The four IMDB splits as unbatched `tf.data.Dataset`s of `(text: tf.string, label: int32)`.

    Attributes:
        train, valid, test, unsupervised: the splits (None where not requested).
        sizes: number of reviews in each split.
        source: where the reviews came from, in words.
        decode_errors: review files that were not valid UTF-8 (decoded with replacement).
        label_names: the class of each label index. Default `LABEL_NAMES` (IMDB's).
        bad_rows: rows skipped, by reason (own data sets; see `imdb_rnn.data.sources`).
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
