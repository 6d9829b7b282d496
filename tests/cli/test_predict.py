"""`imdb-rnn predict`: inputs, outputs, explanations, streaming."""

import csv
import io
import json
import select
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from imdb_rnn.cli import app
from imdb_rnn.errors import EXIT_INTERNAL, EXIT_USAGE
from imdb_rnn.inference import predictor

from .helpers import one_clear_line, parsed_json


def test_predictions_into_a_closed_pipe_are_quiet(runner, trained_model_dir, monkeypatch):
    """A reader that goes away (`predict ... | head -1`) is not reported as an error."""
    from imdb_rnn.cli import predict as cli

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_write_predictions", closed)
    result = runner.invoke(app, ["predict", str(trained_model_dir), "A fine film."])
    assert result.exit_code == EXIT_INTERNAL and result.stderr == ""


def test_predict_file_latin1_and_utf8(runner, tmp_path, trained_model_dir):
    """--file reads one review per line, UTF-8 or Latin-1 (a blank line is a row too); only
    line feeds end a review (IMDB reviews hold U+0085 and U+2028)."""
    path = tmp_path / "reviews.txt"
    path.write_bytes("Caf\xe9 film was great\r\n\nterrible\n".encode("latin-1"))
    predictions = parsed_json(
        runner.invoke(app, ["predict", str(trained_model_dir), "--file", str(path), "--json"])
    )
    assert [p["text"] for p in predictions] == ["Café film was great", "", "terrible"]
    path.write_text("odd\x85word and\u2028more\nsecond\n", encoding="utf-8")
    predictions = parsed_json(
        runner.invoke(app, ["predict", str(trained_model_dir), "--file", str(path), "--json"])
    )
    assert [p["text"] for p in predictions] == ["odd\x85word and\u2028more", "second"]


@pytest.mark.slow
def test_predict_ten_thousand_reviews_from_stdin(runner, trained_model_dir):
    """10,000 reviews on stdin come back as 10,000 predictions, in order."""
    reviews = [f"review {index} was {'great' if index % 2 else 'awful'}" for index in range(10_000)]
    result = runner.invoke(
        app, ["predict", str(trained_model_dir), "-", "--json"], input="\n".join(reviews) + "\n"
    )
    predictions = parsed_json(result)
    assert [p["text"] for p in predictions] == reviews


