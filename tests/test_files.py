"""Tests for imdb_rnn.files: atomic writes, bounded reads and the folder lock."""

import os
import stat

import pytest

from imdb_rnn.errors import FolderBusyError, InputError
from imdb_rnn.files import ENV_MAX_FILE_BYTES, folder_lock, read_limited, write_text


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """A file written atomically is readable by others as the umask allows, like open() does."""
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_read_limited_reads_up_to_the_limit(tmp_path, monkeypatch):
    """A file at the limit is read; one byte more is refused, naming the variable."""
    monkeypatch.setenv(ENV_MAX_FILE_BYTES, "10")
    (tmp_path / "ten").write_bytes(b"0123456789")
    (tmp_path / "eleven").write_bytes(b"0123456789A")
    assert read_limited(tmp_path / "ten", what="ten") == b"0123456789"
    with pytest.raises(InputError, match=f"eleven is over 10 bytes.*{ENV_MAX_FILE_BYTES}"):
        read_limited(tmp_path / "eleven", what="eleven")
    with pytest.raises(InputError, match="not a regular file"):
        read_limited(tmp_path, what="a folder")
    monkeypatch.setenv(ENV_MAX_FILE_BYTES, "lots")
    with pytest.raises(InputError, match=f"Expected {ENV_MAX_FILE_BYTES} to be a number"):
        read_limited(tmp_path / "ten", what="ten")


def test_folder_lock_is_exclusive_until_released(tmp_path):
    """A second lock on a folder fails at once while the first is held, and works after."""
    busy = pytest.raises(FolderBusyError, match="Another imdb-rnn train")
    with folder_lock(tmp_path), busy, folder_lock(tmp_path):
        pass
    with folder_lock(tmp_path):
        pass
