"""Files, safely: the one input rule and the one output rule every command follows, atomic
writes (a file is either the old one or the complete new one, never half-written), and a lock
that keeps a second `train` out of a model folder.

The input rule (every reader): only regular files are read (a device such as /dev/zero, a FIFO
or a folder is refused at once, also behind a symbolic link); a UTF-8 byte-order mark is
dropped; every read is bounded (`read_limited` for whole files, `bounded_lines` for streamed
lines, `csv_rows` for CSV fields, with limits the `ENV_MAX_*` variables raise); NUL bytes are
refused as binary data; folders are walked without following symbolic links (`folder_files`).

The output rule (every writer, `check_output_file` and `check_output_folder`): the target is
never one of the command's inputs (nor a folder holding one), never a file of a model folder
other than the command's own output, and never a device, FIFO or socket (nor a link to one),
which would be replaced by a regular file; a symbolic link to a regular file is written through
(the file is replaced, the link kept), and an existing file keeps its permissions.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from imdb_rnn.errors import FolderBusyError, InputError, OutputPathError

__all__ = [
    "ENV_MAX_FILE_BYTES",
    "ENV_MAX_MODEL_BYTES",
    "ENV_MAX_REVIEW_BYTES",
    "MAX_LINE_BYTES",
    "MODEL_FOLDER_MARKERS",
    "MODEL_FOLDER_NAMES",
    "FolderBusyError",
    "InputError",
    "OutputPathError",
    "atomic_path",
    "bounded_lines",
    "byte_limit",
    "check_free_space",
    "check_output_file",
    "check_output_folder",
    "csv_rows",
    "current_umask",
    "decode_text",
    "folder_files",
    "folder_lock",
    "fsync_directory",
    "is_model_folder",
    "open_regular",
    "read_limited",
    "remove_owned",
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


#: The longest line a streamed text input may hold (bytes): `predict`'s `lines` and `jsonl`
#: input, a data file's CSV, TSV or JSON Lines line.
MAX_LINE_BYTES = 16 * 2**20
#: A UTF-8 byte-order mark, which some editors (Excel, Notepad) put at the start of a file.
_BOM = b"\xef\xbb\xbf"


def decode_text(data: bytes, *, errors: str = "strict") -> str:
    """`data` decoded as UTF-8, a leading byte-order mark dropped.

    Raises:
        UnicodeDecodeError: if it is not UTF-8 (with `errors="strict"`).
    """
    return data.decode("utf-8-sig", errors=errors)


def bounded_lines(stream: BinaryIO, *, what: str, limit: int) -> Iterator[bytes]:
    """The lines of a binary stream, with their line ends, read one at a time and never more
    than `limit` bytes each, so an endless line (`/dev/zero` on stdin) cannot fill the memory.
    A byte-order mark before the first line is dropped.

    Raises:
        InputError: on a line over `limit` bytes, or a line holding NUL bytes (binary data),
            naming the line: `"<stdin>:3: ..."`.
    """
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if b"\x00" in line:
            raise InputError(
                f"{what} is not text (it holds NUL bytes, line {number}): give text, as UTF-8."
            )
        if len(line) > limit:
            raise InputError(
                f"{what}:{number}: a line of over {limit:,} bytes: give one text per line."
            )
        yield line


def csv_rows(
    lines: Iterable[str], *, delimiter: str = ",", field_limit: int
) -> csv.DictReader[str]:
    """A `csv.DictReader` over `lines` (from `bounded_lines`, decoded) whose fields may hold at
    most `field_limit` characters: a quoted field that never closes stops there, with a
    `csv.Error`, instead of growing without end.

    Raises:
        InputError: if the header names a column twice.
    """
    csv.field_size_limit(field_limit)
    reader = csv.DictReader(lines, delimiter=delimiter)
    columns = reader.fieldnames or []
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:  # DictReader would keep the last of them, silently
        raise InputError(
            f"The CSV header names {', '.join(map(repr, repeated))} more than once: give each "
            "column its own name."
        )
    return reader


def folder_files(root: str | os.PathLike[str]) -> list[Path]:
    """The regular files below `root`, sorted, found without following symbolic links: a link
    (to `/etc/passwd`, or to a folder) is skipped, as are hidden files and folders (`.git`,
    `.ipynb_checkpoints`)."""
    found = []
    for directory, folders, names in os.walk(root):  # os.walk follows no links by default
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in names:
            path = Path(directory) / name
            if not name.startswith(".") and stat.S_ISREG(path.lstat().st_mode):
                found.append(path)
    return sorted(found)


#: Files and folders that mark a folder as a model folder (written by imdb-rnn: a trained model,
#: an unfinished run, an export, a pre-trained encoder).
MODEL_FOLDER_MARKERS = (
    "model.keras",
    "checkpoint/state.json",
    ".imdb-rnn-run",
    "saved_model.pb",
    "model.tflite",
    "encoder.json",
)
#: The names imdb-rnn uses inside a model folder: no other command writes a file of these names
#: there.
MODEL_FOLDER_NAMES = frozenset(
    {
        "model.keras",
        "config.json",
        "config.toml",
        "history.json",
        "labels.json",
        "metrics.json",
        "README.md",
        "curves.png",
        "checkpoint",
        "logs",
        "teacher",
        "token-cache",
        ".imdb-rnn-run",
        "fingerprint.json",
        "saved_model.pb",
        "variables",
        "assets",
        "fingerprint.pb",
        "imdb_rnn_config.json",
        "model.tflite",
        "vocabulary.txt",
        "tflite_config.json",
        "encoder.json",
        "encoder.npz",
        "vocabulary.json",
    }
)


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether `folder` holds one of `MODEL_FOLDER_MARKERS`."""
    return any(os.path.lexists(Path(folder) / marker) for marker in MODEL_FOLDER_MARKERS)


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def check_output_file(
    target: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    what: str = "The output",
) -> Path:
    """The output rule for a file a command writes (`predict --output`, `eval --confusion-png`).

    Args:
        target: the path the user named.
        inputs: the command's inputs (files and folders: the model folder, the data). None
            entries are ignored.
        what: how messages name the target.

    Returns:
        The path to write atomically: `target`, or the regular file a symbolic link `target`
        points to (the link is kept).

    Raises:
        OutputPathError: if `target` is (or links to) a device, FIFO, socket or folder; is one of
            `inputs` or inside an input folder; or is inside a model folder other than as a new
            name directly in it (`runs/m/confusion.png` is fine, `runs/m/model.keras` is not).
    """
    given = Path(target)
    path = Path(os.path.realpath(given))
    if path.exists() and not path.is_file():
        raise OutputPathError(
            f"{what} {os.fspath(given)} is not a regular file (a folder, device, FIFO or "
            "socket), which writing would replace: name a file, or leave the option out to "
            "write to the standard output."
        )
    for source in inputs:
        if source is None or str(source) == "-":
            continue
        source_path = Path(os.path.realpath(source))
        inside = _within(path, source_path) and not is_model_folder(source_path)
        if inside or path == source_path or _same_file(path, source_path):
            raise OutputPathError(
                f"{what} {os.fspath(given)} is {'one of' if path == source_path else 'inside'} "
                f"the command's inputs ({os.fspath(source)}): writing it would destroy the "
                "input. Name another file."
            )
    for folder in path.parents:
        if is_model_folder(folder) and (folder != path.parent or path.name in MODEL_FOLDER_NAMES):
            raise OutputPathError(
                f"{what} {os.fspath(given)} is a file of the model folder {folder}, which "
                "writing would damage: name a file outside it (or a new name directly in it)."
            )
    return path


