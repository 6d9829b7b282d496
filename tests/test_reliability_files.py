"""Attacks of issue "Reliability III": no command destroys a file it was not asked to write, every
reader follows one input rule, and every bound holds. Each test fails on the behaviour before the
fix and shows what the attack gets now; none needs a trained model unless it says so."""

import inspect
import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from imdb_rnn import files, textio
from imdb_rnn.cli import EXIT_DATA, EXIT_USAGE, app
from imdb_rnn.datasets import DataError
from imdb_rnn.sources import label_names_of, read_texts


def _fake_model_folder(path):
    """A folder that looks like a model folder to the output rule (its model is not loadable:
    every refusal below comes before the model is read)."""
    path.mkdir()
    (path / "model.keras").write_bytes(b"the model")
    (path / "config.json").write_text("{}")
    return path


def _invoke(*arguments):
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


# -- 1. predict --output never replaces the model or its own input --------------------------------


def test_predict_output_onto_a_model_file_is_refused(tmp_path):
    """`predict runs/m x -o runs/m/model.keras` is refused (exit code 2); the model is untouched."""
    model = _fake_model_folder(tmp_path / "m")
    for name in ("model.keras", "config.json", "checkpoint/state.json"):
        result = _invoke("predict", model, "x", "--format", "json", "-o", model / name)
        assert result.exit_code == EXIT_USAGE, result.output
        assert "model folder" in result.output
    assert (model / "model.keras").read_bytes() == b"the model"
    assert not (model / "checkpoint").exists()


def test_predict_output_onto_its_input_file_is_refused(tmp_path):
    """`predict --file in.txt -o in.txt` (also through a symbolic or hard link) is refused."""
    model = _fake_model_folder(tmp_path / "m")
    source = tmp_path / "in.txt"
    source.write_text("a review\n")
    (tmp_path / "link.txt").symlink_to(source)
    os.link(source, tmp_path / "hard.txt")
    for target in (source, tmp_path / "link.txt", tmp_path / "hard.txt"):
        result = _invoke("predict", model, "--file", source, "--format", "csv", "-o", target)
        assert result.exit_code == EXIT_USAGE, result.output
        assert "inputs" in result.output
    assert source.read_text() == "a review\n"
    assert (tmp_path / "link.txt").is_symlink()


# -- 3. writes never replace special files ---------------------------------------------------------


def test_outputs_never_replace_a_fifo_or_a_link_to_one(tmp_path):
    """`-o FIFO`, `-o link-to-FIFO` and `eval --confusion-png FIFO` are refused at once (no
    hang), and the FIFO and the link stay what they were."""
    model = _fake_model_folder(tmp_path / "m")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    (tmp_path / "folder").mkdir()
    for target in (fifo, tmp_path / "link", tmp_path / "folder"):
        result = _invoke("predict", model, "x", "-o", target)
        assert result.exit_code == EXIT_USAGE, result.output
        assert "not a regular file" in result.output
        result = _invoke("eval", model, "--test", tmp_path / "t.csv", "--confusion-png", target)
        assert result.exit_code == EXIT_USAGE, result.output
    assert fifo.is_fifo() and not fifo.is_symlink()
    assert (tmp_path / "link").is_symlink() and os.readlink(tmp_path / "link") == str(fifo)


def test_output_rule_writes_through_a_link_to_a_regular_file(tmp_path):
    """A symbolic link to a regular file is written through: the link stays a link."""
    target = tmp_path / "real.json"
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    path = files.check_output_file(tmp_path / "link.json")
    assert path == target.resolve()
    files.write_text(path, "new")
    assert (tmp_path / "link.json").is_symlink() and target.read_text() == "new"


def test_output_rule_allows_a_new_file_beside_a_model(tmp_path):
    """`eval runs/m --confusion-png runs/m/confusion.png` is fine: a new name, directly in it."""
    model = _fake_model_folder(tmp_path / "m")
    assert files.check_output_file(model / "confusion.png") == (model / "confusion.png").resolve()
    with pytest.raises(files.OutputPathError):
        files.check_output_file(model / "teacher" / "confusion.png")


def test_rewritten_output_keeps_its_permissions(tmp_path):
    """An existing 0600 output stays 0600 when it is replaced (it became 0644)."""
    target = tmp_path / "private.json"
    target.write_text("old")
    target.chmod(0o600)
    files.write_text(target, "new")
    assert target.stat().st_mode & 0o777 == 0o600


def test_write_errors_name_the_user_s_path(tmp_path):
    """An error while writing names the target, not the hidden temporary file."""
    target = tmp_path / "out.json"
    with pytest.raises(OSError) as caught, files.atomic_path(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


# -- 6. the class order never depends on the process ----------------------------------------------


def test_class_order_does_not_depend_on_the_hash_seed():
    """Labels `1`, `01`, `+1` get one order, whatever PYTHONHASHSEED (they got four)."""
    code = (
        "from collections.abc import Iterable\n"
        + inspect.getsource(label_names_of)
        + "\nprint(label_names_of(['1', '01', '+1', '1', '001']))"
    )
    orders = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(12)
    }
    assert orders == {"('+1', '001', '01', '1')\n"}


