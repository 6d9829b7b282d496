"""`imdb-rnn train`: results, config, TensorBoard, stops and resumes, the file system."""

import collections
import errno
import json
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import (
    predict_in_new_process,
)
from imdb_rnn import files, progress
from imdb_rnn.cli import app
from imdb_rnn.errors import EXIT_DATA, EXIT_DIVERGED, EXIT_IO, EXIT_USAGE
from imdb_rnn.training import checkpoints

from .helpers import TINY, one_clear_line, parsed_json


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


@pytest.mark.parametrize(("count", "words"), [(1, "1 epoch"), (2, "2 epochs")])
def test_counts_agree_with_their_noun(count, words):
    """ "after 1 epoch", not "after 1 epochs"."""
    from imdb_rnn.cli._render import plural as _plural

    assert _plural(count, "epoch") == words


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
    from imdb_rnn.cli._render import kept_epoch as _kept_epoch

    assert _kept_epoch(kept, epochs) == words


def test_train_refuses_to_overwrite(runner, trained_model_dir, imdb_archive):
    """A finished model in --output is not silently replaced."""
    result = runner.invoke(
        app, ["train", "--data", str(imdb_archive), "--output", str(trained_model_dir)]
    )
    assert result.exit_code == EXIT_USAGE and "--overwrite" in result.stderr


def test_command_line_overrides_the_config_file(runner, tmp_path):
    """Options given on the command line beat the file, which beats the preset."""
    path = tmp_path / "run.toml"
    path.write_text(
        'preset = "reference"\n[model]\nrnn_units = 8\ncell = "lstm"\n[training]\nepochs = 4\n'
    )
    shown = parsed_json(
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
    parsed_json(
        runner.invoke(app, [*base, "--output", str(first), "--epochs", "2", "--seed", "7", *TINY])
    )
    assert (first / "config.toml").is_file()
    parsed_json(
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
    summary = parsed_json(runner.invoke(app, [*args, "--json", *TINY]))
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
    summary = parsed_json(runner.invoke(app, [*args, "--no-tensorboard", "--json", *TINY]))
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
    return parsed_json(CliRunner().invoke(app, arguments))


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
    one_clear_line(result, EXIT_USAGE, "holds an unfinished run with other options")
    assert "model.rnn_units: 4 -> 5" in result.stderr and "--overwrite" in result.stderr

    result = _train(runner, imdb_archive, output, "--rnn-units", "5", "--overwrite")
    assert result.exit_code == 0, result.output
    assert "Resuming" not in result.stderr
    assert (output / "model.keras").is_file() and not (output / "checkpoint").exists()


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
    one_clear_line(result, EXIT_DATA, "missing text")


def _shown_config(runner, *args):
    """The config `train` would run with, from --show-config --json."""
    return parsed_json(runner.invoke(app, ["train", *args, "--show-config", "--json"]))


def test_set_overrides_any_config_field(runner):
    """`--set SECTION.FIELD=VALUE` sets fields that have no option of their own, each read with
    its field's type: numbers, a list, text unquoted, `none`."""
    shown = _shown_config(
        runner,
        "--preset",
        "fast",
        "--set",
        "training.early_stopping_patience=2",
        "--set",
        "training.lr_schedule=cosine",
        "--set",
        "training.clip_norm=1.5",
        "--set",
        "model.dense_units=[16, 8]",
        "--set",
        "data.max_length=none",
    )
    assert shown["training"]["early_stopping_patience"] == 2
    assert shown["training"]["lr_schedule"] == "cosine"
    assert shown["training"]["clip_norm"] == 1.5
    assert shown["model"]["dense_units"] == [16, 8]
    assert shown["data"]["max_length"] is None


def test_set_comes_after_the_options(runner):
    """`--set` is applied last: over the option that sets the same field."""
    shown = _shown_config(runner, "--epochs", "3", "--set", "training.epochs=5")
    assert shown["training"]["epochs"] == 5


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("training.epochs=0", "--set training.epochs=0: Expected epochs"),
        ("training.patience=3", "--set: unknown key 'patience' in [training]"),
        ("epochs=3", "Expected --set SECTION.FIELD=VALUE"),
        ("model.cell=rnn", "--set model.cell=rnn: Expected cell to be one of"),
    ],
    ids=["bad-value", "unknown-field", "no-section", "bad-choice"],
)
def test_bad_set_is_one_line_naming_set(runner, override, needle):
    """An unknown field, a bad value or a malformed `--set` is one error line naming --set,
    with exit code 2."""
    result = runner.invoke(app, ["train", "--set", override, "--show-config"])
    one_clear_line(result, EXIT_USAGE, needle)
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_options_come_from_the_config_fields(runner):
    """Every config field with option metadata is a `train` option, and the flags that are not
    the field's name (--checkpoint-every, --freeze-word-vectors) still set their fields."""
    import typer

    from imdb_rnn.cli._options import CONFIG_OPTIONS

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    flags = {flag for param in command.params for flag in param.opts}
    assert {option.flag for option in CONFIG_OPTIONS} <= flags
    assert len(CONFIG_OPTIONS) >= 35
    shown = _shown_config(runner, "--checkpoint-every", "7", "--freeze-word-vectors")
    assert shown["training"]["checkpoint_every_steps"] == 7
    assert shown["model"]["word_vectors_trainable"] is False


def test_an_option_error_names_its_flag(runner):
    """A config field's error for a value given by its option names the option first."""
    result = runner.invoke(app, ["train", "--checkpoint-every", "0", "--show-config"])
    one_clear_line(result, EXIT_USAGE, "error: --checkpoint-every: Expected checkpoint_every_steps")


def test_epochs_unsets_the_presets_minimum_of_batches(runner):
    """The default preset trains at least 1,000 batches; `--epochs N` trains N epochs (it sets
    `training.min_steps` to 0), unless `--min-steps` or `--set` asks for a minimum again."""
    assert _shown_config(runner)["training"]["min_steps"] == 1000
    assert _shown_config(runner, "--epochs", "3")["training"]["min_steps"] == 0
    again = _shown_config(runner, "--epochs", "3", "--min-steps", "500")["training"]
    assert (again["epochs"], again["min_steps"]) == (3, 500)
    assert _shown_config(runner, "--epochs", "3", "--set", "training.min_steps=200")["training"][
        "min_steps"
    ] == (200)
