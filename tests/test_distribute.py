"""Tests for imdb_rnn.training.distribute: strategies by name, TF_CONFIG, and training under
`MirroredStrategy` (two logical CPU devices) and `MultiWorkerMirroredStrategy` (two processes
on 127.0.0.1), each in fresh subprocesses: devices and clusters are configured before
TensorFlow starts, and this process has started it."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import predict_in_new_process, tiny_config
from imdb_rnn.config.toml import config_to_toml
from imdb_rnn.errors import ConfigError
from imdb_rnn.training import distribute
from imdb_rnn.training.distribute import (
    ClusterTask,
    cluster_task,
    is_distributed,
    resolve_strategy,
    strategy_name,
)
from imdb_rnn.training.trainer import Trainer

TIMEOUT = 180  # seconds for any subprocess here; a hung collective must not hang the suite
# Three epochs of nine global batches of 8 (4 per replica) on the fixture's 72 training reviews.
CONFIG = tiny_config(epochs=3, checkpoint_every_steps=2).replace(data={"batch_size": 4})


def _tf_config(workers, index):
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def test_unknown_strategy_is_refused():
    """A strategy name that does not exist is a ConfigError naming the argument."""
    with pytest.raises(ConfigError, match=r"Expected strategy to be one of .* strategy='ring'"):
        resolve_strategy("ring")
    with pytest.raises(ConfigError, match="strategy="):
        Trainer(tiny_config(), strategy="gpu")


def test_multi_worker_needs_tf_config(monkeypatch):
    """`multi-worker` without TF_CONFIG fails with an explanation, before TensorFlow reads it."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs the TF_CONFIG environment variable"):
        resolve_strategy("multi-worker")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', '"cluster" and "task"'),
        (_tf_config(["a:1", "b:2"], 2), r"index in \[0, 2\)"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "list"),
    ],
)
def test_bad_tf_config_is_explained(value, message):
    """A malformed TF_CONFIG is a ConfigError saying what is wrong."""
    with pytest.raises(ConfigError, match=message):
        cluster_task({"TF_CONFIG": value})


def test_chief_is_worker_zero_or_the_chief_task():
    """Worker 0 writes the model when the cluster has no chief; a chief task always does."""
    workers = ["127.0.0.1:1", "127.0.0.1:2"]
    assert cluster_task({"TF_CONFIG": _tf_config(workers, 0)}) == ClusterTask("worker", 0, 2)
    assert not cluster_task({"TF_CONFIG": _tf_config(workers, 1)}).is_chief
    assert ClusterTask("chief", 0, 3).is_chief


class _FakeMultiWorker:
    """What `is_chief` reads from a MultiWorkerMirroredStrategy (one cannot be created twice in
    a process, nor for a cluster that is not running)."""

    def __init__(self, cluster, task_type, index):
        self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=index
        )


_WITH_CHIEF = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]}
_WORKERS_ONLY = {"worker": ["127.0.0.1:2", "127.0.0.1:3"]}


@pytest.mark.parametrize(
    ("cluster", "task_type", "index", "expected"),
    [
        (_WITH_CHIEF, "chief", 0, True),
        (_WITH_CHIEF, "worker", 0, False),
        (_WITH_CHIEF, "worker", 1, False),
        (_WORKERS_ONLY, "worker", 0, True),
        (_WORKERS_ONLY, "worker", 1, False),
    ],
)
def test_both_spellings_of_chief_agree(monkeypatch, cluster, task_type, index, expected):
    """`cluster_task().is_chief` (read from TF_CONFIG, as the CLI asks) and `is_chief(strategy)`
    (asked of the running strategy) name the same task: on a cluster with a `chief` task,
    worker 0 is not the chief."""
    config = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
    assert cluster_task({"TF_CONFIG": config}).is_chief is expected
    monkeypatch.setattr(distribute, "is_multi_worker", lambda strategy: True)
    assert distribute.is_chief(_FakeMultiWorker(cluster, task_type, index)) is expected


def test_one_device_keeps_the_default_strategy():
    """`auto` on a machine without several GPUs is the default strategy: one replica, and the
    global batch is the configured batch."""
    trainer = Trainer(tiny_config(), strategy="auto")
    assert not is_distributed(trainer.strategy) and strategy_name(trainer.strategy) == "default"
    assert (trainer.replicas, trainer.global_batch_size) == (1, 8)


# -- MirroredStrategy over two logical CPU devices ----------------------------------------------

