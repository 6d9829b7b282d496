"""inference.batch: one prediction row per input row, in order, columns carried."""

import csv
import io

import pytest

from imdb_rnn.data.textio import InputRow
from imdb_rnn.errors import DataError
from imdb_rnn.inference.batch import carried_columns, predict_file, predict_rows


def _score(texts):
    return [
        {"text": t, "label": "pos", "score": 0.75, "scores": {"neg": 0.25, "pos": 0.75}}
        for t in texts
    ]


def test_rows_keep_their_order_across_chunks():
    """Scored and unscored rows come out one for one, in order, whatever the chunk size."""
    rows = [
        InputRow(None if i % 3 == 0 else f"t{i}", {"id": str(i)}, "blank" if i % 3 == 0 else None)
        for i in range(10)
    ]
    out = [row for chunk in predict_rows(_score, rows, chunk_size=4) for row in chunk]
    assert [row["id"] for row in out] == [str(i) for i in range(10)]
    assert [row["reason"] for row in out][:4] == ["blank", None, None, "blank"]
    assert out[0]["score"] is None and out[1]["score"] == 0.75


def test_carried_columns_choices_and_clashes():
    """All columns by default, the named ones, or only the id; a clash is renamed input_*."""
    columns = {"id": "7", "label": "neg", "text": "x"}
    assert carried_columns(columns) == {"id": "7", "input_label": "neg", "text": "x"}
    assert carried_columns(columns, keep_columns=["text", "id"]) == {"text": "x", "id": "7"}
    assert carried_columns(columns, id_column="id") == {"id": "7"}


def test_a_missing_kept_column_is_a_data_error():
    """A column that the input does not have is named in the error."""
    with pytest.raises(DataError, match="no column 'ident'"):
        list(predict_rows(_score, [InputRow("a", {"id": "1"})], id_column="ident"))


def test_predict_file_with_an_id_column_and_a_blank_row(tmp_path, trained_model_dir):
    """A CSV with an id column and a blank row comes out with as many rows, in the same order."""
    import imdb_rnn

    source = tmp_path / "in.csv"
    source.write_text("id,text\n10,a great film\n11,\n12,awful boring mess\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    classify = imdb_rnn.load(trained_model_dir)
    assert predict_file(classify, source, target, id_column="id") == 3
    table = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [row["id"] for row in table] == ["10", "11", "12"]
    assert [row["reason"] for row in table] == ["", "blank", ""]
    assert table[1]["score"] == "" and table[0]["label"] in ("neg", "pos")
    assert "text" not in table[0]
