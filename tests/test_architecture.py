"""The package's architecture, read from its imports: one concept per subpackage, data flowing
one way (`cli -> training / inference -> models / layers -> config`, `-> data`), no cycles, and
inference and deploy apart from the training code."""

import ast
import builtins
import functools
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


SUBPACKAGES = ("cli", "config", "data", "training", "inference", "pretraining", "deploy")


def _module_paths() -> dict[str, Path]:
    modules = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


@functools.cache
def _imports() -> dict[str, set[str]]:
    """Each module -> the package's modules it imports, at the top or inside a function (an
    import under `if TYPE_CHECKING:` is for mypy alone and does not count)."""
    modules = _module_paths()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for_mypy = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in for_mypy:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` imports the module (the package is the
                # importer's own parent, already imported); `from module import name` the module.
                submodules = [f"{node.module}.{alias.name}" for alias in node.names]
                names_only = any(name not in modules for name in submodules)
                targets = submodules + ([node.module] if names_only else [])
            else:
                continue
            edges[name] |= {target for target in targets if target in modules and target != name}
    return edges


def _concept(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "imdb_rnn"


def _crossing(source: str, target: str) -> list[str]:
    return sorted(
        f"{module} -> {imported}"
        for module, imported_modules in _imports().items()
        if _concept(module) == source
        for imported in imported_modules
        if _concept(imported) == target
    )


def test_no_module_imports_the_command_line():
    """Only `python -m imdb_rnn` imports the CLI: the library never depends on it."""
    offenders = [
        f"{module} -> {imported}"
        for module, imported_modules in _imports().items()
        if _concept(module) != "cli" and module != "imdb_rnn.__main__"
        for imported in imported_modules
        if _concept(imported) == "cli"
    ]
    assert offenders == []


def test_config_and_data_stand_below_training_and_inference():
    """The config imports only the errors and the file rules; the data sources import no
    training, inference or deployment code."""
    for target in ("cli", "data", "training", "inference", "pretraining", "deploy", "models"):
        assert _crossing("config", target) == []
    for target in ("cli", "training", "inference", "pretraining", "deploy"):
        assert _crossing("data", target) == []


def test_the_imports_have_no_cycles():
    """No two modules import each other, directly or through others (Tarjan's strongly
    connected components of the import graph are single modules)."""
    edges = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    assert cycles == []


def test_every_exception_class_lives_in_errors():
    """The package defines its exceptions and warnings in `imdb_rnn.errors` alone."""
    exceptions = {name for name in dir(builtins) if name.endswith(("Error", "Warning"))}
    offenders = []
    for module, path in _module_paths().items():
        if module == "imdb_rnn.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
                if bases & (exceptions | {"Exception", "KeyboardInterrupt", "ImdbRnnError"}):
                    offenders.append(f"{module}.{node.name}")
    assert offenders == []


def test_every_subpackage_says_what_it_holds():
    """Each subpackage's `__init__` has a docstring naming its concept and imports no TensorFlow."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    assert importlib.import_module('imdb_rnn.' + name).__doc__, name + ': no docstring'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, *SUBPACKAGES], check=True, timeout=120)
