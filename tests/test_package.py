"""Tests for the package itself: its public names, as Python and as mypy see them."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import imdb_rnn

SOURCE = Path(imdb_rnn.__file__).parent


def _module_tree(name: str) -> ast.Module:
    return ast.parse((SOURCE / f"{name}.py").read_text(encoding="utf-8"))


def test_typed_names_match_the_lazy_exports():
    """Every name `__getattr__` imports lazily is also imported, from the same module, under
    `if TYPE_CHECKING:` as an explicit re-export (`X as X`), so mypy types it."""
    tree = _module_tree("__init__")
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name} is not re-exported"
                    typed[alias.name] = f"{statement.module}"
    assert typed == imdb_rnn._EXPORTS


def test_modules_import_no_private_names():
    """No module of the package imports another one's private helpers or Keras' private
    layer walk: what is shared is public."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imdb_rnn"):
                offenders += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.endswith("__")
                ]
            if isinstance(node, ast.Attribute) and node.attr == "_flatten_layers":
                offenders.append(f"{path.name}: {node.attr}")
    assert offenders == []


@pytest.mark.slow
def test_mypy_types_the_public_names(tmp_path):
    """mypy sees `from imdb_rnn import Trainer, train` as the real class and function, not
    `Any` (the lazy `__getattr__` alone would type them `Any`)."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from imdb_rnn import Trainer, train
            reveal_type(Trainer)
            reveal_type(train)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", str(snippet), "--cache-dir", str(tmp_path / "cache")],
        env={**os.environ, "MYPYPATH": str(SOURCE.parent)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    revealed = [line for line in result.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == 2, result.stdout
    assert "-> imdb_rnn.training.trainer.Trainer" in revealed[0]
    assert "-> imdb_rnn.inference.results.TrainResult" in revealed[1]


def test_library_errors_name_python_arguments_not_command_line_flags():
    """Errors raised by the library speak Python (`overwrite=True`, `source=`); only the CLI
    turns them into options (`--overwrite`, `--data`)."""
    import re

    flag = re.compile(r"(^|[\s(])--[a-z]")
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        if "cli" in path.relative_to(SOURCE).parts or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            for part in ast.walk(node.exc):
                text = part.value if isinstance(part, ast.Constant) else None
                if isinstance(text, str) and flag.search(text):
                    offenders.append(f"{path.name}:{node.lineno}: {part.value!r}")
    assert offenders == []


def test_training_reads_no_private_keras_attributes():
    """The training code steps and averages through Keras' public API: it reads no private
    loss tracker or moving averages and replaces no model's train_step."""
    private = {"_loss_tracker", "_model_variables_moving_average", "train_function"}
    offenders = []
    for path in sorted((SOURCE / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{path.name}: {node.attr}")
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Attribute) and target.attr == "train_step"
                for target in node.targets
            ):
                offenders.append(f"{path.name}: assigns train_step")
    assert offenders == []
