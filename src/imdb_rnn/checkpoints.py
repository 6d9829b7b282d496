"""Resumable training: checkpoints, the callback that writes and replays them, and stopping
cleanly on SIGINT / SIGTERM or a non-finite loss.

A checkpoint is a folder (`OUTPUT/checkpoint/` when `imdb_rnn.train` writes a model directory):

- `state.json`: where training stands (epochs done, batches done in the current epoch, the data
  seed, the run's config, the history so far, the early-stopping state) and the name of the
  variables file that goes with it. It is written last, so it always names a complete file.
- `variables-EEEE-SSSSSS.npz`: every variable training changes: the model's weights and random
  seed states, the optimizer's slots and step counter, the running loss and accuracy of the
  current epoch, and the weights early stopping would restore. Plain NumPy arrays, read with
  `allow_pickle=False`.
- `vocabulary.json`: the adapted vocabulary, so a resumed run encodes reviews as before.

Every file is written atomically (`imdb_rnn.files`), and an older variables file is deleted only
after `state.json` names the new one: a kill at any moment leaves the previous checkpoint whole.

Epoch `e` of the training data is shuffled with `seed + e` (see `Trainer.training_batches`), so a
new process can replay the batch order of any epoch and skip the batches a checkpoint already
covers. Together with the restored variables this makes a resumed run compute what the
uninterrupted run would have computed.

Why not `keras.callbacks.BackupAndRestore`: it restores the epoch but not the position inside it
(a mid-epoch backup re-runs that epoch from batch 0, on another shuffle in a new process), keeps
no early-stopping or running-metric state, writes its files in place, and deletes its folder
when training ends, also after a graceful stop.

Example (a sketch; `Trainer.fit(..., checkpoint_dir=...)` wires all of this):

>>> import tempfile
>>> Checkpoint(tempfile.mkdtemp()).read_state() is None
True
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import threading
import time
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import keras
import numpy as np

from imdb_rnn.config import ConfigError, RunConfig
from imdb_rnn.files import atomic_path, read_limited, remove_temporaries, write_json
from imdb_rnn.layers import TextEncoder
from imdb_rnn.models import ModelFileError

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointState",
    "NonFiniteLossError",
    "SignalStop",
    "TrainingGuard",
    "TrainingInterrupted",
    "check_free_space",
]

#: Name of the checkpoint folder inside a model directory.
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
VOCABULARY_FILE = "vocabulary.json"
#: Bump when a checkpoint can no longer be read by older code.
CHECKPOINT_VERSION = 1

# Config fields that may differ between an interrupted run and the run that resumes it.
_FREE_ON_RESUME = {("training", "checkpoint_every_steps")}


class CheckpointError(ModelFileError):
    """A checkpoint is unreadable, damaged or written by a newer imdb-rnn."""


class CheckpointMismatchError(ConfigError):
    """A checkpoint belongs to a run with another configuration or other training data."""


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


@dataclass(frozen=True)
class CheckpointState:
    """Where a training run stands, as written to `state.json`.

    Attributes:
        epoch: epochs completed.
        step: batches completed in epoch `epoch` (0-based), 0 at an epoch boundary.
        steps_per_epoch: batches in every epoch.
        seed: the data seed; epoch `e` is shuffled with `seed + e`.
        finished: training is over (all epochs run, or early stopping ended it).
        train_size: reviews in the training split.
        config: the run's `RunConfig.to_dict()`.
        history: per-epoch logs of the completed epochs.
        epoch_train_seconds: training-batch time of each completed epoch.
        epoch_seconds: training-batch time already spent in epoch `epoch`.
        early_stopping: `EarlyStopping` counters, or None without early stopping.
        variables: name of the variables file in the same folder.
        version: checkpoint format version.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    seed: int
    finished: bool
    train_size: int
    config: dict[str, Any]
    history: dict[str, list[float]]
    epoch_train_seconds: list[float]
    epoch_seconds: float
    early_stopping: dict[str, Any] | None
    variables: str = ""
    version: int = CHECKPOINT_VERSION

    @property
    def epochs(self) -> int:
        """The configured number of epochs."""
        return int(self.config["training"]["epochs"])

    @property
    def first_epoch(self) -> int:
        """The epoch a resumed run starts in (`epochs` when nothing is left to train)."""
        return self.epochs if self.finished else self.epoch

    def describe(self) -> str:
        """Where the run stands, in words: `"epoch 2/5, step 40/352"`."""
        if self.finished:
            return f"training finished ({len(self.history.get('loss', []))} epochs)"
        if self.step:
            return f"epoch {self.epoch + 1}/{self.epochs}, step {self.step}/{self.steps_per_epoch}"
        return f"the end of epoch {self.epoch}/{self.epochs}"


