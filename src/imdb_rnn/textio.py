"""Texts to classify from a file, and predictions to a file, streamed a row at a time.

Readers (`read_texts_to_classify`) take one text per line (`"lines"`), a CSV / TSV file with a
header (`"csv"`, `"tsv"`: the text in `text_column`) or JSON Lines (`"jsonl"`: an object per line
with the text under `text_column`, or a JSON string per line). Writers (`prediction_writer`)
write JSON (one array), JSON Lines or CSV. Neither ever holds the whole file: memory stays
bounded by what the caller keeps.

Example:

>>> import io, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "q.csv"
>>> _ = path.write_text('id,text\\n1,"Who wrote\\nHamlet ?"\\n2,Where is Rome ?\\n')
>>> [text for text, _ in read_texts_to_classify(path, input_format="csv")]
['Who wrote\\nHamlet ?', 'Where is Rome ?']
>>> out = io.StringIO()
>>> writer = prediction_writer(out, "jsonl", labels=("HUM", "LOC"))
>>> writer.write([{"text": "Who ?", "label": "HUM", "score": 0.9}]); writer.close()
>>> out.getvalue()
'{"text": "Who ?", "label": "HUM", "score": 0.9}\\n'
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from imdb_rnn.datasets import DataError
from imdb_rnn.files import MAX_LINE_BYTES, InputError, bounded_lines, csv_rows, open_regular

__all__ = [
    "INPUT_FORMATS",
    "MAX_LINE_BYTES",
    "OUTPUT_FORMATS",
    "PredictionWriter",
    "guess_input_format",
    "prediction_writer",
    "read_texts_from_stream",
    "read_texts_to_classify",
]

INPUT_FORMATS = ("lines", "csv", "tsv", "jsonl")
OUTPUT_FORMATS = ("table", "json", "jsonl", "csv")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def guess_input_format(path: str | os.PathLike[str]) -> str:
    """The input format a file's suffix implies: `.csv`, `.tsv`, `.jsonl`; else `"lines"`."""
    return _SUFFIXES.get(Path(path).suffix.lower(), "lines")


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it (for a progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # One read of what is there (readinto1): a buffered stdin's readinto would wait for a
        # full buffer, holding back texts that a pipe has already delivered.
        read = getattr(self.raw, "readinto1", None) or self.raw.readinto  # type: ignore[attr-defined]
        size = read(buffer)
        self.count += size or 0
        return size

    def close(self) -> None:
        # The stream belongs to the caller (a file it opened, or stdin): it is not closed here.
        super().close()


def read_texts_to_classify(
    path: str | os.PathLike[str],
    *,
    input_format: str = "lines",
    text_column: str = "text",
) -> Iterator[tuple[str, int]]:
    """Yields `(text, bytes read so far)` for each text of a file, in order, one at a time.

    Blank texts are skipped. `"lines"` files are decoded line by line as UTF-8, or Latin-1
    where a line is not UTF-8; only line feeds end a text (texts may hold U+0085 or U+2028).
    CSV, TSV and JSON Lines must be UTF-8.

    Args:
        path: the file.
        input_format: one of `INPUT_FORMATS`. Default "lines".
        text_column: CSV / TSV column or JSON Lines key of the text. Default "text".

    Raises:
        DataError: if the file holds NUL bytes (binary data), a line of a `"lines"` or
            `"jsonl"` file is over `MAX_LINE_BYTES`, a CSV lacks `text_column`, a JSON line is
            neither an object with `text_column` nor a string, or a CSV / JSON Lines row is not
            UTF-8. The message names the line.
        OSError: if the file cannot be read.
    """
    _check_input_format(input_format)
    path = Path(path)
    try:
        raw = open_regular(path, what=str(path))
    except InputError as error:
        raise DataError(f"{error} Give a file of texts.") from None
    with raw:
        yield from read_texts_from_stream(
            raw, name=str(path), input_format=input_format, text_column=text_column
        )


def read_texts_from_stream(
    raw: IO[bytes],
    *,
    name: str = "<stdin>",
    input_format: str = "lines",
    text_column: str = "text",
) -> Iterator[tuple[str, int]]:
    """`read_texts_to_classify` on an open binary stream, such as `sys.stdin.buffer`.

    The stream is read in blocks and never whole, and no line is held beyond
    `MAX_LINE_BYTES`, so an endless stream (a pipe, `/dev/zero`) fails or flows through in
    bounded memory. The stream is not closed.

    Args:
        raw: a readable binary stream.
        name: how messages name the stream. Default "<stdin>".
        input_format: one of `INPUT_FORMATS`. Default "lines".
        text_column: CSV / TSV column or JSON Lines key of the text. Default "text".

    Raises:
        DataError: as `read_texts_to_classify`.

    Example:

    >>> import io
    >>> [text for text, _ in read_texts_from_stream(io.BytesIO(b"Who ?\\n\\nWhere ?\\n"))]
    ['Who ?', 'Where ?']
    """
    _check_input_format(input_format)
    counter = _CountingReader(raw)
    stream = io.BufferedReader(counter)
    lines = bounded_lines(stream, what=name, limit=MAX_LINE_BYTES)
    try:
        if input_format in ("lines", "jsonl"):
            for number, raw_line in enumerate(lines, start=1):
                text = _line_text(raw_line, name, number, input_format, text_column)
                if text is not None and text.strip():
                    yield text, counter.count
            return
        reader = csv_rows(
            (line.decode("utf-8") for line in lines),
            delimiter="\t" if input_format == "tsv" else ",",
            field_limit=MAX_LINE_BYTES,
        )
        try:
            columns = reader.fieldnames or []
            if text_column not in columns:
                raise DataError(
                    f"{name} has no column {text_column!r} (its header: "
                    f"{', '.join(columns) or 'none'}). Name it with text_column=."
                )
            for record in reader:
                text = record.get(text_column)
                if isinstance(text, str) and text.strip():
                    yield text, counter.count
        except UnicodeDecodeError:
            raise DataError(
                f"{name} is not UTF-8 near line {reader.line_num + 1}: save it as UTF-8."
            ) from None
        except csv.Error as error:
            raise DataError(f"{name}:{reader.line_num}: malformed CSV ({error}).") from None
    except InputError as error:
        raise DataError(str(error)) from None
    finally:
        stream.detach()


def _check_input_format(input_format: str) -> None:
    if input_format not in INPUT_FORMATS:
        raise ValueError(
            f"Expected input_format in {INPUT_FORMATS}. Received: input_format={input_format!r}"
        )


def _line_text(raw: bytes, path: str, number: int, input_format: str, column: str) -> str | None:
    if b"\x00" in raw:
        raise DataError(
            f"{path} is not text (it holds NUL bytes, line {number}): give one text per line, "
            "as UTF-8 or Latin-1 text."
        )
    if input_format == "lines":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        return text.rstrip("\n").rstrip("\r")
    if not raw.strip():
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}:{number}: not UTF-8: save the file as UTF-8.") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{number}: not JSON ({error.msg}).") from None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get(column), str):
        return str(value[column])
    raise DataError(
        f"{path}:{number}: expected a JSON object with a {column!r} string (or a JSON string); "
        "name the key with text_column=."
    )


