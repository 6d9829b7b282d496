"""The data API under its first name: IMDB reviews -> splits -> `tf.data` pipelines.

Kept so that `imdb_rnn.datasets` (the README, docs/api.md) stays importable: the code lives in
`imdb_rnn.data` (`splits`, `imdb`, `batching`; your own files in `sources`, TFDS sets in `tfds`).

Example:

>>> from imdb_rnn import datasets
>>> datasets.LABEL_NAMES
('neg', 'pos')
"""

from imdb_rnn.data.batching import (
    EVAL_BATCH_TOKENS,
    TokenizedSplit,
    bucketed_batches,
    length_sorted_batches,
    plain_batches,
    random_crops,
    sorted_window_batches,
    tokenize,
)
from imdb_rnn.data.imdb import TFDS_NAME, load_imdb, resolve_source
from imdb_rnn.data.splits import (
    DATA_ENV_VAR,
    LABEL_NAMES,
    SPLIT_SEED,
    SPLITS,
    UNLABELLED,
    ImdbSplits,
    check_split_request,
    valid_count,
)
from imdb_rnn.errors import DataError

__all__ = [
    "DATA_ENV_VAR",
    "EVAL_BATCH_TOKENS",
    "LABEL_NAMES",
    "SPLITS",
    "SPLIT_SEED",
    "TFDS_NAME",
    "UNLABELLED",
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
