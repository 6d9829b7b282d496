"""Any TensorFlow Datasets text classification set, by name -> splits.

`TfdsText("ag_news_subset")` names a TFDS data set; `load_tfds_text` reads it into the same
`ImdbSplits` that `load_imdb` and `load_text_files` return, so `train`, `evaluate` and the
`Trainer` work on it unchanged (`imdb-rnn train --data tfds:ag_news_subset`). The text and
label features default to the builder's supervised keys (else its only `Text` and only
`ClassLabel` feature), and the label names come from the `ClassLabel`.

Splits: `train` is the builder's `train` split; `valid` its `validation` split where it has one,
else the first `valid_fraction` of `train` (TFDS reads in a fixed order, so the same texts each
time); `test` its `test` split; `unsupervised` its `unsupervised` split, where it has one.

TFDS downloads and prepares a data set once, into its data directory (`data_dir`, else
`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`). Offline, TFDS would retry a download for
minutes; here a data set that is not prepared fails at once with one line saying so when the
network cannot be reached.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from imdb_rnn.data.splits import SPLITS, UNLABELLED, ImdbSplits, check_split_request, valid_count
from imdb_rnn.errors import DataError

__all__ = ["TFDS_PREFIX", "TfdsText", "load_tfds_text", "parse_tfds_source"]

#: `--data tfds:NAME` names a TFDS data set.
TFDS_PREFIX = "tfds:"

#: Probed before a download: TFDS fetches most data sets, or their prepared copies, from here.
_PROBE_HOST = ("storage.googleapis.com", 443)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@dataclass(frozen=True)
class TfdsText:
    """A text classification data set of TensorFlow Datasets.

    Args:
        name: the TFDS name, with a config or version if wanted (`"ag_news_subset"`,
            `"glue/sst2"`, `"yelp_polarity_reviews:0.2.0"`).
        text_key: the feature that holds the text. Default None: the builder's first
            supervised key, else its only `Text` feature.
        label_key: the `ClassLabel` feature that holds the label. Default None: the builder's
            second supervised key, else its only `ClassLabel` feature.
        data_dir: TFDS data directory. Default None: TFDS' own (`$TFDS_DATA_DIR`, else
            `~/tensorflow_datasets`).
        download: download and prepare the data set when it is not prepared. Default True.
    """

    name: str
    text_key: str | None = None
    label_key: str | None = None
    data_dir: str | os.PathLike[str] | None = None
    download: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"Expected name to be a TFDS data set name. Received: {self.name!r}")
        for key in ("text_key", "label_key"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"Expected {key} to be a non-empty string. Received: {value!r}")

    def describe(self) -> str:
        """The data set, in words: `"tfds:ag_news_subset"`."""
        return f"{TFDS_PREFIX}{self.name}"


def parse_tfds_source(
    source: str | None, *, text_key: str | None = None, label_key: str | None = None
) -> TfdsText | None:
    """A `TfdsText` for `"tfds:NAME"`, or None for any other source (`"tfds"` alone is IMDB).

    Example:

    >>> parse_tfds_source("tfds:ag_news_subset").name
    'ag_news_subset'
    >>> parse_tfds_source("aclImdb_v1.tar.gz") is None
    True
    """
    if source is None or not source.startswith(TFDS_PREFIX):
        return None
    return TfdsText(source[len(TFDS_PREFIX) :].strip(), text_key=text_key, label_key=label_key)


def _features(builder: Any, spec: TfdsText) -> tuple[str, str, tuple[str, ...]]:
    """The text key, the label key and the label names of a builder."""
    import tensorflow_datasets as tfds

    features = dict(builder.info.features.items())
    supervised = tuple(builder.info.supervised_keys or ())
    texts = [key for key, value in features.items() if isinstance(value, tfds.features.Text)]
    labels = [key for key, value in features.items() if isinstance(value, tfds.features.ClassLabel)]
    listing = ", ".join(f"{key} ({type(value).__name__})" for key, value in features.items())

    def choose(given: str | None, position: int, candidates: list[str], kind: str) -> str:
        if given is not None:
            chosen = given
        elif len(supervised) == 2 and isinstance(supervised[position], str):
            chosen = supervised[position]
        elif len(candidates) == 1:
            chosen = candidates[0]
        else:
            option = "--text-column" if kind == "Text" else "--label-column"
            raise DataError(
                f"TFDS '{spec.name}' has {len(candidates)} {kind} features: name one with "
                f"{option}. Its features: {listing}."
            )
        if chosen not in features:
            raise DataError(
                f"TFDS '{spec.name}' has no feature {chosen!r}. Its features: {listing}."
            )
        return chosen

    text_key = choose(spec.text_key, 0, texts, "Text")
    label_key = choose(spec.label_key, 1, labels, "ClassLabel")
    label_feature = features[label_key]
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise DataError(
            f"The label feature {label_key!r} of TFDS '{spec.name}' is a "
            f"{type(label_feature).__name__}, not a ClassLabel: imdb-rnn classifies into "
            "named classes."
        )
    return text_key, label_key, tuple(label_feature.names)


def _network_problem(timeout: float = 10.0) -> str | None:
    """Why a download cannot work (no network), or None when it might. Skipped behind a proxy,
    which a direct connection does not use."""
    import socket

    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    host, port = _PROBE_HOST
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host}: {error.strerror or type(error).__name__}"
    return None


def _prepared_builder(spec: TfdsText) -> Any:
    import tensorflow_datasets as tfds

    data_dir = os.fspath(spec.data_dir) if spec.data_dir is not None else None
    try:
        builder = tfds.builder(spec.name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(
            f"TFDS has no data set named '{spec.name}' (the catalogue: "
            "https://www.tensorflow.org/datasets/catalog/overview)."
        ) from None
    if builder.is_prepared():
        return builder
    where = data_dir or "the TFDS data directory"
    if not spec.download:
        raise DataError(f"TFDS '{spec.name}' is not prepared in {where} (downloads are off).")
    problem = _network_problem()
    if problem is not None:
        raise DataError(
            f"TFDS '{spec.name}' is not prepared in {where} and cannot be downloaded (no "
            f"network: {problem}): prepare it where there is a network (tfds build "
            f"{spec.name}) and copy the data directory here, or use your own files "
            "(TextFiles(train=PATH))."
        )
    try:
        builder.download_and_prepare()
    except Exception as error:  # network errors come in many types from requests/urllib/tfds
        raise DataError(
            f"TFDS could not download '{spec.name}' ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no message'})."
        ) from None
    return builder


def _size(builder: Any, dataset: tf.data.Dataset, split: str) -> int:
    """The number of examples of a split: from TFDS' metadata, else by counting."""
    try:
        return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError):  # metadata without split sizes (as under tfds.testing)
        return int(dataset.reduce(0, lambda count, _: count + 1).numpy())


