"""A look inside model directories: what one model is (`model_info`, `imdb-rnn info`) and how
several runs compare (`compare_runs`, `imdb-rnn compare`).

`model_info` loads the model (its layers, with the output shapes and parameter counts that
`keras.Model.summary` shows, and its vocabulary) and reads the files beside it (labels, the
data and split sizes, the preset and config, the metrics, the versions, a tuned decision).
`compare_runs` reads only the JSON files of each run, so it needs no TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imdb_rnn.inference.decision import read_decision
from imdb_rnn.modeldir import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, read_json

__all__ = ["LayerInfo", "ModelInfo", "RunSummary", "compare_runs", "model_info"]


@dataclass(frozen=True)
class LayerInfo:
    """One layer of the classifier: `name`, `kind` (its class), `output_shape` (as
    `keras.Model.summary` writes it) and `params` (its weights' count)."""

    name: str
    kind: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class ModelInfo:
    """What a model directory holds.

    Attributes:
        directory: the model directory.
        layers: the classifier's layers (after the text encoder), in order.
        total_params, trainable_params: over the whole model.
        vocabulary_size: tokens in the vocabulary (padding and `[UNK]` included).
        top_words: the vocabulary's most frequent words (its order), padding and `[UNK]` left
            out.
        labels: the classes, in the order of the model's outputs.
        source: the training data, as `metrics.json` records it.
        sizes: texts per split.
        preset: the preset the config started from.
        config: the run's config (`config.json`).
        metrics: `valid` and `test` metrics (accuracy, macro F1, loss, ROC-AUC, ...).
        decision: the saved decision (`decision.json`: threshold, temperature).
        versions: of imdb-rnn, TensorFlow and Keras that trained it.
        epochs, best_epoch, train_seconds: how training went.
    """

    directory: str
    layers: list[LayerInfo]
    total_params: int
    trainable_params: int
    vocabulary_size: int
    top_words: list[str]
    labels: list[str]
    source: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    epochs: int | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The metrics of a split that `info` and `compare` show.
_METRIC_KEYS = ("examples", "accuracy", "macro_f1", "loss", "roc_auc", "pr_auc", "ece")


def _read_optional(path: Path, what: str) -> Any:
    if not path.is_file():
        return None
    try:
        return read_json(path, what=what)
    except (ValueError, OSError, RecursionError):
        return None


def _shape(layer: Any) -> str:
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return "?"
    outputs = output if isinstance(output, list | tuple) else [output]
    shapes = [str(tuple(item.shape)).replace(",)", ")") for item in outputs]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _split_metrics(values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        return {}
    return {key: values.get(key) for key in _METRIC_KEYS if values.get(key) is not None}


def model_info(directory: str | os.PathLike[str], *, top_words: int = 20) -> ModelInfo:
    """Describes a model directory written by `imdb-rnn train`.

    Args:
        directory: the model directory.
        top_words: how many of the most frequent words to list. Default 20.

    Returns:
        A `ModelInfo`.

    Raises:
        ModelFileError: if the directory cannot be loaded.
    """
    from imdb_rnn.inference.classifier import Classifier

    directory = Path(directory)
    loaded = Classifier.load(directory)
    classifier = loaded.classifier
    assert classifier is not None
    layers = [
        LayerInfo(layer.name, type(layer).__name__, _shape(layer), int(layer.count_params()))
        for layer in classifier.layers
    ]
    model = loaded.text_model
    trainable = sum(int(weight.numpy().size) for weight in model.trainable_weights)
    vocabulary = loaded._encoder().get_vocabulary()
    words = [word for word in vocabulary[: top_words + 2] if word not in ("", "[UNK]")]
    metrics = _read_optional(directory / METRICS_FILE, "The metrics file") or {}
    config = _read_optional(directory / CONFIG_FILE, "The config file") or loaded.config.to_dict()
    decision = read_decision(directory)
    return ModelInfo(
        directory=str(directory),
        layers=layers,
        total_params=int(model.count_params()),
        trainable_params=trainable,
        vocabulary_size=len(vocabulary),
        top_words=words[:top_words],
        labels=list(loaded.label_names),
        source=metrics.get("source"),
        sizes=dict(metrics.get("sizes") or {}),
        preset=metrics.get("preset") or config.get("preset"),
        config=config,
        metrics={
            split: _split_metrics(metrics.get(split))
            for split in ("valid", "test")
            if metrics.get(split)
        },
        decision=decision.to_dict(),
        versions=dict(metrics.get("versions") or {}),
        epochs=metrics.get("epochs"),
        best_epoch=metrics.get("best_epoch"),
        train_seconds=metrics.get("train_seconds"),
    )


@dataclass(frozen=True)
class RunSummary:
    """One run of `compare_runs`: its `name`, `preset`, `epochs`, `best_epoch`,
    `train_seconds`, `valid` and `test` metrics and `history` (`history.json`)."""

    name: str
    directory: str
    preset: str | None
    epochs: int | None
    best_epoch: int | None
    train_seconds: float | None
    valid: dict[str, Any]
    test: dict[str, Any]
    history: dict[str, list[float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(directories: list[str | os.PathLike[str]]) -> list[RunSummary]:
    """Reads the metrics and history of each run (model directory), in order.

    Runs are named by their folder; where two folders share a name, by their parent and
    folder (`a/run`, `b/run`), else by their path.

    Raises:
        ModelFileError: if a directory is not a model directory (no `model.keras` or
            `metrics.json`).
        ValueError: if no directory is given.
    """
    from imdb_rnn.errors import ModelFileError

    if not directories:
        raise ValueError("Expected at least one run directory to compare.")
    paths = [Path(directory) for directory in directories]
    names = [path.name for path in paths]
    for shorter in ([f"{path.parent.name}/{path.name}" for path in paths], [str(p) for p in paths]):
        if len(set(names)) == len(names):
            break
        names = [
            new if names.count(old) > 1 else old for old, new in zip(names, shorter, strict=True)
        ]
    out = []
    for path, name in zip(paths, names, strict=True):
        if not (path / MODEL_FILE).is_file() and not (path / METRICS_FILE).is_file():
            raise ModelFileError(
                f"{path} holds no {MODEL_FILE} or {METRICS_FILE}: is it a directory written by "
                "'imdb-rnn train'?"
            )
        metrics = _read_optional(path / METRICS_FILE, "The metrics file") or {}
        history = _read_optional(path / HISTORY_FILE, "The history file") or {}
        out.append(
            RunSummary(
                name=name,
                directory=str(path),
                preset=metrics.get("preset"),
                epochs=metrics.get("epochs"),
                best_epoch=metrics.get("best_epoch"),
                train_seconds=metrics.get("train_seconds"),
                valid=_split_metrics(metrics.get("valid")),
                test=_split_metrics(metrics.get("test")),
                history=history if isinstance(history, dict) else {},
            )
        )
    return out
