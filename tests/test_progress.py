"""Tests for imdb_rnn.progress, rendered into a string console."""

import io

import keras
import numpy as np
from rich.console import Console

from imdb_rnn.progress import RichProgress, history_table


def test_progress_callback_reports_epochs_and_summary():
    """Training with RichProgress prints one line per epoch and a final table."""
    output = io.StringIO()
    callback = RichProgress(Console(file=output, width=100))
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=["accuracy"])
    x, y = np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    text = output.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "val_loss" in text
    assert "Training history" in text
    assert callback.history["loss"] and len(callback.history["loss"]) == 2


def test_history_table_lists_each_epoch():
    """history_table has one row per epoch with the metric values."""
    console = Console(file=io.StringIO(), width=100)
    console.print(history_table({"loss": [0.5, 0.25], "val_loss": [0.6, 0.4]}))
    text = console.file.getvalue()
    assert "0.2500" in text and "0.4000" in text and "epoch" in text


def test_history_table_of_a_resumed_run_numbers_its_epochs():
    """A resumed run's table starts at the epoch it resumed in."""
    console = Console(file=io.StringIO(), width=100)
    console.print(history_table({"loss": [0.5, 0.25]}, first_epoch=3))
    rows = [line for line in console.file.getvalue().splitlines() if "0.2500" in line]
    assert rows and rows[0].split()[1] == "4"