def check_output_folder(
    target: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    data: Iterable[str | os.PathLike[str] | None] = (),
    what: str = "The output folder",
) -> None:
    """The output rule for a folder a command writes (`train --output`, `pretrain --output`,
    `export OUT_DIR`).

    Args:
        target: the folder.
        inputs: the command's inputs: the target may not be one of them nor inside one.
        data: the data inputs among them: the target may not hold one either (the run's files
            would be written over it).
        what: how messages name the target.

    Raises:
        OutputPathError: if the target is a file or a link to something other than a folder,
            is or is inside an input, holds a data input, or is inside a model folder.
    """
    given = Path(target)
    path = Path(os.path.realpath(given))
    if os.path.lexists(given) and not path.is_dir():
        raise OutputPathError(
            f"{what} {os.fspath(given)} exists and is not a folder: name a new or empty folder."
        )
    for source in inputs:
        if source is None or str(source) == "-":
            continue
        source_path = Path(os.path.realpath(source))
        if _within(path, source_path):
            raise OutputPathError(
                f"{what} {os.fspath(given)} is {'one of' if path == source_path else 'inside'} "
                f"the command's inputs ({os.fspath(source)}): writing it would change the input. "
                "Choose another folder."
            )
    for source in data:
        if source is not None and str(source) != "-":
            source_path = Path(os.path.realpath(source))
            if _within(source_path, path):
                raise OutputPathError(
                    f"{what} {os.fspath(given)} holds the data {os.fspath(source)}: the run's "
                    "files would be written beside and over it. Choose another folder."
                )
    for folder in path.parents:
        if is_model_folder(folder):
            raise OutputPathError(
                f"{what} {os.fspath(given)} is inside the model folder {folder}: choose a "
                "folder outside it."
            )


def remove_owned(folder: str | os.PathLike[str], patterns: Sequence[str]) -> None:
    """Deletes the files of `folder` that match one of `patterns` (globs relative to it, such as
    `"variables-*.npz"` or `"train/events.out.tfevents.*"`), then the folders left empty;
    anything else (a user's notes) stays where it is."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
    for directory, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):  # not empty: it holds someone else's files
            os.rmdir(directory)


_TEMPORARY = ".tmp"  # infix of temporary names: `.model.k2j4a9.tmp.keras`


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
    # mkstemp creates the file readable by its owner only: give it the permissions of the file
    # it replaces (a private 0600 file stays private), else the usual ones.
    try:
        existing = os.stat(target)
        mode = stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else None
    except OSError:
        mode = None
    os.chmod(tmp, mode if mode is not None else 0o666 & ~current_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename is not None and os.fspath(error.filename) == os.fspath(tmp):
            # Name the file the user knows, not the temporary one.
            raise OSError(error.errno, error.strerror, os.fspath(target)) from None
        raise
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
