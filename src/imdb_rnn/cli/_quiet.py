"""TensorFlow, quiet: its start-up lines and Python-side warnings kept off the terminal.

Each command that needs TensorFlow calls `quiet_tensorflow()` before it imports anything that
imports it; importing the CLI imports no TensorFlow, so `imdb-rnn --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_tensorflow", "stderr_descriptor_silenced"]


def quiet_tensorflow() -> None:
    """Imports TensorFlow with its C++ start-up lines and Python warnings silenced."""
    # TensorFlow's C++ start-up lines (no GPU, oneDNN) are noise on the CPU; users can override.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() != "3":
        return
    import logging

    # Python-side warnings: absl's (TFDS, before the offline error) and TensorFlow's own
    # ("tf.function retracing" when an ensemble builds one step per member).
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The kernel's one-time compile is said as a stage ("Compiling the native GRU kernel").
    logging.getLogger("imdb_rnn.native").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    # TensorFlow 2.21 logs six lines while it is imported, before absl's logging is set up,
    # whatever TF_CPP_MIN_LOG_LEVEL says: import it with file descriptor 2 closed to them.
    with stderr_descriptor_silenced():
        import tensorflow  # noqa: F401


@contextmanager
def stderr_descriptor_silenced() -> Iterator[None]:
    """Sends what C++ code writes to file descriptor 2 to /dev/null in the block; Python's
    `sys.stderr` (and so any exception's message) is restored before leaving it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (closed stderr): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
