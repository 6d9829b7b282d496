"""Atomic file writes: a file is either the old one or the complete new one, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "FolderBusyError",
    "atomic_path",
    "folder_lock",
    "remove_temporaries",
    "write_json",
    "write_text",
]

_TEMPORARY = ".tmp"  # infix of temporary names: `.model.k2j4a9.tmp.keras`
LOCK_FILE = ".imdb-rnn.lock"


class FolderBusyError(OSError):
    """Another process holds the folder's lock (another `train` writes into it)."""


@contextlib.contextmanager
def folder_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Holds an exclusive lock on `directory` (an advisory `flock` on `directory/.imdb-rnn.lock`,
    created if needed) for the `with` block; the system releases it when the process dies.

    Raises:
        FolderBusyError: at once, if another process holds it.
    """
    import errno
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise FolderBusyError(
                errno.EBUSY,
                "Another imdb-rnn train is writing into this folder"
                + (f" (process {holder})" if holder.isdigit() else "")
                + "; wait for it to end or choose another --output",
                str(directory),
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
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
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_temporaries(directory: str | os.PathLike[str]) -> None:
    """Deletes the temporary files that `atomic_path` leaves behind when its process is killed
    mid-write (SIGKILL, power loss). Only one process may write into `directory` at a time."""
    for path in Path(directory).glob(f".*{_TEMPORARY}*"):
        path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
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
