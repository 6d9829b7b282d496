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

from imdb_rnn import files
from imdb_rnn.cli._app import app
from imdb_rnn.data import textio
from imdb_rnn.data.sources import label_names_of, read_texts
from imdb_rnn.errors import EXIT_DATA, EXIT_USAGE, DataError


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


def test_outputs_never_replace_a_character_device(tmp_path):
    """`-o` onto a character device (a null device made in tmp_path, or a link to it) is
    refused; the node stays a device (as root, `-o /dev/full` replaced the real one)."""
    import stat

    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("making a device node needs privileges here")
    (tmp_path / "link").symlink_to(device)
    model = _fake_model_folder(tmp_path / "m")
    for target in (device, tmp_path / "link"):
        result = _invoke("predict", model, "x", "-o", target)
        assert result.exit_code == EXIT_USAGE, result.output
    assert stat.S_ISCHR(device.lstat().st_mode) and (tmp_path / "link").is_symlink()


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
    from imdb_rnn.data.wordvectors import vector_dimension
    from imdb_rnn.errors import WordVectorsError

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
    from imdb_rnn.config.toml import read_config_file

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


# -- 2. train --output never trains into, nor deletes, a folder of someone else's files -----------

TINY_TRAIN = [
    "--max-tokens",
    "50",
    "--embedding-dim",
    "8",
    "--rnn-units",
    "4",
    "--dense-units",
    "4",
    "--epochs",
    "1",
    "--pseudo-label-threshold",
    "0",
]


def _user_folder(path):
    """A folder of a user's files whose names are those of a run's files."""
    (path / "logs").mkdir(parents=True)
    (path / "checkpoint").mkdir()
    (path / "README.md").write_text("my notes")
    (path / "config.json").write_text('{"mine": true}')
    (path / "logs" / "x").write_text("my log")
    (path / "checkpoint" / "notes.txt").write_text("my checkpoint notes")
    return path


def test_train_refuses_a_folder_that_is_not_a_run(tmp_path, imdb_archive):
    """`train --output` onto a folder of the user's files is refused (exit code 2) before any
    data is read; every file stays (they were overwritten and `logs/`, `checkpoint/` deleted)."""
    folder = _user_folder(tmp_path / "mine")
    result = _invoke("train", "--data", imdb_archive, "--output", folder, *TINY_TRAIN)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "not an imdb-rnn run" in result.output and "--overwrite" in result.output
    assert "Reading data" not in result.output
    assert (folder / "README.md").read_text() == "my notes"
    assert (folder / "logs" / "x").read_text() == "my log"
    assert (folder / "checkpoint" / "notes.txt").read_text() == "my checkpoint notes"


@pytest.mark.slow
def test_train_overwrite_into_a_user_folder_deletes_none_of_its_files(tmp_path, imdb_archive):
    """With --overwrite the run is trained into the folder: files of the run's names are
    replaced, and nothing else is deleted (not `logs/x`, not `checkpoint/notes.txt`)."""
    folder = _user_folder(tmp_path / "mine")
    result = _invoke(
        "train", "--data", imdb_archive, "--output", folder, "--overwrite", *TINY_TRAIN
    )
    assert result.exit_code == 0, result.output
    assert (folder / "model.keras").is_file()
    assert (folder / "logs" / "x").read_text() == "my log"
    assert (folder / "checkpoint" / "notes.txt").read_text() == "my checkpoint notes"
    assert sorted(path.name for path in (folder / "checkpoint").iterdir()) == ["notes.txt"]


def test_a_run_stopped_before_its_first_checkpoint_is_still_a_run(tmp_path):
    """A folder holding only what a run writes first (its write test, its mark, the
    checkpoint's vocabulary) is resumed, not refused as someone else's."""
    from imdb_rnn.modeldir import check_output, check_writable

    probing = tmp_path / "probing"  # another worker of a cluster is probing it right now
    probing.mkdir()
    (probing / ".imdb-rnn-write-test-123").write_text("")
    (probing / "..imdb-rnn-run.k2j4.tmp").write_text("")
    assert check_output(probing, overwrite=False) is False
    folder = tmp_path / "run"
    check_writable(folder)
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "vocabulary.json").write_text("[]")
    assert check_output(folder, overwrite=False) is False


