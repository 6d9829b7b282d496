"""A user's mistake is one clear line and an exit code, in the words of the command line."""

import io
import json
import shutil

import keras
import pytest

from conftest import (
    build_reviews,
    write_archive,
    write_unknown_class_model,
)
from imdb_rnn.cli import app
from imdb_rnn.errors import EXIT_DATA, EXIT_MODEL, EXIT_USAGE

from .helpers import one_clear_line


def test_stages_are_reported_in_flags():
    """A stage message naming a Python argument (`TextFiles(unlabelled=PATH)`) is shown as the
    option that sets it."""

    from rich.console import Console

    from imdb_rnn.cli._render import stage_printer as _stage_printer

    out = io.StringIO()
    _stage_printer(Console(file=out, width=200), True)("give texts (TextFiles(unlabelled=PATH))")
    assert "give texts (--unlabelled PATH)" in out.getvalue()


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
    one_clear_line(result, code, needle)


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
    from imdb_rnn.cli._options import in_flags as _in_flags

    assert _in_flags(library) == command_line


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
    one_clear_line(result, EXIT_DATA, needle)


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
        one_clear_line(result, code, needle)


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
    one_clear_line(runner.invoke(app, ["predict", str(tmp_path), "a film"]), EXIT_MODEL, needle)
    one_clear_line(runner.invoke(app, ["eval", str(tmp_path)]), EXIT_MODEL, needle)


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
    one_clear_line(result, result.exit_code, needle)


@pytest.mark.parametrize(
    ("message", "option", "shown"),
    [
        ("Expected epochs >= 1. Received: epochs=0", "training.epochs", "--epochs: Expected"),
        ("Expected clip_norm > 0. Received: clip_norm=0", "training.clip_norm", "Expected clip"),
        ("Expected strategy in ['auto']", "strategy", "Expected --strategy in ['auto']"),
        ("Not a model.", "source", "--data: Not a model."),
    ],
    ids=["field-with-flag", "field-without-flag", "argument-named", "argument-not-named"],
)
def test_the_error_option_names_its_flag(message, option, shown):
    """`error.option` is named as the option that sets it: before the message for a config
    field (whose name stays, as in --config files), in place of a library argument's name."""
    from imdb_rnn.cli._errors import message_of
    from imdb_rnn.errors import ConfigError

    assert message_of(ConfigError(message, option=option)).startswith(shown)
