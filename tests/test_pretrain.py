"""Tests for imdb_rnn.pretraining.pretrain (language-model pre-training) on the fixture archive."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from imdb_rnn.errors import (
    ConfigError,
    DataError,
    EncoderError,
    NonFiniteLossError,
    TrainingInterrupted,
)
from imdb_rnn.models import build_classifier
from imdb_rnn.pretraining.pretrain import (
    CHECKPOINT_DIR,
    ENCODER_CONFIG_FILE,
    PretrainConfig,
    encoder_vocabulary,
    load_encoder,
    pretrain,
    read_encoder,
)
from imdb_rnn.training.trainer import Trainer
from imdb_rnn.training.workflows import train


def tiny_pretrain_config(**overrides: object) -> PretrainConfig:
    """An encoder of `tiny_config()`'s shape, a few dozen steps on the fixture archive."""
    settings: dict[str, object] = {
        "sequence_length": 16,
        "batch_size": 4,
        "epochs": 2,
        "sampled_classes": 10,
        "checkpoint_every_steps": 5,
        "valid_tokens": 200,
        "learning_rate": 0.03,
        **overrides,
    }
    return PretrainConfig.for_model(tiny_config().model, **settings)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory, imdb_archive: Path) -> Path:
    """An encoder folder pre-trained on the fixture archive (shared, read-only)."""
    output = tmp_path_factory.mktemp("encoder") / "lm"
    pretrain(imdb_archive, output, config=tiny_pretrain_config())
    return output


def test_pretrain_writes_an_encoder_folder(encoder_dir):
    """The folder holds the vocabulary, the weights in the classifier's shapes and a curve."""
    encoder = read_encoder(encoder_dir)
    model = tiny_config().model
    assert encoder.vocabulary[:2] == ["", "[UNK]"]
    assert encoder.embedding.shape == (model.max_tokens, model.embedding_dim)
    assert [w.shape for w in encoder.recurrent] == [(8, 12), (4, 12), (2, 12)] * 2
    info = json.loads((encoder_dir / ENCODER_CONFIG_FILE).read_text())
    assert info["complete"] is True
    assert [entry["epoch"] for entry in info["curve"]] == [1.0, 2.0]
    for entry in info["curve"]:
        assert 1 < entry["forward_perplexity"] < 2 * model.max_tokens
        assert 1 < entry["backward_perplexity"] < 2 * model.max_tokens


def test_language_model_learns(encoder_dir):
    """Validation perplexity after two epochs is far below a uniform guess over the words."""
    curve = read_encoder(encoder_dir).config["curve"]
    assert curve[-1]["forward_perplexity"] < 0.8 * tiny_config().model.max_tokens


class _StopAfter:
    """A stand-in for SignalStop whose 'signal' arrives after `steps` steps."""

    def __init__(self, steps: int) -> None:
        self.steps, self.received, self.deferring = steps, None, False

    def on_step(self, step: int, total: int, loss: float) -> None:
        if step == self.steps:
            self.received = 2


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path, imdb_archive):
    """A run stopped mid-epoch leaves a checkpoint; the same call continues from its step."""
    config = tiny_pretrain_config()
    stop = _StopAfter(7)
    with pytest.raises(TrainingInterrupted):
        pretrain(imdb_archive, tmp_path / "lm", config=config, on_step=stop.on_step, stop=stop)
    assert (tmp_path / "lm" / CHECKPOINT_DIR / "state.json").exists()
    assert read_encoder(tmp_path / "lm").config["complete"] is False
    steps: list[int] = []
    stages: list[str] = []
    result = pretrain(
        imdb_archive,
        tmp_path / "lm",
        config=config,
        on_step=lambda step, total, loss: steps.append(step),
        on_stage=stages.append,
    )
    assert steps[0] == 8
    assert result.complete and result.step == result.total_steps == steps[-1]
    assert any(stage.startswith("Resuming at step 7") for stage in stages)


