"""One reader for every source: IMDB, your own files (`TextFiles`) or a TFDS set (`TfdsText`).

Training, evaluation and tuning read their splits through `read_splits`, so each source is read
with the same validation settings everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from imdb_rnn.config import RunConfig
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.data.sources import TextFiles, load_text_files
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.data.tfds import TfdsText, load_tfds_text

__all__ = ["read_splits"]


def read_splits(
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    config: RunConfig,
    *,
    splits: Sequence[str],
    limit: int | None,
    data_dir: str | os.PathLike[str] | None = None,
    label_names: Sequence[str] | None = None,
) -> ImdbSplits:
    """Reads `splits` from any source (IMDB, your own files, a TFDS set) with the config's
    validation settings; `label_names`, for a trained model, maps labels to its classes."""
    fraction = config.data.valid_fraction
    if isinstance(source, TextFiles):
        return load_text_files(
            source, splits=splits, valid_fraction=fraction, limit=limit, label_names=label_names
        )
    if isinstance(source, TfdsText):
        return load_tfds_text(
            source, splits=splits, valid_fraction=fraction, limit=limit, label_names=label_names
        )
    return load_imdb(
        source,
        splits=splits,
        valid_fraction=fraction,
        limit=limit,
        data_dir=data_dir,
        valid_split=config.data.valid_split,
    )
