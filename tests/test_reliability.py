"""Attacks on imdb-rnn as a hostile or unlucky user would make them (issue "Reliability II"):
each test fails on the behaviour before the fix and shows what the attack gets now."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import predict_in_new_process
from imdb_rnn.cli._app import app
from imdb_rnn.errors import EXIT_DATA, EXIT_IO, EXIT_MODEL, EXIT_USAGE
from imdb_rnn.files import folder_lock

TINY = [
    "--max-tokens",
    "50",
    "--embedding-dim",
    "8",
    "--rnn-units",
    "4",
    "--dense-units",
    "4",
    "--learning-rate",
    "0.01",
    # The default's self-training would train every model twice.
    "--pseudo-label-threshold",
    "0",
]
# Four epochs of 19 batches with a checkpoint after every batch: long enough to be stopped.
RESUMABLE = [*TINY, "--batch-size", "4", "--epochs", "4", "--checkpoint-every", "1"]


def _train_command(data, output, *extra):
    return [
        sys.executable,
        "-m",
        "imdb_rnn",
        "train",
        "--data",
        str(data),
        "--output",
        str(output),
        *RESUMABLE,
        *extra,
    ]


def _wait_for_checkpoint(process, output, epoch):
    """Polls until a checkpoint written after a batch of `epoch` (0-based) exists."""
    path = output / "checkpoint" / "state.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if path.exists():
            state = json.loads(path.read_text())
            if state["epoch"] == epoch and state["step"] > 0:
                return state
        if process.poll() is not None:
            pytest.fail(f"training ended before epoch {epoch + 1}: {process.stderr.read()[-3000:]}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("no checkpoint appeared in time")


def _events(output):
    return sorted(path.name for path in (output / "logs" / "train").glob("events.out.*"))


# -- 3. an interrupted `train --overwrite` resumes ----------------------------------------------


@pytest.mark.slow
def test_interrupted_overwrite_resumes_with_the_printed_command(tmp_path, imdb_archive):
    """SIGINT in a `train --overwrite` over a finished model prints a command (without
    --overwrite) that resumes the run, keeps its TensorBoard logs, and saves a model that
    predicts in a fresh process."""
    output = tmp_path / "run"
    first = subprocess.run(
        _train_command(imdb_archive, output, "--epochs", "1"), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr[-3000:]
    process = subprocess.Popen(
        _train_command(imdb_archive, output, "--overwrite"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_checkpoint(process, output, 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr[-3000:]
    events_before = _events(output)
    assert len(events_before) == 1
    hint = stderr.split("To resume, run the same command again: ")[1].splitlines()[0]
    arguments = shlex.split(hint)
    assert arguments[0] == "imdb-rnn" and "--overwrite" not in arguments
    resumed = subprocess.run(
        [sys.executable, "-m", "imdb_rnn", *arguments[1:]], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from the checkpoint at epoch 2/4" in resumed.stderr
    assert json.loads((output / "metrics.json").read_text())["epochs"] >= 2  # not the old run
    events_after = _events(output)
    assert set(events_before) < set(events_after)  # the interrupted epochs' logs are kept
    assert not (output / "checkpoint").exists()
    assert len(predict_in_new_process(output, ["a great film"])) == 1


# -- 4. a kill between model.keras and the JSON files -------------------------------------------

_KILLED_WHILE_SAVING = """
import os, sys
from imdb_rnn.inference import classifier
write_json = classifier.write_json

def killed(path, *args, **kwargs):
    if path.name == "config.json":
        os.kill(os.getpid(), 9)
    return write_json(path, *args, **kwargs)

