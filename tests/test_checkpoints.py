"""training.checkpoints: resumable checkpoints, on the fixture archive, in-process."""

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import predict_in_new_process, tiny_config
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.errors import (
    CheckpointError,
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainingInterrupted,
)
from imdb_rnn.training import checkpoints
from imdb_rnn.training.checkpoints import STATE_FILE, Checkpoint
from imdb_rnn.training.stopping import SignalStop
from imdb_rnn.training.trainer import Trainer
from imdb_rnn.training.workflows import predict

# Dropout (random seed states), early stopping (its counters and best weights), weight
# averaging (the optimizer's averages), random crops (drawn per epoch) and several checkpoints
# per epoch: everything a resumed run has to get back.
CONFIG = tiny_config(
    epochs=3, early_stopping_patience=2, checkpoint_every_steps=4, ema_momentum=0.9
).replace(
    data={"batch_size": 4, "crop_fraction": 0.3, "crop_lengths": (2, 5)}, model={"dropout": 0.2}
)
STEPS = 18  # batches per epoch of the fixture's 72 training reviews


class Snapshot(keras.callbacks.Callback):
    """Copies the checkpoint folder after batch `step` (1-based) of epoch `epoch`, or at the end
    of that epoch when `step` is None: what a process killed at that moment leaves on disk."""

    def __init__(self, source, target, epoch, step=None):
        super().__init__()
        self.source, self.target, self.at, self.epoch = source, target, (epoch, step), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch + 1) == self.at:
            shutil.copytree(self.source, self.target)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch, None) == self.at:
            shutil.copytree(self.source, self.target)


LOGIT_TEXTS = ["a great film", "awful boring mess", ""]


@pytest.fixture(scope="module")
def splits(imdb_archive):
    return load_imdb(imdb_archive)


@pytest.fixture(scope="module")
def run(splits, tmp_path_factory):
    """An uninterrupted checkpointed run, with copies of its checkpoint folder taken mid-epoch
    (after batch 7 of epoch 2, the last checkpoint being at batch 4) and at the end of epoch 2."""
    root = tmp_path_factory.mktemp("run")
    folder = root / "checkpoint"
    snapshots = {"mid_epoch": root / "mid_epoch", "epoch_end": root / "epoch_end"}
    trainer = Trainer(CONFIG)
    history = trainer.fit(
        splits,
        checkpoint_dir=folder,
        callbacks=[
            Snapshot(folder, snapshots["mid_epoch"], epoch=1, step=7),
            Snapshot(folder, snapshots["epoch_end"], epoch=1),
        ],
    )
    return {
        "history": history,
        "logits": trainer.predict_logits(LOGIT_TEXTS),
        "finished": folder,
        **snapshots,
    }


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "checkpoint")


def _assert_saved_model_predicts(trainer, run, tmp_path, *, new_process=False):
    """The resumed model, saved and reloaded (in a fresh process with `new_process`), predicts
    as the uninterrupted run's model did."""
    trainer.save(tmp_path / "model")
    if new_process:
        probabilities = predict_in_new_process(tmp_path / "model", LOGIT_TEXTS[:2])
    else:
        rows = predict(tmp_path / "model", LOGIT_TEXTS[:2])
        probabilities = [row["probability"] for row in rows]
    expected = 1 / (1 + np.exp(-run["logits"].reshape(-1)[:2].astype(np.float64)))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)


@pytest.mark.slow
def test_resume_mid_epoch_matches_an_uninterrupted_run(splits, run, tmp_path):
    """A run killed mid-epoch resumes from its last step checkpoint and ends with exactly the
    history and weights of the run that never stopped."""
    folder = _copy(run["mid_epoch"], tmp_path)
    state = Checkpoint(folder).read_state()
    assert (state.epoch, state.step, state.finished) == (1, 4, False)
    stages = []
    trainer = Trainer(CONFIG)
    history = trainer.fit(splits, checkpoint_dir=folder, on_stage=stages.append)
    assert f"Resuming from the checkpoint at epoch 2/3, step 4/{STEPS}" in stages
    assert "Adapting the vocabulary" not in stages  # the saved vocabulary is used
    assert history == run["history"]
    np.testing.assert_array_equal(trainer.predict_logits(LOGIT_TEXTS), run["logits"])
    assert len(trainer.epoch_train_seconds) == 3
    # One fresh process is enough: the other resumes reload their saved model in this one.
    _assert_saved_model_predicts(trainer, run, tmp_path, new_process=True)