MIRRORED = textwrap.dedent(
    """
    import json, shutil, sys
    from pathlib import Path
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    from imdb_rnn.config import RunConfig
    from imdb_rnn.data.imdb import load_imdb
    from imdb_rnn.training.trainer import Trainer

    archive, root = sys.argv[1], Path(sys.argv[2])
    splits = load_imdb(archive)
    texts = ["a great superb film", "awful boring mess", ""]


    class FirstLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0 and not hasattr(self, "loss"):
                self.loss = float(logs["loss"])


    class Snapshot(keras.callbacks.Callback):
        # Copies the checkpoint after batch 3 of epoch 2 (the last checkpoint: batch 2).
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if (self.epoch, batch + 1) == (1, 3):
                shutil.copytree(root / "checkpoint", root / "snapshot")
                shutil.copytree(root / "checkpoint", root / "for-workers")


    def run(config, strategy, callbacks=(), save_to=None, **fit):
        trainer, first = Trainer(config, strategy=strategy), FirstLoss()
        history = trainer.fit(splits, callbacks=[first, *callbacks], **fit)
        if save_to is not None:
            trainer.save(save_to)
        return {
            "first_loss": first.loss,
            "replicas": trainer.replicas,
            "global_batch_size": trainer.global_batch_size,
            "history": history,
            "logits": trainer.predict_logits(texts).tolist(),
            "test_accuracy": trainer.evaluate(splits["test"]).accuracy,
        }


    config = RunConfig.from_dict(json.loads(sys.argv[3]))
    one = run(config.replace(data={"batch_size": 8}), "default")
    mirrored = run(
        config, "mirrored", checkpoint_dir=root / "checkpoint", callbacks=[Snapshot()]
    )
    resumed = run(
        config, "mirrored", checkpoint_dir=root / "snapshot", save_to=root / "resumed-model"
    )
    print(json.dumps({"one": one, "mirrored": mirrored, "resumed": resumed}))
    """
)


@pytest.fixture(scope="module")
def mirrored_runs(imdb_archive, tmp_path_factory):
    """One device with batches of 8, two mirrored replicas of 4 (checkpointed, with a copy of
    its checkpoint taken mid-epoch), and the mirrored run resumed from that copy."""
    root = tmp_path_factory.mktemp("mirrored")
    config = json.dumps(CONFIG.to_dict())
    child = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(imdb_archive), str(root), config],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return {
        **json.loads(child.stdout.strip().splitlines()[-1]),
        "snapshot": root / "for-workers",
        "resumed_model": root / "resumed-model",
    }


@pytest.mark.slow
def test_mirrored_on_two_devices_learns_like_one(mirrored_runs):
    """Two replicas of 4 reviews train like one device with batches of 8: the same batches and
    first loss, and a model as good. (Not the same weights to the last bit: the gradient is
    summed in another order, and Adam's first steps magnify such rounding.)"""
    one, mirrored = mirrored_runs["one"], mirrored_runs["mirrored"]
    assert (mirrored["replicas"], mirrored["global_batch_size"]) == (2, 8)
    assert (one["replicas"], one["global_batch_size"]) == (1, 8)
    assert mirrored["first_loss"] == pytest.approx(one["first_loss"], abs=1e-5)
    for run in (one, mirrored):
        losses = run["history"]["loss"]
        assert losses[-1] < losses[0] - 0.1, run["history"]
        assert run["test_accuracy"] >= 0.8, run
    np.testing.assert_allclose(mirrored["history"]["loss"], one["history"]["loss"], atol=0.1)


@pytest.mark.slow
def test_mirrored_run_resumes_mid_epoch(mirrored_runs):
    """A mirrored run resumed from a mid-epoch checkpoint ends where the uninterrupted one did."""
    mirrored, resumed = mirrored_runs["mirrored"], mirrored_runs["resumed"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(resumed["history"][key], mirrored["history"][key], atol=1e-5)
    np.testing.assert_allclose(resumed["logits"], mirrored["logits"], atol=1e-5)
    # The resumed model, saved and reloaded in a fresh process, predicts as it did.
    reloaded = predict_in_new_process(mirrored_runs["resumed_model"], ["a great superb film"])
    expected = 1 / (1 + np.exp(-np.asarray(resumed["logits"][0], dtype=np.float64)))
    np.testing.assert_allclose(reloaded, expected.reshape(-1), rtol=1e-5)


# -- MultiWorkerMirroredStrategy: two processes on 127.0.0.1 ------------------------------------


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run_workers(commands, envs, timeout=TIMEOUT):
    """Starts one process per command and waits for all; kills them all past `timeout`."""
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command, env in zip(commands, envs, strict=True)
    ]
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=max(1, deadline - time.monotonic()))
            outputs.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


