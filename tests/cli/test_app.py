"""The `imdb-rnn` app as a whole: no TensorFlow on import, closed pipes, bugs, Ctrl-C, runs."""

import json
import subprocess
import sys

import pytest

from imdb_rnn.cli import app
from imdb_rnn.errors import EXIT_DATA, EXIT_INTERNAL, EXIT_MODEL, EXIT_USAGE
from imdb_rnn.inference import predictor

from .helpers import TINY, one_clear_line, parsed_json


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


def test_train_json_then_eval_and_predict(runner, tmp_path, imdb_archive):
    """train --json writes a model and one JSON object; eval and predict use that model."""
    output = tmp_path / "run"
    summary = parsed_json(
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

    metrics = parsed_json(
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
    predictions = parsed_json(result)
    assert [p["text"] for p in predictions] == [
        "great superb film",
        "awful boring mess",
        "",
        "dull worst film",
    ]
    assert predictions[2]["reason"] == "blank" and predictions[2]["probability"] is None
    del predictions[2]
    assert all(p["label"] in ("pos", "neg") and 0 <= p["probability"] <= 1 for p in predictions)


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

    from imdb_rnn.cli._quiet import quiet_tensorflow as _quiet_tensorflow

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


def test_unexpected_error_is_one_line_unless_debug(runner, trained_model_dir, monkeypatch):
    """A bug shows one line that says so and asks for --debug; --debug shows the traceback."""

    def broken(self, texts):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr(predictor.Predictor, "predict", broken)
    result = runner.invoke(app, ["predict", str(trained_model_dir), "a film"])
    one_clear_line(result, EXIT_INTERNAL, "internal error (RuntimeError: something internal")
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


@pytest.mark.slow
def test_train_eval_predict_on_own_csv(runner, tmp_path, topic_files):
    """train --train/--test on a three-class CSV, then eval --test and predict --file in CSV
    and JSON Lines: labels from the data, per-class metrics, every class's score."""
    output = tmp_path / "topics"
    summary = parsed_json(
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
    metrics = parsed_json(
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