classifier.write_json = killed
sys.argv = ["imdb-rnn", *sys.argv[1:]]
from imdb_rnn.cli import main
main()
"""


@pytest.mark.slow
def test_kill_between_model_and_json_files_is_completed_by_the_same_command(tmp_path, imdb_archive):
    """SIGKILL after `model.keras` is written but before its JSON files: the same command
    completes the run (no training, all files written) instead of refusing it."""
    output = tmp_path / "run"
    command = _train_command(imdb_archive, output, "--epochs", "2")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_SAVING, *command[3:]], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (output / "model.keras").is_file() and not (output / "metrics.json").exists()
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from the checkpoint at training finished (2 epochs)" in again.stderr
    for name in ("config.json", "config.toml", "history.json", "metrics.json", "curves.png"):
        assert (output / name).is_file(), name
    assert not (output / "checkpoint").exists()
    assert len(predict_in_new_process(output, ["a great film"])) == 1


# -- a second train on the same --output ---------------------------------------------------------


def test_second_train_on_the_same_output_is_refused(tmp_path, imdb_archive):
    """While a run holds --output, another `train` into it stops at once with one line (exit
    code 5) and leaves the folder alone."""
    output = tmp_path / "run"
    with folder_lock(output):
        result = CliRunner().invoke(
            app, ["train", "--data", str(imdb_archive), "--output", str(output), *TINY]
        )
    assert result.exit_code == EXIT_IO, result.output
    assert "Another imdb-rnn train is writing into this folder" in result.stderr
    assert "Reading data" not in result.stderr
    assert not (output / "checkpoint").exists()


def test_second_train_leaves_the_running_one_s_logs(tmp_path, imdb_archive):
    """A second `train` refused by the lock does not empty the running one's TensorBoard logs."""
    output = tmp_path / "run"
    (output / "logs" / "train").mkdir(parents=True)
    (output / "logs" / "train" / "events").write_text("the running run's events")
    (output / ".imdb-rnn-run").write_text("")  # the mark the running run wrote first
    with folder_lock(output):
        result = CliRunner().invoke(
            app, ["train", "--data", str(imdb_archive), "--output", str(output), *TINY]
        )
    assert result.exit_code == EXIT_IO, result.output
    assert "Another imdb-rnn train is writing into this folder" in result.stderr
    assert (output / "logs" / "train" / "events").read_text() == "the running run's events"


