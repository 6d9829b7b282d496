"""The lab guide (docs/lab.md): every code block runs, on the tiny fixture archive, one epoch."""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imdb_rnn.cli._app import app

LAB = (Path(__file__).resolve().parents[1] / "docs" / "lab.md").read_text(encoding="utf-8")


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", LAB, re.DOTALL)


def test_the_lab_page_has_its_steps():
    """The page walks data, vectoriser, network, fit, own review, stacking, LSTM, CLI."""
    assert len(_blocks("python")) == 8 and len(_blocks("bash")) == 1
    for needle in ("mask_zero=True", "from_logits=True", "FastBidirectional", "IMDB_RNN_NATIVE"):
        assert needle in LAB


@pytest.mark.slow
def test_the_python_blocks_run(tmp_path, monkeypatch, imdb_archive):
    """The Python blocks run in order in one namespace, as a student pastes them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMDB_RNN_DATA", str(imdb_archive))
    namespace = {"__name__": "__main__"}
    for number, block in enumerate(_blocks("python"), start=1):
        code = block.replace("epochs=10", "epochs=1")
        exec(compile(code, f"docs/lab.md block {number}", "exec"), namespace)
    assert 0 <= namespace["test_accuracy"] <= 1
    assert namespace["model"].count_params() == namespace["classifier"].count_params()
    assert set(namespace["timings"]) == {"gru", "lstm"}
    assert (tmp_path / "runs" / "lab-trainer" / "model.keras").is_file()


@pytest.mark.slow
def test_the_command_line_block_runs(tmp_path, monkeypatch, imdb_archive):
    """Each command of the CLI block succeeds (trained for one epoch)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for line in _blocks("bash")[0].splitlines():
        args = shlex.split(line.replace("aclImdb_v1.tar.gz", str(imdb_archive)))[1:]
        if args[0] == "train":
            args += ["--epochs", "1", "--no-tensorboard"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (line, result.output)
    assert (tmp_path / "compared.png").is_file()