class Checkpoint:
    """A checkpoint folder: reads, writes and removes the files described in the module doc.

    Args:
        directory: the folder (created on the first save).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def read_state(self) -> CheckpointState | None:
        """Returns the saved state, or None if the folder holds no checkpoint.

        Raises:
            CheckpointError: if `state.json` is unreadable, damaged or from a newer version.
        """
        path = self.directory / STATE_FILE
        if not path.is_file():
            return None
        try:
            values = json.loads(read_limited(path, what=str(path)).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as error:  # JSON, UTF-8 and size errors
            raise self._damaged(f"{path} is unreadable ({error})") from None
        if not isinstance(values, dict):
            raise self._damaged(f"{path} is not a checkpoint state")
        version = values.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._damaged(f"{path} has no valid format version ({version!r})")
        if version > CHECKPOINT_VERSION:
            raise CheckpointError(
                f"The checkpoint in {self.directory} was written by a newer imdb-rnn (format "
                f"{version}; this version reads up to {CHECKPOINT_VERSION}). Upgrade imdb-rnn "
                "to resume it, or pass resume=False to start over."
            )
        try:
            return CheckpointState(**values)
        except TypeError as error:
            raise self._damaged(f"{path} is not a checkpoint state ({error})") from None

    def save(self, state: CheckpointState, arrays: dict[str, list[np.ndarray]]) -> None:
        """Writes `arrays` (group name -> arrays) and then `state`, each file atomically, and
        deletes older variables files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"variables-{state.epoch:04d}-{state.step:06d}.npz"
        flat = {
            f"{group}.{index:05d}": value
            for group, values in arrays.items()
            for index, value in enumerate(values)
        }
        with atomic_path(self.directory / name) as tmp, open(tmp, "wb") as stream:
            np.savez(stream, **flat)  # type: ignore[arg-type]
        write_json(self.directory / STATE_FILE, asdict(replace(state, variables=name)))
        for old in self.directory.glob("variables-*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)
        remove_temporaries(self.directory)

    def load_arrays(self, state: CheckpointState) -> dict[str, list[np.ndarray]]:
        """Reads the variables file named by `state` (group name -> arrays, in order).

        Raises:
            CheckpointError: if the file is missing or damaged.
        """
        path = self.directory / state.variables
        groups: dict[str, list[np.ndarray]] = {}
        try:
            with np.load(path, allow_pickle=False) as data:
                for key in sorted(data.files):
                    groups.setdefault(key.split(".")[0], []).append(data[key])
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise self._damaged(f"{path} is unreadable ({type(error).__name__})") from None
        return groups

    def save_vocabulary(self, encoder: TextEncoder) -> None:
        """Writes the encoder's vocabulary (padding and out-of-vocabulary entries included)."""
        write_json(self.directory / VOCABULARY_FILE, encoder.get_vocabulary())

    def load_encoder(self, config: RunConfig) -> TextEncoder:
        """Builds a `TextEncoder` with the saved vocabulary and the config's length options.

        Raises:
            CheckpointError: if the vocabulary file is missing or damaged.
        """
        path = self.directory / VOCABULARY_FILE
        try:
            words = json.loads(read_limited(path, what=str(path)).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as error:  # JSON, UTF-8 and size errors
            raise self._damaged(f"{path} is unreadable ({error})") from None
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise self._damaged(f"{path} is not a vocabulary")
        return TextEncoder(
            max_tokens=config.model.max_tokens,
            max_length=config.data.max_length,
            truncation=config.data.truncation,
            vocabulary=words[2:],  # Keras adds padding and out-of-vocabulary back
            name="text_encoder",
        )

    def check_resumable(
        self, state: CheckpointState, config: RunConfig, *, train_size: int | None = None
    ) -> None:
        """Raises `CheckpointMismatchError` unless `config` is the config `state` was saved with
        (`checkpoint_every_steps` may differ) and, if given, `train_size` its training-split
        size."""
        saved, current = state.config, config.to_dict()
        differences = [
            f"{section}.{name}: {saved.get(section, {}).get(name)!r} -> {value!r}"
            for section in ("data", "model", "training")
            for name, value in current[section].items()
            if (section, name) not in _FREE_ON_RESUME and saved.get(section, {}).get(name) != value
        ]
        if saved.get("preset") != current["preset"]:
            differences.insert(0, f"preset: {saved.get('preset')!r} -> {current['preset']!r}")
        if differences:
            raise CheckpointMismatchError(
                f"{self.directory} holds an unfinished run with other options "
                f"({'; '.join(differences)}). Rerun with that run's options to resume it, "
                "or pass resume=False to start over."
            )
        if train_size is not None and train_size != state.train_size:
            raise CheckpointMismatchError(
                f"{self.directory} holds an unfinished run on other data ({state.train_size} "
                f"training reviews; now {train_size}). Pass the same source= to resume it, or "
                "resume=False to start over."
            )

    def remove(self) -> None:
        """Deletes the checkpoint folder, if any."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def _damaged(self, detail: str) -> CheckpointError:
        return CheckpointError(
            f"The checkpoint in {self.directory} is damaged: {detail}. "
            "Pass resume=False to start over."
        )


def check_free_space(directory: str | os.PathLike[str], needed_bytes: int) -> None:
    """Raises `OSError(ENOSPC)` with a clear message if `directory`'s file system has less than
    `needed_bytes` free."""
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise OSError(
            errno.ENOSPC,
            f"Not enough free space for checkpoints and the model: about "
            f"{_megabytes(needed_bytes)} needed, {_megabytes(free)} free. Free some space or "
            "choose another output=",
            str(directory),
        )


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


class SignalStop:
    """Turns SIGINT and SIGTERM into a request to stop training at the next batch.

    Use it as a `with` block around training (from the main thread; elsewhere it installs
    nothing). While a `TrainingGuard` is training, the first signal only sets `received`: the
    guard saves a checkpoint after the current batch and raises `TrainingInterrupted`. At any
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


class TrainingGuard(keras.callbacks.Callback):
    """Keeps a training run safe to stop: checks the loss after every batch, writes checkpoints,
    stops on request, and on resume replays the checkpoint's position.

    It also records the history and the training-batch time of every epoch, those of a resumed
    checkpoint included. `Trainer.fit` installs it after `EarlyStopping` (whose counters it
    saves) and before the caller's callbacks.

    Args:
        config: the run's config (`training.seed`, `training.checkpoint_every_steps`, epochs).
        steps_per_epoch: batches per epoch.
        train_size: reviews in the training split, recorded to refuse resuming on other data.
        checkpoint: where to save. Default None: no checkpoints, only the checks.
        resume: the state to resume from (its variables are read from `resume_from`).
            Default None: a fresh run.
        resume_from: the checkpoint `resume` was read from. Default None: `checkpoint` (the
            workers of a cluster other than the chief resume from the chief's checkpoint and
            write their own to a temporary folder).
        early_stopping: the run's `EarlyStopping` callback, if any.
        stop: the `SignalStop` whose requests to honour. Default None.

    Raises (from the training loop):
        NonFiniteLossError: when the loss or validation loss is NaN or infinite.
        TrainingInterrupted: when `stop` received a signal (after saving a checkpoint).
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        steps_per_epoch: int,
        train_size: int,
        checkpoint: Checkpoint | None = None,
        resume: CheckpointState | None = None,
        resume_from: Checkpoint | None = None,
        early_stopping: keras.callbacks.EarlyStopping | None = None,
        stop: SignalStop | None = None,
    ) -> None:
        super().__init__()
        resume_from = resume_from or checkpoint
        if resume is not None and resume_from is None:
            raise ValueError("Expected a checkpoint to resume from. Received: checkpoint=None")
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.train_size = train_size
        self.checkpoint = checkpoint
        self.resume = resume
        self.resume_from = resume_from
        self.early_stopping = early_stopping
        self.stop = stop
        self.history: dict[str, list[float]] = (
            {key: list(values) for key, values in resume.history.items()} if resume else {}
        )
        self.epoch_train_seconds: list[float] = list(resume.epoch_train_seconds) if resume else []
        self.last_saved: CheckpointState | None = resume
        self._every = config.training.checkpoint_every_steps
        self._epoch = 0
        self._skip = 0
        self._metric_values: list[np.ndarray] = []
        self._carried_seconds = 0.0
        self._epoch_start: float | None = None

    # -- Keras hooks ----------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.stop is not None:
            self.stop.deferring = True
        if self.resume is not None:
            self._restore(self.resume)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._carried_seconds = 0.0
        if self.resume is not None and epoch == self.resume.epoch and self.resume.step:
            # Keras has just reset the running loss and accuracy: put the interrupted epoch's back.
            _assign(self.model.metrics_variables, self._metric_values, "running metrics")
            self._carried_seconds = self.resume.epoch_seconds
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = batch + 1
        if self._replaying(step):
            # Batches the checkpoint already covers: nothing new to check or save.
            self._raise_if_stop_requested(save=False)
            return
        self._check_finite(logs, step)
        if self.checkpoint is not None and step % self._every == 0 and step < self.steps_per_epoch:
            self._save(self._epoch, step)
        self._raise_if_stop_requested(save=True, step=step)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._close_epoch_timer()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._close_epoch_timer()
        logs = logs or {}
        self._check_finite(logs, 0)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        if self.checkpoint is not None:
            finished = bool(self.model.stop_training) or epoch + 1 >= self.config.training.epochs
            self._save(epoch + 1, 0, finished=finished)
        self._raise_if_stop_requested(save=False)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.stop is not None:
            self.stop.deferring = False

    # -- resuming -------------------------------------------------------------------------------

    def _replaying(self, step: int) -> bool:
        resume = self.resume
        return resume is not None and self._epoch == resume.epoch and step <= resume.step

    def _restore(self, state: CheckpointState) -> None:
        assert self.resume_from is not None
        model = self.model
        arrays = self.resume_from.load_arrays(state)
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        _assign(model.variables, arrays.get("model", []), "model variables")
        _assign(optimizer.variables, arrays.get("optimizer", []), "optimizer variables")
        if self.early_stopping is not None and state.early_stopping is not None:
            for name, value in state.early_stopping.items():
                setattr(self.early_stopping, name, value)
            best = arrays.get("best")
            self.early_stopping.best_weights = list(best) if best else None
        if state.step and not state.finished:
            # The compiled metrics create their variables on first use: create them now (unless
            # a distributed training loop already has), so the interrupted epoch's running
            # values can be put back.
            if not all(getattr(metric, "built", True) for metric in model.metrics):
                zeros = np.zeros((1, 1), "float32")
                model.compute_metrics(None, zeros, zeros)
            self._metric_values = arrays.get("metrics", [])
            if len(self._metric_values) != len(model.metrics_variables):
                raise CheckpointMismatchError(
                    "The checkpoint's running metrics do not match this model's."
                )
            self._skip_batches(state.step)

    def _skip_batches(self, count: int) -> None:
        """Makes the next `count` training steps consume their batch without training on it."""
        model = self.model
        train_function = model.train_function
        self._skip = count

        def skip_then_train(iterator: Any) -> Any:
            if self._skip:
                iterator.get_next()
                self._skip -= 1
                if not self._skip:
                    model.train_function = train_function
                return model.get_metrics_result()
            return train_function(iterator)

        model.train_function = skip_then_train

    # -- checks and saving ----------------------------------------------------------------------

    def _check_finite(self, logs: dict[str, Any] | None, step: int) -> None:
        logs = logs or {}
        for key in ("loss", "val_loss"):
            value = logs.get(key)
            if value is not None and not math.isfinite(float(value)):
                where = f"step {step}/{self.steps_per_epoch}" if step else "validation"
                raise NonFiniteLossError(
                    f"The training {key.replace('_', ' ')} became {float(value)} in epoch "
                    f"{self._epoch + 1} ({where}); training stopped before keeping these weights. "
                    "Lower the learning rate or set clip_norm.",
                    epoch=self._epoch,
                    step=step,
                )

    def _raise_if_stop_requested(self, *, save: bool, step: int = 0) -> None:
        if self.stop is None or self.stop.received is None:
            return
        last = self.last_saved
        if (
            save
            and self.checkpoint is not None
            and (last is None or (last.epoch, last.step) != (self._epoch, step))
        ):
            self._save(self._epoch, step)
        raise TrainingInterrupted(self.stop.received)

    def _close_epoch_timer(self) -> None:
        if self._epoch_start is not None:
            seconds = self._carried_seconds + time.perf_counter() - self._epoch_start
            self.epoch_train_seconds.append(seconds)
            self._epoch_start = None

    def _save(self, epoch: int, step: int, *, finished: bool = False) -> None:
        assert self.checkpoint is not None
        running = (
            self._carried_seconds + time.perf_counter() - self._epoch_start
            if step and self._epoch_start is not None
            else 0.0
        )
        early = self.early_stopping
        state = CheckpointState(
            epoch=epoch,
            step=step,
            steps_per_epoch=self.steps_per_epoch,
            seed=self.config.training.seed,
            finished=finished,
            train_size=self.train_size,
            config=self.config.to_dict(),
            history=self.history,
            epoch_train_seconds=self.epoch_train_seconds,
            epoch_seconds=running,
            early_stopping=None
            if early is None
            else {
                "wait": int(early.wait),
                "stopped_epoch": int(early.stopped_epoch),
                "best": None if early.best is None else float(early.best),
                "best_epoch": int(early.best_epoch),
            },
        )
        model = self.model
        arrays = {
            "model": _numpy(model.variables),
            "optimizer": _numpy(model.optimizer.variables),
            "metrics": _numpy(model.metrics_variables),
        }
        if early is not None and early.best_weights is not None:
            arrays["best"] = [np.asarray(value) for value in early.best_weights]
        self.checkpoint.save(state, arrays)
        self.last_saved = state


def _numpy(variables: Iterable[Any]) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(variable) for variable in variables]


def _assign(variables: list[Any], values: list[np.ndarray], what: str) -> None:
    if len(variables) != len(values) or any(
        tuple(variable.shape) != value.shape
        for variable, value in zip(variables, values, strict=False)
    ):
        raise CheckpointMismatchError(
            f"The checkpoint's {what} do not match this model ({len(values)} saved, "
            f"{len(variables)} expected). Pass resume=False to start over."
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
