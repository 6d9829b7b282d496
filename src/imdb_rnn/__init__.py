"""imdb-rnn: train, evaluate and use a bidirectional-GRU sentiment classifier on IMDB reviews.

The public API is re-exported here lazily, so that `import imdb_rnn` (and the CLI's `--help`)
does not import TensorFlow until a name that needs it is used.

Example:

>>> import imdb_rnn
>>> imdb_rnn.get_preset("reference").model.cell
'gru'
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("imdb-rnn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

if TYPE_CHECKING:  # what mypy and IDEs see; at run time __getattr__ imports on first use
    from imdb_rnn.config import (
        PRESETS as PRESETS,
        DataConfig as DataConfig,
        ModelConfig as ModelConfig,
        RunConfig as RunConfig,
        TrainingConfig as TrainingConfig,
        get_preset as get_preset,
    )
    from imdb_rnn.data.imdb import load_imdb as load_imdb
    from imdb_rnn.data.sources import (
        TextFiles as TextFiles,
        load_text_files as load_text_files,
    )
    from imdb_rnn.data.splits import LABEL_NAMES as LABEL_NAMES, ImdbSplits as ImdbSplits
    from imdb_rnn.data.tfds import (
        TfdsText as TfdsText,
        load_tfds_text as load_tfds_text,
    )
    from imdb_rnn.deploy.export import export_saved_model as export_saved_model
    from imdb_rnn.errors import (
        CheckpointError as CheckpointError,
        CheckpointMismatchError as CheckpointMismatchError,
        ConfigError as ConfigError,
        DataError as DataError,
        EncoderError as EncoderError,
        ImdbRnnError as ImdbRnnError,
        ModelFileError as ModelFileError,
        NonFiniteLossError as NonFiniteLossError,
        OutputExistsError as OutputExistsError,
        TrainingInterrupted as TrainingInterrupted,
    )
    from imdb_rnn.inference.batch import (
        predict_file as predict_file,
    )
    from imdb_rnn.inference.classifier import Classifier as Classifier
    from imdb_rnn.inference.explain import (
        Explanation as Explanation,
        predict_and_explain as predict_and_explain,
    )
    from imdb_rnn.inference.predictions import Prediction as Prediction
    from imdb_rnn.inference.predictor import (
        Predictor as Predictor,
        load as load,
    )
    from imdb_rnn.inference.results import (
        EvaluationResult as EvaluationResult,
        TrainResult as TrainResult,
    )
    from imdb_rnn.inference.workflows import (
        evaluate as evaluate,
        predict as predict,
    )
    from imdb_rnn.layers import (
        TextEncoder as TextEncoder,
    )
    from imdb_rnn.models import (
        build_classifier as build_classifier,
        build_text_model as build_text_model,
        load_text_model as load_text_model,
    )
    from imdb_rnn.pretraining.pretrain import (
        PretrainConfig as PretrainConfig,
        PretrainResult as PretrainResult,
        load_encoder as load_encoder,
        pretrain as pretrain,
        read_encoder as read_encoder,
    )
    from imdb_rnn.progress import (
        RichProgress as RichProgress,
    )
    from imdb_rnn.training.stopping import SignalStop as SignalStop
    from imdb_rnn.training.trainer import (
        Trainer as Trainer,
    )
    from imdb_rnn.training.workflows import (
        tensorboard_callback as tensorboard_callback,
        train as train,
    )

_EXPORTS = {
    # the one exception hierarchy (no TensorFlow)
    "ImdbRnnError": "imdb_rnn.errors",
    # config (no TensorFlow)
    "ConfigError": "imdb_rnn.errors",
    "DataConfig": "imdb_rnn.config",
    "ModelConfig": "imdb_rnn.config",
    "PRESETS": "imdb_rnn.config",
    "RunConfig": "imdb_rnn.config",
    "TrainingConfig": "imdb_rnn.config",
    "get_preset": "imdb_rnn.config",
    # datasets
    "DataError": "imdb_rnn.errors",
    "ImdbSplits": "imdb_rnn.data.splits",
    "LABEL_NAMES": "imdb_rnn.data.splits",
    "load_imdb": "imdb_rnn.data.imdb",
    # your own data
    "TextFiles": "imdb_rnn.data.sources",
    "load_text_files": "imdb_rnn.data.sources",
    "TfdsText": "imdb_rnn.data.tfds",
    "load_tfds_text": "imdb_rnn.data.tfds",
    # layers and models
    "TextEncoder": "imdb_rnn.layers",
    "ModelFileError": "imdb_rnn.errors",
    "build_classifier": "imdb_rnn.models",
    "build_text_model": "imdb_rnn.models",
    "load_text_model": "imdb_rnn.models",
    # the trainer, its results and the one-call workflows
    "Trainer": "imdb_rnn.training.trainer",
    "EvaluationResult": "imdb_rnn.inference.results",
    "TrainResult": "imdb_rnn.inference.results",
    "evaluate": "imdb_rnn.inference.workflows",
    "predict": "imdb_rnn.inference.workflows",
    "tensorboard_callback": "imdb_rnn.training.workflows",
    "train": "imdb_rnn.training.workflows",
    "OutputExistsError": "imdb_rnn.errors",
    # checkpoints and safe stops
    "CheckpointError": "imdb_rnn.errors",
    "CheckpointMismatchError": "imdb_rnn.errors",
    "NonFiniteLossError": "imdb_rnn.errors",
    "SignalStop": "imdb_rnn.training.stopping",
    "TrainingInterrupted": "imdb_rnn.errors",
    # a loaded model for Python users
    "Classifier": "imdb_rnn.inference.classifier",
    "Prediction": "imdb_rnn.inference.predictions",
    "Predictor": "imdb_rnn.inference.predictor",
    "load": "imdb_rnn.inference.predictor",
    "predict_file": "imdb_rnn.inference.batch",
    # progress
    "EncoderError": "imdb_rnn.errors",
    "PretrainConfig": "imdb_rnn.pretraining.pretrain",
    "PretrainResult": "imdb_rnn.pretraining.pretrain",
    "load_encoder": "imdb_rnn.pretraining.pretrain",
    "pretrain": "imdb_rnn.pretraining.pretrain",
    "read_encoder": "imdb_rnn.pretraining.pretrain",
    "RichProgress": "imdb_rnn.progress",
    # serving export and explanations
    "export_saved_model": "imdb_rnn.deploy.export",
    # (imdb_rnn.inference.explain.explain is not re-exported: its name is the module's.)
    "Explanation": "imdb_rnn.inference.explain",
    "predict_and_explain": "imdb_rnn.inference.explain",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imdb_rnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
