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
    "atomic_path",
    "current_umask",
    "fsync_directory",
    "remove_temporaries",
    "write_json",
    "write_text",
]

_TEMPORARY = ".tmp"  # infix of temporary names: `.model.k2j4a9.tmp.keras`


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
