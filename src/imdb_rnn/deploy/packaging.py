"""A trained model as an installable Python package, as `spacy package` makes one.

`package_model("runs/trec", "dist", name="trec")` writes `dist/imdb_rnn_model_trec-0.1.0-py3-
none-any.whl`: a wheel holding the model directory inside a package `imdb_rnn_model_trec`, the
model card as its description, and an entry point in the group `imdb_rnn.models`. After
`pip install dist/imdb_rnn_model_trec-0.1.0-py3-none-any.whl`, `imdb_rnn.load("trec")` and
`imdb-rnn predict trec "..."` (or `eval`, `serve`, `export`, `info`) find it by name.

The wheel is written directly (it is a zip file in the wheel format, PEP 427), so packaging
needs no build tool and no network.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import zipfile
from pathlib import Path

from imdb_rnn.deploy.card import CARD_FILE
from imdb_rnn.files import atomic_path
from imdb_rnn.modeldir import MODEL_FILE

__all__ = ["ENTRY_POINT_GROUP", "installed_models", "package_model", "resolve_model_dir"]

#: The entry-point group under which packaged models are registered, by name.
ENTRY_POINT_GROUP = "imdb_rnn.models"
#: The files of a model directory that go into the package (the rest, checkpoints and
#: TensorBoard logs, are for training).
_PACKAGED = (
    MODEL_FILE,
    "config.json",
    "config.toml",
    "labels.json",
    "decision.json",
    "metrics.json",
    "history.json",
    CARD_FILE,
    "curves.png",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


def _module_name(name: str) -> str:
    return f"imdb_rnn_model_{name}"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def package_model(
    model_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: str = "0.1.0",
) -> Path:
    """Builds an installable wheel of a trained model directory.

    Args:
        model_dir: a model directory written by `imdb-rnn train`.
        output_dir: the folder to write the wheel into (created if needed).
        name: the model's name, by which `imdb_rnn.load(name)` finds it once installed:
            lower-case letters, digits and `_`, starting with a letter. Default None: the
            model directory's name, lower-cased, other characters replaced by `_`.
        version: the package's version (`1`, `1.2`, `1.2.3`). Default "0.1.0".

    Returns:
        The wheel's path (`imdb_rnn_model_<name>-<version>-py3-none-any.whl`).

    Raises:
        ModelFileError: if `model_dir` holds no `model.keras`.
        ValueError: if `name` or `version` is not of the form above, or `output_dir` is the
            model directory.

    Example:

        wheel = package_model("runs/trec", "dist", name="trec", version="1.0.0")
        # pip install dist/imdb_rnn_model_trec-1.0.0-py3-none-any.whl
        # then: imdb_rnn.load("trec"), imdb-rnn predict trec "Who wrote Hamlet ?"
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if not (model_dir / MODEL_FILE).is_file():
        from imdb_rnn.errors import ModelFileError

        raise ModelFileError(
            f"{model_dir} holds no {MODEL_FILE}: is it a directory written by 'imdb-rnn train'?"
        )
    if name is None:
        name = re.sub(r"[^a-z0-9_]", "_", model_dir.resolve().name.lower()).strip("_")
        if not name or not name[0].isalpha():
            name = f"model_{name}".rstrip("_")
    if not _NAME.match(name):
        raise ValueError(
            "Expected name to be lower-case letters, digits and '_', starting with a letter "
            f"(at most 64). Received: name={name!r}"
        )
    if not _VERSION.match(version):
        raise ValueError(f"Expected version such as '1.0.0'. Received: version={version!r}")
    if output_dir.resolve() == model_dir.resolve():
        raise ValueError("Expected output_dir outside the model directory: give another folder.")
    module = _module_name(name)
    distribution = f"{module}-{version}"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": _init_source(name).encode("utf-8"),
    }
    for file in _PACKAGED:
        path = model_dir / file
        if path.is_file():
            files[f"{module}/model/{file}"] = path.read_bytes()
    card = (model_dir / CARD_FILE).read_text("utf-8") if (model_dir / CARD_FILE).is_file() else ""
    info = f"{distribution}.dist-info"
    files[f"{info}/METADATA"] = _metadata(module, version, name, card).encode("utf-8")
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: imdb-rnn package\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = f"[{ENTRY_POINT_GROUP}]\n{name} = {module}\n".encode()
    files[f"{info}/top_level.txt"] = f"{module}\n".encode()
    record = "".join(
        f"{member},{_record_hash(data)},{len(data)}\n" for member, data in files.items()
    )
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    output_dir.mkdir(parents=True, exist_ok=True)
    wheel = output_dir / f"{distribution}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            entry = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            # model.keras is a zip already: storing it again costs time for nothing.
            kind = zipfile.ZIP_STORED if member.endswith((".keras", ".png")) else None
            archive.writestr(entry, data, compress_type=kind or zipfile.ZIP_DEFLATED)
    with atomic_path(wheel) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return wheel


def _init_source(name: str) -> str:
    return (
        f'"""The imdb-rnn model {name!r}, packaged by `imdb-rnn package`.\n\n'
        "    import imdb_rnn\n\n"
        f"    classify = imdb_rnn.load({name!r})\n"
        '"""\n\n'
        "from pathlib import Path\n\n"
        "#: The model directory inside this package.\n"
        'MODEL_DIR = Path(__file__).parent / "model"\n\n\n'
        "def load(**options):\n"
        '    """The model as an `imdb_rnn.Predictor` (see `imdb_rnn.load`)."""\n'
        "    import imdb_rnn\n\n"
        "    return imdb_rnn.load(MODEL_DIR, **options)\n"
    )


def _metadata(module: str, version: str, name: str, card: str) -> str:
    try:
        requirement = f"imdb-rnn>={importlib.metadata.version('imdb-rnn')}"
    except importlib.metadata.PackageNotFoundError:
        requirement = "imdb-rnn"
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {module}\n"
        f"Version: {version}\n"
        f"Summary: The imdb-rnn text classifier {name!r}, as a package\n"
        f"Requires-Dist: {requirement}\n"
        "Description-Content-Type: text/markdown\n"
        "\n"
        f"{card}"
    )


def installed_models() -> dict[str, Path]:
    """The packaged models installed in this environment: name -> model directory."""
    out = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        # find_spec locates the package without running its code.
        spec = importlib.util.find_spec(entry.value.split(":")[0])
        if spec is not None and spec.submodule_search_locations:
            out[entry.name] = Path(next(iter(spec.submodule_search_locations))) / "model"
    return out


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """A model directory: `model` itself when it is a folder (or not a packaged model's name),
    else the folder of the installed packaged model of that name."""
    path = Path(model)
    if path.exists() or not _NAME.match(str(model)):
        return path
    return installed_models().get(str(model), path)
