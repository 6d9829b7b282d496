"""Pictures of a run as PNG files: training curves (of one run, or of several overlaid), a
confusion matrix and a reliability diagram.

Drawn with matplotlib's object API on the Agg canvas (no `pyplot`, no display, no global state),
and written atomically.

Example:

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> history = {"loss": [0.6, 0.4], "val_loss": [0.5, 0.45],
...            "accuracy": [0.7, 0.8], "val_accuracy": [0.75, 0.78]}
>>> save_training_curves(history, folder / "curves.png").stat().st_size > 0
True
>>> save_confusion_matrix([[40, 10], [5, 45]], folder / "confusion.png").name
'confusion.png'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from imdb_rnn.files import atomic_path

__all__ = [
    "CURVES_FILE",
    "MAX_CONFUSION_CLASSES",
    "save_compared_curves",
    "save_confusion_matrix",
    "save_reliability_diagram",
    "save_training_curves",
]

#: Name of the training-curves picture in a model directory.
CURVES_FILE = "curves.png"

_TRAIN_COLOUR = "tab:blue"
_VALID_COLOUR = "tab:orange"
_DPI = 100
#: The most classes a confusion-matrix picture draws: beyond it the cells are too small to read
#: and drawing one text per cell takes gigabytes (3,000 classes: 9 million cells).
MAX_CONFUSION_CLASSES = 50


def _write(figure: Figure, path: str | os.PathLike[str]) -> Path:
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI)
    return Path(path)


def save_training_curves(
    history: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    best_epoch: int | None = None,
    title: str | None = None,
    classes: int = 2,
) -> Path:
    """Draws loss and accuracy per epoch, training and validation, side by side, on fixed
    scales: accuracy from 0 to 1 and loss from 0, each with the chance level dashed (a uniform
    guess: accuracy 1 / classes, loss ln(classes)), so that a run that learned nothing looks
    flat and sits on the chance line.

    Args:
        history: per-epoch lists under `loss` and, where present, `val_loss`, `accuracy`,
            `val_accuracy` (a Keras or `Trainer` history).
        path: the PNG file to write.
        best_epoch: 1-based epoch whose weights were kept, marked with a dotted line.
            Default None: no mark.
        title: figure title. Default None: "Training curves".
        classes: how many classes the model tells apart (the chance levels). Default 2.

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if `history` has no `loss` values, or `classes` is below 2.
    """
    return _write(
        _training_curves(history, best_epoch=best_epoch, title=title, classes=classes), path
    )


def _training_curves(
    history: Mapping[str, Sequence[float]],
    *,
    best_epoch: int | None,
    title: str | None,
    classes: int,
) -> Figure:
    losses = list(history.get("loss", []))
    if not losses:
        raise ValueError(f"Expected a history with 'loss' values. Received keys: {sorted(history)}")
    if classes < 2:
        raise ValueError(f"Expected classes >= 2. Received: classes={classes}")
    epochs = list(range(1, len(losses) + 1))
    chance = {"loss": math.log(classes), "accuracy": 1 / classes}
    figure = Figure(figsize=(10, 4), layout="constrained")
    figure.suptitle(title or "Training curves")
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        drawn = [chance[metric]]
        for key, label, colour in (
            (metric, "train", _TRAIN_COLOUR),
            (f"val_{metric}", "validation", _VALID_COLOUR),
        ):
            values = list(history.get(key, []))
            if values:
                axes.plot(epochs[: len(values)], values, marker="o", label=label, color=colour)
                drawn.extend(value for value in values if math.isfinite(value))
        axes.axhline(
            chance[metric],
            color="black",
            linestyle="--",
            linewidth=0.8,
            label=f"chance ({chance[metric]:.3g})",
        )
        if best_epoch is not None:
            axes.axvline(
                best_epoch, color="grey", linestyle=":", label=f"kept (epoch {best_epoch})"
            )
        if metric == "accuracy":
            axes.set_ylim(0.0, 1.0)
        else:
            axes.set_ylim(0.0, 1.1 * max(drawn))
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(metric)
        axes.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def save_confusion_matrix(
    confusion: Sequence[Sequence[int]],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] = ("neg", "pos"),
    title: str | None = None,
) -> Path:
    """Draws a confusion matrix with counts and row percentages (the share of each true
    class's texts), legible at any number of classes.

    Args:
        confusion: `n x n` counts (rows: true label, columns: predicted label), as in
            `EvaluationResult.confusion`; for two classes `[[tn, fp], [fn, tp]]`.
        path: the PNG file to write.
        labels: class names, in the order of the rows. Default ("neg", "pos").
        title: figure title. Default None: "Confusion matrix" with the accuracy.

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if `confusion` is not square with one row per label, holds negatives, or
            has more than `MAX_CONFUSION_CLASSES` classes.
    """
    size = len(labels)
    if size > MAX_CONFUSION_CLASSES:
        raise ValueError(
            f"Expected at most {MAX_CONFUSION_CLASSES} classes for a confusion-matrix picture. "
            f"Received: {size:,} labels"
        )
    rows = [[int(count) for count in row] for row in confusion]
    if len(rows) != size or any(len(row) != size for row in rows):
        raise ValueError(
            f"Expected a {size}x{size} confusion matrix. Received: confusion={confusion!r}"
        )
    if any(count < 0 for row in rows for count in row):
        raise ValueError(f"Expected non-negative counts. Received: confusion={confusion!r}")
    total = sum(map(sum, rows))
    accuracy = sum(rows[i][i] for i in range(size)) / total if total else 0.0
    # The picture grows with the number of classes, and the text shrinks a little, so that
    # every cell's count stays legible; the title is the figure's, above the colour bar.
    width = min(41.0, max(5.0, 2.2 + 0.75 * size))
    height = min(40.0, max(4.5, 1.2 + 0.75 * size))
    font = max(6.0, min(10.0, 90.0 / size))
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(rows, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="texts")
    peak = max(max(row) for row in rows)
    for i, row in enumerate(rows):
        row_total = sum(row)
        for j, count in enumerate(row):
            share = f"\n{count / row_total:.0%}" if row_total else ""
            colour = "white" if peak and count > peak / 2 else "black"
            axes.text(
                j, i, f"{count:,}{share}", ha="center", va="center", color=colour, fontsize=font
            )
    rotation = 0 if size <= 2 or max(len(label) for label in labels) <= 4 else 45
    axes.set_xticks(
        range(size), list(labels), rotation=rotation, ha="right" if rotation else "center"
    )
    axes.set_yticks(range(size), list(labels))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    figure.suptitle(
        title or f"Confusion matrix (accuracy {accuracy:.1%}, {total:,} reviews)",
        fontsize="medium",
        wrap=True,
    )
    return _write(figure, path)


def save_reliability_diagram(
    bins: Sequence[Mapping[str, object]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draws a reliability diagram: each confidence bin's accuracy against its mean confidence
    (on the diagonal when calibrated), with the share of texts per bin below.

    Args:
        bins: `EvaluationResult.reliability` (`calibration.reliability_bins`): dicts with
            `low`, `high`, `count`, `confidence` and `accuracy`.
        path: the PNG file to write.
        title: figure title. Default None: "Reliability diagram".

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if `bins` is empty.

    Example:

    >>> import pathlib, tempfile
    >>> bins = [{"low": 0.5, "high": 1.0, "count": 3, "confidence": 0.8, "accuracy": 0.6}]
    >>> save_reliability_diagram(bins, pathlib.Path(tempfile.mkdtemp()) / "r.png").name
    'r.png'
    """
    if not bins:
        raise ValueError("Expected some bins. Received: bins=[]")
    figure = Figure(figsize=(5, 6), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    centres = [(float(b["low"]) + float(b["high"])) / 2 for b in bins]  # type: ignore[arg-type]
    widths = [float(b["high"]) - float(b["low"]) for b in bins]  # type: ignore[arg-type]
    accuracy = [float(b["accuracy"]) if b["count"] else 0.0 for b in bins]  # type: ignore[arg-type]
    top.bar(
        centres, accuracy, width=widths, edgecolor="black", color=_TRAIN_COLOUR, label="accuracy"
    )
    filled = [b for b in bins if b["count"]]
    top.plot(
        [float(b["confidence"]) for b in filled],  # type: ignore[arg-type]
        [float(b["accuracy"]) for b in filled],  # type: ignore[arg-type]
        marker="o",
        color=_VALID_COLOUR,
        label="accuracy at mean confidence",
    )
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="calibrated")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    total = sum(int(b["count"]) for b in bins) or 1  # type: ignore[call-overload]
    bottom.bar(
        centres,
        [int(b["count"]) / total for b in bins],  # type: ignore[call-overload]
        width=widths,
        edgecolor="black",
        color="lightgrey",
    )
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("share of texts")
    bottom.set_xlim(0, 1)
    figure.suptitle(title or "Reliability diagram", fontsize="medium", wrap=True)
    return _write(figure, path)


def save_compared_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draws the validation loss and accuracy per epoch of several runs on the same axes (the
    training loss dashed), one colour per run.

    Args:
        histories: run name -> its history (`history.json`).
        path: the PNG file to write.
        title: figure title. Default None: "Runs compared".

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if no history has `loss` values.
    """
    if not any(history.get("loss") for history in histories.values()):
        raise ValueError("Expected at least one history with 'loss' values.")
    figure = Figure(figsize=(10, 4), layout="constrained")
    figure.suptitle(title or "Runs compared")
    colours = [f"C{index % 10}" for index in range(len(histories))]
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for (name, history), colour in zip(histories.items(), colours, strict=True):
            for key, style, suffix in ((f"val_{metric}", "-", ""), (metric, "--", " (train)")):
                values = list(history.get(key, []))
                if values:
                    axes.plot(
                        range(1, len(values) + 1),
                        values,
                        linestyle=style,
                        marker="o" if style == "-" else None,
                        color=colour,
                        label=f"{name}{suffix}",
                    )
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(metric)
        axes.set_title(f"{metric} (validation; training dashed)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return _write(figure, path)
