"""Every command's `--help`: present, truthful, readable."""

import pytest
from typer.testing import CliRunner

from imdb_rnn.cli import app


@pytest.mark.parametrize("command", ["train", "eval", "predict", "presets", "export", "serve"])
def test_every_command_has_help(runner, command):
    """Each command explains itself."""
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


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


def _every_help():
    """Each command's name and its rendered --help (wide, so that no line is cut)."""
    import typer

    group = typer.main.get_command(app)
    for name in sorted(group.commands):  # type: ignore[attr-defined]
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        yield name, result.stdout


def test_every_help_tells_the_truth():
    """Rendered --help keeps bracketed text, lists every preset, names arguments in the usage
    line as `MODEL_DIR` (not `{model_dir}`), and pretrain promises no option it lacks."""
    from imdb_rnn.config import PRESETS

    helps = dict(_every_help())
    for name, text in helps.items():
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage and "}" not in usage, (name, usage)
    assert helps["train"].count("[default: preset's]") >= 25
    assert all(preset in helps["train"] for preset in PRESETS)
    assert 'pip install "imdb-rnn[serve]"' in helps["serve"]
    assert "MODEL_DIR [TEXTS]..." in helps["predict"]
    assert "tfds:NAME" not in helps["pretrain"] and "--text-column" not in helps["pretrain"]
