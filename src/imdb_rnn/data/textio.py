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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imdb_rnn.errors import DataError, InputError
from imdb_rnn.files import MAX_LINE_BYTES, bounded_lines, csv_rows, open_regular

__all__ = [
    "INPUT_FORMATS",
    "MAX_LINE_BYTES",
    "MAX_TEXT_CHARACTERS",
    "OUTPUT_FORMATS",
    "PREDICTION_FIELDS",
    "InputRow",
    "PredictionWriter",
    "guess_input_format",
    "prediction_writer",
    "read_rows_from_stream",
    "read_rows_to_classify",
    "read_texts_from_stream",
    "read_texts_to_classify",
]

INPUT_FORMATS = ("lines", "csv", "tsv", "jsonl")
OUTPUT_FORMATS = ("table", "json", "jsonl", "csv", "tsv")
#: The longest text that is classified (characters; the longest IMDB review has about 14,000).
MAX_TEXT_CHARACTERS = 100_000
#: The fields a prediction row adds to the input's columns (an input column of the same name is
#: carried as `input_<name>`).
#: UTF-8's byte-order mark, dropped before the first line as `imdb_rnn.files` readers do.
_BOM = b"\xef\xbb\xbf"
PREDICTION_FIELDS = (
    "label",
    "score",
    "probability",
    "scores",
    "known_words",
    "explained",
    "explanation",
    "unexplained",
    "reason",
)


@dataclass(frozen=True)
class InputRow:
    """One row of an input file, scorable or not.

    Attributes:
        text: the text to classify; None when the row cannot be scored (see `reason`).
        columns: the row's fields as read, in order: a CSV / TSV row's columns, a JSON Lines
            object's keys, or `{"text": ...}` for a line of text or a JSON string.
        reason: why the row cannot be scored (`"blank"`, `"not UTF-8"`, `"not JSON"`,
            `"no text"`, `"too long"`); None when it can.
        line: the row's first line in the file (1 for the first row of data).
        position: bytes of the file read so far (for a progress bar).
        message: for a row that cannot be scored, a sentence naming the file and the line.
    """

    text: str | None
    columns: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    line: int = 0
    position: int = 0
    message: str = ""


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
    CSV, TSV and JSON Lines must be UTF-8. (`read_rows_to_classify` keeps every row instead.)

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
    with _open_texts(path) as raw:
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
    rows = read_rows_from_stream(
        raw, name=name, input_format=input_format, text_column=text_column, max_characters=None
    )
    for row in rows:
        if row.text is not None:
            yield row.text, row.position
        elif row.reason != "blank":
            raise DataError(row.message)


def read_rows_to_classify(
    path: str | os.PathLike[str],
    *,
    input_format: str = "lines",
    text_column: str = "text",
    max_characters: int | None = MAX_TEXT_CHARACTERS,
) -> Iterator[InputRow]:
    """Yields every row of a file as an `InputRow`, in order, one at a time: also the rows
    that cannot be scored (blank, too long, not UTF-8, not JSON), each with its reason, so that
    predictions written for them keep the input's rows.

    Args:
        path: the file.
        input_format: one of `INPUT_FORMATS`. Default "lines".
        text_column: CSV / TSV column or JSON Lines key of the text. Default "text".
        max_characters: longer texts are not scored (reason `"too long"`). Default
            `MAX_TEXT_CHARACTERS`; None: no limit.

    Raises:
        DataError: if the file holds NUL bytes (binary data), a CSV lacks `text_column` or is
            malformed.
        OSError: if the file cannot be read.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "q.csv"
    >>> _ = path.write_text("id,text\\n1,Who ?\\n2,\\n3,Where ?\\n")
    >>> [(row.columns["id"], row.text, row.reason) for row in read_rows_to_classify(
    ...     path, input_format="csv")]
    [('1', 'Who ?', None), ('2', None, 'blank'), ('3', 'Where ?', None)]
    """
    _check_input_format(input_format)
    path = Path(path)
    with _open_texts(path) as raw:
        yield from read_rows_from_stream(
            raw,
            name=str(path),
            input_format=input_format,
            text_column=text_column,
            max_characters=max_characters,
        )


