"""Rich progress display for Keras training, as a callback."""

from __future__ import annotations

import time
from typing import Any

import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = ["RichProgress", "history_table"]


def history_table(
    history: dict[str, list[float]], *, title: str = "Training history", first_epoch: int = 1
) -> Table:
    """Renders a per-epoch history (`loss`, `accuracy`, `val_loss`, `val_accuracy`) as a table
    whose first row is epoch `first_epoch` (a resumed run shows only the epochs it ran)."""
    table = Table(title=title)
    table.add_column("epoch", justify="right")
    columns = [
        k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate") if k in history
    ]
    for column in columns:
        table.add_column(column, justify="right")
    epochs = len(history.get("loss", []))
    for epoch in range(epochs):
        cells = []
        for column in columns:
            value = history[column][epoch]
            cells.append(f"{value:.2e}" if column == "learning_rate" else f"{value:.4f}")
        table.add_row(str(first_epoch + epoch), *cells)
    return table


class RichProgress(keras.callbacks.Callback):
    """Shows a progress bar per epoch (steps, ETA, running loss and accuracy), one line per
    finished epoch with its validation metrics, and a summary table at the end.

    Args:
        console: where to draw. Default: a new `Console` on stderr.
        steps: batches per epoch, if Keras does not know it. Default None.

    Example:

    >>> import io
    >>> from rich.console import Console
    >>> callback = RichProgress(Console(file=io.StringIO(), width=80))
    """

    def __init__(self, console: Console | None = None, *, steps: int | None = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)
        self._steps = steps
        self._progress: Progress | None = None
        self._task: Any = None
        self._epochs = 0
        self._first_epoch: int | None = None
        self._epoch_start = 0.0
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._epochs = int(self.params.get("epochs") or 0)
        self._steps = self.params.get("steps") or self._steps
        self.history = {}
        self._first_epoch = None
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  acc {task.fields[accuracy]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        assert self._progress is not None
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch_start = time.perf_counter()
        self._task = self._progress.add_task(
            "train", total=self._steps, epoch=epoch + 1, epochs=self._epochs, loss="-", accuracy="-"
        )

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        logs = logs or {}
        self._progress.update(
            self._task,
            completed=batch + 1,
            loss=_format(logs.get("loss")),
            accuracy=_format(logs.get("accuracy")),
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        seconds = time.perf_counter() - self._epoch_start
        self.console.print(
            f"epoch {epoch + 1}/{self._epochs}  loss {_format(logs.get('loss'))}  "
            f"acc {_format(logs.get('accuracy'))}  val_loss {_format(logs.get('val_loss'))}  "
            f"val_acc {_format(logs.get('val_accuracy'))}  ({seconds:.1f} s)"
        )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()
        if self.history:
            self.console.print(
                history_table(self.history, first_epoch=(self._first_epoch or 0) + 1)
            )

    def close(self) -> None:
        """Removes the progress bar; for training that ended by an exception."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _format(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"
