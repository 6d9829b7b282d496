"""Files, safely: atomic writes (a file is either the old one or the complete new one, never
half-written), bounded reads of regular files only (`read_limited`, with limits the `ENV_MAX_*`
variables raise), and a lock that keeps a second `train` out of a model folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ENV_MAX_FILE_BYTES",
    "ENV_MAX_MODEL_BYTES",
    "ENV_MAX_REVIEW_BYTES",
    "FolderBusyError",
    "InputError",
    "atomic_path",
    "byte_limit",
    "check_free_space",
    "current_umask",
    "folder_lock",
    "fsync_directory",
    "open_regular",
    "read_limited",
    "remove_temporaries",
    "write_json",
    "write_text",
]

#: Largest review, in bytes, read from a data archive or folder (default 1 MiB; the longest IMDB
#: review has about 14 KB).
ENV_MAX_REVIEW_BYTES = "IMDB_RNN_MAX_REVIEW_BYTES"
#: Largest input file read whole (`predict --file` or stdin, `--config`, a model directory's
#: JSON files, a checkpoint's state and vocabulary), in bytes (default 64 MiB).
ENV_MAX_FILE_BYTES = "IMDB_RNN_MAX_FILE_BYTES"
#: Largest `model.keras`, in bytes once unpacked (default 2 GiB; the default model is ~4 MB).
ENV_MAX_MODEL_BYTES = "IMDB_RNN_MAX_MODEL_BYTES"
_DEFAULT_LIMITS = {
    ENV_MAX_REVIEW_BYTES: 1 << 20,
    ENV_MAX_FILE_BYTES: 64 << 20,
    ENV_MAX_MODEL_BYTES: 2 << 30,
}


class InputError(ValueError):
    """An input is not a regular file where one is expected, or is over its size limit."""


def byte_limit(variable: str) -> int:
    """The size limit named by `variable` (one of the `ENV_MAX_*` names): its value in the
    environment, else its default.

    Raises:
        InputError: if the variable is set to something other than a positive whole number.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return _DEFAULT_LIMITS[variable]
    try:
        limit = int(value.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise InputError(f"Expected {variable} to be a number of bytes. Received: {value!r}")
    return limit


def open_regular(path: str | os.PathLike[str], *, what: str) -> BinaryIO:
    """Opens `path` for reading in binary, if it is a regular file.

    Raises:
        InputError: if it is a device (/dev/zero), a FIFO, a socket or a folder; a FIFO is
            refused at once, without waiting for a writer.
        OSError: if it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{what} is not a regular file.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_limited(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    what: str,
    limit_variable: str = "IMDB_RNN_MAX_FILE_BYTES",
) -> bytes:
    """Reads a whole file or stream, refusing what is not a regular file and what is too large.

    A path must name a regular file (not a device such as /dev/zero, a FIFO or a folder); a
    stream (stdin) is read until its end or the limit, whichever comes first.

    Args:
        source: a path, or a binary stream.
        what: how to name the input in messages ("The standard input", a path ...).
        limit_variable: the `ENV_MAX_*` variable that holds the limit. Default
            `IMDB_RNN_MAX_FILE_BYTES`.

    Returns:
        The bytes.

    Raises:
        InputError: if the path is not a regular file, or the input is over the limit.
        OSError: if the file cannot be opened or read.
    """
    limit = byte_limit(limit_variable)
    if isinstance(source, (str, os.PathLike)):
        with open_regular(source, what=what) as stream:
            data = stream.read(limit + 1)
    else:
        data = source.read(limit + 1)
    if len(data) > limit:
        raise InputError(
            f"{what} is over {limit:,} bytes, the limit; set {limit_variable} to a larger number "
            "of bytes to read it."
        )
    return data


_TEMPORARY = ".tmp"  # infix of temporary names: `.model.k2j4a9.tmp.keras`


class FolderBusyError(OSError):
    """Another process holds the folder's lock (another `train` writes into it)."""


@contextlib.contextmanager
def folder_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Holds an exclusive lock on `directory` (an advisory `flock` on the folder itself, which
    leaves no file behind; created if needed) for the `with` block. The system releases it when
    the process ends, however it ends.

    Raises:
        FolderBusyError: at once, if another process (or another `folder_lock` of this one)
            holds it.
    """
    import errno
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                errno.EBUSY,
                "Another imdb-rnn train is writing into this folder; wait for it to end or "
                "choose another output=",
                str(directory),
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside `target`; on success it is fsynced and renamed onto
    `target`, on error it is removed and `target` is left as it was.

    The temporary name keeps `target`'s suffix, so writers that check it (Keras wants `.keras`)
    accept it.

    Example:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text()
    'hello'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f"{_TEMPORARY}{target.suffix}", dir=target.parent
    )
    os.close(handle)
    tmp = Path(name)
    # mkstemp creates the file readable by its owner only; give it the usual permissions.
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def current_umask() -> int:
    """The process's file-creation mask, e.g. `0o022` (for giving files made private by
    `mkstemp` or `mkdtemp` the usual permissions)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_temporaries(directory: str | os.PathLike[str]) -> None:
    """Deletes the temporary files that `atomic_path` leaves behind when its process is killed
    mid-write (SIGKILL, power loss). Only one process may write into `directory` at a time."""
    for path in Path(directory).glob(f".*{_TEMPORARY}*"):
        path.unlink(missing_ok=True)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flushes `directory`'s entries to disk, so that a rename into it survives a crash; a no-op
    where the file system does not let a directory be opened."""
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically writes `text` (UTF-8) to `target`."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(
    target: str | os.PathLike[str], value: Any, *, default: Callable[[Any], Any] | None = None
) -> None:
    """Atomically writes `value` as indented JSON to `target`."""
    write_text(target, json.dumps(value, indent=2, default=default) + "\n")


def check_free_space(directory: str | os.PathLike[str], needed_bytes: int) -> None:
    """Raises `OSError(ENOSPC)` with a clear message if `directory`'s file system has less than
    `needed_bytes` free."""
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise OSError(
            errno.ENOSPC,
            f"Not enough free space for checkpoints and the model: about "
            f"{_megabytes(needed_bytes)} needed, {_megabytes(free)} free. Free some space or "
            "choose another output=",
            str(directory),
        )


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"
