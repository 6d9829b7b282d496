"""TensorFlow Lite export: the token-id classifier with built-in ops only, plus its vocabulary.

The Keras model's recurrent loop (`tf.scan`, or the native op) converts to TensorFlow Lite only
with Flex ops, which the stock interpreter refuses. This module rebuilds the classifier's forward
pass from the same weights as a fixed-length, unrolled GRU (one step per token position) made of
built-in ops only, and converts that. The `.tflite` file takes right-padded token ids
(`int32 [batch, sequence_length]`, 0 for padding) and returns, for a two-class model, one logit
per review (`logit`, `float32 [batch]`; `probability = sigmoid(logit)`, of the second class),
for more classes a row of logits per review (`logits`, `float32 [batch, classes]`; the class
probabilities are their softmax, columns in the order of `tflite_config.json`'s `labels`).

Turning text into ids stays outside the TFLite model (TensorFlow Lite has no string ops to run
the standardisation and lookup): `vocabulary.txt` beside it holds one word per line, line `i`
being id `i` (0 padding, 1 out-of-vocabulary), and `tflite_config.json` says how reviews are
standardised, split and truncated. `token_ids` does it with the model's own encoder:

    import numpy as np, tensorflow as tf
    from imdb_rnn.deploy.tflite import export_tflite, token_ids

    export_tflite("runs/default", "runs/default-tflite")
    interpreter = tf.lite.Interpreter("runs/default-tflite/model.tflite")
    runner = interpreter.get_signature_runner()
    ids = token_ids("runs/default", ["A moving film."], sequence_length=256)
    logits = runner(token_ids=ids)["logit"]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.files import current_umask, fsync_directory
from imdb_rnn.layers import PAD_ID, TextEncoder, gru_step

__all__ = ["TFLITE_FILE", "VOCABULARY_FILE", "export_tflite", "output_description", "token_ids"]

TFLITE_FILE = "model.tflite"
VOCABULARY_FILE = "vocabulary.txt"
CONFIG_FILE = "tflite_config.json"
#: The sequence length of models trained with `max_length` None, unless told otherwise.
DEFAULT_SEQUENCE_LENGTH = 256


def _gru_direction(
    projected: list[tf.Tensor],
    keep: list[tf.Tensor],
    recurrent_kernel: tf.Tensor,
    recurrent_bias: tf.Tensor,
    units: int,
) -> list[tf.Tensor]:
    """Runs a reset-after GRU (Keras' default) over the steps given; returns every state."""
    state = tf.zeros_like(projected[0][:, :units])
    states = []
    for x_t, keep_t in zip(projected, keep, strict=True):
        state = gru_step(state, x_t, keep_t, recurrent_kernel, recurrent_bias)
        states.append(state)
    return states


class _UnrolledClassifier(tf.Module):
    """The classifier's forward pass, in ops that TensorFlow Lite has built in."""

    def __init__(self, classifier: keras.Model, *, pooling: str, sequence_length: int) -> None:
        super().__init__()
        self.sequence_length = sequence_length
        self.pooling = pooling
        if any(layer.name == "word_vectors" for layer in classifier.layers):
            raise ValueError(
                "Expected a model without pre-trained word vectors (TensorFlow Lite export "
                "rebuilds one embedding). Received: a model trained with word_vectors; export "
                "it as a SavedModel instead"
            )
        if any(layer.name == "blend" for layer in classifier.layers):
            raise ValueError(
                "Expected a model without an n-gram part (TensorFlow Lite export rebuilds the "
                "recurrent classifier only). Received: a hybrid model (model.ngram_buckets); "
                "export it as a SavedModel instead, or train with ngram_buckets=0"
            )
        self.embeddings = tf.constant(classifier.get_layer("embedding").embeddings.numpy())
        self.recurrent = []
        self.dense = []
        for layer in classifier.layers:
            if isinstance(layer, keras.layers.Bidirectional):
                directions = []
                for direction in (layer.forward_layer, layer.backward_layer):
                    if not isinstance(direction, keras.layers.GRU):
                        raise ValueError(
                            "Expected a GRU model (TensorFlow Lite export rebuilds GRUs only). "
                            f"Received: {type(direction).__name__}"
                        )
                    cell = direction.cell
                    if not cell.reset_after or not cell.use_bias:
                        raise ValueError("Expected GRUs with reset_after=True and use_bias=True.")
                    bias = cell.bias.numpy()
                    directions.append(
                        (
                            tf.constant(cell.kernel.numpy()),
                            tf.constant(cell.recurrent_kernel.numpy()),
                            tf.constant(bias[0]),
                            tf.constant(bias[1]),
                            cell.units,
                        )
                    )
                self.recurrent.append(directions)
            elif isinstance(layer, keras.layers.Dense):
                kernel, bias = (weight.numpy() for weight in layer.weights)
                relu = layer.activation is keras.activations.relu
                self.dense.append((tf.constant(kernel), tf.constant(bias), relu))
        if not self.recurrent or not self.dense:
            raise ValueError("Expected an imdb-rnn classifier (recurrent layers and Dense layers).")

    def __call__(self, ids: tf.Tensor) -> tf.Tensor:
        """Logits, `[batch]` for a one-unit head (two classes), else `[batch, classes]`."""
        steps = self.sequence_length
        mask = tf.not_equal(ids, PAD_ID)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        valid = tf.cast(mask, tf.float32)
        keep = tf.unstack(valid[:, :, None], num=steps, axis=1)
        x = tf.gather(self.embeddings, ids)
        batch = tf.shape(ids)[0]
        finals: list[tf.Tensor] = []
        for directions in self.recurrent:
            outputs, finals = [], []
            for index, (kernel, recurrent_kernel, input_bias, recurrent_bias, units) in enumerate(
                directions
            ):
                inputs = x if index == 0 else tf.reverse_sequence(x, lengths, 1, 0)
                features = inputs.shape[-1]
                projected = tf.reshape(
                    tf.matmul(tf.reshape(inputs, [-1, features]), kernel) + input_bias,
                    tf.stack([batch, steps, 3 * units]),
                )
                states = _gru_direction(
                    tf.unstack(projected, num=steps, axis=1),
                    keep,
                    recurrent_kernel,
                    recurrent_bias,
                    units,
                )
                finals.append(states[-1])
                sequence = tf.stack(states, axis=1)
                if index == 1:
                    sequence = tf.reverse_sequence(sequence, lengths, 1, 0)
                outputs.append(sequence)
            x = tf.concat(outputs, axis=-1) * valid[:, :, None]
        pooled = {
            "final": finals,
            "max": [tf.reduce_max(tf.where(valid[:, :, None] > 0, x, -1e9), axis=1)],
            "mean": [
                tf.reduce_sum(x * valid[:, :, None], axis=1)
                / tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
            ],
        }
        parts = {
            "final": ["final"],
            "max": ["max"],
            "mean": ["mean"],
            "final_max_mean": ["final", "max", "mean"],
        }[self.pooling]
        h = tf.concat([tensor for part in parts for tensor in pooled[part]], axis=-1)
        for kernel, bias, relu in self.dense:
            h = tf.matmul(h, kernel) + bias
            if relu:
                h = tf.nn.relu(h)
        return tf.reshape(h, [-1]) if h.shape[-1] == 1 else h


def _load(model_dir: str | os.PathLike[str]) -> Any:
    # The classifier imports this package's rest.
    from imdb_rnn.inference.classifier import Classifier

    return Classifier.load(model_dir)


def token_ids(
    model: str | os.PathLike[str] | TextEncoder, texts: Sequence[str], *, sequence_length: int
) -> np.ndarray:
    """Turns reviews into the `.tflite` model's input with the model's own encoder.

    Args:
        model: a model directory, or its `TextEncoder`.
        texts: the reviews.
        sequence_length: the export's sequence length (`tflite_config.json`).

    Returns:
        `int32 [len(texts), sequence_length]` ids, right-padded with 0; longer reviews keep
        their first or last `sequence_length` tokens, as the encoder's truncation says.
    """
    encoder = model if isinstance(model, TextEncoder) else _load(model).encoder
    truncation = encoder.truncation
    ragged = encoder.with_options(max_length=sequence_length, truncation=truncation)
    ids = ragged(tf.constant(list(texts), dtype=tf.string)).numpy()
    padded = np.zeros((len(texts), sequence_length), dtype=np.int32)
    padded[:, : ids.shape[1]] = ids[:, :sequence_length]
    return padded


def export_tflite(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    sequence_length: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Exports a model directory as a TensorFlow Lite model with built-in ops only.

    Writes `model.tflite` (signature `serving_default`: `token_ids` int32 `[batch,
    sequence_length]` -> `logit` float32 `[batch]` for two classes, `logits` float32 `[batch,
    classes]` for more), `vocabulary.txt` and `tflite_config.json` (with the class names,
    `labels`) into a temporary directory beside `out_dir`, checks the model in
    `tf.lite.Interpreter`, then renames it to `out_dir`.

    Args:
        model_dir: directory written by `imdb-rnn train` (a GRU model).
        out_dir: the directory to create.
        sequence_length: token positions of the model's input. Default: the model's
            `max_length`, else 256. Longer reviews must be truncated to it.
        overwrite: replace an existing `out_dir`. Default False.

    Returns:
        `out_dir`, as a `Path`.

    Raises:
        ModelFileError: if `model_dir` cannot be loaded.
        ValueError: if the model is not a GRU model, or `sequence_length` is not positive.
        FileExistsError: if `out_dir` exists and `overwrite` is False.
        ExportTargetError: if `out_dir` is, or holds, the model folder, or exists and is not
            an earlier TensorFlow Lite export.
    """
    from imdb_rnn.deploy.export import check_export_target, fsync_tree, replace_directory

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if sequence_length is not None and sequence_length < 1:
        raise ValueError(
            f"Expected sequence_length >= 1. Received: sequence_length={sequence_length}"
        )
    check_export_target(model_dir, out_dir, overwrite=overwrite, marker=TFLITE_FILE)
    loaded = _load(model_dir)
    config = loaded.config
    classes = loaded.num_classes
    output = output_description(classes)
    if config.model.cell != "gru":
        raise ValueError(
            "Expected a GRU model (TensorFlow Lite export rebuilds GRUs only). "
            f"Received: cell={config.model.cell!r}"
        )
    if config.training.ensemble_size > 1:
        raise ValueError(
            "Expected one model (TensorFlow Lite export rebuilds one classifier). Received: an "
            f"ensemble of {config.training.ensemble_size}: export it as a SavedModel instead."
        )
    length = sequence_length or loaded.encoder.max_length or DEFAULT_SEQUENCE_LENGTH
    module = _UnrolledClassifier(
        loaded.classifier, pooling=config.model.pooling, sequence_length=length
    )
    forward = tf.function(
        lambda token_ids: {output["name"]: module(token_ids)},
        input_signature=[tf.TensorSpec([None, length], tf.int32, name="token_ids")],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [forward.get_concrete_function()], module
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    os.chmod(staging, 0o777 & ~current_umask())
    try:
        (staging / TFLITE_FILE).write_bytes(flatbuffer)
        vocabulary = loaded.encoder.get_vocabulary()
        # Standardisation turns every line-break character into a space: one word per line.
        (staging / VOCABULARY_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        description = {
            "input": {"name": "token_ids", "dtype": "int32", "shape": [None, length]},
            "output": {"name": output["name"], "dtype": "float32", "shape": output["shape"]},
            "labels": list(loaded.label_names),
            "probability": output["probability"],
            "sequence_length": length,
            "padding_id": PAD_ID,
            "out_of_vocabulary_id": 1,
            "vocabulary": VOCABULARY_FILE,
            "truncation": loaded.encoder.truncation,
            "standardize": "lower-case; '<br />' and line breaks to spaces; strip punctuation "
            "(Keras' lower_and_strip_punctuation set); split on whitespace; an empty review "
            "is one out-of-vocabulary id",
        }
        (staging / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")
        _check_interpreter(staging / TFLITE_FILE, length, classes)
        fsync_tree(staging)
        replace_directory(staging, out_dir)
        fsync_directory(out_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def output_description(classes: int) -> dict[str, Any]:
    """The `.tflite` model's output for a model of `classes` classes: its `name`, `shape`
    (None for the batch) and how to read `probability` from it.

    Example:

    >>> output_description(2)["name"], output_description(6)["shape"]
    ('logit', [None, 6])
    """
    if classes == 2:
        return {
            "name": "logit",
            "shape": [None],
            "probability": "sigmoid(logit), of the second class (a positive review for IMDB)",
        }
    return {
        "name": "logits",
        "shape": [None, classes],
        "probability": "softmax(logits) over the last axis, columns in the order of labels",
    }


def _interpreter(path: Path) -> Any:
    """LiteRT's interpreter where `ai_edge_litert` is installed, else TensorFlow's, without the
    warning that announces its deprecation (it still runs the same models)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            return tf.lite.Interpreter(model_path=str(path))
    return Interpreter(model_path=str(path))


def _check_interpreter(path: Path, length: int, classes: int) -> None:
    """Runs the converted model once in the stock interpreter (no Flex delegate)."""
    interpreter = _interpreter(path)
    runner = interpreter.get_signature_runner()
    ids = np.zeros((2, length), dtype=np.int32)
    ids[:, 0] = 1
    output = output_description(classes)
    logits = runner(token_ids=ids)[output["name"]]
    expected = (2,) if classes == 2 else (2, classes)
    if logits.shape != expected or not np.all(np.isfinite(logits)):
        raise RuntimeError(f"The TensorFlow Lite model returned {logits!r} for two reviews.")
