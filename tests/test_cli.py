"""Tests for the `imdb-rnn` command line, through Typer's runner and real subprocesses."""

import collections
import csv
import errno
import io
import json
import select
import shutil
import signal
import subprocess
import sys
import time

import keras
import pytest
from typer.testing import CliRunner

from conftest import (
    build_reviews,
    predict_in_new_process,
    write_archive,
    write_unknown_class_model,
)
from imdb_rnn import files, progress
from imdb_rnn.cli.commands import (
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_MODEL,
    EXIT_USAGE,
    app,
)
from imdb_rnn.inference import predictor
from imdb_rnn.training import checkpoints

TINY = [
    "--max-tokens",
    "50",
    "--embedding-dim",
    "8",
    "--rnn-units",
    "4",
    "--dense-units",
    "4",
    "--batch-size",
    "8",
    "--learning-rate",
    "0.01",
    # The default's adversarial epsilon is sized for 64-d embeddings of 256-token reviews.
    "--adversarial-epsilon",
    "0",
    "--word-dropout",
    "0",
    # The default's self-training would train every model twice.
    "--pseudo-label-threshold",
    "0",
]


@pytest.fixture
def runner():
    return CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_does_not_import_tensorflow():
    """`imdb-rnn --help` (and importing the CLI, and `presets`) leaves TensorFlow and matplotlib
    unloaded."""
    code = (
        "import sys, imdb_rnn; from imdb_rnn.cli import app; "
        "print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    presets = (
        "import sys; from typer.testing import CliRunner; from imdb_rnn.cli import app; "
        "assert CliRunner().invoke(app, ['presets', 'deep']).exit_code == 0; "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", presets], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    help_run = subprocess.run(
        [sys.executable, "-m", "imdb_rnn", "--help"], capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "train" in help_run.stdout and "predict" in help_run.stdout


def test_refusals_come_before_tensorflow_is_imported(tmp_path):
    """A model already in --output, missing input files or model folders and bad options are
    refused with their exit codes before TensorFlow is imported (8-10 s)."""
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "model.keras").write_bytes(b"")
    cases = [
        (["train", "--output", f"{tmp_path}/done"], EXIT_USAGE),
        (["train", "--train", f"{tmp_path}/missing.csv", "--output", f"{tmp_path}/a"], EXIT_DATA),
        (["train", "--data", f"{tmp_path}/missing.tar.gz", "--output", f"{tmp_path}/b"], EXIT_DATA),
        (["train", "--preset", "huge", "--output", f"{tmp_path}/c"], EXIT_USAGE),
        (["eval", f"{tmp_path}/no-model"], EXIT_MODEL),
        (["eval", str(tmp_path)], EXIT_MODEL),
        (["predict", f"{tmp_path}/no-model", "A fine film."], EXIT_MODEL),
        (["export", f"{tmp_path}/no-model", f"{tmp_path}/out"], EXIT_MODEL),
    ]
    code = (
        "import sys, json; from typer.testing import CliRunner; from imdb_rnn.cli import app; "
        f"cases = json.loads({json.dumps(json.dumps(cases))}); "
        "codes = [CliRunner().invoke(app, args).exit_code for args, _ in cases]; "
        "print(json.dumps([codes, 'tensorflow' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    codes, imported = json.loads(done.stdout)
    assert codes == [expected for _, expected in cases] and imported is False
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_failed_run_leaves_no_folder_it_created(runner, tmp_path):
    """A run that fails before writing anything (here: a folder that is no aclImdb) removes
    the output folders it created, and only those."""
    (tmp_path / "data").mkdir()
    output = tmp_path / "new" / "run"
    result = runner.invoke(
        app, ["train", "--data", str(tmp_path / "data"), "--output", str(output), *TINY]
    )
    assert result.exit_code == EXIT_DATA, result.output
    assert not (tmp_path / "new").exists() and (tmp_path / "data").is_dir()


@pytest.mark.parametrize("command", ["train", "eval", "predict", "presets", "export", "serve"])
def test_every_command_has_help(runner, command):
    """Each command explains itself."""
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_train_json_then_eval_and_predict(runner, tmp_path, imdb_archive):
    """train --json writes a model and one JSON object; eval and predict use that model."""
    output = tmp_path / "run"
    summary = _json(
        runner.invoke(
            app,
            [
                "train",
                "--data",
                str(imdb_archive),
                "--output",
                str(output),
                "--epochs",
                "2",
                "--json",
                *TINY,
            ],
        )
    )
    assert {
        "output",
        "epochs",
        "train_seconds",
        "train_examples_per_second",
        "history",
        "test",
    } <= set(summary)
    assert {"loss", "accuracy"} <= set(summary["test"]) and summary["epochs"] == 2
    assert (output / "model.keras").is_file()
    # What ran the recurrent layers, as metrics.json records it.
    metrics_file = json.loads((output / "metrics.json").read_text())
    assert summary["rnn_kernel"] == metrics_file["rnn_kernel"]
    assert summary["rnn_kernel"] in ("native", "tensorflow", "cudnn")

    metrics = _json(
        runner.invoke(app, ["eval", str(output), "--data", str(imdb_archive), "--json"])
    )
    assert {
        "loss",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "examples",
        "seconds",
        "examples_per_second",
    } <= set(metrics)
    assert metrics["accuracy"] == pytest.approx(summary["test"]["accuracy"])

    result = runner.invoke(
        app,
        ["predict", str(output), "great superb film", "-", "--json"],
        input="awful boring mess\n\ndull worst film\n",
    )
    predictions = _json(result)
    assert [p["text"] for p in predictions] == [
        "great superb film",
        "awful boring mess",
        "",
        "dull worst film",
    ]
    assert predictions[2]["reason"] == "blank" and predictions[2]["probability"] is None
    del predictions[2]
    assert all(p["label"] in ("pos", "neg") and 0 <= p["probability"] <= 1 for p in predictions)


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["predict"], ["export"]])
def test_help_shows_no_type_beside_flags(runner, command):
    """--help labels options that take a value with their type (`<int>`, `<path>`) and flags,
    which take none, with nothing (Typer would print `<bool>`)."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout and "<bool>" not in result.stdout
    if command:
        assert "<path>" in result.stdout or "<int>" in result.stdout


def test_help_shows_brackets_and_every_preset(runner):
    """Help texts are not read as Rich markup (which swallowed `[default: preset's]` and the
    `[serve]` of the install line), and --preset names every preset."""
    from imdb_rnn.config import PRESETS

    train_help = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).stdout
    assert "[default: preset's]" in train_help
    assert all(name in train_help for name in PRESETS)
    serve_help = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "300"}).stdout
    assert 'pip install "imdb-rnn[serve]"' in serve_help


def test_help_into_a_closed_pipe_is_quiet():
    """`imdb-rnn train --help | head -1`: the closed pipe ends the command without a message."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "imdb_rnn", "train", "--help"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_INTERNAL and done.stderr == ""


