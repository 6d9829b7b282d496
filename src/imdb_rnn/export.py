"""Serving export: a saved model directory -> a TensorFlow SavedModel that needs no imdb-rnn.

The SavedModel's `serving_default` signature takes a batch of raw review strings
(`text`: `tf.string`, shape `[None]`) and returns `probability` (of a positive review) and `logit`
(`tf.float32`, shape `[None]`). A model of more than two classes returns `label` (the predicted
class name, `tf.string`, `[None]`), `score` (its probability, `[None]`), `scores` (every class's
probability, `[None, classes]`, columns in the order of `labels.json`) and `logits`.
Standardisation, the vocabulary lookup and the network are all in
the graph, so `tf.saved_model.load` and TensorFlow Serving can run it without this package, on
a CPU or a GPU, whatever machine made the export (recurrent layers are traced without cuDNN):

    import tensorflow as tf
    serve = tf.saved_model.load("exported").signatures["serving_default"]
    serve(text=tf.constant(["A wonderful film."]))["probability"]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from imdb_rnn import native
from imdb_rnn.files import _fsync_directory, _umask
from imdb_rnn.layers import FastBidirectional

__all__ = ["SIGNATURE_NAME", "export_saved_model"]

#: The signature TensorFlow Serving calls by default.
SIGNATURE_NAME = "serving_default"
#: The input of the serving signature.
INPUT_NAME = "text"

_CONFIG_COPY = "imdb_rnn_config.json"


@contextlib.contextmanager
def _device_portable(model: keras.Model) -> Iterator[None]:
    """Traces recurrent layers with plain TensorFlow ops, never the cuDNN kernels nor the native
    GRU op.

    Keras picks cuDNN when a GPU is visible *while tracing*; a SavedModel exported on a GPU
    machine would then hold `CudnnRNNV3` ops, which have no CPU kernel, and fail on a CPU-only
    model server. The native op exists only where imdb-rnn is installed. The plain loops run on
    either device, anywhere.
    """
    changed: list[tuple[Any, str, Any]] = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, FastBidirectional):
            changed.append((layer, "fused", layer.fused))
            layer.fused = "always"
        if isinstance(layer, (keras.layers.GRU, keras.layers.LSTM)):
            changed.append((layer, "use_cudnn", layer.use_cudnn))
            layer.use_cudnn = False
    try:
        with native.disabled():
            yield
    finally:
        for layer, name, value in reversed(changed):
            setattr(layer, name, value)


def _serving_function(text_model: keras.Model, label_names: tuple[str, ...] = ()) -> Any:
    if len(label_names) > 2:
        names = tf.constant(list(label_names))

        def serve_classes(text: tf.Tensor) -> dict[str, tf.Tensor]:
            logits = tf.cast(text_model(text, training=False), tf.float32)
            scores = tf.nn.softmax(logits, axis=-1)
            return {
                "label": tf.gather(names, tf.argmax(scores, axis=-1)),
                "score": tf.reduce_max(scores, axis=-1),
                "scores": scores,
                "logits": logits,
            }

        return serve_classes

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = tf.reshape(tf.cast(text_model(text, training=False), tf.float32), [-1])
        return {"probability": tf.sigmoid(logits), "logit": logits}

    return serve


def _check_signature(directory: Path) -> None:
    """Reloads the export and checks what a client sees: strings in, float probabilities out.

    (Exporting a model that holds a `TextVectorization` the wrong way gives a float input.)
    """
    signature = tf.saved_model.load(str(directory)).signatures[SIGNATURE_NAME]
    _, inputs = signature.structured_input_signature
    spec = inputs.get(INPUT_NAME)
    if spec is None or spec.dtype != tf.string or spec.shape.as_list() != [None]:
        raise RuntimeError(f"The exported signature takes {inputs}, not a batch of strings.")
    outputs = signature.structured_outputs
    if outputs.get("probability", outputs.get("scores")).dtype != tf.float32:
        raise RuntimeError(f"The exported signature returns {outputs}, not float probabilities.")


def export_saved_model(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Exports a model directory written by `train` as a TensorFlow SavedModel for serving.

    The export is written to a temporary directory beside `out_dir`, reloaded to check its
    signature, and only then renamed to `out_dir`: a failed export leaves `out_dir` as it was.
    For TensorFlow Serving, export into a numbered version directory (`models/imdb_rnn/1`).

    Args:
        model_dir: directory holding `model.keras` (and `config.json`, copied into the export's
            `assets.extra/` for the record).
        out_dir: the SavedModel directory to create.
        overwrite: replace an existing `out_dir`. Default False.

    Returns:
        `out_dir`, as a `Path`.

    Raises:
        ModelFileError: if `model_dir` cannot be loaded.
        FileExistsError: if `out_dir` exists and `overwrite` is False.
    """
    # The trainer imports this package's rest.
    from imdb_rnn.trainer import CONFIG_FILE, LABELS_FILE, Trainer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True to replace it.")
    trainer = Trainer.load(model_dir)
    text_model = trainer.text_model
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    # mkdtemp makes the directory private; a model server running as another user must read it.
    os.chmod(staging, 0o777 & ~_umask())
    try:
        with _device_portable(text_model):
            archive = keras.export.ExportArchive()
            archive.track(text_model)
            archive.add_endpoint(
                SIGNATURE_NAME,
                _serving_function(text_model, trainer.label_names),
                input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)],
            )
            archive.write_out(str(staging), verbose=False)
        if (model_dir / CONFIG_FILE).is_file():
            (staging / "assets.extra").mkdir(exist_ok=True)
            shutil.copyfile(model_dir / CONFIG_FILE, staging / "assets.extra" / _CONFIG_COPY)
        if (model_dir / LABELS_FILE).is_file():
            (staging / "assets.extra").mkdir(exist_ok=True)
            shutil.copyfile(model_dir / LABELS_FILE, staging / "assets.extra" / LABELS_FILE)
        _check_signature(staging)
        _fsync_tree(staging)
        _replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _fsync_tree(root: Path) -> None:
    """Flushes every file and directory under `root` to disk, so that the rename publishes
    complete files even across a crash."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as stream:
                os.fsync(stream.fileno())
        _fsync_directory(Path(folder))


def _replace_directory(new: Path, target: Path) -> None:
    """Renames `new` onto `target`; an existing `target` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    _fsync_directory(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
