"""Tests for imdb_rnn.data.textio: texts to classify from files, predictions to files."""

import csv
import io
import json

import pytest

from imdb_rnn.data import textio
from imdb_rnn.data.textio import (
    guess_input_format,
    prediction_writer,
    read_texts_from_stream,
    read_texts_to_classify,
)
from imdb_rnn.errors import DataError


def _texts(path, **options):
    return [text for text, _ in read_texts_to_classify(path, **options)]


def test_lines_latin1_blank_and_unicode_breaks(tmp_path):
    """One text per line feed: blank lines skipped, CR stripped, Latin-1 lines decoded, U+0085
    and U+2028 kept inside a text."""
    path = tmp_path / "texts.txt"
    path.write_bytes(b"Caf\xe9 film\r\n\n  \nodd\xc2\x85word and\xe2\x80\xa8more\nlast")
    assert _texts(path) == ["Café film", "odd\x85word and\u2028more", "last"]


def test_csv_with_a_multiline_text_and_another_column(tmp_path):
    """CSV texts may span lines; the text column is chosen by name."""
    path = tmp_path / "q.csv"
    path.write_text('id,question\n1,"Who wrote\nHamlet ?"\n2,Where is Rome ?\n3,\n')
    assert _texts(path, input_format="csv", text_column="question") == [
        "Who wrote\nHamlet ?",
        "Where is Rome ?",
    ]
    with pytest.raises(DataError, match="has no column 'text'"):
        _texts(path, input_format="csv")


