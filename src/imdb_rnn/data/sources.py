"""Your own labelled texts: CSV / TSV, JSON Lines and class-per-folder sources -> splits.

A `TextFiles` names the files a user has, one per split (`train`, and optionally `valid`,
`test`, `unlabelled`); `load_text_files` reads them into the same `ImdbSplits` that `load_imdb`
returns, with the label names taken from the data, so `train`, `evaluate` and the `Trainer`
work on them unchanged. Validation, when no `valid` file is given, is carved from train with a
fixed seed, as for IMDB.

Formats, chosen by the file's suffix (or a folder):

- CSV (`.csv`) and TSV (`.tsv`, `.tab`) with a header row; the text and label columns are
  named by `text_column` (default `"text"`) and `label_column` (default `"label"`);
- JSON Lines (`.jsonl`, `.ndjson`): one object per line with the same two keys;
- a folder with one sub-folder per class, each file one text (the layout Keras'
  `text_dataset_from_directory` and ktrain's `texts_from_folder` read); for unlabelled text, a
  folder of files.

A row that cannot be used (missing text, missing or unknown label, bytes that are not UTF-8,
a line that is not JSON) is skipped and counted by reason in `ImdbSplits.bad_rows`, or, with
`strict=True`, stops the load with a `DataError` that names its file and line.

Example:

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "train.csv").write_text(
...     "text,label\\n" + "Who wrote Hamlet ?,HUM\\nWhere is Rome ?,LOC\\n" * 5, encoding="utf-8")
>>> splits = load_text_files(TextFiles(train=folder / "train.csv"), splits=["train", "valid"])
>>> splits.label_names, splits.sizes
(('HUM', 'LOC'), {'train': 9, 'valid': 1})
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tensorflow as tf

from imdb_rnn.data.splits import (
    SPLIT_SEED,
    SPLITS,
    UNLABELLED,
    ImdbSplits,
    check_split_request,
    valid_count,
)
from imdb_rnn.errors import DataError, InputError
from imdb_rnn.files import (
    ENV_MAX_REVIEW_BYTES,
    MAX_LINE_BYTES,
    bounded_lines,
    byte_limit,
    csv_rows,
    decode_text,
    folder_files,
    open_regular,
    read_limited,
)

__all__ = [
    "FORMATS",
    "MAX_CLASSES",
    "BadRows",
    "TextFiles",
    "TextTable",
    "data_size",
    "detect_format",
    "iter_rows",
    "label_names_of",
    "load_text_files",
    "read_texts",
]

FORMATS = ("csv", "tsv", "jsonl", "folder")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: The most classes a data set may have: beyond it the metrics (an n x n confusion matrix in
#: `metrics.json`: 3,000 classes made 99.5 MB of it) outgrow any use.
MAX_CLASSES = 1000
#: Bad rows quoted by file and line in reports.
_EXAMPLES = 5


@dataclass(frozen=True)
class TextFiles:
    """The files of a labelled text data set, one per split.

    Args:
        train: labelled training texts (CSV, TSV, JSON Lines or a class-per-folder folder).
        valid: labelled validation texts. Default None: carved from `train` with a fixed seed
            (`DataConfig.valid_fraction`).
        test: labelled test texts. Default None: no test split.
        unlabelled: texts without labels, for the vocabulary. Default None.
        text_column: the column (CSV / TSV) or key (JSON Lines) holding the text.
            Default "text".
        label_column: the column or key holding the label. Default "label".
        strict: a bad row stops the load with a `DataError` instead of being skipped and
            counted. Default False.
    """

    train: str | os.PathLike[str] | None = None
    valid: str | os.PathLike[str] | None = None
    test: str | os.PathLike[str] | None = None
    unlabelled: str | os.PathLike[str] | None = None
    text_column: str = "text"
    label_column: str = "label"
    strict: bool = False

    def __post_init__(self) -> None:
        for name in ("text_column", "label_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"Expected {name} to be a non-empty string. Received: {value!r}")

    def describe(self) -> str:
        """The files, in words: `"train=a.csv, test=b.csv"`."""
        parts = [
            f"{name}={os.fspath(path)}"
            for name in ("train", "valid", "test", "unlabelled")
            if (path := getattr(self, name)) is not None
        ]
        return ", ".join(parts)


@dataclass
class BadRows:
    """Rows that were skipped, counted by reason, with the first few quoted by file and line.

    Attributes:
        counts: reason -> number of rows.
        examples: up to five `"file:line: reason"` strings.
    """

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, where: str, reason: str, *, strict: bool) -> None:
        if strict:
            raise DataError(f"{where}: {reason} (bad rows are fatal with strict on).")
        self.counts[reason] += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def describe(self) -> str:
        """One sentence: how many rows were skipped and why, with the first examples."""
        reasons = ", ".join(f"{count:,} {reason}" for reason, count in self.counts.most_common())
        first = "; ".join(self.examples)
        rows = "row" if self.total == 1 else "rows"
        return f"{self.total:,} bad {rows} skipped ({reasons}). First: {first}"


@dataclass
class TextTable:
    """The usable rows of one file.

    Attributes:
        texts: the texts, in file order.
        labels: their label names (None for unlabelled files).
        rows: rows read, bad ones included.
        bytes_read: size of what was read, in bytes.
        where: `"file:line"` (a folder's: the file) of each text, for reports.
    """

    texts: list[str]
    labels: list[str] | None
    rows: int = 0
    bytes_read: int = 0
    where: list[str] | None = None


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of `path` by its suffix (`"csv"`, `"tsv"`, `"jsonl"`), or `"folder"`.

    Raises:
        DataError: if the path does not exist or its suffix is not one of the known ones.
    """
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DataError(f"No data file at {path}.")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(
            f"Cannot tell the format of {path}: expected a file ending in "
            f"{', '.join(sorted(_SUFFIXES))} or a folder with one sub-folder per class."
        )
    return _SUFFIXES[suffix]


def _has_surrogates(text: str) -> bool:
    # Bytes that are not UTF-8 come through surrogateescape as lone surrogates.
    return any("\udc80" <= character <= "\udcff" for character in text)


def _text_rows(
    path: Path,
    kind: str,
    *,
    text_column: str,
    label_column: str | None,
    bad: BadRows,
    strict: bool,
) -> Iterator[tuple[str, str | None, str]]:
    """`(text, label, "file:line")` of each usable row of a CSV, TSV or JSON Lines file, read
    by the input rule (`imdb_rnn.files`): a regular file, a byte-order mark dropped, lines and
    fields bounded, NUL bytes refused."""
    try:
        stream = open_regular(path, what=str(path))
    except InputError as error:
        raise DataError(f"{error} Give a CSV, TSV or JSON Lines file.") from None
    with stream:
        try:
            yield from _rows_of_stream(
                stream,
                path,
                kind,
                text_column=text_column,
                label_column=label_column,
                bad=bad,
                strict=strict,
            )
        except InputError as error:
            raise DataError(str(error)) from None


def _rows_of_stream(
    stream: BinaryIO,
    path: Path,
    kind: str,
    *,
    text_column: str,
    label_column: str | None,
    bad: BadRows,
    strict: bool,
) -> Iterator[tuple[str, str | None, str]]:
    lines = bounded_lines(stream, what=str(path), limit=MAX_LINE_BYTES)
    if kind == "jsonl":
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad.add(where, "not UTF-8", strict=strict)
                continue
            except json.JSONDecodeError:
                bad.add(where, "not a JSON object", strict=strict)
                continue
            if not isinstance(record, dict):
                bad.add(where, "not a JSON object", strict=strict)
                continue
            row = _checked(record, where, text_column, label_column, bad, strict)
            if row is not None:
                yield (*row, where)
        return
    reader = csv_rows(
        (line.decode("utf-8", errors="surrogateescape") for line in lines),
        delimiter="\t" if kind == "tsv" else ",",
        field_limit=byte_limit(ENV_MAX_REVIEW_BYTES),
    )
    columns = reader.fieldnames or []
    needed = [text_column] + ([label_column] if label_column else [])
    missing = [name for name in needed if name not in columns]
    if missing:
        raise DataError(
            f"{path} has no column {missing[0]!r} (its header: "
            f"{', '.join(columns) or 'none'}). Name the columns with text_column= and "
            "label_column=."
        )
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "field limit" in str(error):  # the parser cannot find the next row after it
                raise DataError(
                    f"{path}:{reader.line_num}: a field of over "
                    f"{byte_limit(ENV_MAX_REVIEW_BYTES):,} characters (an unclosed quote?); "
                    f"set {ENV_MAX_REVIEW_BYTES} to read longer texts."
                ) from None
            bad.add(f"{path}:{reader.line_num}", f"malformed row ({error})", strict=strict)
            continue
        where = f"{path}:{reader.line_num}"
        values = [value for value in record.values() if isinstance(value, str)]
        if any(_has_surrogates(value) for value in values):
            bad.add(where, "not UTF-8", strict=strict)
            continue
        row = _checked(record, where, text_column, label_column, bad, strict)
        if row is not None:
            yield (*row, where)


def _checked(
    record: dict[str, object],
    where: str,
    text_column: str,
    label_column: str | None,
    bad: BadRows,
    strict: bool,
) -> tuple[str, str | None] | None:
    text = record.get(text_column)
    if not isinstance(text, str) or not text.strip():
        bad.add(where, "missing text", strict=strict)
        return None
    if label_column is None:
        return text, None
    label = record.get(label_column)
    if label is None or isinstance(label, (dict, list)) or not str(label).strip():
        bad.add(where, "missing label", strict=strict)
        return None
    # A JSON `true` or `1.5` is the class "true" or "1.5", as written; a label typed in NFC and
    # in NFD (é as one character or two) is one class.
    written = label if isinstance(label, str) else json.dumps(label)
    return text, unicodedata.normalize("NFC", written.strip())


def _folder_rows(
    root: Path, *, labelled: bool, bad: BadRows, strict: bool
) -> Iterator[tuple[str, str | None, int, str]]:
    """`(text, label, size, file)` of each file: one sub-folder per class, or every file if
    unlabelled. Symbolic links and hidden entries are skipped, as `--data` folders skip them
    (a link could bring any file of the system into the texts); each file is read within
    `IMDB_RNN_MAX_REVIEW_BYTES`."""
    if labelled:
        classes = sorted(
            entry
            for entry in root.iterdir()
            if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(".")
        )
        if not classes:
            raise DataError(
                f"{root} has no sub-folders: expected one sub-folder per class, each holding "
                "one text per file."
            )
        files = [
            (file, unicodedata.normalize("NFC", folder.name))
            for folder in classes
            for file in folder_files(folder)
        ]
    else:
        files = [(file, "") for file in folder_files(root)]
    for file, label in files:
        try:
            raw = read_limited(file, what=str(file), limit_variable=ENV_MAX_REVIEW_BYTES)
        except InputError as error:
            raise DataError(str(error)) from None
        if b"\x00" in raw:
            bad.add(str(file), "not text (NUL bytes)", strict=strict)
            continue
        try:
            text = decode_text(raw)
        except UnicodeDecodeError:
            bad.add(str(file), "not UTF-8", strict=strict)
            continue
        if not text.strip():
            bad.add(str(file), "missing text", strict=strict)
            continue
        yield text, (label if labelled else None), len(raw), str(file)


def iter_rows(
    path: str | os.PathLike[str],
    *,
    labelled: bool = True,
    text_column: str = "text",
    label_column: str = "label",
    bad: BadRows | None = None,
    strict: bool = False,
) -> Iterator[tuple[str, str | None]]:
    """Yields `(text, label)` for each usable row of a file or folder, one at a time (memory
    does not grow with the file); the arguments are `read_texts`'."""
    path = Path(path)
    kind = detect_format(path)
    bad = bad if bad is not None else BadRows()
    if kind == "folder":
        for text, label, _, _ in _folder_rows(path, labelled=labelled, bad=bad, strict=strict):
            yield text, label
        return
    for text, label, _ in _text_rows(
        path,
        kind,
        text_column=text_column,
        label_column=label_column if labelled else None,
        bad=bad,
        strict=strict,
    ):
        yield text, label


def data_size(path: str | os.PathLike[str]) -> int:
    """Size in bytes of a data file, or of the files of a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(file.lstat().st_size for file in folder_files(path))
    return path.stat().st_size


def read_texts(
    path: str | os.PathLike[str],
    *,
    labelled: bool = True,
    text_column: str = "text",
    label_column: str = "label",
    bad: BadRows | None = None,
    strict: bool = False,
) -> TextTable:
    """Reads the usable rows of one CSV, TSV, JSON Lines file or class-per-folder folder.

    Args:
        path: the file or folder.
        labelled: read labels too. Default True.
        text_column: column or key of the text. Default "text".
        label_column: column or key of the label. Default "label".
        bad: where bad rows are counted. Default None: a new `BadRows`, discarded.
        strict: raise on the first bad row. Default False.

    Returns:
        A `TextTable`.

    Raises:
        DataError: if the file is missing, of an unknown format, lacks a named column, or (with
            `strict`) holds a bad row.
    """
    path = Path(path)
    kind = detect_format(path)
    bad = bad if bad is not None else BadRows()
    skipped_before = bad.total
    texts: list[str] = []
    labels: list[str] = []
    where: list[str] = []
    size = 0
    if kind == "folder":
        for text, label, length, file in _folder_rows(
            path, labelled=labelled, bad=bad, strict=strict
        ):
            texts.append(text)
            labels.append(label or "")
            where.append(file)
            size += length
    else:
        for text, label, line in _text_rows(
            path,
            kind,
            text_column=text_column,
            label_column=label_column if labelled else None,
            bad=bad,
            strict=strict,
        ):
            texts.append(text)
            labels.append(label or "")
            where.append(line)
        size = path.stat().st_size
    rows = len(texts) + bad.total - skipped_before
    return TextTable(texts, labels if labelled else None, rows=rows, bytes_read=size, where=where)


def label_names_of(labels: Iterable[str]) -> tuple[str, ...]:
    """The distinct labels in a stable order: numerically if they are all integers, else
    alphabetically (so `neg`, `pos` and `0`, `1`, ..., `10` keep their natural order). Labels
    of the same number (`1`, `01`, `+1`) are ordered by their text, so the order never depends
    on the process (`PYTHONHASHSEED`).

    Example:

    >>> label_names_of(["pos", "neg", "pos"]), label_names_of(["10", "2", "1"])
    (('neg', 'pos'), ('1', '2', '10'))
    >>> label_names_of(["1", "01", "+1", " 1"])
    (' 1', '+1', '01', '1')
    """
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=lambda label: (int(label), label)))
    except ValueError:
        return tuple(sorted(distinct))


def load_text_files(
    files: TextFiles,
    *,
    splits: Iterable[str] = SPLITS,
    valid_fraction: float = 0.1,
    limit: int | None = None,
    label_names: Sequence[str] | None = None,
) -> ImdbSplits:
    """Loads the splits of a `TextFiles` data set.

    Args:
        files: the files.
        splits: which of `SPLITS` to load (those without a file are left out; `valid` comes
            from `train` when there is no valid file). Default all four.
        valid_fraction: share of train held out as validation when no valid file is given.
            Default 0.1.
        limit: keep at most this many texts of each split (train before validation is carved).
            Default None (all).
        label_names: the classes, in the model's order. Default None: the labels of the
            training file (see `label_names_of`). A label outside them is a bad row.

    Returns:
        An `ImdbSplits` whose labels index `label_names`, with `bad_rows` counted.

    Raises:
        DataError: if a file is missing or unreadable, the training file holds fewer than two
            classes, a requested split has no file or no usable row, or (with `strict`) a row
            is bad.
    """
    wanted = check_split_request(splits, valid_fraction=valid_fraction, limit=limit)
    needs_train = "train" in wanted or ("valid" in wanted and files.valid is None)
    paths = {
        "train": files.train if needs_train else None,
        "valid": files.valid if "valid" in wanted else None,
        "test": files.test if "test" in wanted else None,
        "unsupervised": files.unlabelled if "unsupervised" in wanted else None,
    }
    for name in wanted:
        given = {"train": files.train, "valid": files.valid or files.train, "test": files.test}
        if name in given and given[name] is None:
            raise DataError(f"No file for the {name} split: pass TextFiles({name}=PATH).")
    bad = BadRows()
    tables: dict[str, TextTable] = {}
    for name, path in paths.items():
        if path is not None:
            tables[name] = read_texts(
                path,
                labelled=name != "unsupervised",
                text_column=files.text_column,
                label_column=files.label_column,
                bad=bad,
                strict=files.strict,
            )
    if label_names is None:
        if "train" not in tables:
            raise DataError(
                "The label names come from the training file: pass TextFiles(train=PATH)."
            )
        label_names = label_names_of(tables["train"].labels or [])
    label_names = tuple(label_names)
    if len(label_names) > MAX_CLASSES:
        raise DataError(
            f"Expected at most {MAX_CLASSES:,} classes in {files.train}. Received: "
            f"{len(label_names):,}. Is label_column= the right column?"
        )
    if len(label_names) < 2:
        found = f"only {label_names[0]!r}" if label_names else "none"
        raise DataError(
            f"Expected at least two classes in {files.train}. Received: {found}. "
            "Is label_column= the right column?"
        )
    index = {name: position for position, name in enumerate(label_names)}
    rng = np.random.default_rng(SPLIT_SEED)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, table in tables.items():
        texts, labels = _indexed(table, index, paths[name], bad, files.strict)
        order = rng.permutation(len(texts))
        texts, labels = texts[order], labels[order]
        if limit is not None:
            texts, labels = texts[:limit], labels[:limit]
        arrays[name] = (texts, labels)
    if "train" in arrays and files.valid is None:
        train_texts, train_labels = arrays["train"]
        n_valid = valid_count(len(train_texts), valid_fraction)
        arrays["valid"] = (train_texts[:n_valid], train_labels[:n_valid])
        arrays["train"] = (train_texts[n_valid:], train_labels[n_valid:])
    datasets: dict[str, tf.data.Dataset | None] = dict.fromkeys(SPLITS)
    sizes = {}
    for name in wanted:
        if name not in arrays:
            continue
        texts, labels = arrays[name]
        if len(texts) == 0:
            where = paths.get(name) or files.train
            raise DataError(f"The {name} split ({where}) has no usable row.")
        datasets[name] = tf.data.Dataset.from_tensor_slices(
            (tf.constant(texts.tolist(), dtype=tf.string), tf.constant(labels, dtype=tf.int32))
        )
        sizes[name] = len(texts)
    return ImdbSplits.from_named(
        datasets,
        sizes=sizes,
        source=files.describe(),
        label_names=label_names,
        bad_rows=dict(bad.counts),
        bad_row_examples=list(bad.examples),
        bytes_read=sum(table.bytes_read for table in tables.values()),
    )


def _indexed(
    table: TextTable,
    index: dict[str, int],
    path: str | os.PathLike[str] | None,
    bad: BadRows,
    strict: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The texts of a table and their class indices; rows of unknown classes are bad rows."""
    if table.labels is None:
        return (
            np.array(table.texts, dtype=object),
            np.full(len(table.texts), UNLABELLED, np.int32),
        )
    keep_texts, keep_labels = [], []
    where = table.where or [f"{path}"] * len(table.texts)
    for text, label, line in zip(table.texts, table.labels, where, strict=True):
        position = index.get(label)
        if position is None:
            bad.add(line, f"unknown label {label!r}", strict=strict)
            continue
        keep_texts.append(text)
        keep_labels.append(position)
    return np.array(keep_texts, dtype=object), np.array(keep_labels, dtype=np.int32)