def read_rows_from_stream(
    raw: IO[bytes],
    *,
    name: str = "<stdin>",
    input_format: str = "lines",
    text_column: str = "text",
    max_characters: int | None = MAX_TEXT_CHARACTERS,
) -> Iterator[InputRow]:
    """`read_rows_to_classify` on an open binary stream, such as `sys.stdin.buffer`.

    The stream is read in blocks and never whole: a line over `MAX_LINE_BYTES` is yielded as
    a row that cannot be scored (reason `"too long"`) and the rest of it is skipped unread into
    memory. The stream is not closed.

    Args:
        raw: a readable binary stream.
        name: how messages name the stream. Default "<stdin>".
        input_format: one of `INPUT_FORMATS`. Default "lines".
        text_column: CSV / TSV column or JSON Lines key of the text. Default "text".
        max_characters: see `read_rows_to_classify`.

    Raises:
        DataError: as `read_rows_to_classify`.
    """
    _check_input_format(input_format)
    counter = _CountingReader(raw)
    stream = io.BufferedReader(counter)
    lines = bounded_lines(stream, what=name, limit=MAX_LINE_BYTES)
    try:
        if input_format in ("lines", "jsonl"):
            number = 0
            while raw_line := stream.readline(MAX_LINE_BYTES + 1):
                number += 1
                if number == 1 and raw_line.startswith(_BOM):
                    raw_line = raw_line[len(_BOM) :]
                if len(raw_line) > MAX_LINE_BYTES:
                    if b"\x00" in raw_line:
                        _line_row(raw_line, name, number, input_format, text_column, 0)
                    yield InputRow(
                        None,
                        reason="too long",
                        line=number,
                        position=counter.count,
                        message=f"{name}:{number}: a line of over {MAX_LINE_BYTES:,} bytes: "
                        "give one text per line.",
                    )
                    while not raw_line.endswith(b"\n") and (
                        raw_line := stream.readline(MAX_LINE_BYTES + 1)
                    ):
                        pass
                    continue
                row = _line_row(raw_line, name, number, input_format, text_column, counter.count)
                yield _within(row, name, max_characters)
            return
        reader = csv_rows(
            (line.decode("utf-8", errors="surrogateescape") for line in lines),
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
            line = reader.line_num + 1
            for record in reader:
                values = {key: "" if value is None else value for key, value in record.items()}
                if None in values:  # more fields than the header names
                    values.pop(None)
                text = values.get(text_column, "")
                if any(_undecodable(value) for value in values.values()):
                    values = {key: _replaced(value) for key, value in values.items()}
                    row = InputRow(
                        None,
                        values,
                        "not UTF-8",
                        line,
                        counter.count,
                        f"{name} is not UTF-8 near line {line}: save it as UTF-8.",
                    )
                elif not text.strip():
                    row = InputRow(None, values, "blank", line, counter.count, "")
                else:
                    row = InputRow(text, values, None, line, counter.count)
                yield _within(row, name, max_characters)
                line = reader.line_num + 1
        except csv.Error as error:
            raise DataError(f"{name}:{reader.line_num}: malformed CSV ({error}).") from None
    except InputError as error:
        raise DataError(str(error)) from None
    finally:
        stream.detach()


def _undecodable(value: object) -> bool:
    return isinstance(value, str) and any("\udc80" <= char <= "\udcff" for char in value)


def _replaced(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _within(row: InputRow, name: str, max_characters: int | None) -> InputRow:
    if row.text is None or max_characters is None or len(row.text) <= max_characters:
        return row
    return InputRow(
        None,
        row.columns,
        "too long",
        row.line,
        row.position,
        f"{name}:{row.line}: a text of {len(row.text):,} characters; texts of up to "
        f"{max_characters:,} are classified.",
    )


def _open_texts(path: Path) -> IO[bytes]:
    """`path` opened by the input rule (`files.open_regular`), its refusal as a `DataError`."""
    try:
        return open_regular(path, what=str(path))
    except InputError as error:
        raise DataError(f"{error} Give a file of texts.") from None


def _check_input_format(input_format: str) -> None:
    if input_format not in INPUT_FORMATS:
        raise ValueError(
            f"Expected input_format in {INPUT_FORMATS}. Received: input_format={input_format!r}"
        )


def _line_row(
    raw: bytes, path: str, number: int, input_format: str, column: str, position: int
) -> InputRow:
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
        text = text.rstrip("\n").rstrip("\r")
        if not text.strip():
            return InputRow(None, {"text": text}, "blank", number, position)
        return InputRow(text, {"text": text}, None, number, position)
    if not raw.strip():
        return InputRow(None, {}, "blank", number, position)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        message = f"{path}:{number}: not UTF-8: save the file as UTF-8."
        return InputRow(None, {}, "not UTF-8", number, position, message)
    except json.JSONDecodeError as error:
        message = f"{path}:{number}: not JSON ({error.msg})."
        return InputRow(None, {}, "not JSON", number, position, message)
    if isinstance(value, str):
        value = {"text": value}
        column = "text"
    if isinstance(value, dict) and isinstance(value.get(column), str):
        text = str(value[column])
        if not text.strip():
            return InputRow(None, value, "blank", number, position)
        return InputRow(text, value, None, number, position)
    message = (
        f"{path}:{number}: expected a JSON object with a {column!r} string (or a JSON string); "
        "name the key with text_column=."
    )
    return InputRow(
        None, value if isinstance(value, dict) else {}, "no text", number, position, message
    )


class PredictionWriter:
    """Writes prediction rows (dicts from `imdb_rnn.inference.batch.predict_rows` or
    `imdb_rnn.inference.predictions.prediction_rows`) to a text stream.

    Args:
        stream: where to write.
        output_format: `"json"` (one array), `"jsonl"` (an object per line), `"csv"` or
            `"tsv"` (a header, then the input's columns carried through, `label`, `score`,
            `known_words`, one probability column per class and `reason`; a row that could not
            be scored has empty scores and its reason). The CSV's input columns are those of the
            first row written.
        labels: the model's classes (the CSV's probability columns).
    """

    def __init__(self, stream: IO[str], output_format: str, *, labels: Sequence[str]) -> None:
        if output_format not in ("json", "jsonl", "csv", "tsv"):
            raise ValueError(
                "Expected output_format in ('json', 'jsonl', 'csv', 'tsv'). "
                f"Received: output_format={output_format!r}"
            )
        self.stream = stream
        self.output_format = output_format
        self.labels = tuple(labels)
        self.rows = 0
        self._csv: Any = None
        self._columns: list[str] | None = None
        if output_format in ("csv", "tsv"):
            delimiter = "\t" if output_format == "tsv" else ","
            self._csv = csv.writer(stream, delimiter=delimiter, lineterminator="\n")

    def _header(self, columns: list[str]) -> None:
        self._columns = columns
        self._csv.writerow(
            [
                *columns,
                "label",
                "score",
                "known_words",
                *(f"p_{label}" for label in self.labels),
                "reason",
            ]
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
                if self._columns is None:
                    self._header([key for key in row if key not in PREDICTION_FIELDS])
                scores = row.get("scores") or {}
                scored = row.get("score") is not None
                self._csv.writerow(
                    [
                        *(_cell(row.get(column)) for column in self._columns or []),
                        row["label"] if scored else "",
                        f"{row['score']:.6f}" if scored else "",
                        _cell(row.get("known_words")),
                        *(
                            f"{scores.get(label, 0.0):.6f}" if scored else ""
                            for label in self.labels
                        ),
                        _cell(row.get("reason")),
                    ]
                )
            self.rows += 1

    def close(self) -> None:
        """Ends the document (the JSON array; the CSV header when no row came) and flushes."""
        if self.output_format == "json":
            self.stream.write("[]\n" if self.rows == 0 else "\n]\n")
        elif self._csv is not None and self._columns is None:
            self._header([])
        self.stream.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def prediction_writer(
    stream: IO[str], output_format: str, *, labels: Sequence[str]
) -> PredictionWriter:
    """A `PredictionWriter` (see there)."""
    return PredictionWriter(stream, output_format, labels=labels)
