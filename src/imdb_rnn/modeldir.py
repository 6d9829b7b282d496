"""The model directory: the names of its files, reading them back, and the rules for the folder
a training run writes (`output=`), which `imdb_rnn.train` applies for the CLI and Python alike.

A model directory holds `model.keras` (the end-to-end model, raw strings to logits),
`config.json` and `config.toml` (the run's config), `history.json` (per-epoch logs),
`labels.json` (the class names, in the order of the model's outputs), `metrics.json` (the
`TrainResult`), `README.md` (the model card), `curves.png`, and while training
`checkpoint/` (see `imdb_rnn.training.checkpoints`) and `logs/` (TensorBoard).

Example:

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> check_output(folder, overwrite=False)  # empty: a fresh run
False
>>> _ = (folder / MODEL_FILE).write_text("")
>>> check_output(folder, overwrite=False)
Traceback (most recent call last):
...
imdb_rnn.errors.OutputExistsError: ... already holds a model; pass overwrite=True to replace \
it or choose another output=.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from imdb_rnn import files
from imdb_rnn.errors import InputError, OutputExistsError
from imdb_rnn.files import decode_text, folder_lock, read_limited, remove_owned

# No TensorFlow at import (datasets and models import it where needed): the CLI checks the
# output folder with check_output before it pays for importing TensorFlow.

__all__ = [
    "CONFIG_FILE",
    "HISTORY_FILE",
    "LABELS_FILE",
    "LOGS_DIR",
    "METRICS_FILE",
    "MODEL_FILE",
    "MODEL_FOLDER_FILES",
    "RUN_MARKER",
    "OutputExistsError",
    "check_output",
    "check_writable",
    "holds_unfinished_run",
    "is_run_folder",
    "prepare_logs",
    "read_json",
    "read_labels",
    "versions",
]

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
#: The class names of a model, in the order of its outputs (written beside the model).
LABELS_FILE = "labels.json"
#: TensorBoard's folder inside a model directory.
LOGS_DIR = "logs"
#: The mark of a folder that an imdb-rnn run writes into: written first, removed once the run
#: has saved its model (`model.keras` marks the folder then).
RUN_MARKER = ".imdb-rnn-run"
#: The files a run writes into a model folder (globs; its `checkpoint/` has its own): what a
#: discarded run (a teacher trained again) deletes, leaving anything else.
MODEL_FOLDER_FILES = (
    MODEL_FILE,
    CONFIG_FILE,
    "config.toml",
    HISTORY_FILE,
    LABELS_FILE,
    METRICS_FILE,
    "README.md",
    "curves.png",
    "fingerprint.json",  # a self-training teacher's (`workflows.FINGERPRINT_FILE`)
    RUN_MARKER,
    ".*.tmp*",
)
#: TensorBoard's files inside `LOGS_DIR`: a fresh run removes these and nothing else there.
_LOG_FILES = ("train/events.out.tfevents.*", "validation/events.out.tfevents.*")
#: The checkpoint folder inside a model directory (`imdb_rnn.training.checkpoints.CHECKPOINT_DIR`).
_CHECKPOINT_STATE = Path("checkpoint") / "state.json"


def holds_unfinished_run(output: str | os.PathLike[str]) -> bool:
    """Whether `output` holds the checkpoint of a run that has not saved its model yet: the run
    an interrupted `train` leaves (with or without `overwrite=True`), which the same call
    resumes, or a run killed while saving, which it completes. The checkpoint is deleted last."""
    return (Path(output) / _CHECKPOINT_STATE).is_file()


def is_run_folder(output: str | os.PathLike[str]) -> bool:
    """Whether `output` is a folder an imdb-rnn run wrote: it holds a model, a checkpoint, or
    the mark (`RUN_MARKER`) a run leaves before it writes anything else."""
    output = Path(output)
    marks = (MODEL_FILE, _CHECKPOINT_STATE, RUN_MARKER)
    # A self-training run stopped after its teacher (`imdb_rnn.training.selftrain.TEACHER_DIR`).
    return any(os.path.lexists(output / name) for name in marks) or any(
        os.path.lexists(output / "teacher" / name) for name in marks
    )


def check_output(output: str | os.PathLike[str], *, overwrite: bool) -> bool:
    """Checks that a training run may write into `output`, and says whether it resumes.

    Returns:
        True when `output` holds an unfinished run that this one continues (never with
        `overwrite=True`, which discards it).

    Raises:
        OutputExistsError: if `output` holds a finished model, or is a non-empty folder that no
            imdb-rnn run wrote (a user's files), and `overwrite` is False. With `overwrite`, such
            a folder is trained into: the files of the run's names are replaced, and no other
            file is deleted.
    """
    resuming = not overwrite and holds_unfinished_run(output)
    if (Path(output) / MODEL_FILE).exists() and not overwrite and not resuming:
        raise OutputExistsError(
            f"{output} already holds a model; pass overwrite=True to replace it or choose "
            "another output=."
        )
    folder = Path(output)
    if not overwrite and folder.is_dir() and not is_run_folder(folder):
        # What a run writes first (its write test, its mark, their temporary files) is not a
        # user's: another worker of a cluster may be writing them into the folder right now.
        held = sorted(
            entry.name
            for entry in folder.iterdir()
            if not entry.name.startswith(".imdb-rnn")
            and not (entry.name.startswith(".") and ".tmp" in entry.name)
        )
        if held:
            shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            raise OutputExistsError(
                f"{output} holds files that are not an imdb-rnn run ({shown}); choose a new or "
                "empty folder for output=, or pass overwrite=True to train into it (files of the "
                "run's names are replaced, no other is deleted)."
            )
    return resuming


def check_writable(output: str | os.PathLike[str]) -> None:
    """Creates `output` and writes and removes a test file in it, so that permissions,
    read-only file systems and full disks show before training rather than after.

    Raises:
        OSError: saying which of the two failed, with the system's reason.
    """
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            error.errno, f"Cannot create the output directory {output}: {error.strerror}"
        ) from None
    # One name per process: the workers of a cluster may probe the same folder at once.
    probe = output / f".imdb-rnn-write-test-{os.getpid()}"
    try:
        files.write_text(probe, "imdb-rnn checks that it can write here before training.\n")
        probe.unlink()
        if not (output / RUN_MARKER).exists():
            # Marks the folder as a run's before anything else is written, so that a run
            # stopped early is resumed, not taken for a folder of someone else's files.
            files.write_text(output / RUN_MARKER, "An imdb-rnn run writes into this folder.\n")
    except OSError as error:
        raise OSError(
            error.errno, f"Cannot write into the output directory {output}: {error.strerror}"
        ) from None


def prepare_logs(output: str | os.PathLike[str], *, empty: bool) -> Path:
    """`output/logs` for TensorBoard, emptied first when `empty` (a fresh run: TensorBoard
    would draw an earlier run's events as part of this one; a resumed run adds to its logs).

    Raises:
        ModuleNotFoundError: if the `tensorboard` package, which TensorFlow needs to write
            summaries, is not installed (checked here rather than after the first epoch).
        FolderBusyError: if another process is training into `output`.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise ModuleNotFoundError(
            "TensorBoard logging needs the tensorboard package: pip install tensorboard "
            "(or pass tensorboard=False).",
            name="tensorboard",
        )
    log_dir = Path(output) / LOGS_DIR
    if empty and log_dir.is_dir():
        # Not while another run writes there: its logs are not ours. Only TensorBoard's event
        # files go: anything else in logs/ is someone else's.
        with folder_lock(output):
            remove_owned(log_dir, _LOG_FILES)
    return log_dir


def read_json(path: Path, *, what: str) -> Any:
    """Reads a JSON file of a model directory, refusing devices and files over the size limit.

    Raises:
        InputError: if it is not a regular file or is too large.
        ValueError: if it is not UTF-8 JSON.
    """
    return json.loads(decode_text(read_limited(path, what=f"{what} {path}")))


def read_labels(directory: Path, outputs: int) -> tuple[str, ...]:
    """The class names saved beside a model (`labels.json`); IMDB's without the file."""
    from imdb_rnn.data.splits import LABEL_NAMES
    from imdb_rnn.errors import ModelFileError

    path = directory / LABELS_FILE
    if not path.exists():
        if outputs != 1:
            raise ModelFileError(f"{directory} holds no {LABELS_FILE} for its {outputs} classes.")
        return LABEL_NAMES
    try:
        names = read_json(path, what="The labels file")
    except InputError as error:
        raise ModelFileError(str(error)) from None
    except (ValueError, RecursionError) as error:  # JSON and UTF-8 errors
        raise ModelFileError(f"{path} is not valid JSON ({error}).") from None
    expected = 2 if outputs == 1 else outputs
    if (
        not isinstance(names, list)
        or len(names) != expected
        or not all(isinstance(name, str) for name in names)
        or len(set(names)) != len(names)  # two outputs of one name: one could never be told
    ):
        raise ModelFileError(
            f"{path} should list the model's {expected} distinct class names. Received: {names!r}"
        )
    return tuple(names)


def versions() -> dict[str, str]:
    """The versions of imdb-rnn, TensorFlow and Keras (recorded with every model)."""
    import keras
    import tensorflow as tf

    from imdb_rnn import __version__

    return {"imdb_rnn": __version__, "tensorflow": tf.__version__, "keras": keras.__version__}
