"""Architecture tests: inference and deploy stand apart from the training code."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import imdb_rnn

SOURCE = Path(imdb_rnn.__file__).parent
#: The packages that serve a trained model, and those they must not import.
_APART = ("inference", "deploy")
_TRAINING = ("imdb_rnn.training", "imdb_rnn.pretraining", "imdb_rnn.trainer")


def _modules() -> list[str]:
    return [
        f"imdb_rnn.{package}.{module.name}"
        for package in _APART
        for module in pkgutil.iter_modules([str(SOURCE / package)])
    ]


def _is_training(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in _TRAINING)


def test_inference_and_deploy_modules_load_no_training_module():
    """Importing every inference and deploy module, in a fresh process, loads no module of
    `imdb_rnn.training` (nor pretraining)."""
    code = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *_modules()],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert "imdb_rnn.inference.classifier" in loaded
    assert [name for name in loaded if _is_training(name)] == []


def test_inference_and_deploy_import_no_training_code_anywhere():
    """No import statement of inference/ or deploy/, also inside a function or under
    TYPE_CHECKING, names the training code: the loaded `Classifier` is what they use."""
    offenders = []
    for package in _APART:
        for path in sorted((SOURCE / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                    if node.module == "imdb_rnn":
                        # `from imdb_rnn import Trainer`: the module the name comes from.
                        exports = imdb_rnn._EXPORTS
                        names += [exports.get(a.name, f"imdb_rnn.{a.name}") for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                offenders += [
                    f"{package}/{path.name}:{node.lineno} {name}"
                    for name in names
                    if _is_training(name)
                ]
    assert offenders == []
