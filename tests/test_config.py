"""Tests for imdb_rnn.config."""

import dataclasses
import json

import pytest

from imdb_rnn.config import (
    CONFIG_VERSION,
    PRESETS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainingConfig,
    get_preset,
)
from imdb_rnn.errors import ConfigError


def test_reference_preset_is_the_reference_recipe():
    """The reference preset keeps the recipe: 10k vocab, 64-d embedding, BiGRU(64), Dense(64)."""
    config = get_preset("reference")
    assert (config.model.max_tokens, config.model.embedding_dim) == (10_000, 64)
    assert (config.model.cell, config.model.rnn_units, config.model.num_rnn_layers) == (
        "gru",
        64,
        1,
    )
    assert config.model.dense_units == (64,)
    assert config.model.pooling == "final"
    assert (config.data.batch_size, config.data.shuffle_buffer, config.data.valid_fraction) == (
        64,
        10_000,
        0.1,
    )
    assert config.data.vocabulary_source == "unsupervised"


def test_default_preset_is_a_hybrid_of_fast_on_whole_reviews():
    """`default` is `fast` reading whole reviews, with an n-gram part of 2**20 bigram buckets
    self-trained on the unlabelled reviews, and no self-training of the recurrent part."""
    default, fast = get_preset("default"), get_preset("fast")
    assert dataclasses.replace(default.model, ngram_buckets=0) == fast.model
    assert (fast.model.ngram_buckets, default.model.ngram_buckets) == (0, 2**20)
    assert (fast.data.max_length, default.data.max_length) == (256, None)
    assert (
        dataclasses.replace(
            default.training, ngram_l2=0.1, ngram_pseudo_label_threshold=0.0, min_steps=0
        )
        == fast.training
    )
    assert default.training.adversarial_epsilon == 0.3 and default.training.ngram_l2 == 0.3
    assert default.training.ngram_pseudo_label_threshold == 0.9


def test_self_training_preset_is_fast_on_whole_reviews_with_a_teacher():
    """`self-training` is `fast` (one model) reading whole reviews, trained as a teacher and then
    as a student on the reviews the teacher labels with probability >= 0.9."""
    selftrain, fast = get_preset("self-training"), get_preset("fast")
    assert selftrain.model == fast.model
    assert selftrain.data.max_length is None
    assert (fast.training.pseudo_label_threshold, selftrain.training.pseudo_label_threshold) == (
        0.0,
        0.9,
    )
    assert selftrain.training.teacher is None
    assert get_preset("pretrained").training.pseudo_label_threshold == 0.9


def test_recurrent_preset_is_a_recurrent_student_of_a_hybrid_teacher():
    """`recurrent` saves no n-gram part; the teacher it trains is the default's hybrid."""
    recurrent, default = get_preset("recurrent"), get_preset("default")
    assert recurrent.model.ngram_buckets == 0
    assert recurrent.training.teacher_ngram_buckets == default.model.ngram_buckets
    assert recurrent.training.ngram_l2 == default.training.ngram_l2
    assert recurrent.training.pseudo_label_threshold == 0.9


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    """Every preset survives to_dict -> JSON -> from_dict unchanged."""
    config = get_preset(name)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_replace_ignores_none_and_validates():
    """replace() keeps fields given as None and validates the new values."""
    config = get_preset("reference").replace(model={"cell": "lstm", "rnn_units": None})
    assert config.model.cell == "lstm" and config.model.rnn_units == 64
    with pytest.raises(ConfigError, match="rnn_units"):
        config.replace(model={"rnn_units": 0})


