"""Every exception imdb-rnn raises, in one hierarchy, each with the exit code the CLI uses.

A user's mistake (a bad value, a missing file, a damaged model) raises a subclass of
`ImdbRnnError`; the command line prints its message and exits with its `exit_code`, so no
command maps errors by hand. A bug raises anything else and shows its traceback.

Each subclass also derives from the built-in exception Python users would catch for it
(`ValueError` for a bad value, `OSError` for a busy folder, `RuntimeError` for a diverged run),
so `except ValueError` keeps working. Errors about one setting name it in `option`: a config
field (`"training.epochs"`) or an argument of the function raising it (`"source"`); the CLI
turns it into its flag (`--epochs`, `--data`).

Example:

>>> from imdb_rnn.errors import ConfigError, ImdbRnnError
>>> error = ConfigError("Expected epochs >= 1. Received: epochs=0", option="training.epochs")
>>> isinstance(error, ImdbRnnError), isinstance(error, ValueError), error.exit_code
(True, True, 2)
>>> error.option
'training.epochs'
"""

from __future__ import annotations

import signal
from typing import ClassVar

__all__ = [
    "EXIT_DATA",
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_IO",
    "EXIT_MODEL",
    "EXIT_USAGE",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "DataError",
    "EncoderError",
    "ExportTargetError",
    "FolderBusyError",
    "ImdbRnnError",
    "InputError",
    "ModelFileError",
    "NativeBuildError",
    "NonFiniteLossError",
    "OutputExistsError",
    "OutputPathError",
    "PackagedVectorsError",
    "RequestError",
    "TrainingInterrupted",
    "ValidationOverlapWarning",
    "WordVectorsError",
]

#: Exit codes of the command line (docs/cli.md): a bug (with its traceback), a bad option or
#: value, bad data, a missing or damaged model, a file-system error, a diverged run.
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_MODEL = 4
EXIT_IO = 5
EXIT_DIVERGED = 6


class ImdbRnnError(Exception):
    """The base of every error imdb-rnn raises for a user's mistake.

    Args:
        *args: the message (and, for `OSError` subclasses, `errno, strerror, filename`).
        option: the config field (`"section.field"`) or argument the error is about, if one.
            Default None.

    Attributes:
        exit_code: the command line's exit status for it.
        option: as given.
    """

    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(self, *args: object, option: str | None = None) -> None:
        super().__init__(*args)
        self.option = option


# -- a bad value or option (exit 2) -----------------------------------------------------------


class ConfigError(ImdbRnnError, ValueError):
    """A configuration value is out of range, of the wrong kind or unknown."""

    exit_code = EXIT_USAGE


class OutputExistsError(ConfigError):
    """The output folder already holds a model, and `overwrite` was not given."""


class OutputPathError(ImdbRnnError, ValueError):
    """A command was asked to write where the output rule forbids: over one of its inputs,
    into a model folder that is not its output, or over a device, FIFO or socket."""

    exit_code = EXIT_USAGE


class ExportTargetError(ImdbRnnError, ValueError):
    """The export's target folder would destroy something that is not an earlier export."""

    exit_code = EXIT_USAGE


class EncoderError(ConfigError):
    """An encoder folder is missing, damaged, or does not fit the model it should initialise."""


class WordVectorsError(ConfigError):
    """A word-vector file is missing, unreadable or not in the text format."""


class PackagedVectorsError(ConfigError):
    """The vectors' name is unknown, their package is not installed, or its files are not
    what was expected."""


class CheckpointMismatchError(ConfigError):
    """A checkpoint belongs to a run with another configuration or other training data."""


class RequestError(ImdbRnnError):
    """A client's mistake, in a request to `imdb-rnn serve`: answered with HTTP `status` and
    `{"error": message}`."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- bad data (exit 3) ------------------------------------------------------------------------


class DataError(ImdbRnnError, ValueError):
    """The data source is missing, unreadable, empty, or not what it should be (IMDB's layout,
    a labelled file's columns)."""

    exit_code = EXIT_DATA


class InputError(ImdbRnnError, ValueError):
    """An input is not a regular file where one is expected, or is over its size limit."""

    exit_code = EXIT_DATA


# -- a missing or damaged model (exit 4) ------------------------------------------------------


class ModelFileError(ImdbRnnError, ValueError):
    """A model file is missing, corrupt or holds something imdb-rnn does not load."""

    exit_code = EXIT_MODEL


class CheckpointError(ModelFileError):
    """A checkpoint is unreadable, damaged or written by a newer imdb-rnn."""


# -- the file system (exit 5) -----------------------------------------------------------------


class FolderBusyError(ImdbRnnError, OSError):
    """Another process holds the folder's lock (another `train` writes into it)."""

    exit_code = EXIT_IO


# -- training (exit 6), the native kernel, stops ---------------------------------------------


class NonFiniteLossError(ImdbRnnError, RuntimeError):
    """The training loss became NaN or infinite; training stopped before saving those weights.

    Attributes:
        epoch: 0-based epoch in which it happened.
        step: 1-based batch of that epoch (0 when it was the validation loss).
    """

    exit_code = EXIT_DIVERGED

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class NativeBuildError(ImdbRnnError, RuntimeError):
    """The native kernel could not be compiled or loaded; the message says why. Training falls
    back to Keras' own GRU unless the kernel was asked for by name."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM (after saving a checkpoint, when it was training).

    Not an `ImdbRnnError`: like the `KeyboardInterrupt` it is, `except Exception` lets it by.

    Attributes:
        signum: the signal number.
        exit_code: `128 + signum`, the shell's convention (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"Training was stopped by {signal.Signals(signum).name}.")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class ValidationOverlapWarning(UserWarning):
    """The validation split evaluated on holds texts the model trained on: a model trained with
    `data.limit` took its training texts from the reviews the full validation split holds."""
