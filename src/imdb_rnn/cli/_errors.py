"""How the command line ends on a user's mistake: one error line on stderr, and an exit code.

Every error of the library for a user's mistake is an `imdb_rnn.errors.ImdbRnnError`, which
carries its exit code and the option it concerns (`error.option`): `report` prints its message
with the library's argument and field names given as the command's options (`_options.in_flags`)
and exits with `error.exit_code`. The command group (`_app`) applies it to every command, so no
command maps errors by hand. Anything else is a bug and says so (`_app`).
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from typing import NoReturn

import typer

from imdb_rnn.cli._options import in_flags
from imdb_rnn.cli._render import markup, stderr
from imdb_rnn.errors import (
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_MODEL,
    EXIT_USAGE,
    ImdbRnnError,
)

__all__ = [
    "EXIT_DATA",
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_IO",
    "EXIT_MODEL",
    "EXIT_USAGE",
    "fail",
    "message_of",
    "os_error_message",
    "report",
    "stdout_closed",
]


def fail(message: str, code: int, *, translate: bool = True) -> NoReturn:
    """Prints `message` (plain text, never markup) as one error line and exits with `code`;
    the library's argument names in it are written as options (`in_flags`) unless not
    `translate`."""
    text = markup(in_flags(message) if translate else message)
    stderr().print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def os_error_message(error: OSError) -> str:
    """`No space left on device: /runs/x`, without Python's `[Errno 28]`."""
    return f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")


def message_of(error: BaseException) -> str:
    """The error's message as the command line says it: the option it concerns named as the
    command's flag (`--epochs`, not `training.epochs`)."""
    text = os_error_message(error) if isinstance(error, OSError) else str(error)
    return in_flags(text, option=getattr(error, "option", None))


def report(error: ImdbRnnError | OSError, note: str | None = None) -> NoReturn:
    """Ends the command on a user's mistake: its message (and `note`, if any) on stderr, and its
    exit code (`EXIT_IO` for an `OSError` of the file system)."""
    code = error.exit_code if isinstance(error, ImdbRnnError) else EXIT_IO
    text = message_of(error)
    if note:
        text = f"{text.rstrip()}{'' if text.rstrip().endswith('.') else '.'} {note}"
    stderr().print(f"[bold red]error:[/] {markup(text)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def stdout_closed() -> NoReturn:
    """Ends the command quietly when the reader of its output went away (`imdb-rnn ... | head`),
    with exit code 1, as Click and Rich do when they meet the closed pipe themselves."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush into the closed pipe
    raise typer.Exit(EXIT_INTERNAL)
