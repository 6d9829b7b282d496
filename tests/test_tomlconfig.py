"""Tests for imdb_rnn.config.toml: TOML run configs."""

import sys

import pytest

from imdb_rnn.config import PRESETS, RunConfig, get_preset
from imdb_rnn.config.toml import (
    _toml_value,
    config_from_toml,
    config_to_toml,
    read_config_file,
    resolve_config,
)
from imdb_rnn.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_toml(name):
    """Every preset survives RunConfig -> TOML -> RunConfig unchanged."""
    config = get_preset(name)
    assert config_from_toml(config_to_toml(config)) == config


def test_unusual_values_round_trip():
    """Set and unset optional fields, empty lists, odd floats and a custom config round-trip."""
    config = RunConfig().replace(
        data={"limit": 123, "max_length": 7, "truncation": "tail", "valid_fraction": 0.1 + 0.2},
        model={"dense_units": (), "dropout": 1e-7},
        training={"clip_norm": 2.5, "learning_rate": 3e-5, "warmup_epochs": 1.0},
    )
    assert config.preset == "custom"
    assert config_from_toml(config_to_toml(config)) == config


@pytest.mark.parametrize(
    "value", ['odd "name"\\ \t\n\r\x7f\x00 é ☃ 😀', 1e-300, -0.0, 2**62, [1, 2], True]
)
def test_values_are_written_as_toml(value):
    """Strings with quotes, control and astral characters, and numbers read back exactly."""
    assert tomllib.loads(f"x = {_toml_value(value)}")["x"] == value


def test_none_unsets_a_field_that_the_preset_sets():
    """`"none"` in a file unsets an optional field even where the preset sets it."""
    assert get_preset("default").training.early_stopping_patience is not None
    config = config_from_toml('preset = "default"\n[training]\nearly_stopping_patience = "none"\n')
    assert config.training.early_stopping_patience is None


def test_written_toml_is_plain_toml():
    """The writer's output is valid TOML with the three sections and the choices as comments."""
    text = config_to_toml(get_preset("reference"))
    parsed = tomllib.loads(text)
    assert set(parsed) == {"version", "preset", "data", "model", "training"}
    assert parsed["model"]["dense_units"] == [64]
    assert "gru | lstm" in text


def test_missing_fields_keep_the_files_preset():
    """A partial file is laid over the preset it names; an explicit preset argument wins."""
    values = {"preset": "deep", "training": {"epochs": 3}}
    config = resolve_config(values)
    assert config.preset == "deep" and config.model.num_rnn_layers == 2
    assert config.training.epochs == 3
    other = resolve_config(values, preset="reference")
    assert other.preset == "reference" and other.model.num_rnn_layers == 1
    assert other.training.epochs == 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[training]\nepoch = 3\n", "'epoch'"),
        ("[model]\nepochs = 3\n", "belongs in [training]"),
        ("epochs = 3\n", "belongs in [training]"),
        ("[optimizer]\nname = 'adam'\n", "'optimizer'"),
        ("[model]\ncell = 'rnn'\n", "cell"),
        ("[model]\nrnn_units = '64'\n", "rnn_units"),
        ("[model]\ndense_units = 64\n", "dense_units"),
        ("[training]\nepochs = 'none'\n", "epochs"),
        ("[data]\nbatch_size = 0\n", "batch_size"),
        ("preset = 'huge'\n", "preset"),
        ("version = 99\n", "newer"),
        ("[model\ncell = 'gru'\n", "not valid TOML"),
        ("model = 3\n", "table"),
    ],
)
def test_bad_files_raise_config_error(text, needle):
    """Unknown keys, bad values and broken TOML raise ConfigError saying what is wrong."""
    with pytest.raises(ConfigError, match=None) as caught:
        config_from_toml(text, origin="run.toml")
    assert needle in str(caught.value)
    assert str(caught.value).startswith("run.toml") or needle == "preset"


def test_read_config_file_accepts_a_model_directory(tmp_path):
    """read_config_file reads FILE or DIR/config.toml, and names a missing file."""
    (tmp_path / "config.toml").write_text(config_to_toml(get_preset("deep")), encoding="utf-8")
    assert resolve_config(read_config_file(tmp_path)) == get_preset("deep")
    with pytest.raises(ConfigError, match="No config file"):
        read_config_file(tmp_path / "missing.toml")
