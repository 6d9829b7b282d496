"""The end of every training plan: the run's `TrainResult`, the saved model, its card and its
curves.

Each plan (one model `workflows.train`, an ensemble `ensemble.train_ensemble`, a token cache on
disk `ondisk.train_on_disk`) trains through `Trainer.fit` or `Trainer.fit_batches`, evaluates,
then calls `train_result` and `finish_run`, so that every model folder is written alike:
`model.keras`, the configs, `history.json`, `labels.json`, `metrics.json` (the result),
`README.md` (the model card) and `curves.png`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.devices import rnn_kernel_name
from imdb_rnn.files import write_text
from imdb_rnn.inference.results import EvaluationResult, TrainResult
from imdb_rnn.modeldir import versions
from imdb_rnn.training.checkpoints import Checkpoint
from imdb_rnn.training.distribute import is_chief, strategy_name
from imdb_rnn.training.trainer import Trainer

__all__ = ["RunData", "finish_run", "train_result"]


@dataclass(frozen=True)
class RunData:
    """What a run read, for its `TrainResult`.

    Attributes:
        sizes: texts per split.
        source: where the data came from, in words.
        bad_rows: rows of the data files that were skipped, by reason.
        bytes_read: size of the data files read, in bytes.
        decode_errors: files that were not valid UTF-8.
    """

    sizes: dict[str, int]
    source: str
    bad_rows: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    decode_errors: int = 0

    @classmethod
    def of(cls, splits: ImdbSplits) -> RunData:
        """What `splits` say they hold."""
        return cls(
            sizes=dict(splits.sizes),
            source=splits.source,
            bad_rows=dict(splits.bad_rows),
            bytes_read=splits.bytes_read,
            decode_errors=splits.decode_errors,
        )


def train_result(
    trainer: Trainer,
    data: RunData,
    *,
    valid: EvaluationResult | None,
    test: EvaluationResult | None,
    train_seconds: float,
    output: str | os.PathLike[str] | None,
    epoch_train_seconds: list[float] | None = None,
    epochs_trained: int | None = None,
    **details: Any,
) -> TrainResult:
    """The `TrainResult` of a run whose model `trainer` holds.

    Args:
        trainer: the trained model: its history, best epoch, strategy, classes, config.
        data: what the run read.
        valid: metrics on the validation split with the kept weights.
        test: metrics on the test split, or None.
        train_seconds: wall time of training.
        output: the model directory (recorded on the chief only).
        epoch_train_seconds: training-batch time of each epoch. Default: the trainer's.
        epochs_trained: epochs trained over all the models the run trained (an ensemble's
            members), for the throughput. Default: the trainer's epochs.
        **details: other `TrainResult` fields (`tensorboard_logs`, `pseudo_labels`,
            `wall_seconds` ...).
    """
    history = trainer.history
    epochs = len(history.get("loss", []))
    seconds = list(
        trainer.epoch_train_seconds if epoch_train_seconds is None else epoch_train_seconds
    )
    trained = epochs if epochs_trained is None else epochs_trained
    chief = is_chief(trainer.strategy)
    return TrainResult(
        output=os.fspath(output) if output is not None and chief else None,
        epochs=epochs,
        best_epoch=trainer.best_epoch,
        train_seconds=train_seconds,
        train_examples_per_second=data.sizes["train"] * trained / sum(seconds)
        if sum(seconds)
        else 0.0,
        epoch_train_seconds=seconds,
        history=history,
        valid=valid,
        test=test,
        sizes=dict(data.sizes),
        decode_errors=data.decode_errors,
        strategy=strategy_name(trainer.strategy),
        replicas=trainer.replicas,
        global_batch_size=trainer.global_batch_size,
        chief=chief,
        rnn_kernel=rnn_kernel_name(trainer.config.model.cell),
        label_names=list(trainer.label_names),
        source=data.source,
        bad_rows=dict(data.bad_rows),
        bytes_read=data.bytes_read,
        versions=versions(),
        preset=trainer.config.preset,
        word_vectors=trainer.word_vectors_record(),
        ngrams=trainer.ngram_fit.to_dict() if trainer.ngram_fit is not None else None,
        **details,
    )


def finish_run(
    trainer: Trainer,
    result: TrainResult,
    *,
    output: str | os.PathLike[str] | None,
    write_to: str | os.PathLike[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    curves_note: str = "",
    checkpoint: Checkpoint | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> TrainResult:
    """Saves a finished run: the model with `metrics.json`, the model card, and (on the chief,
    with an `output`) the training curves; then removes the run's checkpoint, which the saved
    model supersedes.

    Args:
        trainer: the trained model.
        result: the run's `train_result`.
        output: the model directory asked for. Default None: nothing is saved.
        write_to: where to save: `output`, or a temporary folder on the workers of a cluster
            other than the chief (they save too, as TensorFlow's multi-worker guide
            prescribes: reading distributed variables may need every worker). Default:
            `output`.
        metrics: what `metrics.json` holds. Default: `result.to_dict()`.
        curves_note: added to the curves' title ("(first of 3 members)").
        checkpoint: the run's checkpoint, removed once the model is saved. Default None.
        on_stage: called with a short description as each stage starts.

    Returns:
        `result`.
    """
    from imdb_rnn.deploy.card import CARD_FILE, model_card

    stage = on_stage or (lambda name: None)
    chief = is_chief(trainer.strategy)
    target = write_to if write_to is not None else output
    if target is not None:
        folder = Path(target)
        stage("Saving" if chief else "Saving to a temporary folder (only the chief keeps it)")
        trainer.save(folder, metrics=dict(metrics) if metrics is not None else result.to_dict())
        name = Path(output).name if output is not None else folder.name
        write_text(folder / CARD_FILE, model_card(result.to_dict(), trainer.config, name=name))
    if output is not None and chief:
        from imdb_rnn.deploy.plots import CURVES_FILE, save_training_curves  # matplotlib: only here

        title = f"{Path(output).name}: loss and accuracy per epoch"
        save_training_curves(
            result.history,
            Path(output) / CURVES_FILE,
            best_epoch=result.best_epoch,
            title=f"{title} {curves_note}" if curves_note else title,
            classes=len(result.label_names),
        )
        if checkpoint is not None:
            checkpoint.remove()
    return result