@pytest.mark.slow
def test_eval_prints_no_tensorflow_log_lines(trained_model_dir, imdb_archive):
    """`imdb-rnn eval` on a CPU machine prints its stages on stderr and no TensorFlow C++ log
    line (start-up, "failed call to cuInit", oneDNN), without TF_CPP_MIN_LOG_LEVEL set."""
    import os

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "imdb_rnn", "eval", str(trained_model_dir)]
    done = subprocess.run(
        [*command, "--data", str(imdb_archive)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if not line.startswith("»")] == []


def test_python_warnings_of_tensorflow_and_absl_are_silenced(monkeypatch):
    """absl's warnings (TFDS' "Variant folder ... has no dataset_info.json" before the offline
    error) and TensorFlow's ("tf.function retracing") are not shown by the commands, nor the
    native kernel's compile, which they say as a stage."""
    import logging

    from imdb_rnn.cli.commands import _quiet_tensorflow

    names = ("absl", "tensorflow", "imdb_rnn.native")
    saved = {name: logging.getLogger(name).level for name in names}
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        for name in names:
            logging.getLogger(name).setLevel(logging.NOTSET)
        _quiet_tensorflow()
        for name in names:
            assert not logging.getLogger(name).isEnabledFor(logging.WARNING), name
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def test_predictions_into_a_closed_pipe_are_quiet(runner, trained_model_dir, monkeypatch):
    """A reader that goes away (`predict ... | head -1`) is not reported as an error."""
    from imdb_rnn.cli import commands as cli

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_write_predictions", closed)
    result = runner.invoke(app, ["predict", str(trained_model_dir), "A fine film."])
    assert result.exit_code == EXIT_INTERNAL and result.stderr == ""


@pytest.mark.parametrize(("count", "words"), [(1, "1 epoch"), (2, "2 epochs")])
def test_counts_agree_with_their_noun(count, words):
    """ "after 1 epoch", not "after 1 epochs"."""
    from imdb_rnn.cli.commands import _plural

    assert _plural(count, "epoch") == words


def test_stages_are_reported_in_flags():
    """A stage message naming a Python argument (`TextFiles(unlabelled=PATH)`) is shown as the
    option that sets it."""
    import io

    from rich.console import Console

    from imdb_rnn.cli.commands import _stage_printer

    out = io.StringIO()
    _stage_printer(Console(file=out, width=200), True)("give texts (TextFiles(unlabelled=PATH))")
    assert "give texts (--unlabelled PATH)" in out.getvalue()


@pytest.mark.slow
def test_train_prints_results_on_stdout(runner, tmp_path, imdb_archive):
    """train's results (the test table, the summary) go to stdout, like eval's, so that
    `train > log` keeps them; stages and progress stay on stderr. The summary names the epoch
    whose weights were kept."""
    output = tmp_path / "run"
    args = ["train", "--data", str(imdb_archive), "--output", str(output), "--epochs", "2"]
    result = runner.invoke(app, [*args, "--no-tensorboard", *TINY])
    assert result.exit_code == 0, result.output
    assert "Test split" in result.stdout and "accuracy" in result.stdout
    words = " ".join(result.stdout.split())  # Rich wraps long lines
    kept = json.loads((output / "metrics.json").read_text())["best_epoch"]
    assert "Saved to" in words and f"after 2 epochs (kept epoch {kept}" in words
    assert "s all told (training this model:" in words
    saved = [line for line in result.stdout.splitlines() if line.startswith("Saved to")]
    assert saved[0].endswith("reviews/s)."), saved  # one line, not cut at 80 columns
    assert "best epoch" not in result.stdout
    assert "» Reading data" in result.stderr
    assert "Test split" not in result.stderr and "Saved to" not in result.stderr


@pytest.mark.parametrize(
    ("kept", "epochs", "words"),
    [(3, 3, "kept epoch 3"), (1, 3, "kept epoch 1, the best on validation")],
)
def test_summary_names_the_kept_epoch(kept, epochs, words):
    """The last epoch is "kept"; an earlier one was restored as the best on validation."""
    from imdb_rnn.cli.commands import _kept_epoch

    assert _kept_epoch(kept, epochs) == words


def test_train_refuses_to_overwrite(runner, trained_model_dir, imdb_archive):
    """A finished model in --output is not silently replaced."""
    result = runner.invoke(
        app, ["train", "--data", str(imdb_archive), "--output", str(trained_model_dir)]
    )
    assert result.exit_code == EXIT_USAGE and "--overwrite" in result.stderr


def test_eval_confusion_png(runner, tmp_path, trained_model_dir, imdb_archive):
    """eval --confusion-png saves a picture of the confusion matrix that decodes."""
    import matplotlib.image

    path = tmp_path / "confusion.png"
    args = ["eval", str(trained_model_dir), "--data", str(imdb_archive), "--json"]
    _json(runner.invoke(app, [*args, "--confusion-png", str(path)]))
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 300


def test_eval_table(runner, tmp_path, trained_model_dir, imdb_archive):
    """eval without --json renders a table with accuracy and the confusion matrix, and says
    where --confusion-png wrote."""
    picture = tmp_path / "confusion.png"
    args = ["eval", str(trained_model_dir), "--data", str(imdb_archive), "--split", "valid"]
    result = runner.invoke(app, [*args, "--confusion-png", str(picture)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "true pos" in result.stdout
    assert f"Confusion matrix: {picture}" in result.stdout and picture.is_file()


def test_eval_valid_warns_about_a_limited_training_pool(runner, tmp_path, trained_model_dir):
    """`eval --split valid` on a model trained with --limit warns that the full validation split
    holds its training reviews, and names the --limit that gives its own; with it, no warning."""
    model = tmp_path / "limited"
    shutil.copytree(trained_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["data"]["limit"] = 30
    (model / "config.json").write_text(json.dumps(config))
    archive = write_archive(tmp_path / "a.tar.gz", build_reviews(train=20, test=5, unsup=0))
    args = ["eval", str(model), "--data", str(archive), "--split", "valid", "--json"]
    warned = runner.invoke(app, args)
    assert warned.exit_code == 0, warned.output
    assert "warning:" in warned.stderr and "Evaluate with --limit 30" in warned.stderr
    same = runner.invoke(app, [*args, "--limit", "30"])
    assert same.exit_code == 0 and "warning" not in same.stderr


def test_predict_file_latin1_and_utf8(runner, tmp_path, trained_model_dir):
    """--file reads one review per line, UTF-8 or Latin-1 (a blank line is a row too); only
    line feeds end a review (IMDB reviews hold U+0085 and U+2028)."""
    path = tmp_path / "reviews.txt"
    path.write_bytes("Caf\xe9 film was great\r\n\nterrible\n".encode("latin-1"))
    predictions = _json(
        runner.invoke(app, ["predict", str(trained_model_dir), "--file", str(path), "--json"])
    )
    assert [p["text"] for p in predictions] == ["Café film was great", "", "terrible"]
    path.write_text("odd\x85word and\u2028more\nsecond\n", encoding="utf-8")
    predictions = _json(
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
    predictions = _json(result)
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


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["train", "--epochs", "0"], EXIT_USAGE, "epochs"),
        (["train", "--limit", "0"], EXIT_USAGE, "limit"),
        (["train", "--preset", "huge", "--output", "{tmp}/a"], EXIT_USAGE, "preset"),
        (["train", "--cell", "rnn", "--output", "{tmp}/b"], EXIT_USAGE, "cell"),
        (["train", "--dropout", "1.5", "--output", "{tmp}/c"], EXIT_USAGE, "dropout"),
        (["train", "--rnn-units", "-3", "--output", "{tmp}/d"], EXIT_USAGE, "rnn_units"),
        (
            ["train", "--data", "{tmp}/missing.tar.gz", "--output", "{tmp}/e"],
            EXIT_DATA,
            "(--data or IMDB_RNN_DATA)",
        ),
        (["eval", "{tmp}/no-model"], EXIT_MODEL, "No model directory"),
        (["eval", "{tmp}"], EXIT_MODEL, "holds no model.keras"),
        (["predict", "{tmp}/no-model", "text"], EXIT_MODEL, "No model directory"),
        (["predict", "{tmp}"], EXIT_USAGE, "No reviews"),
        (["train", "--batch-size", "0", "--output", "{tmp}/f"], EXIT_USAGE, "batch_size"),
        (["train", "--embedding-dim", "-1", "--output", "{tmp}/g"], EXIT_USAGE, "embedding_dim"),
        (["train", "--learning-rate", "0", "--output", "{tmp}/h"], EXIT_USAGE, "learning_rate"),
        (
            ["train", "--checkpoint-every", "0", "--output", "{tmp}/i"],
            EXIT_USAGE,
            "checkpoint_every_steps",
        ),
        (["train", "--pipeline", "fast", "--output", "{tmp}/j"], EXIT_USAGE, "pipeline"),
        (
            ["train", "--data", "{tmp}", "--output", "{tmp}/k"],
            EXIT_DATA,
            "not an aclImdb folder",
        ),
        (["eval", "{tmp}", "--limit", "0"], EXIT_USAGE, "--limit"),
        (["predict", "{tmp}", "a fine film", ""], EXIT_USAGE, "Review 2 is empty"),
        (["predict", "{tmp}", "   "], EXIT_USAGE, "Review 1 is empty"),
        (["predict", "{tmp}", "--file", "{tmp}/missing.txt"], EXIT_DATA, "Cannot read"),
    ],
)
def test_user_mistakes_get_one_clear_line(runner, tmp_path, args, code, needle):
    """A user's mistake prints one line on stderr, no traceback, and a distinct exit code."""
    result = runner.invoke(app, [arg.replace("{tmp}", str(tmp_path)) for arg in args])
    _one_clear_line(result, code, needle)


@pytest.mark.parametrize(
    ("library", "command_line"),
    [
        ("Pass resume=False to start over.", "Pass --overwrite to start over."),
        ("pass overwrite=True to replace it.", "pass --overwrite to replace it."),
        ("Pass the same source= to resume it", "Pass the same --data to resume it"),
        ("pass it as source=PATH (or set X)", "pass it as --data PATH (or set X)"),
        ("(source= or IMDB_RNN_DATA)", "(--data or IMDB_RNN_DATA)"),
        ("choose another output=", "choose another --output"),
        ("an output= folder", "an --output folder"),
        ("/data/output=1/source=2 stays", "/data/output=1/source=2 stays"),
        ("my_output=3, resume=True", "my_output=3, resume=True"),
    ],
)
def test_library_errors_are_reported_in_flags(library, command_line):
    """The library's errors name Python arguments; the CLI reports them as its options."""
    from imdb_rnn.cli.commands import _in_flags

    assert _in_flags(library) == command_line


def _one_clear_line(result, code, needle):
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    # Stage lines ("» Reading data") may come first; the problem itself is one line.
    problem = [line for line in result.stderr.splitlines() if line and not line.startswith("»")]
    assert len(problem) == 1 and problem[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _cut(path, tmp_path):
    data = path.read_bytes()
    (tmp_path / path.name).write_bytes(data[: len(data) // 2])
    return tmp_path / path.name


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda archive, tmp: _cut(archive, tmp), "truncated"),
        (
            lambda archive, tmp: write_archive(tmp / "x.tar.gz", {"a/b.txt": "hi"}, extra={}),
            "no aclImdb",
        ),
        (
            lambda archive, tmp: write_archive(
                tmp / "no-test.tar.gz",
                {k: v for k, v in build_reviews(train=5, test=5).items() if "/test/" not in k},
            ),
            "The test split",
        ),
    ],
    ids=["truncated", "not-imdb", "empty-split"],
)
def test_bad_data_gets_one_clear_line(runner, tmp_path, imdb_archive, make, needle):
    """A truncated archive, an archive that is not aclImdb and an empty split: exit code 3."""
    data = make(imdb_archive, tmp_path)
    result = runner.invoke(app, ["train", "--data", str(data), "--output", str(tmp_path / "run")])
    _one_clear_line(result, EXIT_DATA, needle)


@pytest.mark.parametrize(
    ("input_bytes", "code", "needle"),
    [
        (bytes(range(256)) * 4, EXIT_DATA, "holds NUL bytes"),
        (b"\n  \n\t\n", EXIT_USAGE, "No reviews"),
    ],
    ids=["binary", "blank-lines"],
)
def test_bad_predict_input_gets_one_clear_line(runner, tmp_path, input_bytes, code, needle):
    """Binary data and only blank lines are refused before the model loads (an empty
    model.keras, which would not load)."""
    path = tmp_path / "reviews.txt"
    path.write_bytes(input_bytes)
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "model.keras").write_bytes(b"")
    for source in (["--file", str(path)], ["-"]):
        result = runner.invoke(app, ["predict", str(tmp_path / "none"), *source], input=input_bytes)
        _one_clear_line(result, code, needle)


def _lambda_model(directory, trained):
    inputs = keras.Input(shape=(3,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(
        directory / "model.keras"
    )


def _unknown_class_model(directory, trained):
    """A valid .keras file whose layer is a class imdb-rnn has never heard of."""
    write_unknown_class_model(directory / "model.keras")


def _truncated_model(directory, trained):
    data = (trained / "model.keras").read_bytes()
    (directory / "model.keras").write_bytes(data[: len(data) * 2 // 3])


def _future_config(directory, trained):
    shutil.copy(trained / "model.keras", directory / "model.keras")
    config = json.loads((trained / "config.json").read_text())
    config["version"] = 99
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_truncated_model, "corrupt or truncated"),
        (_future_config, "newer imdb-rnn"),
        (_lambda_model, "Lambda layer"),
        (_unknown_class_model, "holds 'Doubler', which imdb-rnn does not know"),
        (lambda directory, trained: (directory / "model.keras").mkdir(), "No model file"),
    ],
    ids=["truncated", "future-config", "lambda", "unknown-class", "not-a-file"],
)
def test_bad_model_directory_gets_one_clear_line(runner, tmp_path, trained_model_dir, make, needle):
    """Model files that are cut short, from a newer version, hold code or unknown classes, or are
    not files: refused with exit code 4 by predict and eval alike."""
    make(tmp_path, trained_model_dir)
    _one_clear_line(runner.invoke(app, ["predict", str(tmp_path), "a film"]), EXIT_MODEL, needle)
    _one_clear_line(runner.invoke(app, ["eval", str(tmp_path)]), EXIT_MODEL, needle)


def test_unexpected_error_is_one_line_unless_debug(runner, trained_model_dir, monkeypatch):
    """A bug shows one line that says so and asks for --debug; --debug shows the traceback."""

    def broken(self, texts):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr(predictor.Predictor, "predict", broken)
    result = runner.invoke(app, ["predict", str(trained_model_dir), "a film"])
    _one_clear_line(result, EXIT_INTERNAL, "internal error (RuntimeError: something internal")
    assert "bug" in result.stderr and "--debug" in result.stderr
    result = runner.invoke(app, ["--debug", "predict", str(trained_model_dir), "a film"])
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_outside_training_exits_130(runner, trained_model_dir, monkeypatch):
    """Ctrl-C during predict or eval exits with 130 and no traceback."""

    def interrupted(self, texts):
        raise KeyboardInterrupt

    monkeypatch.setattr(predictor.Predictor, "predict", interrupted)
    result = runner.invoke(app, ["predict", str(trained_model_dir), "a film"])
    assert result.exit_code == 130 and "Interrupted" in result.stderr
    assert "Traceback" not in result.output


def test_version(runner):
    """--version prints the installed version."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("imdb-rnn ")


def test_presets_print_toml_that_train_reads(runner, tmp_path):
    """`presets NAME` prints TOML; `train --config` with it resolves to that preset."""
    listing = runner.invoke(app, ["presets"])
    assert listing.exit_code == 0 and "reference" in listing.stdout and "deep" in listing.stdout
    result = runner.invoke(app, ["presets", "deep"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "run.toml"
    path.write_text(result.stdout, encoding="utf-8")
    shown = _json(runner.invoke(app, ["train", "--config", str(path), "--show-config", "--json"]))
    from imdb_rnn.config import get_preset

    assert shown == get_preset("deep").to_dict()


def test_command_line_overrides_the_config_file(runner, tmp_path):
    """Options given on the command line beat the file, which beats the preset."""
    path = tmp_path / "run.toml"
    path.write_text(
        'preset = "reference"\n[model]\nrnn_units = 8\ncell = "lstm"\n[training]\nepochs = 4\n'
    )
    shown = _json(
        runner.invoke(
            app, ["train", "--config", str(path), "--epochs", "2", "--show-config", "--json"]
        )
    )
    assert shown["preset"] == "reference"
    assert (shown["model"]["rnn_units"], shown["model"]["cell"]) == (8, "lstm")
    assert shown["training"]["epochs"] == 2
    assert shown["training"]["learning_rate"] == 1e-4  # the reference preset's


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[model]\nunits = 3\n", "'units'"), ("[model]\ndropout = 2.0\n", "dropout"), ("[x", "TOML")],
)
def test_bad_config_file_is_one_line_and_exit_2(runner, tmp_path, text, needle):
    """A config file with an unknown key, a bad value or bad syntax is a usage error."""
    path = tmp_path / "run.toml"
    path.write_text(text)
    result = runner.invoke(app, ["train", "--config", str(path), "--output", str(tmp_path / "o")])
    assert result.exit_code == EXIT_USAGE, result.output
    assert needle in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.slow
def test_train_config_toml_reproduces_the_run(runner, tmp_path, imdb_archive):
    """`train --config DIR/config.toml` repeats a run: same config, same history."""
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["train", "--data", str(imdb_archive), "--json"]
    _json(
        runner.invoke(app, [*base, "--output", str(first), "--epochs", "2", "--seed", "7", *TINY])
    )
    assert (first / "config.toml").is_file()
    _json(
        runner.invoke(app, [*base, "--output", str(second), "--config", str(first / "config.toml")])
    )
    assert json.loads((second / "config.json").read_text()) == json.loads(
        (first / "config.json").read_text()
    )
    history_first = json.loads((first / "history.json").read_text())
    history_second = json.loads((second / "history.json").read_text())
    assert history_second.keys() == history_first.keys()
    for key, values in history_first.items():
        assert history_second[key] == pytest.approx(values, rel=1e-4), key


def _event_scalars(log_dir):
    """{tag: [(step, value), ...]} from the TensorBoard event files under `log_dir`."""
    import tensorflow as tf

    scalars = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else None
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


@pytest.mark.slow
def test_train_writes_tensorboard_scalars(runner, tmp_path, imdb_archive):
    """train writes loss, accuracy and learning rate per epoch to OUTPUT/logs; stale logs go."""
    output = tmp_path / "run"
    stale = output / "logs" / "train" / "events.out.tfevents.0.stale.v2"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    (output / ".imdb-rnn-run").write_text("")  # an earlier run's folder
    args = ["train", "--data", str(imdb_archive), "--output", str(output), "--epochs", "2"]
    summary = _json(runner.invoke(app, [*args, "--json", *TINY]))
    assert summary["tensorboard_logs"] == str(output / "logs") and not stale.exists()
    train = _event_scalars(output / "logs" / "train")
    valid = _event_scalars(output / "logs" / "validation")
    history = summary["history"]
    for tag, values in [
        ("epoch_loss", history["loss"]),
        ("epoch_accuracy", history["accuracy"]),
        ("epoch_learning_rate", history["learning_rate"]),
    ]:
        assert [step for step, _ in train[tag]] == [0, 1]
        assert [value for _, value in train[tag]] == pytest.approx(values, rel=1e-5)
    assert [value for _, value in valid["epoch_loss"]] == pytest.approx(history["val_loss"])
    assert [value for _, value in valid["epoch_accuracy"]] == pytest.approx(history["val_accuracy"])


@pytest.mark.slow
def test_no_tensorboard_writes_no_logs(runner, tmp_path, imdb_archive):
    """--no-tensorboard leaves no logs directory."""
    output = tmp_path / "run"
    args = ["train", "--data", str(imdb_archive), "--output", str(output), "--epochs", "1"]
    summary = _json(runner.invoke(app, [*args, "--no-tensorboard", "--json", *TINY]))
    assert summary["tensorboard_logs"] is None and not (output / "logs").exists()


def test_missing_tensorboard_package_is_a_clear_error(runner, tmp_path, monkeypatch):
    """Without the tensorboard package, train says how to fix it before training starts."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name)
    )
    result = runner.invoke(app, ["train", "--output", str(tmp_path / "run"), "--data", "tfds"])
    assert result.exit_code == EXIT_USAGE
    assert "pip install tensorboard" in result.stderr and "--no-tensorboard" in result.stderr


def test_export_command(runner, tmp_path, trained_model_dir):
    """export writes a SavedModel, then refuses to replace it without --overwrite."""
    out = tmp_path / "serving" / "1"
    summary = _json(runner.invoke(app, ["export", str(trained_model_dir), str(out), "--json"]))
    assert summary["output"] == str(out) and (out / "saved_model.pb").is_file()
    again = runner.invoke(app, ["export", str(trained_model_dir), str(out)])
    assert again.exit_code == EXIT_USAGE and "--overwrite" in again.stderr
    missing = runner.invoke(app, ["export", str(tmp_path / "none"), str(tmp_path / "o")])
    assert missing.exit_code == EXIT_MODEL and "No model directory" in missing.stderr


def test_predict_explain_json(runner, trained_model_dir):
    """predict --explain --json gives each prediction an explanation list of {word, weight}."""
    predictions = _json(
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


# -- interruption and resume, in real subprocesses ---------------------------------------------

# Four epochs of 19 batches; with a checkpoint after every batch (`_start_training`) an epoch
# takes about a second, so a signal sent once a checkpoint of epoch 2 or 3 exists lands before
# training ends.
RESUMABLE = [*TINY, "--batch-size", "4", "--epochs", "4", "--json"]


def _start_training(data, output, log):
    command = [sys.executable, "-m", "imdb_rnn", "train", "--data", str(data)]
    with open(log, "w") as stderr:
        return subprocess.Popen(
            [*command, "--output", str(output), *RESUMABLE, "--checkpoint-every", "1"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def _finish(process, log, timeout=180):
    stdout, _ = process.communicate(timeout=timeout)
    return process.returncode, stdout, log.read_text()


def _wait_for_checkpoint(process, output, epoch, log):
    """Polls the checkpoint until one written after a batch of `epoch` (0-based) exists."""
    path = output / "checkpoint" / "state.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if path.exists():
            state = json.loads(path.read_text())
            if state["epoch"] == epoch and state["step"] > 0:
                return state
        if process.poll() is not None:
            pytest.fail(f"training ended before epoch {epoch + 1}:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("no checkpoint appeared in time")


def _same_results(summary, reference):
    """Identical history and metrics: the resumed run computed what the uninterrupted one did."""
    assert summary["history"] == reference["history"]
    for split in ("valid", "test"):
        for key in ("loss", "accuracy", "precision", "recall", "f1", "confusion"):
            assert summary[split][key] == reference[split][key], (split, key)


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory, imdb_archive):
    """The JSON summary of the resumable configuration trained without interruption (in this
    process: runs are reproducible across processes, and this saves starting one)."""
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    arguments = ["train", "--data", str(imdb_archive), "--output", str(output), *RESUMABLE]
    return _json(CliRunner().invoke(app, arguments))


_RELOADED: dict[str, list[float]] = {}


def _reloaded_predictions(output):
    """The saved model's probabilities, from `imdb-rnn predict` in a fresh process."""
    key = str(output)
    if key not in _RELOADED:
        _RELOADED[key] = predict_in_new_process(output, ["a great film", "awful boring mess"])
    return _RELOADED[key]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path, imdb_archive, uninterrupted_run):
    """A run killed with SIGKILL mid-epoch is resumed by the same command and ends with exactly
    the metrics of an uninterrupted run."""
    output, log = tmp_path / "run", tmp_path / "stderr.txt"
    process = _start_training(imdb_archive, output, log)
    _wait_for_checkpoint(process, output, 1, log)
    process.send_signal(signal.SIGKILL)
    assert _finish(process, log)[0] == -signal.SIGKILL
    assert not (output / "model.keras").exists()
    state = json.loads((output / "checkpoint" / "state.json").read_text())
    assert not state["finished"] and state["epoch"] >= 1

    code, stdout, stderr = _finish(_start_training(imdb_archive, output, log), log)
    assert code == 0, stderr[-3000:]
    assert "Resuming from the checkpoint at epoch" in stderr
    assert "Adapting the vocabulary" not in stderr
    _same_results(json.loads(stdout), uninterrupted_run)
    assert (output / "model.keras").is_file()
    assert not (output / "checkpoint").exists()  # the saved model supersedes it
    assert _reloaded_predictions(output) == _reloaded_predictions(uninterrupted_run["output"])


@pytest.mark.slow
def test_sigint_and_sigterm_stop_with_a_checkpoint(tmp_path, imdb_archive, uninterrupted_run):
    """SIGINT, then SIGTERM on the resumed run, each stop training after a batch with a fresh
    checkpoint, exit with 130 and 143 and say how to resume; the third run finishes with the
    metrics of an uninterrupted run."""
    output, log = tmp_path / "run", tmp_path / "stderr.txt"
    for epoch, signum, expected in ((1, signal.SIGINT, 130), (2, signal.SIGTERM, 143)):
        process = _start_training(imdb_archive, output, log)
        _wait_for_checkpoint(process, output, epoch, log)
        process.send_signal(signum)
        code, stdout, stderr = _finish(process, log)
        assert code == expected, stderr[-3000:]
        assert stdout == ""
        assert f"Stopped by {signum.name}" in stderr
        assert "To resume, run the same command again: imdb-rnn train" in stderr
        assert "Traceback" not in stderr
        state = json.loads((output / "checkpoint" / "state.json").read_text())
        assert state["epoch"] == epoch and state["step"] > 0 and not state["finished"]

    code, stdout, stderr = _finish(_start_training(imdb_archive, output, log), log)
    assert code == 0, stderr[-3000:]
    _same_results(json.loads(stdout), uninterrupted_run)
    assert _reloaded_predictions(output) == _reloaded_predictions(uninterrupted_run["output"])


# -- disks -------------------------------------------------------------------------------------


def _train(runner, data, output, *extra):
    arguments = ["train", "--data", str(data), "--output", str(output), "--epochs", "2", *TINY]
    return runner.invoke(app, [*arguments, *extra])


def _fail_after(save, count):
    """`Checkpoint.save` that works `count` times, then finds the disk full."""
    calls = []

    def fill_up(self, state, arrays):
        calls.append(state)
        if len(calls) > count:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.directory))
        save(self, state, arrays)

    return fill_up


def test_output_that_cannot_be_created(runner, tmp_path, imdb_archive):
    """An --output below a file fails at once with exit code 5 and one line."""
    (tmp_path / "file").write_text("not a folder")
    result = _train(runner, imdb_archive, tmp_path / "file" / "run")
    assert result.exit_code == EXIT_IO, result.output
    assert "Cannot create the output directory" in result.stderr
    assert "Reading data" not in result.stderr


def test_output_that_cannot_be_written(runner, tmp_path, imdb_archive, monkeypatch):
    """An --output where no file can be written (read-only file system, no permission) fails
    before reading the data."""

    def read_only(path, text):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(files, "write_text", read_only)
    result = _train(runner, imdb_archive, tmp_path / "run")
    assert result.exit_code == EXIT_IO, result.output
    assert "Cannot write into the output directory" in result.stderr
    assert "Read-only file system" in result.stderr
    assert "Reading data" not in result.stderr


def test_too_little_free_space_is_refused_before_training(
    runner, tmp_path, imdb_archive, monkeypatch
):
    """Too little free space for checkpoints and the model fails before the first batch."""
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    result = _train(runner, imdb_archive, tmp_path / "run")
    assert result.exit_code == EXIT_IO, result.output
    assert "Not enough free space" in result.stderr and "choose another --output" in result.stderr
    assert "epoch 1/" not in result.stderr
    assert not (tmp_path / "run" / "checkpoint" / "state.json").exists()


def test_disk_full_while_training_keeps_the_last_checkpoint(
    runner, tmp_path, imdb_archive, monkeypatch
):
    """A checkpoint save that fails for lack of space stops training with exit code 5 and a
    line naming the last good checkpoint, which still loads."""
    monkeypatch.setattr(checkpoints.Checkpoint, "save", _fail_after(checkpoints.Checkpoint.save, 2))
    result = _train(runner, imdb_archive, tmp_path / "run", "--checkpoint-every", "3")
    assert result.exit_code == EXIT_IO, result.output
    assert "No space left on device" in result.stderr
    assert "The last good checkpoint (epoch 1/2, step 6/9) is kept" in result.stderr
    assert "Traceback" not in result.output
    checkpoint = checkpoints.Checkpoint(tmp_path / "run" / "checkpoint")
    state = checkpoint.read_state()
    assert (state.epoch, state.step) == (0, 6)
    assert checkpoint.load_arrays(state)["model"]
    assert not (tmp_path / "run" / "model.keras").exists()


def test_nan_loss_exits_with_one_line(runner, tmp_path, imdb_archive, monkeypatch):
    """A loss that becomes NaN stops training with exit code 6 and a line naming the batch and
    the last good checkpoint."""

    class PoisonedProgress(progress.RichProgress):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if batch + 1 == 5:
                self.model.get_layer("logits").bias.assign([float("nan")])

    monkeypatch.setattr(progress, "RichProgress", PoisonedProgress)
    result = _train(runner, imdb_archive, tmp_path / "run", "--checkpoint-every", "2")
    assert result.exit_code == EXIT_DIVERGED, result.output
    assert "The training loss became nan in epoch 1 (step 6/9)" in result.stderr
    assert "The last good checkpoint (epoch 1/2, step 4/9) is kept" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.mark.slow
def test_unfinished_run_resumes_only_with_its_options(runner, tmp_path, imdb_archive, monkeypatch):
    """An unfinished run in --output is not resumed with other options (exit code 2, the
    differences named); --overwrite discards it and starts over."""
    output = tmp_path / "run"
    with monkeypatch.context() as failing:
        failing.setattr(checkpoints.Checkpoint, "save", _fail_after(checkpoints.Checkpoint.save, 2))
        assert _train(runner, imdb_archive, output, "--checkpoint-every", "3").exit_code == EXIT_IO
    assert (output / "checkpoint" / "state.json").exists()

    result = _train(runner, imdb_archive, output, "--rnn-units", "5")
    _one_clear_line(result, EXIT_USAGE, "holds an unfinished run with other options")
    assert "model.rnn_units: 4 -> 5" in result.stderr and "--overwrite" in result.stderr

    result = _train(runner, imdb_archive, output, "--rnn-units", "5", "--overwrite")
    assert result.exit_code == 0, result.output
    assert "Resuming" not in result.stderr
    assert (output / "model.keras").is_file() and not (output / "checkpoint").exists()


# -- your own data ------------------------------------------------------------------------------


def test_train_eval_predict_on_own_csv(runner, tmp_path, topic_files):
    """train --train/--test on a three-class CSV, then eval --test and predict --file in CSV
    and JSON Lines: labels from the data, per-class metrics, every class's score."""
    output = tmp_path / "topics"
    summary = _json(
        runner.invoke(
            app,
            [
                "train",
                "--train",
                str(topic_files["train"]),
                "--test",
                str(topic_files["test"]),
                "--output",
                str(output),
                "--epochs",
                "3",
                "--no-tensorboard",
                "--json",
                *TINY,
            ],
        )
    )
    assert summary["label_names"] == ["animal", "colour", "number"] and summary["bad_rows"] == {}
    assert len(summary["test"]["confusion"]) == 3
    metrics = _json(
        runner.invoke(app, ["eval", str(output), "--test", str(topic_files["test"]), "--json"])
    )
    assert metrics["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert [row["label"] for row in metrics["per_class"]] == ["animal", "colour", "number"]
    assert sum(row["support"] for row in metrics["per_class"]) == metrics["examples"] == 45
    questions = tmp_path / "questions.csv"
    questions.write_text('id,text\n1,"a red\nfilm"\n2,zzzz\n', encoding="utf-8")
    args = ["predict", str(output), "--file", str(questions), "--input-format", "csv"]
    result = runner.invoke(app, [*args, "--format", "jsonl"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["a red\nfilm", "zzzz"]
    assert all(set(row["scores"]) == {"animal", "colour", "number"} for row in rows)
    assert rows[1]["known_words"] == 0 and "no word the model knows" in result.stderr
    target = tmp_path / "out.csv"
    result = runner.invoke(app, [*args, "--format", "csv", "--output", str(target)])
    assert result.exit_code == 0 and result.stdout == ""
    assert target.read_text(encoding="utf-8").startswith("id,text,label,score,known_words,p_animal")


def test_eval_table_for_three_classes(runner, topic_model_dir, topic_files):
    """eval prints per-class metrics and the 3 x 3 confusion matrix with the class names."""
    result = runner.invoke(app, ["eval", str(topic_model_dir), "--test", str(topic_files["test"])])
    assert result.exit_code == 0, result.output
    for needle in ("Per class", "macro F1", "Confusion matrix", "animal", "colour", "number"):
        assert needle in result.stdout


@pytest.mark.slow
def test_train_reports_bad_rows_and_strict_stops(runner, tmp_path, topic_files):
    """Bad rows are reported by train; with --strict the first one is an error (exit code 3)."""
    broken = tmp_path / "broken.csv"
    broken.write_text(
        topic_files["train"].read_text(encoding="utf-8") + "animal,\n", encoding="utf-8"
    )
    args = ["train", "--train", str(broken), "--output", str(tmp_path / "run"), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--no-tensorboard", *TINY])
    assert result.exit_code == 0, result.output
    assert "1 bad row skipped (1 missing text)" in " ".join(result.stderr.split())
    result = runner.invoke(app, [*args, "--overwrite", "--strict", *TINY])
    _one_clear_line(result, EXIT_DATA, "missing text")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--data", "x.tar.gz", "--train", "{csv}"], "not both"),
        (["train", "--test", "{csv}"], "needs --train"),
        (["train", "--train", "{csv}", "--text-column", "body"], "no column 'body'"),
    ],
    ids=["data-and-train", "test-without-train", "wrong-column"],
)
def test_own_data_mistakes_get_one_clear_line(runner, tmp_path, topic_files, args, needle):
    """Mixing --data with --train, --test alone and a wrong column name are one-line errors."""
    args = [arg.replace("{csv}", str(topic_files["train"])) for arg in args]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "run")])
    assert result.exit_code in (EXIT_USAGE, EXIT_DATA)
    _one_clear_line(result, result.exit_code, needle)


def test_predict_table_is_not_cut_when_piped(runner, trained_model_dir):
    """Piped output (not a terminal) keeps whole texts: no 80-column cut, no ellipsis."""
    review = "a great superb film " * 12
    result = runner.invoke(app, ["predict", str(trained_model_dir), review])
    assert result.exit_code == 0, result.output
    assert review.strip() in result.stdout and "…" not in result.stdout


def test_predict_threshold_and_formats(runner, tmp_path, trained_model_dir):
    """--threshold 0 makes every review positive; --json equals --format json."""
    args = ["predict", str(trained_model_dir), "awful boring mess", "great film"]
    as_json = _json(runner.invoke(app, [*args, "--json", "--threshold", "0"]))
    assert [row["label"] for row in as_json] == ["pos", "pos"]
    assert _json(runner.invoke(app, [*args, "--format", "json", "--threshold", "0"])) == as_json
    result = runner.invoke(app, [*args, "--threshold", "1.5"])
    _one_clear_line(result, EXIT_USAGE, "--threshold")


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
    from imdb_rnn.cli import commands as cli

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
