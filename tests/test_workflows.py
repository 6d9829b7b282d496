"""`imdb_rnn.train` applies the output folder's rules itself, for Python users as for the CLI."""

from __future__ import annotations

import pytest

from conftest import tiny_config
from imdb_rnn.errors import ConfigError, OutputExistsError
from imdb_rnn.modeldir import MODEL_FILE
from imdb_rnn.training.workflows import train


def test_a_finished_model_is_refused_without_overwrite(trained_model_dir, imdb_archive):
    """A folder holding a model is refused before any data is read, naming `overwrite=True`."""
    stages: list[str] = []
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        train(tiny_config(), source=imdb_archive, output=trained_model_dir, on_stage=stages.append)
    assert stages == []


def test_an_output_below_a_file_fails_before_reading_data(tmp_path, imdb_archive):
    (tmp_path / "file").write_text("not a folder")
    stages: list[str] = []
    with pytest.raises(OSError, match="Cannot create the output directory"):
        train(
            tiny_config(),
            source=imdb_archive,
            output=tmp_path / "file" / "run",
            on_stage=stages.append,
        )
    assert stages == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "ring"}, "strategy"),
        ({"tensorboard": True}, "output="),
        ({"on_disk": True}, "TextFiles"),
    ],
)
def test_bad_options_fail_before_reading_data(imdb_archive, options, message):
    stages: list[str] = []
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(), source=imdb_archive, on_stage=stages.append, **options)
    assert stages == []


@pytest.mark.slow
def test_overwrite_replaces_a_model_and_the_result_is_the_json(tmp_path, imdb_archive):
    """`overwrite=True` trains into a folder holding a model; `tensorboard=True` writes
    `output/logs`, emptied of an earlier run's events first; `to_dict()` carries what
    `train --json` documents."""
    output = tmp_path / "run"
    stale = output / "logs" / "train" / "events.out.tfevents.1.stale"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run's events")
    (output / MODEL_FILE).write_text("an earlier model")
    result = train(
        tiny_config(epochs=1),
        source=imdb_archive,
        output=output,
        overwrite=True,
        tensorboard=True,
        evaluate_test=False,
    )
    summary = result.to_dict()
    assert summary["output"] == str(output)
    assert summary["tensorboard_logs"] == str(output / "logs")
    assert not stale.exists()
    assert any((output / "logs").rglob("events.out.tfevents.*"))
    assert summary["preset"] == "default" and summary["label_names"] == ["neg", "pos"]
    assert summary["rnn_kernel"] in ("native", "tensorflow", "cudnn")
    assert summary["epochs"] == 1 and len(summary["history"]["loss"]) == 1
    assert (output / MODEL_FILE).stat().st_size > 100