class PredictionWriter:
    """Writes prediction rows (dicts from `imdb_rnn.trainer.prediction_rows`) to a text stream.

    Args:
        stream: where to write.
        output_format: `"json"` (one array), `"jsonl"` (an object per line) or `"csv"` (a
            header, then `text`, `label`, `score`, `known_words` and one probability column per
            class).
        labels: the model's classes (the CSV's probability columns).
    """

    def __init__(self, stream: IO[str], output_format: str, *, labels: Sequence[str]) -> None:
        if output_format not in ("json", "jsonl", "csv"):
            raise ValueError(
                "Expected output_format in ('json', 'jsonl', 'csv'). "
                f"Received: output_format={output_format!r}"
            )
        self.stream = stream
        self.output_format = output_format
        self.labels = tuple(labels)
        self.rows = 0
        self._csv: Any = None
        if output_format == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(
                ["text", "label", "score", "known_words", *(f"p_{label}" for label in labels)]
            )

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Writes some rows."""
        for row in rows:
            if self.output_format == "jsonl":
                self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            elif self.output_format == "json":
                # Byte for byte what json.dumps(all_rows, indent=2) would write.
                body = json.dumps(row, indent=2).replace("\n", "\n  ")
                self.stream.write(("[\n  " if self.rows == 0 else ",\n  ") + body)
            else:
                scores = row.get("scores", {})
                self._csv.writerow(
                    [
                        row["text"],
                        row["label"],
                        f"{row['score']:.6f}",
                        row.get("known_words", ""),
                        *(f"{scores.get(label, 0.0):.6f}" for label in self.labels),
                    ]
                )
            self.rows += 1

    def close(self) -> None:
        """Ends the document (the JSON array) and flushes."""
        if self.output_format == "json":
            self.stream.write("[]\n" if self.rows == 0 else "\n]\n")
        self.stream.flush()


def prediction_writer(
    stream: IO[str], output_format: str, *, labels: Sequence[str]
) -> PredictionWriter:
    """A `PredictionWriter` (see there)."""
    return PredictionWriter(stream, output_format, labels=labels)
