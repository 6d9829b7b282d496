"""The trainer under its first name: `Trainer` adapts, compiles, fits, evaluates, predicts,
saves and loads an imdb-rnn model.

Kept so that `imdb_rnn.trainer` (the README, docs/api.md) stays importable: the code lives in
`imdb_rnn.training.trainer`.
"""

from imdb_rnn.training.trainer import StageCallback, Trainer

__all__ = ["StageCallback", "Trainer"]