def load_tfds_text(
    spec: TfdsText,
    *,
    splits: Iterable[str] = SPLITS,
    valid_fraction: float = 0.1,
    limit: int | None = None,
    label_names: Sequence[str] | None = None,
) -> ImdbSplits:
    """Loads the splits of a TFDS text classification data set.

    Args:
        spec: the data set.
        splits: which of `SPLITS` to load; `unsupervised` only where the builder has such a
            split. Default all four.
        valid_fraction: share of `train` held out as validation when the builder has no
            `validation` split. Default 0.1.
        limit: keep at most this many texts of each split (train before validation is
            carved). Default None (all).
        label_names: the classes a model was trained on, to check against the data set's.
            Default None.

    Returns:
        An `ImdbSplits` whose labels index the `ClassLabel`'s names.

    Raises:
        DataError: if the name is unknown, the data set is not prepared and cannot be
            downloaded, its text or label feature cannot be chosen, or `label_names` differ
            from its classes.
    """
    wanted = check_split_request(splits, valid_fraction=valid_fraction, limit=limit)
    builder = _prepared_builder(spec)
    text_key, label_key, names = _features(builder, spec)
    if label_names is not None and tuple(label_names) != names:
        raise DataError(
            f"The model's classes ({', '.join(label_names)}) are not those of TFDS "
            f"'{spec.name}' ({', '.join(names)})."
        )
    available = set(builder.info.splits.keys()) if builder.info.splits else set()
    cap = f"[:{limit}]" if limit is not None else ""
    has_validation = "validation" in available
    specs: dict[str, str] = {"train": f"train{cap}"}
    if "test" in available or not available:  # no metadata (tfds.testing): try "test"
        specs["test"] = f"test{cap}"
    if has_validation:
        specs["valid"] = f"validation{cap}"
    if "unsupervised" in available:
        specs["unsupervised"] = f"unsupervised{cap}"
    if "valid" in wanted and not has_validation:
        pool = _size(builder, _read(builder, f"train{cap}", text_key, label_key), f"train{cap}")
        held_out = valid_count(pool, valid_fraction)
        specs["valid"] = f"train[:{held_out}]"
        specs["train"] = f"train[{held_out}:{pool}]"
    datasets: dict[str, tf.data.Dataset | None] = dict.fromkeys(SPLITS)
    sizes: dict[str, int] = {}
    for name in wanted:
        if name not in specs:
            continue  # no such split (such as unlabelled text): left out, as for own files
        dataset = _read(builder, specs[name], text_key, label_key, labelled=name != "unsupervised")
        size = _size(builder, dataset, specs[name])
        if size == 0:
            raise DataError(f"The {name} split of TFDS '{spec.name}' ({specs[name]}) is empty.")
        datasets[name] = dataset
        sizes[name] = size
    return ImdbSplits.from_named(datasets, sizes=sizes, source=spec.describe(), label_names=names)


def _read(
    builder: Any, split: str, text_key: str, label_key: str, *, labelled: bool = True
) -> tf.data.Dataset:
    """`(text, int32 label)` pairs of a TFDS split, in TFDS' fixed order."""
    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except (KeyError, ValueError) as error:
        raise DataError(f"TFDS '{builder.name}' has no split {split!r} ({error}).") from None

    def pair(example: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        label = (
            tf.cast(example[label_key], tf.int32) if labelled else tf.constant(UNLABELLED, tf.int32)
        )
        return example[text_key], label

    return dataset.map(pair)
