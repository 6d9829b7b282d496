"""Tests for imdb_rnn.files: atomic writes."""

import os
import stat

from imdb_rnn.files import write_text


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """A file written atomically is readable by others as the umask allows, like open() does."""
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
