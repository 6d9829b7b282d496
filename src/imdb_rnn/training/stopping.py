"""Stopping a training run cleanly: on SIGINT / SIGTERM (`SignalStop`, `TrainingInterrupted`)
and on a non-finite loss (`NonFiniteLossError`).

`EpochLoop` (`training.loop`) honours both: it checks the loss after every batch and every
validation, and on a signal saves a checkpoint after the current batch before raising.

Example:

>>> with SignalStop() as stop:
...     stop.received is None
True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

from imdb_rnn.errors import NonFiniteLossError, TrainingInterrupted

__all__ = ["NonFiniteLossError", "SignalStop", "TrainingInterrupted"]


class SignalStop:
    """Turns SIGINT and SIGTERM into a request to stop training at the next batch.

    Use it as a `with` block around training (from the main thread; elsewhere it installs
    nothing). While an `EpochLoop` is training, the first signal only sets `received`: the
    loop saves a checkpoint after the current batch and raises `TrainingInterrupted`. At any
    other moment (reading data, evaluating, saving), and for a second signal, the handler raises
    `TrainingInterrupted` at once.

    Args:
        signals: the signals to catch. Default SIGINT and SIGTERM.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals = tuple(signals)
        self.received: int | None = None
        self.deferring = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self.deferring = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if not (self.deferring and first):
            raise TrainingInterrupted(signum)