# -- 5. Rich markup in user text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code", "shown"),
    [
        (["predict", "x/[/]", "hi"], EXIT_MODEL, "x/[/]"),
        (["predict", "x/[bold red]y", "hi"], EXIT_MODEL, "x/[bold red]y"),
        (["train", "--config", "[/].toml"], EXIT_USAGE, "[/].toml"),
        (["eval", "[/]m", "--data", "none"], EXIT_MODEL, "[/]m"),
        (["export", "[bold]m", "out[/]"], EXIT_MODEL, "[bold]m"),
    ],
)
def test_markup_in_paths_is_printed_as_written(tmp_path, monkeypatch, arguments, code, shown):
    """Paths holding Rich markup (`[/]`, `[bold red]`) are printed as written in one error line,
    never as a traceback."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == code, result.output
    assert shown in result.stderr and "Traceback" not in result.stderr


def test_config_errors_keep_their_section_names(tmp_path):
    """A config error names its section as `[training]`, not swallowed as markup."""
    path = tmp_path / "run.toml"
    path.write_text("[training]\na = 1\n")
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--show-config"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "unknown key 'a' in [training]" in " ".join(result.stderr.split())


@pytest.mark.slow
def test_markup_in_the_output_path_after_training(tmp_path, imdb_archive):
    """A successful run into `a[/]b` reports where it saved, as written."""
    output = tmp_path / "a[/]b"
    arguments = ["train", "--data", str(imdb_archive), "--output", str(output), "--epochs", "1"]
    result = CliRunner().invoke(app, [*arguments, *TINY], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"Saved to {output}" in result.stdout


# -- 8. unbounded reads -------------------------------------------------------------------------


def _cli(*arguments, stdin=None, env=None):
    """`python -m imdb_rnn ARGUMENTS` in a fresh process (stdin from a file, if given)."""
    return subprocess.run(
        [sys.executable, "-m", "imdb_rnn", *map(str, arguments)],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_predict_refuses_devices_and_endless_input(trained_model_dir, tmp_path):
    """`predict --file /dev/zero` and a FIFO are refused at once; `predict - < /dev/zero`
    (stdin is streamed) stops at its first line, of NUL bytes; exit code 3 each."""
    result = _cli("predict", trained_model_dir, "--file", "/dev/zero")
    assert result.returncode == EXIT_DATA and "not a regular file" in result.stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = _cli("predict", trained_model_dir, "--file", fifo)
    assert result.returncode == EXIT_DATA and "not a regular file" in result.stderr
    with open("/dev/zero", "rb") as zeros:
        result = _cli("predict", trained_model_dir, "-", stdin=zeros)
    assert result.returncode == EXIT_DATA, result.stderr
    assert "<stdin> is not text (it holds NUL bytes, line 1)" in result.stderr


def test_config_from_a_device_or_nested_too_deep(tmp_path):
    """`--config /dev/zero` and a TOML file nested 100,000 deep are usage errors (exit 2)."""
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", "/dev/zero", "--show-config"])
    assert result.exit_code == EXIT_USAGE and "not a regular file" in result.stderr
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = runner.invoke(app, ["train", "--config", str(deep), "--show-config"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "nested too deep" in result.stderr


# -- weaker problems ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["[]", "null", '"x"', '{"version": "x"}', "[" * 100_000])
def test_config_json_of_the_wrong_kind(trained_model_dir, tmp_path, content):
    """A model directory whose config.json is not a config object is a model error (exit 4),
    and a non-numeric version is not called "newer"."""
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    (model / "config.json").write_text(content)
    result = CliRunner().invoke(app, ["predict", str(model), "a fine film"])
    assert result.exit_code == EXIT_MODEL, result.output
    assert "newer" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--seed", str(2**32), "seed + epochs < 2**32"),
        ("--rnn-units", str(10**9), "parameters"),
        ("--max-tokens", str(10**9), "parameters"),
    ],
)
def test_huge_values_are_usage_errors(option, value, needle):
    """A seed NumPy cannot take and a model too large to build are refused (exit 2)."""
    result = CliRunner().invoke(app, ["train", option, value, "--show-config"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert needle in " ".join(result.stderr.split())


@pytest.mark.slow
def test_narrow_terminal_encoding(trained_model_dir):
    """With PYTHONIOENCODING=ascii, a review outside ASCII is printed with escapes (exit 0)."""
    result = _cli("predict", trained_model_dir, "café » fine", env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert "caf\\xe9" in result.stdout


@pytest.mark.slow
def test_one_line_errors_without_tensorflow_start_up_lines(tmp_path):
    """An error is the only line on stderr: TensorFlow's start-up lines are not shown."""
    result = _cli("predict", tmp_path / "none", "hi", env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == EXIT_MODEL
    assert result.stderr.strip().splitlines() == [f"error: No model directory at {tmp_path}/none"]


def test_ansi_escapes_in_reviews_do_not_reach_the_terminal(trained_model_dir):
    """Control characters of a review (an ANSI escape sequence) are shown as `\\x1b`."""
    review = "\x1b[2J\x1b[31mgreat film"
    for extra in ([], ["--explain"]):
        result = CliRunner().invoke(
            app, ["predict", str(trained_model_dir), review, *extra], env={"COLUMNS": "200"}
        )
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout and "\\x1b[2J" in result.stdout


@pytest.mark.slow
def test_kill_while_saving_the_teacher_is_completed_by_the_same_command(tmp_path, imdb_archive):
    """With self-training, SIGKILL while the teacher is being saved: the same command finishes
    the teacher from its checkpoint (no training), then trains and saves the student."""
    output = tmp_path / "run"
    command = [
        *_train_command(imdb_archive, output, "--epochs", "2"),
        "--pseudo-label-threshold",
        "0.5",
    ]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_SAVING, *command[3:]], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    teacher = output / "teacher"
    assert (teacher / "model.keras").is_file() and not (teacher / "metrics.json").exists()
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from the checkpoint at training finished (2 epochs)" in again.stderr
    for folder in (teacher, output):
        for name in ("config.json", "history.json", "metrics.json", "model.keras"):
            assert (folder / name).is_file(), folder / name
        assert not (folder / "checkpoint").exists()
    assert len(list((output / "logs" / "train").iterdir())) == 1  # the student's run only
    # The resumed run's saved student and teacher load and predict in a fresh process.
    for folder in (output, teacher):
        assert len(predict_in_new_process(folder, ["a great film", "awful"])) == 2