# -- 8, 9, 11. one input rule for every reader ---------------------------------------------------


def test_data_file_linked_to_a_device_or_a_fifo_is_refused_at_once(tmp_path):
    """`--train link.csv` with `link.csv -> /dev/zero`, or a FIFO, is refused before any read
    (it grew past 2 GB, or hung)."""
    (tmp_path / "link.csv").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.jsonl")
    for path in (tmp_path / "link.csv", tmp_path / "fifo.jsonl"):
        with pytest.raises(DataError, match="not a regular file"):
            read_texts(path)


def test_word_vectors_from_a_device_are_refused(tmp_path):
    """`--word-vectors /dev/zero` (or a link to it) is refused at once."""
    from imdb_rnn.wordvectors import WordVectorsError, vector_dimension

    (tmp_path / "vectors.txt").symlink_to("/dev/zero")
    with pytest.raises(WordVectorsError, match="not a regular file"):
        vector_dimension(tmp_path / "vectors.txt")


def test_nul_bytes_in_a_training_csv_are_refused(tmp_path):
    """A CSV holding NUL bytes is binary data: refused with its line (it was accepted)."""
    path = tmp_path / "train.csv"
    path.write_bytes(b"text,label\ngood,pos\nb\x00d,neg\n")
    with pytest.raises(DataError, match=r"NUL bytes, line 3"):
        read_texts(path)


def test_csv_field_that_never_ends_is_stopped_at_the_limit(monkeypatch):
    """A quoted CSV field that never closes (on stdin) stops at the field limit instead of
    growing to gigabytes."""
    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 100)
    stream = io.BytesIO(b'text\n"' + b"ab\n" * 1000)
    with pytest.raises(DataError, match="field larger than field limit"):
        list(textio.read_texts_from_stream(stream, input_format="csv"))


def test_training_csv_field_over_the_review_limit_is_refused(tmp_path, monkeypatch):
    """A training CSV's field is bounded by IMDB_RNN_MAX_REVIEW_BYTES, as a review of --data."""
    monkeypatch.setenv(files.ENV_MAX_REVIEW_BYTES, "1000")
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"' + "word\n" * 1000 + '",pos\n')
    with pytest.raises(DataError, match="IMDB_RNN_MAX_REVIEW_BYTES"):
        read_texts(path)


def test_byte_order_marks_are_accepted_by_every_reader(tmp_path):
    """A UTF-8 BOM no longer breaks predict's CSV header, JSON Lines' first row or TOML."""
    from imdb_rnn.tomlconfig import read_config_file

    bom = b"\xef\xbb\xbf"
    (tmp_path / "q.csv").write_bytes(bom + b"text\nWho ?\n")
    texts = textio.read_texts_to_classify(tmp_path / "q.csv", input_format="csv")
    assert [text for text, _ in texts] == ["Who ?"]
    (tmp_path / "q.jsonl").write_bytes(bom + b'{"text": "Who ?"}\n')
    texts = textio.read_texts_to_classify(tmp_path / "q.jsonl", input_format="jsonl")
    assert [text for text, _ in texts] == ["Who ?"]
    (tmp_path / "train.jsonl").write_bytes(bom + b'{"text": "a", "label": "x"}\n')
    assert read_texts(tmp_path / "train.jsonl").texts == ["a"]
    (tmp_path / "c.toml").write_bytes(bom + b"[training]\nepochs = 2\n")
    assert read_config_file(tmp_path / "c.toml") == {"training": {"epochs": 2}}


def test_own_data_folders_skip_symbolic_links_and_hidden_folders(tmp_path):
    """A class folder or file that is a symbolic link (to /etc/passwd ...) is not read, nor a
    hidden folder (`.ipynb_checkpoints`) taken for a class."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0 secret words")
    root = tmp_path / "data"
    for label in ("neg", "pos"):
        (root / label).mkdir(parents=True)
        (root / label / "1.txt").write_text(f"a {label} text")
    (root / "pos" / "2.txt").symlink_to(outside / "secret.txt")
    (root / "linked").symlink_to(outside)
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "x.txt").write_text("notebook noise")
    table = read_texts(root)
    assert sorted(table.texts) == ["a neg text", "a pos text"]
    assert sorted(set(table.labels or [])) == ["neg", "pos"]


def test_predict_csv_with_a_bom_from_the_command_line(tmp_path):
    """`predict --file q.csv` with a BOM reads its header (it said "has no column 'text'")."""
    (tmp_path / "q.csv").write_bytes(b"\xef\xbb\xbftext\n\x00\n")
    model = _fake_model_folder(tmp_path / "m")
    result = _invoke("predict", model, "--file", tmp_path / "q.csv")
    assert result.exit_code == EXIT_DATA, result.output
    assert "NUL bytes" in result.output and "no column" not in result.output


def test_jsonl_reader_names_a_bad_first_row_only_when_it_is_bad(tmp_path):
    """The BOM-prefixed first JSON Lines row is a row, not "not a JSON object"."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    table = read_texts(path)
    assert table.texts == ["a", "b"] and json.dumps(table.labels) == '["x", "y"]'