@pytest.mark.parametrize(
    ("section", "values", "field"),
    [
        (DataConfig, {"batch_size": 0}, "batch_size"),
        (DataConfig, {"limit": -5}, "limit"),
        (DataConfig, {"valid_fraction": 1.0}, "valid_fraction"),
        (DataConfig, {"pipeline": "fast"}, "pipeline"),
        (DataConfig, {"truncation": "middle"}, "truncation"),
        (ModelConfig, {"cell": "rnn"}, "cell"),
        (ModelConfig, {"dropout": 1.0}, "dropout"),
        (ModelConfig, {"dropout": -0.1}, "dropout"),
        (ModelConfig, {"dense_units": (64, 0)}, "dense_units"),
        (ModelConfig, {"max_tokens": 2}, "max_tokens"),
        (ModelConfig, {"pooling": "attention"}, "pooling"),
        (TrainingConfig, {"epochs": 0}, "epochs"),
        (TrainingConfig, {"learning_rate": 0}, "learning_rate"),
        (TrainingConfig, {"seed": -1}, "seed"),
        (TrainingConfig, {"checkpoint_every_steps": 0}, "checkpoint_every_steps"),
        (TrainingConfig, {"checkpoint_every_steps": 2.5}, "checkpoint_every_steps"),
    ],
)
def test_bad_values_name_the_field(section, values, field):
    """A bad value raises ConfigError naming the field and the value received."""
    with pytest.raises(ConfigError, match=field):
        section(**values)


def test_unknown_preset():
    """An unknown preset name lists the known ones."""
    with pytest.raises(ConfigError, match="reference"):
        get_preset("huge")


def test_future_config_version_is_refused():
    """A config written by a newer version asks for an upgrade."""
    values = get_preset("default").to_dict()
    values["version"] = CONFIG_VERSION + 1
    with pytest.raises(ConfigError, match="newer"):
        RunConfig.from_dict(values)


def test_unknown_fields_are_refused():
    """Unknown sections or fields are errors, not silently dropped."""
    values = get_preset("default").to_dict()
    values["model"]["units"] = 3
    with pytest.raises(ConfigError, match="units"):
        RunConfig.from_dict(values)


def test_version_1_configs_still_load():
    """A config saved before checkpoint_every_steps existed loads with its default."""
    values = get_preset("default").to_dict()
    values["version"] = 1
    del values["training"]["checkpoint_every_steps"]
    assert RunConfig.from_dict(values).training.checkpoint_every_steps == 200


@pytest.mark.parametrize("field", ["clip_norm", "warmup_epochs"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_training_values_are_refused(field, value):
    """nan and inf are refused for clip_norm and warmup_epochs."""
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**{field: value})


def test_version_that_is_not_a_number_is_not_called_newer():
    """A config whose version is not a whole number is refused as such, not as newer."""
    values = RunConfig().to_dict()
    for version in ("x", 1.5, True, 0):
        with pytest.raises(ConfigError, match="Expected version to be a whole number"):
            RunConfig.from_dict({**values, "version": version})
    with pytest.raises(ConfigError, match="mapping of sections"):
        RunConfig.from_dict([])  # type: ignore[arg-type]


def test_model_size_is_bounded():
    """A model estimated over MAX_PARAMETERS is refused; the estimate is exact for the presets."""
    from imdb_rnn.models import build_classifier

    with pytest.raises(ConfigError, match="parameters"):
        ModelConfig(rnn_units=10**9)
    config = ModelConfig(max_tokens=50, embedding_dim=4, rnn_units=3, num_rnn_layers=2)
    assert config.parameter_estimate == build_classifier(config).count_params()


def test_min_steps_raises_the_epochs_of_small_data_sets():
    """`min_steps` raises `epochs` to ceil(min_steps / batches per epoch), never lowers it, and
    is off at 0; a negative minimum is refused."""
    training = TrainingConfig(epochs=5, min_steps=1000)
    assert [training.epochs_for(batches) for batches in (15, 77, 200, 352, 0)] == [67, 13, 5, 5, 5]
    assert TrainingConfig(epochs=5).epochs_for(1) == 5
    with pytest.raises(ConfigError, match="min_steps"):
        TrainingConfig(min_steps=-1)
