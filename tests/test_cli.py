"""Tests for the `imdb-rnn` command line, through Typer's runner and real subprocesses."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from imdb_rnn.cli import EXIT_DATA, EXIT_MODEL, EXIT_USAGE, app

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


@pytest.mark.parametrize("command", ["train", "eval", "predict", "presets", "export"])
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
        "dull worst film",
    ]
    assert all(p["label"] in ("pos", "neg") and 0 <= p["probability"] <= 1 for p in predictions)


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


def test_eval_table(runner, trained_model_dir, imdb_archive):
    """eval without --json renders a table with accuracy and the confusion matrix."""
    result = runner.invoke(
        app, ["eval", str(trained_model_dir), "--data", str(imdb_archive), "--split", "valid"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "true pos" in result.stdout


def test_predict_file_latin1_and_binary(runner, tmp_path, trained_model_dir):
    """--file reads one review per line, UTF-8 or Latin-1; binary bytes do not crash it."""
    path = tmp_path / "reviews.txt"
    path.write_bytes("Caf\xe9 film was great\nterrible\n".encode("latin-1"))
    predictions = _json(
        runner.invoke(app, ["predict", str(trained_model_dir), "--file", str(path), "--json"])
    )
    assert [p["text"] for p in predictions] == ["Café film was great", "terrible"]
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert (
        runner.invoke(
            app, ["predict", str(trained_model_dir), "--file", str(binary), "--json"]
        ).exit_code
        == 0
    )


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["train", "--epochs", "0"], EXIT_USAGE, "--epochs"),
        (["train", "--limit", "0"], EXIT_USAGE, "--limit"),
        (["train", "--preset", "huge", "--output", "{tmp}/a"], EXIT_USAGE, "preset"),
        (["train", "--cell", "rnn", "--output", "{tmp}/b"], EXIT_USAGE, "cell"),
        (["train", "--dropout", "1.5", "--output", "{tmp}/c"], EXIT_USAGE, "dropout"),
        (["train", "--rnn-units", "-3", "--output", "{tmp}/d"], EXIT_USAGE, "rnn_units"),
        (
            ["train", "--data", "{tmp}/missing.tar.gz", "--output", "{tmp}/e"],
            EXIT_DATA,
            "No IMDB data",
        ),
        (["eval", "{tmp}/no-model"], EXIT_MODEL, "No model directory"),
        (["eval", "{tmp}"], EXIT_MODEL, "holds no model.keras"),
        (["predict", "{tmp}/no-model", "text"], EXIT_MODEL, "No model directory"),
        (["predict", "{tmp}"], EXIT_USAGE, "No reviews"),
    ],
)
def test_user_mistakes_get_one_clear_line(runner, tmp_path, args, code, needle):
    """A user's mistake prints one line on stderr, no traceback, and a distinct exit code."""
    result = runner.invoke(app, [arg.replace("{tmp}", str(tmp_path)) for arg in args])
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


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


def test_train_writes_tensorboard_scalars(runner, tmp_path, imdb_archive):
    """train writes loss, accuracy and learning rate per epoch to OUTPUT/logs; stale logs go."""
    output = tmp_path / "run"
    stale = output / "logs" / "train" / "events.out.tfevents.0.stale.v2"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
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
            app, ["predict", str(trained_model_dir), "--explain", "--json", "Superb film!", ""]
        )
    )
    assert [p["text"] for p in predictions] == ["Superb film!", ""]
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
