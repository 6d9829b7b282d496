"""`imdb-rnn package`: package a model as a wheel (`imdb_rnn.deploy.packaging.package_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_rnn.cli._errors import EXIT_USAGE, fail
from imdb_rnn.cli._options import JsonOption, ModelDirArgument
from imdb_rnn.cli._render import markup, print_json, stderr

__all__ = ["package"]


def package(
    model_dir: ModelDirArgument,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder to write the wheel into."),
    ] = Path("dist"),
    name: Annotated[
        str | None,
        typer.Option(
            help="The model's name once installed (imdb_rnn.load(NAME), imdb-rnn predict NAME): "
            "lower-case letters, digits and _. [default: the folder's name]",
            show_default=False,
        ),
    ] = None,
    version: Annotated[str, typer.Option(help="The package's version.")] = "0.1.0",
    as_json: JsonOption = False,
) -> None:
    """Package a trained model as an installable wheel (as 'spacy package' does): after
    'pip install' it loads by name with imdb_rnn.load(NAME) and 'imdb-rnn predict NAME'.

    Examples:

        imdb-rnn package runs/trec --name trec --version 1.0.0

        pip install dist/imdb_rnn_model_trec-1.0.0-py3-none-any.whl
    """
    from imdb_rnn.deploy.packaging import package_model

    try:  # package_model raises a plain ValueError for a bad name or version
        wheel = package_model(model_dir, output, name=name, version=version)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    if as_json:
        print_json({"wheel": str(wheel), "size": wheel.stat().st_size})
        return
    stderr().print(
        f"Packaged {markup(model_dir)} as [bold]{markup(wheel)}[/] "
        f"({wheel.stat().st_size / 2**20:.1f} MiB); install it with "
        f"pip install {markup(wheel)}",
        highlight=False,
        soft_wrap=True,
    )
