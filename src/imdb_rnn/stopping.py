"""Stopping a training run cleanly: on SIGINT / SIGTERM (`SignalStop`, `TrainingInterrupted`)
and on a non-finite loss (`NonFiniteLossError`).

`EpochLoop` (in `imdb_rnn.loop`) honours both: it checks the loss after every batch and every
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

__all__ = ["NonFiniteLossError", "SignalStop", "TrainingInterrupted"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; training stopped before saving those weights.

    Attributes:
        epoch: 0-based epoch in which it happened.
        step: 1-based batch of that epoch (0 when it was the validation loss).
    """

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM (after saving a checkpoint, when it was training).

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