@pytest.mark.slow
def test_resume_at_an_epoch_boundary(splits, run, tmp_path):
    """A run killed after an epoch's checkpoint resumes at the next epoch's first batch."""
    folder = _copy(run["epoch_end"], tmp_path)
    state = Checkpoint(folder).read_state()
    assert (state.epoch, state.step) == (2, 0)
    trainer = Trainer(CONFIG)
    assert trainer.fit(splits, checkpoint_dir=folder) == run["history"]
    np.testing.assert_array_equal(trainer.predict_logits(LOGIT_TEXTS), run["logits"])
    _assert_saved_model_predicts(trainer, run, tmp_path)


@pytest.mark.slow
def test_finished_checkpoint_trains_no_more(splits, run, tmp_path):
    """The checkpoint of a finished run (killed before the model was saved) restores the final
    weights without training again."""
    folder = _copy(run["finished"], tmp_path)
    assert Checkpoint(folder).read_state().finished
    epochs = []
    trainer = Trainer(CONFIG)
    trainer.fit(
        splits,
        checkpoint_dir=folder,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))],
    )
    assert epochs == []
    assert trainer.history == run["history"]
    np.testing.assert_array_equal(trainer.predict_logits(LOGIT_TEXTS), run["logits"])
    _assert_saved_model_predicts(trainer, run, tmp_path)


def test_checkpoint_files(run):
    """A checkpoint is a state file naming one variables file, plus the vocabulary."""
    folder = run["mid_epoch"]
    names = sorted(path.name for path in folder.iterdir())
    assert names == [STATE_FILE, "variables-0001-000004.npz", "vocabulary.json"]
    state = json.loads((folder / STATE_FILE).read_text())
    assert state["variables"] == "variables-0001-000004.npz"
    assert (state["epoch"], state["step"], state["steps_per_epoch"]) == (1, 4, STEPS)
    assert state["seed"] == CONFIG.training.seed
    assert state["config"] == CONFIG.to_dict()
    assert set(state["early_stopping"]) == {"wait", "stopped_epoch", "best", "best_epoch"}
    with np.load(folder / state["variables"], allow_pickle=False) as arrays:
        groups = {key.split(".")[0] for key in arrays.files}
    assert groups == {"model", "optimizer", "metrics", "best"}


def test_resume_refuses_other_options(splits, run, tmp_path):
    """Resuming with another config is refused with the differing fields named; changing only
    how often checkpoints are written is allowed."""
    folder = _copy(run["mid_epoch"], tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"model\.rnn_units: 4 -> 5"):
        Trainer(CONFIG.replace(model={"rnn_units": 5})).fit(splits, checkpoint_dir=folder)
    checkpoint = Checkpoint(folder)
    checkpoint.check_resumable(
        checkpoint.read_state(), CONFIG.replace(training={"checkpoint_every_steps": 1})
    )


def test_resume_refuses_other_data(imdb_archive, run, tmp_path):
    """Resuming on a training split of another size is refused."""
    folder = _copy(run["mid_epoch"], tmp_path)
    with pytest.raises(CheckpointMismatchError, match="other data"):
        Trainer(CONFIG).fit(load_imdb(imdb_archive, limit=40), checkpoint_dir=folder)


def test_resume_refuses_other_data_of_the_same_size(splits, run, tmp_path):
    """Resuming on a training split of the same size but other labels or other classes is
    refused (only the size was compared: the run resumed and mixed the two)."""
    folder = _copy(run["mid_epoch"], tmp_path)
    flipped = dataclasses.replace(
        splits, train=splits.train.map(lambda text, label: (text, 1 - label))
    )
    renamed = dataclasses.replace(splits, label_names=("bad", "good"))
    with pytest.raises(CheckpointMismatchError, match="other training texts or labels"):
        Trainer(CONFIG).fit(flipped, checkpoint_dir=folder)
    with pytest.raises(CheckpointMismatchError, match="classes neg, pos -> bad, good"):
        Trainer(CONFIG).fit(renamed, checkpoint_dir=folder)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "damaged"),
        ('{"epoch": 1}', "damaged"),
        ('{"version": 99}', "newer imdb-rnn"),
    ],
)
def test_bad_state_file(tmp_path, content, needle):
    """A damaged or future state file is a CheckpointError that says how to start over, in
    Python's words (the command line says --overwrite)."""
    (tmp_path / STATE_FILE).write_text(content)
    with pytest.raises(CheckpointError, match=needle) as caught:
        Checkpoint(tmp_path).read_state()
    assert "resume=False" in str(caught.value) and "--" not in str(caught.value)