def test_jsonl_objects_and_strings(tmp_path):
    """JSON Lines: objects with the text key, or plain JSON strings."""
    path = tmp_path / "q.jsonl"
    path.write_text('{"body": "first"}\n"second"\n\n{"body": "third", "x": 1}\n')
    assert _texts(path, input_format="jsonl", text_column="body") == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("name", "content", "input_format", "needle"),
    [
        ("a.jsonl", b'{"text": "ok"}\n{"text": 3}\n', "jsonl", r"a\.jsonl:2: expected a JSON"),
        ("b.jsonl", b'{"text": "ok"}\n{broken\n', "jsonl", r"b\.jsonl:2: not JSON"),
        ("c.txt", b"fine\nbin\x00ary\n", "lines", "NUL bytes, line 2"),
        ("d.csv", b"text\nfine\ncaf\xe9\n", "csv", "not UTF-8"),
    ],
    ids=["jsonl-not-text", "jsonl-broken", "binary", "csv-latin1"],
)
def test_bad_input_names_the_line(tmp_path, name, content, input_format, needle):
    """Unreadable rows stop the read with the file and line."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=needle):
        _texts(path, input_format=input_format)


def test_reading_is_streamed_with_the_bytes_read(tmp_path):
    """Texts come one at a time with a growing count of bytes read, ending at the file size."""
    path = tmp_path / "many.txt"
    path.write_text("".join(f"text number {index}\n" for index in range(50_000)))
    stream = read_texts_to_classify(path)
    first_text, first_position = next(stream)
    assert first_text == "text number 0" and 0 < first_position < path.stat().st_size
    positions = [position for _, position in stream]
    assert positions == sorted(positions) and positions[-1] == path.stat().st_size


def test_guess_input_format():
    """The suffix says the format; anything else is one text per line."""
    assert [guess_input_format(n) for n in ("a.CSV", "b.tsv", "c.jsonl", "d.txt")] == [
        "csv",
        "tsv",
        "jsonl",
        "lines",
    ]


ROWS = [
    {
        "text": 'Who "wrote", Hamlet ?',
        "label": "HUM",
        "score": 0.75,
        "scores": {"HUM": 0.75, "LOC": 0.25},
        "known_words": 3,
    },
    {
        "text": "Où ?\nwhere",
        "label": "LOC",
        "score": 0.5,
        "scores": {"HUM": 0.5, "LOC": 0.5},
        "known_words": 0,
    },
]


@pytest.mark.parametrize("chunks", [[ROWS], [ROWS[:1], ROWS[1:]], [[]]])
def test_json_writer_writes_what_json_dumps_would(chunks):
    """The streamed JSON array is byte for byte json.dumps(rows, indent=2), however chunked."""
    out = io.StringIO()
    writer = prediction_writer(out, "json", labels=("HUM", "LOC"))
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    everything = [row for chunk in chunks for row in chunk]
    assert out.getvalue() == json.dumps(everything, indent=2) + "\n"


def test_jsonl_and_csv_writers():
    """JSON Lines: one object per line; CSV: a header, the text quoted, a column per class."""
    out = io.StringIO()
    writer = prediction_writer(out, "jsonl", labels=("HUM", "LOC"))
    writer.write(ROWS)
    writer.close()
    assert [json.loads(line) for line in out.getvalue().splitlines()] == ROWS
    out = io.StringIO()
    writer = prediction_writer(out, "csv", labels=("HUM", "LOC"))
    writer.write(ROWS)
    writer.close()
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0] == ["text", "label", "score", "known_words", "p_HUM", "p_LOC", "reason"]
    assert table[1] == [
        'Who "wrote", Hamlet ?',
        "HUM",
        "0.750000",
        "3",
        "0.750000",
        "0.250000",
        "",
    ]
    assert table[2][0] == "Où ?\nwhere" and len(table) == 3


def test_stream_reads_csv_and_jsonl_and_leaves_the_stream_open():
    """An open binary stream (stdin) is read as a file of the same format is, and not closed."""
    raw = io.BytesIO(b'label,text\nHUM,"Who wrote\nHamlet ?"\nLOC,Where is Rome ?\n')
    texts = [text for text, _ in read_texts_from_stream(raw, input_format="csv")]
    assert texts == ["Who wrote\nHamlet ?", "Where is Rome ?"]
    assert not raw.closed
    raw = io.BytesIO(b'{"text": "a"}\n"b"\n')
    assert [text for text, _ in read_texts_from_stream(raw, input_format="jsonl")] == ["a", "b"]


def test_stream_refuses_an_endless_line_without_reading_it_whole(monkeypatch):
    """A line longer than MAX_LINE_BYTES is refused after MAX_LINE_BYTES + 1 bytes, naming the
    line; the rest of the stream is never read."""
    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 100)
    raw = io.BytesIO(b"short\n" + b"x" * 1_000_000)
    texts = read_texts_from_stream(raw, name="<stdin>")
    assert next(texts)[0] == "short"
    with pytest.raises(DataError, match=r"<stdin>:2: a line of over 100 bytes"):
        next(texts)
    assert raw.tell() < 100_000  # read in blocks, never to the end


def _rows(path, **options):
    return [(row.text, row.reason) for row in textio.read_rows_to_classify(path, **options)]


def test_rows_keep_blank_long_and_undecodable_rows_in_order(tmp_path):
    """read_rows_to_classify yields every row, in order: blank, too long and not-UTF-8 rows
    come with their reason and their other columns."""
    path = tmp_path / "q.csv"
    path.write_bytes(b"id,text\n1,fine\n2,\n3,caf\xe9\n4," + b"x" * 30 + b"\n5,last\n")
    rows = list(textio.read_rows_to_classify(path, input_format="csv", max_characters=20))
    assert [(row.columns["id"], row.text, row.reason) for row in rows] == [
        ("1", "fine", None),
        ("2", None, "blank"),
        ("3", None, "not UTF-8"),
        ("4", None, "too long"),
        ("5", "last", None),
    ]
    assert rows[2].columns["text"] == "caf\ufffd" and rows[2].line == 4


def test_rows_of_lines_and_jsonl_keep_what_cannot_be_read(tmp_path, monkeypatch):
    """Lines and JSON Lines: blank lines, broken JSON and over-long lines are rows too; an
    over-long line is skipped, not held, and reading goes on after it."""
    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 100)
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"id": 1, "text": "a"}\n\n{broken\n' + b"y" * 500 + b'\n"b"\n')
    assert _rows(path, input_format="jsonl") == [
        ("a", None),
        (None, "blank"),
        (None, "not JSON"),
        (None, "too long"),
        ("b", None),
    ]
    path = tmp_path / "q.txt"
    path.write_bytes(b"one\n\ntwo\n")
    assert _rows(path) == [("one", None), (None, "blank"), ("two", None)]


def test_tsv_writer_carries_columns_and_leaves_unscored_rows_empty():
    """TSV output: the input's columns first, empty scores and the reason for an unscored row."""
    out = io.StringIO()
    writer = prediction_writer(out, "tsv", labels=("HUM", "LOC"))
    unscored = {"id": "2", "label": None, "score": None, "scores": None, "known_words": None}
    writer.write([{"id": "1", **ROWS[0], "reason": None}, {**unscored, "reason": "blank"}])
    writer.close()
    table = list(csv.reader(io.StringIO(out.getvalue()), delimiter="\t"))
    assert table[0][:3] == ["id", "text", "label"] and table[0][-1] == "reason"
    assert table[2] == ["2", "", "", "", "", "", "", "blank"]