@pytest.mark.parametrize("where", ["model_dir", "inside", "data_parent"])
def test_train_output_never_lands_in_a_model_folder_or_on_the_data(tmp_path, where):
    """`--output runs/m/checkpoint` (inside a model folder), `--output data/` holding `--train`
    and `--output` inside the `--train` folder are refused, exit code 2."""
    model = _fake_model_folder(tmp_path / "m")
    data = tmp_path / "data"
    (data / "pos").mkdir(parents=True)
    (data / "neg").mkdir()
    train = data / "train.csv"
    train.write_text("text,label\na,pos\nb,neg\n")
    output, source = {
        "model_dir": (model / "checkpoint", train),
        "inside": (data / "pos" / "run", data),
        "data_parent": (data, train),
    }[where]
    result = _invoke("train", "--train", source, "--output", output, *TINY_TRAIN)
    assert result.exit_code == EXIT_USAGE, result.output
    assert not (model / "checkpoint").exists()
    assert not (data / "pos" / "run").exists()


# -- 4, 5. one fingerprint: see test_checkpoints.py::test_resume_refuses_other_data_of_the_same_size
# and test_selftrain.py::test_train_trains_a_teacher_then_a_student_and_reuses_the_teacher.

# -- 7. eval refuses data whose labels the model lacks ---------------------------------------------


def test_eval_refuses_imdb_data_for_a_model_of_other_classes(monkeypatch, imdb_archive):
    """`eval TREC_MODEL --data aclImdb_v1.tar.gz` is refused (it scored neg / pos as two TREC
    classes, exit code 0)."""
    from imdb_rnn.inference import workflows

    class OtherClasses:
        label_names = ("ABBR", "DESC", "HUM")

    monkeypatch.setattr(workflows.Classifier, "load", classmethod(lambda cls, path: OtherClasses()))
    with pytest.raises(DataError, match="not IMDB's neg, pos"):
        workflows.evaluate("runs/trec", source=imdb_archive)


# -- 8. bounds that hold ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        (["--batch-size", str(2**31)], "batch_size of at most 65,536"),
        (["--batch-size", str(2**63 - 1)], "batch_size of at most 65,536"),
        (["--ensemble-size", "1000000"], "ensemble_size of at most 100"),
        (
            ["--ensemble-size", "10", "--max-tokens", "10000000", "--embedding-dim", "64"],
            "parameters in all",
        ),
    ],
)
def test_huge_batches_and_ensembles_are_usage_errors(arguments, needle):
    """`--batch-size 2147483648` (hung), `9223372036854775807` (internal error), an ensemble of a
    million, or one whose members together pass the parameter cap: exit code 2."""
    result = _invoke("train", *arguments, "--show-config")
    assert result.exit_code == EXIT_USAGE, result.output
    assert needle in " ".join(result.output.split())


def test_huge_eval_batch_size_in_a_config_file_is_a_usage_error(tmp_path):
    """`eval_batch_size = 2147483648` in TOML is refused (it aborted with std::bad_alloc)."""
    (tmp_path / "c.toml").write_text("[data]\neval_batch_size = 2147483648\n")
    result = _invoke("train", "--config", tmp_path / "c.toml", "--show-config")
    assert result.exit_code == EXIT_USAGE, result.output
    assert "eval_batch_size of at most" in result.output


def test_too_many_classes_are_refused(tmp_path):
    """A training file of 1,001 classes is refused (3,000 made a 99.5 MB metrics.json)."""
    from imdb_rnn.data.sources import TextFiles, load_text_files

    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"text {n},c{n}\n" for n in range(1001)))
    with pytest.raises(DataError, match="at most 1,000 classes"):
        load_text_files(TextFiles(train=path), splits=["train"])


def test_confusion_picture_of_too_many_classes_is_refused(tmp_path):
    """A confusion picture of 51 classes is refused before drawing (3,000 took over 4 GB)."""
    from imdb_rnn.deploy.plots import save_confusion_matrix

    labels = [f"c{n}" for n in range(51)]
    with pytest.raises(ValueError, match="at most 50 classes"):
        save_confusion_matrix([[0] * 51] * 51, tmp_path / "c.png", labels=labels)
    assert not list(tmp_path.iterdir())


# -- 10. escape sequences in labels and texts never reach the terminal ----------------------------


def _rendered(*renderables):
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return out.getvalue()


