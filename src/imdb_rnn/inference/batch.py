"""Batch predictions that keep their rows: one output row per input row, in order.

Every row of the input comes out, also one that cannot be scored (blank, too long, not UTF-8,
not JSON): its scores are empty and `reason` says why, so that row N of the output is row N of
the input. The input's other columns are carried through: all of them by default, the ones
named by `keep_columns`, or only `id_column`. An input column named as a prediction field
(`label`, `score`, ...) is carried as `input_<name>`.

Example:

>>> from imdb_rnn.data.textio import InputRow
>>> def score(texts):  # any function of texts -> prediction rows, such as Predictor.predict
...     return [{"text": t, "label": "pos", "score": 0.9, "scores": {}, "known_words": 1}
...             for t in texts]
>>> rows = [InputRow("Great.", {"id": "7", "text": "Great."}),
...         InputRow(None, {"id": "8", "text": ""}, reason="blank")]
>>> [(row["id"], row["label"], row["reason"]) for chunk in predict_rows(
...     score, rows, id_column="id") for row in chunk]
[('7', 'pos', None), ('8', None, 'blank')]
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from imdb_rnn.data.textio import (
    PREDICTION_FIELDS,
    InputRow,
    guess_input_format,
    prediction_writer,
    read_rows_to_classify,
)
from imdb_rnn.errors import DataError

__all__ = ["CHUNK_SIZE", "carried_columns", "predict_file", "predict_rows"]

#: Texts predicted together when streaming a file.
CHUNK_SIZE = 1024

Scorer = Callable[[list[str]], list[dict[str, Any]]]


def carried_columns(
    columns: dict[str, Any],
    *,
    keep_columns: Sequence[str] | None = None,
    id_column: str | None = None,
) -> dict[str, Any]:
    """The input columns an output row carries: all of `columns`, those of `keep_columns`,
    or only `id_column`; a column named as a prediction field is renamed `input_<name>`.

    Raises:
        ValueError: if both `keep_columns` and `id_column` are given.
    """
    if keep_columns is not None and id_column is not None:
        raise ValueError(
            "Expected keep_columns or id_column, not both. "
            f"Received: keep_columns={list(keep_columns)}, id_column={id_column!r}"
        )
    names: Iterable[str] = columns
    if id_column is not None:
        names = [id_column]
    elif keep_columns is not None:
        names = keep_columns
    return {
        (f"input_{name}" if name in PREDICTION_FIELDS else name): columns.get(name, "")
        for name in names
    }


def predict_rows(
    score: Scorer,
    rows: Iterable[InputRow],
    *,
    labels: Sequence[str] = (),
    keep_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[list[dict[str, Any]]]:
    """Predicts `rows` a chunk at a time and yields each chunk's output rows, one per input row.

    Args:
        score: texts -> prediction rows (`Predictor.predict`, or `explain.explained_rows` bound
            to a model).
        rows: the input, as `imdb_rnn.data.textio.read_rows_to_classify` yields it.
        labels: the model's classes; with two, rows that cannot be scored get a `probability`
            of None too. Default ().
        keep_columns: the input columns to carry; each must be in the first row (a CSV's
            header). Default None: all.
        id_column: carry only this column. Default None.
        chunk_size: texts predicted together. Default `CHUNK_SIZE`.

    Returns:
        An iterator of lists of dicts: the carried columns, then the prediction's fields
        (`label`, `score`, `scores`, `known_words`, ...; the text itself only as a carried
        column), then `reason` (None, or why the row has no scores).

    Raises:
        DataError: if a column of `keep_columns` or `id_column` is not in the first row.
        ValueError: if `chunk_size` is below 1, or both `keep_columns` and `id_column` are
            given.
    """
    if chunk_size < 1:
        raise ValueError(f"Expected chunk_size >= 1. Received: chunk_size={chunk_size}")
    wanted = [id_column] if id_column is not None else keep_columns
    iterator = iter(rows)
    first = True
    while chunk := list(itertools.islice(iterator, chunk_size)):
        if first and wanted is not None:
            missing = [name for name in wanted if name not in chunk[0].columns]
            if missing:
                raise DataError(
                    f"The input has no column {', '.join(map(repr, missing))} (its columns: "
                    f"{', '.join(chunk[0].columns) or 'none'})."
                )
        first = False
        texts = [row.text for row in chunk if row.text is not None]
        predictions = iter(score(texts) if texts else [])
        out = []
        for row in chunk:
            item = carried_columns(row.columns, keep_columns=keep_columns, id_column=id_column)
            if row.text is not None:
                prediction = dict(next(predictions))
                prediction.pop("text", None)
                item.update(prediction)
                item["reason"] = None
            else:
                item.update({"label": None, "score": None})
                if len(labels) == 2:
                    item["probability"] = None
                item.update({"scores": None, "known_words": None, "reason": row.reason})
            out.append(item)
        yield out


def predict_file(
    predictor: Any,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str] | IO[str] | None = None,
    *,
    input_format: str | None = None,
    output_format: str | None = None,
    text_column: str = "text",
    keep_columns: Sequence[str] | None = None,
    id_column: str | None = None,
) -> int:
    """Classifies every row of a file and writes one prediction row per input row, in order.

    Args:
        predictor: an `imdb_rnn.Predictor` (from `imdb_rnn.load`).
        source: the input file: lines, CSV, TSV or JSON Lines.
        destination: a path or an open text stream. Default None: stdout.
        input_format: one of `textio.INPUT_FORMATS`. Default None: from the suffix.
        output_format: `"csv"`, `"tsv"`, `"jsonl"` or `"json"`. Default None: from the
            destination's suffix, else `"jsonl"`.
        text_column: the CSV / TSV column or JSON Lines key of the text. Default "text".
        keep_columns: see `predict_rows`. Default None: all columns.
        id_column: see `predict_rows`. Default None.

    Returns:
        The number of rows written.

    Raises:
        DataError: if the input cannot be read as `input_format`.
        OSError: if a file cannot be read or written.
    """
    kind = input_format or guess_input_format(source)
    if output_format is None:
        suffix = Path(destination).suffix.lower() if isinstance(destination, str | Path) else ""
        output_format = {".csv": "csv", ".tsv": "tsv", ".json": "json"}.get(suffix, "jsonl")
    rows = read_rows_to_classify(source, input_format=kind, text_column=text_column)
    chunks = predict_rows(
        predictor.predict,
        rows,
        labels=predictor.labels,
        keep_columns=keep_columns,
        id_column=id_column,
    )
    if destination is None or not isinstance(destination, str | os.PathLike):
        return _write(chunks, destination or sys.stdout, output_format, predictor.labels)
    from imdb_rnn.files import atomic_path

    with atomic_path(destination) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        return _write(chunks, out, output_format, predictor.labels)


def _write(
    chunks: Iterable[list[dict[str, Any]]], out: IO[str], output_format: str, labels: Any
) -> int:
    writer = prediction_writer(out, output_format, labels=labels)
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    return writer.rows
