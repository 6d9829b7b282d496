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
    from imdb_rnn.batch import (
        predict_file as predict_file,
    )
    from imdb_rnn.checkpoints import (
        CheckpointError as CheckpointError,
        CheckpointMismatchError as CheckpointMismatchError,
    )
    from imdb_rnn.config import (
        PRESETS as PRESETS,
        ConfigError as ConfigError,
        DataConfig as DataConfig,
        ModelConfig as ModelConfig,
        RunConfig as RunConfig,
        TrainingConfig as TrainingConfig,
        get_preset as get_preset,
    )
    from imdb_rnn.datasets import (
        LABEL_NAMES as LABEL_NAMES,
        DataError as DataError,
        ImdbSplits as ImdbSplits,
        load_imdb as load_imdb,
    )
    from imdb_rnn.explain import (
        Explanation as Explanation,
        predict_and_explain as predict_and_explain,
    )
    from imdb_rnn.export import (
        export_saved_model as export_saved_model,
    )
    from imdb_rnn.layers import (
        TextEncoder as TextEncoder,
    )
    from imdb_rnn.modeldir import (
        OutputExistsError as OutputExistsError,
    )
    from imdb_rnn.models import (
        ModelFileError as ModelFileError,
        build_classifier as build_classifier,
        build_text_model as build_text_model,
        load_text_model as load_text_model,
    )
    from imdb_rnn.predictor import (
        Predictor as Predictor,
        load as load,
    )
    from imdb_rnn.pretrain import (
        EncoderError as EncoderError,
        PretrainConfig as PretrainConfig,
        PretrainResult as PretrainResult,
        load_encoder as load_encoder,
        pretrain as pretrain,
        read_encoder as read_encoder,
    )
    from imdb_rnn.progress import (
        RichProgress as RichProgress,
    )
    from imdb_rnn.results import (
        EvaluationResult as EvaluationResult,
        TrainResult as TrainResult,
    )
    from imdb_rnn.sources import (
        TextFiles as TextFiles,
        load_text_files as load_text_files,
    )
    from imdb_rnn.stopping import (
        NonFiniteLossError as NonFiniteLossError,
        SignalStop as SignalStop,
        TrainingInterrupted as TrainingInterrupted,
    )
    from imdb_rnn.tfdstext import (
        TfdsText as TfdsText,
        load_tfds_text as load_tfds_text,
    )
    from imdb_rnn.trainer import (
        Trainer as Trainer,
    )
    from imdb_rnn.workflows import (
        evaluate as evaluate,
        predict as predict,
        tensorboard_callback as tensorboard_callback,
        train as train,
    )

_EXPORTS = {
    # config (no TensorFlow)
    "ConfigError": "imdb_rnn.config",
    "DataConfig": "imdb_rnn.config",
    "ModelConfig": "imdb_rnn.config",
    "PRESETS": "imdb_rnn.config",
    "RunConfig": "imdb_rnn.config",
    "TrainingConfig": "imdb_rnn.config",
    "get_preset": "imdb_rnn.config",
    # datasets
    "DataError": "imdb_rnn.datasets",
    "ImdbSplits": "imdb_rnn.datasets",
    "LABEL_NAMES": "imdb_rnn.datasets",
    "load_imdb": "imdb_rnn.datasets",
    # your own data
    "TextFiles": "imdb_rnn.sources",
    "load_text_files": "imdb_rnn.sources",
    "TfdsText": "imdb_rnn.tfdstext",
    "load_tfds_text": "imdb_rnn.tfdstext",
    # layers and models
    "TextEncoder": "imdb_rnn.layers",
    "ModelFileError": "imdb_rnn.models",
    "build_classifier": "imdb_rnn.models",
    "build_text_model": "imdb_rnn.models",
    "load_text_model": "imdb_rnn.models",
    # the trainer, its results and the one-call workflows
    "Trainer": "imdb_rnn.trainer",
    "EvaluationResult": "imdb_rnn.results",
    "TrainResult": "imdb_rnn.results",
    "evaluate": "imdb_rnn.workflows",
    "predict": "imdb_rnn.workflows",
    "tensorboard_callback": "imdb_rnn.workflows",
    "train": "imdb_rnn.workflows",
    "OutputExistsError": "imdb_rnn.modeldir",
    # checkpoints and safe stops
    "CheckpointError": "imdb_rnn.checkpoints",
    "CheckpointMismatchError": "imdb_rnn.checkpoints",
    "NonFiniteLossError": "imdb_rnn.stopping",
    "SignalStop": "imdb_rnn.stopping",
    "TrainingInterrupted": "imdb_rnn.stopping",
    # a loaded model for Python users
    "Predictor": "imdb_rnn.predictor",
    "load": "imdb_rnn.predictor",
    "predict_file": "imdb_rnn.batch",
    # progress
    "EncoderError": "imdb_rnn.pretrain",
    "PretrainConfig": "imdb_rnn.pretrain",
    "PretrainResult": "imdb_rnn.pretrain",
    "load_encoder": "imdb_rnn.pretrain",
    "pretrain": "imdb_rnn.pretrain",
    "read_encoder": "imdb_rnn.pretrain",
    "RichProgress": "imdb_rnn.progress",
    # serving export and explanations
    "export_saved_model": "imdb_rnn.export",
    # (imdb_rnn.explain.explain is not re-exported: its name is the module's.)
    "Explanation": "imdb_rnn.explain",
    "predict_and_explain": "imdb_rnn.explain",
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