def test_damaged_variables_file(run, tmp_path):
    """A variables file cut short is reported as a damaged checkpoint."""
    checkpoint = Checkpoint(_copy(run["mid_epoch"], tmp_path))
    state = checkpoint.read_state()
    path = checkpoint.directory / state.variables
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged"):
        checkpoint.load_arrays(state)


def test_signal_outside_training_stops_at_once():
    """Outside the training loop a signal raises TrainingInterrupted at once, and the previous
    handler is back afterwards."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as caught, SignalStop():
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before


def test_signal_during_training_is_deferred_once():
    """While training, the first signal is only recorded (the guard stops at the next batch); a
    second one raises at once."""
    with SignalStop() as stop:
        stop.deferring = True
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGINT
        with pytest.raises(TrainingInterrupted) as caught:
            os.kill(os.getpid(), signal.SIGINT)
    assert caught.value.exit_code == 130


# -- atomic saves ------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _half_written_savez(stream, **arrays):
    stream.write(b"PK\x03\x04 half a zip file")
    _disk_full()


@pytest.mark.parametrize("failing", ["variables", "state"])
def test_failed_save_keeps_the_previous_checkpoint(run, tmp_path, monkeypatch, failing):
    """A save that fails while writing the variables or the state leaves the previous checkpoint
    whole and loadable, and no temporary file behind."""
    checkpoint = Checkpoint(_copy(run["mid_epoch"], tmp_path))
    state = checkpoint.read_state()
    arrays = checkpoint.load_arrays(state)
    before = sorted(path.name for path in checkpoint.directory.iterdir())
    if failing == "variables":
        monkeypatch.setattr(np, "savez", _half_written_savez)
    else:
        monkeypatch.setattr(checkpoints, "write_json", _disk_full)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(dataclasses.replace(state, step=8), arrays)
    assert checkpoint.read_state() == state
    reloaded = checkpoint.load_arrays(state)
    for group, values in arrays.items():
        for value, again in zip(values, reloaded[group], strict=True):
            np.testing.assert_array_equal(value, again)
    after = {path.name for path in checkpoint.directory.iterdir()}
    assert not [name for name in after if name.startswith(".")]
    if failing == "variables":
        assert sorted(after) == before


KILLED_MID_SAVE = """
import dataclasses, os, signal, sys
import numpy as np
from imdb_rnn.training.checkpoints import Checkpoint

checkpoint = Checkpoint(sys.argv[1])
state = checkpoint.read_state()

def killed_savez(stream, **arrays):
    stream.write(b"PK\\x03\\x04 half a zip file")
    stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.savez = killed_savez
checkpoint.save(dataclasses.replace(state, step=8), checkpoint.load_arrays(state))
"""


@pytest.mark.slow
def test_process_killed_mid_save_leaves_the_previous_checkpoint(run, tmp_path):
    """A process killed with SIGKILL in the middle of writing a checkpoint leaves the previous
    one loadable; the half-written temporary file is removed by the next save."""
    checkpoint = Checkpoint(_copy(run["mid_epoch"], tmp_path))
    state = checkpoint.read_state()
    child = subprocess.run(
        [sys.executable, "-c", KILLED_MID_SAVE, str(checkpoint.directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    leftovers = [p.name for p in checkpoint.directory.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and ".tmp" in leftovers[0]
    assert checkpoint.read_state() == state
    arrays = checkpoint.load_arrays(state)
    checkpoint.save(dataclasses.replace(state, step=8), arrays)
    assert not [p for p in checkpoint.directory.iterdir() if p.name.startswith(".")]


# -- non-finite loss ---------------------------------------------------------------------------


class Poison(keras.callbacks.Callback):
    """Sets the output bias to NaN after batch `step` (1-based) of epoch `epoch`, so that the
    next batch's loss is NaN."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__()
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch + 1) == self.at:
            self.model.get_layer("logits").bias.assign([float("nan")])


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(splits, tmp_path):
    """A NaN loss stops training at that batch with NonFiniteLossError; the checkpoint on disk is
    the last one written before it, with finite weights."""
    poison = Poison(epoch=1, step=6)
    with pytest.raises(NonFiniteLossError, match=r"became nan in epoch 2 \(step 7/18\)") as caught:
        Trainer(CONFIG).fit(splits, checkpoint_dir=tmp_path, callbacks=[poison])
    assert (caught.value.epoch, caught.value.step) == (1, 7)
    checkpoint = Checkpoint(tmp_path)
    state = checkpoint.read_state()
    assert (state.epoch, state.step) == (1, 4)
    assert all(np.isfinite(value).all() for value in checkpoint.load_arrays(state)["model"])
