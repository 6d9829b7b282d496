"""The splits a training run reads (`data.reading.read_splits` reads any source), and what was
read and skipped, said in stages: every training plan (`workflows.train`,
`ensemble.train_ensemble`) reads its data here.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from imdb_rnn.config import RunConfig
from imdb_rnn.data.reading import read_splits
from imdb_rnn.data.sources import BadRows, TextFiles
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.data.tfds import TfdsText

__all__ = ["read_training_splits", "training_splits"]


def training_splits(config: RunConfig, source: object, *, evaluate_test: bool = True) -> list[str]:
    """The splits a training run reads: train, valid, the unlabelled reviews where the
    vocabulary uses them, and test; of your own files, those you gave (validation is carved
    from train without one)."""
    wanted = ["train", "valid", "unsupervised"] + (["test"] if evaluate_test else [])
    unlabelled_needed = config.training.pseudo_label_threshold or (
        config.model.ngram_buckets and config.training.ngram_pseudo_label_threshold
    )
    if config.data.vocabulary_source == "train" and not unlabelled_needed:
        wanted.remove("unsupervised")
    if isinstance(source, TextFiles):
        given = {"test": source.test, "unsupervised": source.unlabelled}
        wanted = [name for name in wanted if given.get(name, True) is not None]
    return wanted


def read_training_splits(
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    config: RunConfig,
    *,
    evaluate_test: bool,
    data_dir: str | os.PathLike[str] | None,
    on_stage: Callable[[str], None],
) -> ImdbSplits:
    """The splits a training run reads, with what was read and skipped said in stages."""
    on_stage("Reading data")
    splits = read_splits(
        source,
        config,
        splits=training_splits(config, source, evaluate_test=evaluate_test),
        limit=config.data.limit,
        data_dir=data_dir,
    )
    if isinstance(source, TextFiles):
        on_stage(_read_summary(splits))
    if splits.bad_rows:
        on_stage(BadRows(Counter(splits.bad_rows), list(splits.bad_row_examples)).describe())
    if splits.decode_errors:
        on_stage(
            f"{splits.decode_errors} review files were not valid UTF-8: read with "
            "replacement characters"
        )
    return splits


def _read_summary(splits: ImdbSplits) -> str:
    """What was read, in words: sizes, classes and bytes."""
    sizes = ", ".join(f"{name} {count:,}" for name, count in splits.sizes.items())
    size = splits.bytes_read
    read = f"{size / 1e6:,.1f} MB" if size >= 1e5 else f"{size / 1e3:,.1f} kB"
    return (
        f"Read {read}: {sizes}; {len(splits.label_names)} classes ({', '.join(splits.label_names)})"
    )
