"""The docs agree with the program: the CLI reference with the real --help, and the API page's
example runs."""

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from imdb_rnn.cli._app import app

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
ROOT_COMMAND = typer.main.get_command(app)
COMMANDS = {"": ROOT_COMMAND, **ROOT_COMMAND.commands}  # type: ignore[attr-defined]


def _sections() -> dict[str, str]:
    """`## \\`imdb-rnn NAME\\`` section of docs/cli.md -> its text ("" for the root)."""
    parts = re.split(r"^## `imdb-rnn ?([a-z]*)`$", CLI_DOC, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _options(command) -> set[str]:
    names = set()
    for param in command.params:
        if param.param_type_name == "option" and not param.hidden:
            names.update(param.opts + param.secondary_opts)
    return names - {"--help"}


def _help(name: str) -> str:
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_command_has_a_section():
    """docs/cli.md has one section per command, and none for a command that does not exist."""
    assert set(_sections()) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_reference_matches_help(name):
    """Each option in a command's --help is in its section of docs/cli.md, and each option in
    the section's tables exists; arguments are named too."""
    command, section, help_text = COMMANDS[name], _sections()[name], _help(name)
    options = _options(command)
    assert options, name
    for option in options:
        assert option in help_text, f"{option} is not in the real --help of {name!r}"
        assert f"`{option}`" in section, f"docs/cli.md does not describe {option} of {name!r}"
    documented = set(re.findall(r"^\| `(-[^`]+)`(?:, `(-[^`]+)`)?", section, re.MULTILINE))
    for row in documented:
        for option in filter(None, row):
            assert option in options, f"docs/cli.md describes {option}, which {name!r} lacks"
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.name.upper() in section, f"docs/cli.md does not name {param.name}"


def test_readme_points_to_the_docs():
    """The README links every page of docs/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, page.name


@pytest.mark.slow
def test_api_example_runs(tmp_path, monkeypatch, imdb_archive):
    """The complete example of docs/api.md runs as written (on the fixture archive)."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    example = re.search(r"## A complete example.*?```python\n(.*?)```", text, re.DOTALL)
    assert example is not None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMDB_RNN_DATA", str(imdb_archive))
    exec(compile(example.group(1), "docs/api.md", "exec"), {"__name__": "__main__"})
    assert (tmp_path / "runs" / "api-demo" / "model.keras").is_file()
    assert (tmp_path / "runs" / "api-demo" / "curves.png").is_file()
    assert (tmp_path / "runs" / "api-demo-serving" / "1" / "saved_model.pb").is_file()