@pytest.mark.slow
def test_time_budget_stops_and_rerun_continues(tmp_path, imdb_archive):
    """max_minutes stops after the first step; the rerun picks up from there."""
    config = tiny_pretrain_config(max_minutes=1e-9)
    first = pretrain(imdb_archive, tmp_path / "lm", config=config)
    assert not first.complete and first.step == 1
    second = pretrain(imdb_archive, tmp_path / "lm", config=config)
    assert second.step == 2


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path, imdb_archive):
    """A checkpoint of other settings is not silently continued."""
    pretrain(imdb_archive, tmp_path / "lm", config=tiny_pretrain_config(max_minutes=1e-9))
    with pytest.raises(EncoderError, match="other settings"):
        pretrain(imdb_archive, tmp_path / "lm", config=tiny_pretrain_config(sequence_length=8))


def test_bad_settings_are_config_errors_that_name_the_setting():
    """PretrainConfig refuses an out-of-range setting with a ConfigError whose option names it."""
    for setting, value in (("batch_size", 0), ("learning_rate", 2.0), ("valid_split", "x")):
        with pytest.raises(ConfigError, match=setting) as caught:
            tiny_pretrain_config(**{setting: value})
        assert caught.value.option == setting


def test_too_little_text_is_a_data_error(tmp_path, imdb_archive):
    """Text too short for one batch of windows is the data's fault: a DataError."""
    with pytest.raises(DataError, match="lower batch_size or sequence_length"):
        pretrain(imdb_archive, tmp_path / "lm", config=tiny_pretrain_config(batch_size=60_000))


def test_a_non_finite_loss_raises_non_finite_loss_error(tmp_path, imdb_archive, monkeypatch):
    """A NaN or infinite language-model loss raises the loop's NonFiniteLossError."""
    import math
    import types

    from imdb_rnn.pretraining import pretrain as module

    config = tiny_pretrain_config()
    monkeypatch.setattr(
        module, "math", types.SimpleNamespace(**{**vars(math), "isfinite": lambda x: False})
    )
    with pytest.raises(NonFiniteLossError, match="loss became") as caught:
        pretrain(imdb_archive, tmp_path / "lm", config=config)
    assert (caught.value.epoch, caught.value.step) == (0, 1)


def test_load_encoder_sets_the_classifier_weights(encoder_dir):
    """The embedding and the first bidirectional GRU take the encoder's weights."""
    model = build_classifier(tiny_config().model)
    encoder = load_encoder(model, encoder_dir)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], encoder.embedding)
    for got, expected in zip(
        model.get_layer("bidirectional_gru_0").get_weights(), encoder.recurrent, strict=True
    ):
        np.testing.assert_array_equal(got, expected)


def test_embedding_only_takes_the_rescaled_word_vectors(encoder_dir):
    """layers="embedding" sets the word vectors (rescaled to std 0.1) and leaves the GRU alone."""
    model = build_classifier(tiny_config().model)
    recurrent = [w.copy() for w in model.get_layer("bidirectional_gru_0").get_weights()]
    encoder = load_encoder(model, encoder_dir, layers="embedding")
    vectors = model.get_layer("embedding").get_weights()[0]
    assert float(vectors[2:].std()) == pytest.approx(0.1, rel=1e-4)
    expected = encoder.embedding / encoder.embedding[2:].std() * 0.1
    np.testing.assert_allclose(vectors, expected, rtol=1e-5)
    for got, before in zip(
        model.get_layer("bidirectional_gru_0").get_weights(), recurrent, strict=True
    ):
        np.testing.assert_array_equal(got, before)


def test_shape_mismatch_is_refused(encoder_dir):
    """An encoder of another width is refused with a message naming both shapes."""
    config = tiny_config().replace(model={"rnn_units": 6})
    with pytest.raises(EncoderError, match="rnn_units=4"):
        encoder_vocabulary(encoder_dir, config)
    with pytest.raises(EncoderError, match="shapes"):
        load_encoder(build_classifier(config.model), encoder_dir)


def test_missing_encoder_is_a_config_error(tmp_path):
    """A folder that is not an encoder fails with a ConfigError the CLI reports."""
    with pytest.raises(ConfigError, match="imdb-rnn pretrain"):
        read_encoder(tmp_path / "nothing")


