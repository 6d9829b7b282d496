"""The checkpoint of a resumable training run: its format, reading and writing.

A checkpoint is a folder (`OUTPUT/checkpoint/` when `imdb_rnn.train` writes a model directory):

- `state.json`: where training stands (epochs done, batches done in the current epoch, the data
  seed, the run's config, the training data's fingerprint, the history so far, the
  early-stopping state) and the name of the variables file that goes with it. It is written
  last, so it always names a complete file.
- `variables-EEEE-SSSSSS.npz`: every variable training changes: the model's weights and random
  seed states, the optimizer's slots and step counter, the running loss and accuracy of the
  current epoch, and the weights early stopping would restore. Plain NumPy arrays, read with
  `allow_pickle=False`.
- `vocabulary.json`: the adapted vocabulary, so a resumed run encodes reviews as before.

Every file is written atomically (`imdb_rnn.files`), and an older variables file is deleted only
after `state.json` names the new one: a kill at any moment leaves the previous checkpoint whole.

Epoch `e` of the training data is shuffled with `seed + e` (see `Trainer.training_batches`), so a
new process can rebuild the batch order of any epoch and skip the batches a checkpoint already
covers (`dataset.skip`). Together with the restored variables (`training.loop.EpochLoop` writes
and restores them) a resumed run computes what the uninterrupted run would have computed.

Why not `keras.callbacks.BackupAndRestore`: it restores the epoch but not the position inside it
(a mid-epoch backup re-runs that epoch from batch 0, on another shuffle in a new process), keeps
no early-stopping or running-metric state, writes its files in place, and deletes its folder
when training ends, also after a graceful stop.

Example (`Trainer.fit(..., checkpoint_dir=...)` wires all of this):

>>> import tempfile
>>> Checkpoint(tempfile.mkdtemp()).read_state() is None
True
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from imdb_rnn.config import RunConfig
from imdb_rnn.errors import CheckpointError, CheckpointMismatchError
from imdb_rnn.files import atomic_path, read_limited, remove_owned, remove_temporaries, write_json
from imdb_rnn.layers import TextEncoder
from imdb_rnn.models import build_encoder

if TYPE_CHECKING:
    from imdb_rnn.data.splits import ImdbSplits

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointState",
    "assign_arrays",
    "config_differences",
    "data_differences",
    "data_fingerprint",
    "numpy_arrays",
]

#: Name of the checkpoint folder inside a model directory.
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
VOCABULARY_FILE = "vocabulary.json"
#: The files a checkpoint folder holds (globs): what `Checkpoint.remove` deletes.
OWN_FILES = (STATE_FILE, VOCABULARY_FILE, "variables-*.npz", ".*.tmp*")
#: Bump when a checkpoint can no longer be read by older code.
CHECKPOINT_VERSION = 1

# Config fields that may differ between an interrupted run and the run that resumes it.
_FREE_ON_RESUME = {("training", "checkpoint_every_steps")}


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
        data: the training data's `data_fingerprint` (its classes and a digest of its texts
            and labels); empty in checkpoints written before it was recorded.
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
    data: dict[str, Any] = field(default_factory=dict)

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
        return build_encoder(config, vocabulary=words[2:])  # without padding and OOV

    def check_resumable(
        self,
        state: CheckpointState,
        config: RunConfig,
        *,
        train_size: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Raises `CheckpointMismatchError` unless `config` is the config `state` was saved with
        (`checkpoint_every_steps` may differ) and, if given, `train_size` its training-split
        size and `data` its training data's `data_fingerprint`."""
        differences = config_differences(state.config, config)
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
        changed = data_differences(state.data, data) if data is not None else []
        if changed:
            raise CheckpointMismatchError(
                f"{self.directory} holds an unfinished run on other data ({'; '.join(changed)}). "
                "Pass the same source= to resume it, or resume=False to start over."
            )

    def remove(self) -> None:
        """Deletes the checkpoint's files (and the folder, once empty); a file that is not a
        checkpoint's (someone's notes) stays."""
        remove_owned(self.directory, OWN_FILES)

    def _damaged(self, detail: str) -> CheckpointError:
        return CheckpointError(
            f"The checkpoint in {self.directory} is damaged: {detail}. "
            "Pass resume=False to start over."
        )


def config_differences(saved: dict[str, Any], config: RunConfig) -> list[str]:
    """The options of `config` that differ from `saved` (a `RunConfig.to_dict()`), as
    `"training.epochs: 3 -> 2"`: every option that changes the result of a run
    (`checkpoint_every_steps` does not)."""
    current = config.to_dict()
    differences = [
        f"{section}.{name}: {saved.get(section, {}).get(name)!r} -> {value!r}"
        for section in ("data", "model", "training")
        for name, value in current[section].items()
        if (section, name) not in _FREE_ON_RESUME
        and saved.get(section, {}).get(name) != value
        and not _raised_by_min_steps(section, name, saved, current)
    ]
    if saved.get("preset") != current["preset"]:
        differences.insert(0, f"preset: {saved.get('preset')!r} -> {current['preset']!r}")
    return differences


def _raised_by_min_steps(
    section: str, name: str, saved: dict[str, Any], current: dict[str, Any]
) -> bool:
    """Whether the saved run's `training.epochs` may be the current config's, raised by the same
    `training.min_steps` for its training split (`Trainer` saves the epochs it runs; a config
    checked before the data is read has not been raised yet)."""
    if (section, name) != ("training", "epochs"):
        return False
    saved_training, training = saved.get("training", {}), current["training"]
    return bool(training.get("min_steps")) and (
        saved_training.get("min_steps") == training["min_steps"]
        and int(saved_training.get("epochs") or 0) >= int(training["epochs"])
    )


def data_fingerprint(splits: ImdbSplits) -> dict[str, Any]:
    """What identifies a run's training data, for refusing to resume (or reuse a teacher) on
    other data: its classes, in order, and a SHA-256 of its training texts and labels, in the
    order they are read (a data set of the same size but other texts or classes differs)."""
    digest = hashlib.sha256()
    for texts, labels in splits["train"].batch(4096).as_numpy_iterator():
        for text, label in zip(texts, labels, strict=True):
            digest.update(len(text).to_bytes(8, "little"))
            digest.update(text)
            digest.update(int(label).to_bytes(8, "little", signed=True))
    return {"labels": list(splits.label_names), "train_sha256": digest.hexdigest()}


def data_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """How two `data_fingerprint`s differ, in words; nothing where `saved` is empty (a
    checkpoint written before fingerprints were recorded)."""
    if not saved:
        return []
    differences = []
    if saved.get("labels") != current.get("labels"):
        differences.append(
            f"classes {', '.join(map(str, saved.get('labels') or []))} -> "
            f"{', '.join(map(str, current.get('labels') or []))}"
        )
    if saved.get("train_sha256") != current.get("train_sha256"):
        differences.append("other training texts or labels")
    return differences


def numpy_arrays(variables: Iterable[Any]) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(variable) for variable in variables]


def assign_arrays(variables: list[Any], values: list[np.ndarray], what: str) -> None:
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