@pytest.mark.slow
def test_predict_streams_stdin_while_it_is_still_open(trained_model_dir):
    """`predict --file - --format jsonl` in a new process answers the first chunk of 1,024
    texts before stdin ends (stdin is streamed, not read whole), then the rest, in order."""
    command = [sys.executable, "-m", "imdb_rnn", "predict", str(trained_model_dir)]
    process = subprocess.Popen(
        [*command, "--file", "-", "--input-format", "csv", "--format", "jsonl"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write("id,text\n")
        process.stdin.writelines(f"{index},a great film {index}\n" for index in range(1024))
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 240)
        assert ready, "no prediction came back while stdin was open"
        first = [json.loads(process.stdout.readline()) for _ in range(1024)]
        assert [row["text"] for row in first] == [f"a great film {i}" for i in range(1024)]
        process.stdin.write("1024,an awful film\n")
        process.stdin.close()
        rest = [json.loads(line) for line in process.stdout.read().splitlines()]
        assert [row["text"] for row in rest] == ["an awful film"]
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_predict_explainparsed_json(runner, trained_model_dir):
    """predict --explain --json gives each prediction an explanation list of {word, weight}."""
    predictions = parsed_json(
        runner.invoke(
            app, ["predict", str(trained_model_dir), "--explain", "--json", "Superb film!", "?!"]
        )
    )
    assert [p["text"] for p in predictions] == ["Superb film!", "?!"]
    words = {entry["word"]: entry["weight"] for entry in predictions[0]["explanation"]}
    assert set(words) == {"superb", "film"} and words["superb"] > 0
    assert predictions[1]["explanation"] == []


def test_predict_explain_colours_words(trained_model_dir):
    """predict --explain renders the review with its strongest words coloured."""
    result = CliRunner().invoke(
        app,
        ["predict", str(trained_model_dir), "--explain", "great superb film, awful [/] plot"],
        env={"FORCE_COLOR": "1", "COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "\x1b[1;32mgreat" in result.stdout or "\x1b[1;32msuperb" in result.stdout
    assert "\x1b[1;31mawful" in result.stdout or "\x1b[31mawful" in result.stdout
    assert "towards pos:" in result.stdout and "[/]" in result.stdout


def test_predict_table_shows_brackets_literally(runner, trained_model_dir):
    """A review holding Rich markup such as "[/]" is printed as written, not interpreted."""
    result = runner.invoke(app, ["predict", str(trained_model_dir), "x [/] [bold]y"])
    assert result.exit_code == 0, result.output
    assert "[/] [bold]y" in result.stdout


def test_predict_table_is_not_cut_when_piped(runner, trained_model_dir):
    """Piped output (not a terminal) keeps whole texts: no 80-column cut, no ellipsis."""
    review = "a great superb film " * 12
    result = runner.invoke(app, ["predict", str(trained_model_dir), review])
    assert result.exit_code == 0, result.output
    assert review.strip() in result.stdout and "…" not in result.stdout


def test_predict_threshold_and_formats(runner, tmp_path, trained_model_dir):
    """--threshold 0 makes every review positive; --json equals --format json."""
    args = ["predict", str(trained_model_dir), "awful boring mess", "great film"]
    as_json = parsed_json(runner.invoke(app, [*args, "--json", "--threshold", "0"]))
    assert [row["label"] for row in as_json] == ["pos", "pos"]
    assert (
        parsed_json(runner.invoke(app, [*args, "--format", "json", "--threshold", "0"])) == as_json
    )
    result = runner.invoke(app, [*args, "--threshold", "1.5"])
    one_clear_line(result, EXIT_USAGE, "--threshold")


def test_predict_keeps_the_rows_of_a_csv_with_an_id_and_a_blank_row(runner, trained_model_dir):
    """A CSV streamed on stdin with an id column and a blank row comes out with the same
    number of rows, in the same order; --id-column carries only the id, the default all."""
    stdin = "id,text,source\n1,a great film,web\n2,,web\n3,awful boring mess,mail\n"
    long_row = "4," + "long " * 20_001 + ",web\n"  # over 100,000 characters: not scored
    args = ["predict", str(trained_model_dir), "--file", "-", "--input-format", "csv"]
    result = runner.invoke(app, [*args, "--format", "csv", "--id-column", "id"], input=stdin)
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0][:2] == ["id", "label"] and table[0][-1] == "reason"
    assert [row[0] for row in table[1:]] == ["1", "2", "3"]
    assert table[2][1:3] == ["", ""] and table[2][-1] == "blank"
    assert "1 of 3 rows could not be scored (blank: 1)" in " ".join(result.stderr.split())
    result = runner.invoke(app, [*args, "--format", "csv"], input=stdin + long_row)
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["reason"] for row in table] == ["", "blank", "", "too long"]
    result = runner.invoke(app, [*args, "--format", "jsonl"], input=stdin)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["id"], row["source"], row["reason"]) for row in rows] == [
        ("1", "web", None),
        ("2", "web", "blank"),
        ("3", "mail", None),
    ]
    result = runner.invoke(app, [*args, "--keep-columns", "source"], input=stdin)
    assert result.exit_code == 0 and "(blank)" in result.stdout


def test_predict_explain_says_no_known_words(runner, trained_model_dir):
    """--explain on a text of unknown words says so instead of weighing them."""
    result = runner.invoke(app, ["predict", str(trained_model_dir), "--explain", "zzzz qqqq"])
    assert result.exit_code == 0, result.output
    assert "no known words" in result.stdout and "towards" not in result.stdout


@pytest.mark.slow
def test_predict_streams_a_large_file_in_chunks(runner, tmp_path, trained_model_dir, monkeypatch):
    """A file of many lines is predicted a chunk at a time, every row written, in order."""
    from imdb_rnn.cli import predict as cli

    monkeypatch.setattr(cli, "_CHUNK", 100)
    seen = []
    original = predictor.Predictor.predict

    def counting(self, texts):
        seen.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(predictor.Predictor, "predict", counting)
    path = tmp_path / "many.txt"
    path.write_text("".join(f"review {i} was great\n" for i in range(450)), encoding="utf-8")
    result = runner.invoke(
        app, ["predict", str(trained_model_dir), "--file", str(path), "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == [f"review {i} was great" for i in range(450)]
    assert seen == [100, 100, 100, 100, 50]