def _train_on_two_workers(tmp_path, imdb_archive, output):
    """Runs `imdb-rnn train --strategy multi-worker` as two local worker processes with the
    mirrored runs' config; returns their (chief's, other's) JSON summaries and stderr."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_to_toml(CONFIG))
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    command = [sys.executable, "-m", "imdb_rnn", "train", "--strategy", "multi-worker"]
    command += ["--data", str(imdb_archive), "--output", str(output)]
    command += ["--config", str(config_file), "--json"]
    envs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"  # the worker's temporary folder
        scratch.mkdir()
        envs.append({**os.environ, "TF_CONFIG": _tf_config(workers, index), "TMPDIR": str(scratch)})
    results = _run_workers([command, command], envs)
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    (_, chief, chief_log), (_, other, other_log) = results
    return json.loads(chief), json.loads(other), chief_log, other_log


MODEL_FILES = [
    "README.md",
    "config.json",
    "config.toml",
    "curves.png",
    "history.json",
    "labels.json",
    "logs",
    "metrics.json",
    "model.keras",
]


@pytest.mark.slow
def test_two_workers_train_and_the_chief_saves(imdb_archive, tmp_path, mirrored_runs):
    """Two worker processes on 127.0.0.1 train together, as the two mirrored replicas did, and
    exit cleanly; only the chief writes, and its model loads and predicts."""
    output = tmp_path / "run"
    chief, other, _, _ = _train_on_two_workers(tmp_path, imdb_archive, output)
    assert (chief["chief"], other["chief"]) == (True, False)
    assert (chief["output"], other["output"]) == (str(output), None)
    for summary in (chief, other):
        assert summary["strategy"] == "multi-worker"
        assert (summary["replicas"], summary["global_batch_size"]) == (2, 8)
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(
                summary["history"][key], mirrored_runs["mirrored"]["history"][key], atol=1e-4
            )
    assert chief["test"]["accuracy"] >= 0.8
    assert sorted(path.name for path in output.iterdir()) == MODEL_FILES
    assert json.loads((output / "metrics.json").read_text())["replicas"] == 2
    assert not any((tmp_path / "tmp1").iterdir())  # the other worker's files are gone
    trainer = Trainer.load(output)
    probabilities = trainer.predict_proba(["a great superb film", "awful boring mess"])
    assert probabilities[0] > 0.5 > probabilities[1]


@pytest.mark.slow
def test_two_workers_resume_a_checkpoint(imdb_archive, tmp_path, mirrored_runs):
    """Both workers resume the checkpoint in the chief's --output (here one written mid-epoch
    by the mirrored run) and end where the uninterrupted run did."""
    output = tmp_path / "run"
    shutil.copytree(mirrored_runs["snapshot"], output / "checkpoint")
    chief, other, chief_log, other_log = _train_on_two_workers(tmp_path, imdb_archive, output)
    for log in (chief_log, other_log):
        assert "Resuming from the checkpoint at epoch 2/3, step 2/9" in log
    for summary in (chief, other):
        np.testing.assert_allclose(
            summary["history"]["loss"], mirrored_runs["mirrored"]["history"]["loss"], atol=1e-4
        )
    assert sorted(path.name for path in output.iterdir()) == MODEL_FILES  # checkpoint removed
    assert len(predict_in_new_process(output, ["a great superb film"])) == 1


@pytest.mark.parametrize(
    ("strategy", "message"),
    [("ring", "--strategy to be one of ['auto', 'default'"), ("multi-worker", "TF_CONFIG")],
)
def test_cli_refuses_a_bad_strategy(tmp_path, monkeypatch, imdb_archive, strategy, message):
    """`imdb-rnn train` with an unknown strategy, or multi-worker without TF_CONFIG, exits with
    the usage code and a one-line explanation, before reading any data."""
    from typer.testing import CliRunner

    from imdb_rnn.cli._app import app
    from imdb_rnn.errors import EXIT_USAGE

    monkeypatch.delenv("TF_CONFIG", raising=False)
    arguments = ["train", "--data", str(imdb_archive), "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*arguments, "--strategy", strategy])
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.stderr and "Reading data" not in result.stderr
