"""Run configuration: frozen dataclasses for data, model and training, named presets, TOML files.

A `RunConfig` is plain data, validated field by field when it is built (`imdb_rnn.config.schema`);
the named recipes are in `imdb_rnn.config.presets`, and TOML files in `imdb_rnn.config.toml`.
Nothing here imports TensorFlow.

Example:

>>> from imdb_rnn.config import get_preset
>>> get_preset("reference").training.epochs
10
"""

from imdb_rnn.config.presets import PRESETS, get_preset
from imdb_rnn.config.schema import (
    CELLS,
    CHOICES,
    CONFIG_VERSION,
    ENCODER_LAYERS,
    LR_SCHEDULES,
    MAX_BATCH_SIZE,
    MAX_ENSEMBLE_SIZE,
    MAX_PARAMETERS,
    PIPELINES,
    POOLINGS,
    SECTIONS,
    TRUNCATIONS,
    VALID_SPLITS,
    VOCABULARY_SOURCES,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainingConfig,
)
from imdb_rnn.errors import ConfigError

__all__ = [
    "CELLS",
    "CHOICES",
    "CONFIG_VERSION",
    "ENCODER_LAYERS",
    "LR_SCHEDULES",
    "MAX_BATCH_SIZE",
    "MAX_ENSEMBLE_SIZE",
    "MAX_PARAMETERS",
    "PIPELINES",
    "POOLINGS",
    "PRESETS",
    "SECTIONS",
    "TRUNCATIONS",
    "VALID_SPLITS",
    "VOCABULARY_SOURCES",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainingConfig",
    "get_preset",
]
