"""Serving export: a saved model directory -> a TensorFlow SavedModel that needs no imdb-rnn.

The SavedModel's `serving_default` signature takes a batch of raw review strings
(`text`: `tf.string`, shape `[None]`) and returns `label` (at the saved threshold, `decision.json`,
else 0.5), `probability` (of a positive review) and `logit`
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
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from imdb_rnn import native
from imdb_rnn.errors import ExportTargetError
from imdb_rnn.files import current_umask, fsync_directory, is_model_folder
from imdb_rnn.layers import FastBidirectional, sublayers

__all__ = ["SIGNATURE_NAME", "ExportTargetError", "export_saved_model"]

#: The signature TensorFlow Serving calls by default.
SIGNATURE_NAME = "serving_default"
#: The input of the serving signature.
INPUT_NAME = "text"

_CONFIG_COPY = "imdb_rnn_config.json"
_SAVED_MODEL_FILE = "saved_model.pb"


def check_export_target(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool,
    marker: str = _SAVED_MODEL_FILE,
) -> None:
    """Refuses a target that would destroy a model or anything that is not an export.

    The target may not be the model folder, nor a folder that holds it (at any depth): replacing
    it would delete the model. An existing target is replaced only with `overwrite` and only
    when it is an empty folder or an earlier export (a folder holding `marker`).

    Args:
        model_dir: the model folder being exported.
        out_dir: the export's target folder.
        overwrite: whether an existing earlier export may be replaced.
        marker: the file that marks a folder as an earlier export of this kind. Default
            `saved_model.pb`.

    Raises:
        ExportTargetError: on a target that is, or is above, the model folder, inside a model
            folder (`runs/m/export`, or another export), or an existing
            target that is a file or a folder other than an export.
        FileExistsError: if `out_dir` exists and `overwrite` is False.
    """
    model, target = Path(model_dir).resolve(), Path(out_dir).resolve()
    for folder in target.parents:
        # The output rule (`imdb_rnn.files.check_output_folder`): never into a model folder.
        if is_model_folder(folder):
            raise ExportTargetError(
                f"Expected an export folder outside any model folder. Received: "
                f"out_dir={os.fspath(out_dir)!r}, inside {folder}."
            )
    if target == model or target in model.parents:
        raise ExportTargetError(
            f"Expected an export folder outside the model folder {model_dir}. Received: "
            f"out_dir={os.fspath(out_dir)!r}, which {'is' if target == model else 'holds'} it "
            "(replacing it would delete the model)."
        )
    if not os.path.lexists(out_dir):
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True to replace it.")
    out = Path(out_dir)
    if out.is_symlink() or not out.is_dir():
        raise ExportTargetError(
            f"{out_dir} exists and is not a folder: overwrite replaces only an earlier export."
        )
    if any(out.iterdir()) and not (out / marker).is_file():
        raise ExportTargetError(
            f"{out_dir} is not an export (it holds no {marker}): overwrite replaces "
            "only an earlier export. Choose another folder or remove it yourself."
        )


def remove_stale_staging(out_dir: str | os.PathLike[str]) -> None:
    """Deletes the temporary folders (`.NAME.PID.*.tmp` / `.old`) that an export killed before
    it finished left beside `out_dir`, unless their process is still running."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    for path in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*"):
        parts = path.name[len(out_dir.name) + 2 :].split(".")
        if len(parts) < 3 or parts[-1] not in ("tmp", "old") or not parts[0].isdigit():
            continue
        if path.is_dir() and not path.is_symlink() and not _process_alive(int(parts[0])):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


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
    for layer in sublayers(model):
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


def _serving_function(
    text_model: keras.Model,
    label_names: tuple[str, ...] = (),
    *,
    threshold: float | None = None,
    temperature: float = 1.0,
) -> Any:
    names = tf.constant(list(label_names or ("neg", "pos")))
    if len(label_names) > 2:

        def serve_classes(text: tf.Tensor) -> dict[str, tf.Tensor]:
            logits = tf.cast(text_model(text, training=False), tf.float32) / temperature
            scores = tf.nn.softmax(logits, axis=-1)
            return {
                "label": tf.gather(names, tf.argmax(scores, axis=-1)),
                "score": tf.reduce_max(scores, axis=-1),
                "scores": scores,
                "logits": logits,
            }

        return serve_classes

    cut = 0.5 if threshold is None else float(threshold)

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = tf.reshape(tf.cast(text_model(text, training=False), tf.float32), [-1])
        logits = logits / temperature
        probability = tf.sigmoid(logits)
        # The saved threshold (decision.json) decides the label, as `imdb-rnn predict` does.
        label = tf.gather(names, tf.cast(probability >= cut, tf.int32))
        return {"label": label, "probability": probability, "logit": logits}

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
        overwrite: replace an existing `out_dir`, if it is an earlier export or empty.
            Default False.

    Returns:
        `out_dir`, as a `Path`.

    Raises:
        ModelFileError: if `model_dir` cannot be loaded.
        FileExistsError: if `out_dir` exists and `overwrite` is False.
        ExportTargetError: if `out_dir` is the model folder or holds it, or exists and is not
            an earlier export (see `check_export_target`).
    """
    # The classifier imports this package's rest.
    from imdb_rnn.deploy.packaging import resolve_model_dir
    from imdb_rnn.inference.classifier import Classifier
    from imdb_rnn.modeldir import CONFIG_FILE, LABELS_FILE

    model_dir, out_dir = resolve_model_dir(model_dir), Path(out_dir)
    check_export_target(model_dir, out_dir, overwrite=overwrite)
    loaded = Classifier.load(model_dir)
    text_model = loaded.text_model
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    staging = Path(
        tempfile.mkdtemp(
            prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent
        )
    )
    # mkdtemp makes the directory private; a model server running as another user must read it.
    os.chmod(staging, 0o777 & ~current_umask())
    try:
        with _device_portable(text_model):
            archive = keras.export.ExportArchive()
            archive.track(text_model)
            archive.add_endpoint(
                SIGNATURE_NAME,
                _serving_function(
                    text_model,
                    loaded.label_names,
                    threshold=loaded.decision.threshold,
                    temperature=loaded.decision.temperature,
                ),
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
        fsync_tree(staging)
        replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def fsync_tree(root: Path) -> None:
    """Flushes every file and directory under `root` to disk, so that the rename publishes
    complete files even across a crash."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as stream:
                os.fsync(stream.fileno())
        fsync_directory(Path(folder))


def replace_directory(new: Path, target: Path) -> None:
    """Renames `new` onto `target`; an existing `target` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(
            tempfile.mkdtemp(
                prefix=f".{target.name}.{os.getpid()}.", suffix=".old", dir=target.parent
            )
        )
        os.replace(target, old / target.name)
    os.replace(new, target)
    fsync_directory(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