@pytest.mark.slow
def test_trainer_starts_from_the_encoder(encoder_dir, imdb_archive):
    """train with an encoder uses its vocabulary and its GRU weights before training."""
    from imdb_rnn.data.imdb import load_imdb

    config = tiny_config().replace(training={"encoder": str(encoder_dir)})
    encoder = read_encoder(encoder_dir)
    trainer = Trainer(config)
    splits = load_imdb(imdb_archive, splits=["train", "valid"])
    trainer.encoder = encoder_vocabulary(encoder_dir, config)
    model = trainer.build(steps_per_epoch=10)
    np.testing.assert_array_equal(
        model.get_layer("bidirectional_gru_0").get_weights()[1], encoder.recurrent[1]
    )
    trainer.fit(splits)
    assert trainer._encoder().get_vocabulary() == encoder.vocabulary
    assert not np.array_equal(
        model.get_layer("bidirectional_gru_0").get_weights()[1], encoder.recurrent[1]
    )


@pytest.mark.slow
def test_train_with_encoder_writes_a_model(tmp_path, encoder_dir, imdb_archive):
    """The one-call workflow trains from the encoder and saves a model that predicts."""
    config = tiny_config(epochs=1).replace(
        training={"encoder": str(encoder_dir), "layer_lr_decay": 2.6, "unfreeze_epochs": 0.5}
    )
    result = train(config, source=imdb_archive, output=tmp_path / "run")
    assert result.test is not None
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["training"]["encoder"] == str(encoder_dir)
    trained = Trainer.load(tmp_path / "run")
    assert trained.predict_proba(["a good film"]).shape[0] == 1


_CLI_TINY = ["--max-tokens", "50", "--embedding-dim", "8", "--rnn-units", "4"]
_CLI_LM = [
    "--sequence-length",
    "16",
    "--batch-size",
    "4",
    "--sampled-classes",
    "10",
    "--epochs",
    "1",
]


@pytest.mark.slow
def test_cli_pretrain_then_train_with_the_encoder(tmp_path, imdb_archive):
    """`imdb-rnn pretrain` writes an encoder with its curve; `train --encoder` uses it."""
    from typer.testing import CliRunner

    from imdb_rnn.cli._app import app

    runner = CliRunner()
    lm = tmp_path / "lm"
    result = runner.invoke(
        app,
        [
            "pretrain",
            "--data",
            str(imdb_archive),
            "--output",
            str(lm),
            *_CLI_TINY,
            *_CLI_LM,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["complete"] and len(summary["curve"]) == 1
    assert read_encoder(lm).config["complete"] is True
    train_args = [
        "train", "--data", str(imdb_archive), "--output", str(tmp_path / "run"), *_CLI_TINY,
        "--dense-units", "4", "--batch-size", "8", "--epochs", "1", "--adversarial-epsilon", "0",
        "--word-dropout", "0", "--pseudo-label-threshold", "0", "--encoder", str(lm),
        "--layer-lr-decay", "2.6", "--json",
    ]  # fmt: skip
    result = runner.invoke(app, train_args)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["training"]["encoder"] == str(lm)
    assert saved["training"]["layer_lr_decay"] == 2.6


def test_cli_refuses_an_encoder_of_another_shape(tmp_path, encoder_dir, imdb_archive):
    """A shape mismatch is one error line and exit code 2, not a traceback."""
    from typer.testing import CliRunner

    from imdb_rnn.cli._app import app
    from imdb_rnn.errors import EXIT_USAGE

    result = CliRunner().invoke(
        app,
        ["train", "--data", str(imdb_archive), "--output", str(tmp_path / "run"),
         "--max-tokens", "50", "--embedding-dim", "8", "--rnn-units", "6",
         "--encoder", str(encoder_dir)],
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE, result.output
    assert "rnn_units=4" in result.output and "Traceback" not in result.output


def test_presets_include_pretrained():
    """The pretrained preset is the self-training recipe with an encoder and layer-wise rates."""
    from imdb_rnn.config import get_preset

    default, pretrained = get_preset("self-training"), get_preset("pretrained")
    assert pretrained.model == default.model and pretrained.data == default.data
    assert pretrained.training.encoder == "runs/lm"
    assert pretrained.training.encoder_layers == "embedding"


def test_a_second_run_in_the_same_folder_is_refused(tmp_path, imdb_archive):
    """While one run holds the folder, another fails at once instead of mixing checkpoints."""
    from imdb_rnn.errors import FolderBusyError
    from imdb_rnn.files import folder_lock

    with folder_lock(tmp_path / "lm"), pytest.raises(FolderBusyError):
        pretrain(imdb_archive, tmp_path / "lm", config=tiny_pretrain_config())
