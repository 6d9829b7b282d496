"""The checks of a command's inputs that need no TensorFlow, and the data source it names.

They run before TensorFlow is imported (8-10 s), so that a missing file or a finished model in
the output folder is said at once; the library makes the same checks again, in the same words.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imdb_rnn.cli._errors import EXIT_DATA, EXIT_MODEL, EXIT_USAGE, fail

__all__ = ["checked_output", "is_tfds", "refuse_early", "text_files"]


def refuse_early(
    *,
    output: Path | None = None,
    overwrite: bool = False,
    data: str | None = None,
    data_files: Iterable[Path | None] = (),
    model_dir: Path | None = None,
    word_vectors: str | None = None,
) -> None:
    """The checks that need no TensorFlow, made before importing it (8-10 s): a finished model
    in the output folder, missing inputs. The library makes them again, in the same words."""
    if model_dir is not None:
        from imdb_rnn.deploy.packaging import resolve_model_dir  # no TensorFlow

        model_dir = resolve_model_dir(model_dir)  # a packaged model's name, or a folder
        if not model_dir.is_dir():
            fail(f"No model directory at {model_dir}", EXIT_MODEL)
        if not (model_dir / "model.keras").exists():
            fail(
                f"{model_dir} holds no model.keras: is it a directory written by 'imdb-rnn train'?",
                EXIT_MODEL,
            )
    if output is not None:
        from imdb_rnn.modeldir import check_output

        check_output(output, overwrite=overwrite)
    given = [path for path in data_files if path is not None]
    for path in given:
        if not path.exists():
            fail(f"No data file at {path}.", EXIT_DATA)
    if not given:
        chosen = data if data is not None else os.environ.get("IMDB_RNN_DATA") or None
        local = chosen is not None and chosen != "tfds" and not chosen.startswith("tfds:")
        if local and chosen is not None and not Path(chosen).exists():
            fail(
                f"No IMDB data at {chosen}. Pass the path to aclImdb_v1.tar.gz or an "
                "extracted aclImdb/ folder (--data or IMDB_RNN_DATA).",
                EXIT_DATA,
            )
    if word_vectors is not None and not Path(word_vectors).exists():
        fail(f"Cannot read the word vectors {word_vectors}: No such file.", EXIT_USAGE)


def checked_output(target: Path, *, inputs: list[Any], what: str) -> Path:
    """`target` checked by the output rule (`imdb_rnn.files.check_output_file`): the path to
    write; an `OutputPathError` (exit code 2) when writing it would destroy an input, a model's
    file or a device."""
    from imdb_rnn.files import check_output_file

    return check_output_file(target, inputs=inputs, what=what)


def is_tfds(source: Any) -> bool:
    """Whether `source` is a TFDS text data set (`--data tfds:NAME`)."""
    from imdb_rnn.data.tfds import TfdsText

    return isinstance(source, TfdsText)


def text_files(
    data: str | None,
    *,
    train: Path | None = None,
    valid: Path | None = None,
    test: Path | None = None,
    unlabelled: Path | None = None,
    text_column: str,
    label_column: str,
    strict: bool,
    needs_train: bool = True,
) -> Any:
    """A `TextFiles` for the data files given, a `TfdsText` for `--data tfds:NAME`, or None
    (IMDB, from --data)."""
    given = {"--train": train, "--valid": valid, "--test": test, "--unlabelled": unlabelled}
    if not any(path is not None for path in given.values()):
        from imdb_rnn.data.tfds import parse_tfds_source

        # --text-column / --label-column name TFDS features; left at their defaults, the
        # builder's supervised keys are used.
        return parse_tfds_source(
            data,
            text_key=text_column if text_column != "text" else None,
            label_key=label_column if label_column != "label" else None,
        )
    if data is not None:
        fail(
            "Give either --data (IMDB) or your own data files (--train ...), not both.",
            EXIT_USAGE,
        )
    if needs_train and train is None:
        others = ", ".join(name for name, path in given.items() if path is not None)
        fail(f"{others} needs --train PATH: the training file gives the labels.", EXIT_USAGE)
    from imdb_rnn.data.sources import TextFiles

    return TextFiles(
        train=train,
        valid=valid,
        test=test,
        unlabelled=unlabelled,
        text_column=text_column,
        label_column=label_column,
        strict=strict,
    )