def test_escape_sequences_in_labels_and_texts_are_shown_escaped():
    """An ESC in a label (predict's table, eval's tables) or in a review without known words
    (--explain) is shown as `\\x1b`, never sent raw."""
    from rich.console import Console

    from imdb_rnn.cli import _render as cli

    label = "\x1b]0;owned\x07HUM"
    row = {
        "text": "\x1b[2Jzzz",
        "label": label,
        "score": 0.9,
        "scores": {label: 0.9, "LOC": 0.1},
        "known_words": 0,
        "explanation": [{"word": "zzz", "weight": 0.0}],
        "explained": label,
    }
    metrics = {
        "labels": [label, "LOC", "NUM"],
        "per_class": [
            {"label": name, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
            for name in (label, "LOC", "NUM")
        ],
        "macro_f1": 1.0,
        "examples": 3,
        "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    }
    shown = _rendered(
        cli.prediction_table([row], (label, "LOC", "NUM"), first=True),
        *cli.class_tables(metrics),
    )
    out = io.StringIO()
    cli.print_explanations([row], console=Console(file=out, width=200, color_system=None))
    for text in (shown, out.getvalue()):
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b" in text


# -- weaker cases ----------------------------------------------------------------------------------


def test_duplicate_csv_headers_are_refused(tmp_path):
    """A header naming `text` twice is refused (the last column was used silently)."""
    path = tmp_path / "train.csv"
    path.write_text("text,label,text\na,x,b\n")
    with pytest.raises(DataError, match="'text' more than once"):
        read_texts(path)
    with pytest.raises(DataError, match="more than once"):
        list(textio.read_texts_from_stream(io.BytesIO(b"text,text\na,b\n"), input_format="csv"))


def test_labels_are_read_as_written_and_in_one_normal_form(tmp_path):
    """JSON `true` is the class "true" (not "True"), and "é" typed as one character or as two
    is one class (it made two)."""
    path = tmp_path / "train.jsonl"
    rows = [
        {"text": "a", "label": True},
        {"text": "b", "label": "caf\u00e9"},
        {"text": "c", "label": "cafe\u0301"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert read_texts(path).labels == ["true", "caf\u00e9", "caf\u00e9"]


def test_labels_file_with_a_repeated_name_is_refused(tmp_path):
    """A `labels.json` naming one class twice is a damaged model (it was accepted)."""
    from imdb_rnn.errors import ModelFileError
    from imdb_rnn.modeldir import read_labels

    (tmp_path / "labels.json").write_text('["HUM", "LOC", "HUM"]')
    with pytest.raises(ModelFileError, match="distinct class names"):
        read_labels(tmp_path, 3)


@pytest.mark.slow
def test_sigterm_during_predict_output_leaves_no_temporary_file(trained_model_dir, tmp_path):
    """SIGTERM while `predict - -o out.csv` waits for more input stops it (exit code 143) and
    removes its hidden temporary file (it was left behind, also after a later run)."""
    import signal
    import time

    command = ["predict", str(trained_model_dir), "-", "--format", "csv", "-o"]
    process = subprocess.Popen(
        [sys.executable, "-m", "imdb_rnn", *command, str(tmp_path / "out.csv")],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(b"a great film\n" * 1100)  # a first chunk, then it waits for more
    process.stdin.flush()
    deadline = time.monotonic() + 120

    def first_chunk_written() -> bool:
        return any(path.stat().st_size > 0 for path in tmp_path.glob(".out.*"))

    # The first chunk's rows are written: the command now waits for more input.
    while not first_chunk_written() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first_chunk_written(), "no temporary file with the first rows appeared"
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    assert code == 128 + signal.SIGTERM, process.stderr.read().decode()[-2000:]
    process.stdin.close()
    assert list(tmp_path.iterdir()) == []


def test_eval_on_a_split_of_one_class_warns(trained_model_dir, tmp_path):
    """A test file holding one class only is scored with a warning (99 % said nothing)."""
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.workflows import evaluate

    path = tmp_path / "test.csv"
    path.write_text("text,label\n" + "a great film,pos\nsuperb and moving,pos\n" * 5)
    stages: list[str] = []
    evaluate(trained_model_dir, source=TextFiles(test=path), on_stage=stages.append)
    assert any("holds texts of one class only (pos)" in stage for stage in stages)
