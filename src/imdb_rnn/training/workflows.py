r"""The one-call workflows, as the CLI runs them: `train`, and (re-exported from
`imdb_rnn.inference.workflows`, which loads no training code) `evaluate` and `predict`.

Each is one typed function with keyword-only options; `imdb-rnn train | eval | predict` parse
their options, call it and render its result. The path of a training run, from the command to
the optimizer step: `cli.train` -> `workflows.train` (the output folder's rules, the chief, the
lock) -> `Trainer.fit` (vocabulary, batches, model, resume) -> `EpochLoop.run` (epochs, batches,
checkpoints) -> its compiled step (the objective's `loss_and_gradients`, the optimizer).

Example (a tiny own-data run; see `imdb_rnn.data.sources` for the formats):

>>> import tempfile
>>> from pathlib import Path
>>> from imdb_rnn import RunConfig, TextFiles
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "train.csv").write_text(
...     "text,label\n" + "a great film,pos\nan awful film,neg\n" * 12)
>>> config = RunConfig().replace(
...     model={"max_tokens": 20, "embedding_dim": 4, "rnn_units": 2, "dense_units": (4,)},
...     training={"epochs": 1, "adversarial_epsilon": 0.0})
>>> result = train(config, source=TextFiles(train=folder / "train.csv"), evaluate_test=False)
>>> result.epochs, result.label_names
(1, ['neg', 'pos'])
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from imdb_rnn.config import RunConfig
from imdb_rnn.data.sources import TextFiles
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.data.tfds import TfdsText
from imdb_rnn.data.wordvectors import vector_dimension
from imdb_rnn.errors import (
    CheckpointMismatchError,
    ConfigError,
    OutputPathError,
    ValidationOverlapWarning,
)
from imdb_rnn.files import check_output_folder, folder_lock, remove_owned, write_json
from imdb_rnn.inference.predictions import label_of, prediction_rows
from imdb_rnn.inference.results import TrainResult
from imdb_rnn.inference.workflows import evaluate, predict
from imdb_rnn.modeldir import (
    MODEL_FILE,
    MODEL_FOLDER_FILES,
    RUN_MARKER,
    check_output,
    check_writable,
    prepare_logs,
    read_json,
)
from imdb_rnn.training.checkpoints import (
    CHECKPOINT_DIR,
    OWN_FILES as CHECKPOINT_FILES,
    STATE_FILE,
    Checkpoint,
    config_differences,
    data_differences,
    data_fingerprint,
)
from imdb_rnn.training.distribute import is_chief
from imdb_rnn.training.ensemble import train_ensemble
from imdb_rnn.training.finish import RunData, finish_run, train_result
from imdb_rnn.training.ondisk import train_on_disk
from imdb_rnn.training.reading import read_training_splits
from imdb_rnn.training.selftrain import TEACHER_DIR, PseudoLabels, add_pseudo_labels
from imdb_rnn.training.stopping import SignalStop
from imdb_rnn.training.trainer import StageCallback, Trainer

__all__ = [
    "ValidationOverlapWarning",
    "evaluate",
    "label_of",
    "predict",
    "prediction_rows",
    "tensorboard_callback",
    "train",
]


def tensorboard_callback(log_dir: str | os.PathLike[str]) -> keras.callbacks.TensorBoard:
    """Returns Keras' TensorBoard callback writing per-epoch scalars (loss, accuracy, learning
    rate; validation under `validation/`) into `log_dir`.

    Raises:
        ModuleNotFoundError: if the `tensorboard` package is not installed (TensorFlow writes
            summaries through it); checked here rather than after the first epoch.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise ModuleNotFoundError(
            "TensorBoard logging needs the tensorboard package: pip install tensorboard",
            name="tensorboard",
        )
    return keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir), write_graph=False)


def train(
    config: RunConfig,
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None = None,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    evaluate_test: bool = True,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    on_stage: StageCallback | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    tensorboard: bool | str | os.PathLike[str] = False,
    stop: SignalStop | None = None,
    strategy: str | tf.distribute.Strategy = "auto",
    on_disk: bool = False,
) -> TrainResult:
    """Loads the data, trains a model, evaluates it and saves it, with a picture of its training
    curves (`curves.png`: loss and accuracy per epoch, training and validation) and a model card.

    This is what `imdb-rnn train` runs, rules included. With an `output`: a folder holding a
    finished model is refused unless `overwrite=True`; the folder is created and probed for
    writing before any data is read; one run at a time writes into it; training writes
    resumable checkpoints to `output/checkpoint/` and, if that folder holds an unfinished run of
    the same config, continues it (`overwrite=True` discards it); the checkpoint is deleted once
    the model is saved.

    In a multi-worker cluster, run the same call on every worker: only the chief writes
    `output`, its checkpoints and TensorBoard logs; the other workers write theirs to temporary
    folders, which they delete.

    Args:
        config: the run configuration. With `training.ensemble_size` above 1,
            `imdb_rnn.training.ensemble.train_ensemble` trains the ensemble instead (on one device,
            without checkpoints).
        source: data source: an IMDB source (see `load_imdb`), or a `TextFiles` naming your
            own CSV, TSV, JSON Lines files or class folders (see `imdb_rnn.data.sources`; the labels
            come from its training file), or a `TfdsText` naming any TFDS text classification
            data set (see `imdb_rnn.data.tfds`). Default None: `IMDB_RNN_DATA`, else TFDS.
        output: model directory to write. Default None: nothing is saved.
        overwrite: replace a model in `output`, or discard an unfinished run there, instead of
            refusing (a model) or resuming (a run). Default False.
        evaluate_test: evaluate on the test split after training (if the source has one).
            Default True.
        callbacks: extra Keras callbacks (a progress display ...).
        on_stage: called with a short description as each stage starts.
        data_dir: TFDS data directory.
        tensorboard: write TensorBoard event files (`train/` and `validation/`: loss, accuracy
            and learning rate per epoch): True for `output/logs` (emptied when a fresh run
            starts, added to when one resumes), or a folder to write into as it is. Default
            False: none.
        stop: a `SignalStop` whose signals end training after the current batch.
        strategy: `"auto"`, `"default"`, `"mirrored"` or `"multi-worker"`, or a
            `tf.distribute.Strategy` (see `Trainer`). Default "auto".
        on_disk: `source` being a `TextFiles`: tokenise its training file once into a cache in
            `output` and stream it (`imdb_rnn.training.ondisk`), for files larger than memory (no
            checkpoints, one device). Default False.

    Returns:
        A `TrainResult`.

    Raises:
        ConfigError: on an unknown strategy, `"multi-worker"` without a valid `TF_CONFIG`, or
            `on_disk` without a `TextFiles` source.
        WordVectorsError: if `model.word_vectors` is missing or not a word-vector file.
        OutputExistsError: if `output` holds a model and `overwrite` is False.
        OSError: if `output` cannot be created or written, or its disk is too full.
        ModuleNotFoundError: if `tensorboard` is set and the `tensorboard` package, which
            TensorFlow needs to write summaries, is not installed.
        CheckpointMismatchError: if `output` holds an unfinished run of another config or data.
        NonFiniteLossError: if the loss becomes NaN or infinite.
        TrainingInterrupted: when `stop` received a signal.
        FolderBusyError: if another process is training into `output`.
    """
    started = time.perf_counter()
    config = _checked_plan(
        config,
        source,
        on_disk=on_disk,
        strategy=strategy,
        tensorboard=tensorboard,
        output=output,
        on_stage=on_stage,
    )
    ensemble = config.training.ensemble_size > 1
    # First: a multi-worker strategy must exist before any other TensorFlow operation.
    trainer = Trainer(config, strategy="default" if on_disk or ensemble else strategy)
    chief = is_chief(trainer.strategy)
    resuming = False
    if output is not None:
        _check_output_rule(output, source, config)
        resuming = check_output(output, overwrite=overwrite)
        if chief:  # the other workers of a cluster write to temporary folders
            check_writable(output)
    log_dir: Path | None = None
    if tensorboard is True:
        assert output is not None
        log_dir = prepare_logs(output, empty=chief and not resuming)
    elif tensorboard is not False:
        log_dir = Path(tensorboard)
    if ensemble or on_disk:  # one device, no checkpoints
        board = [tensorboard_callback(log_dir)] if log_dir is not None else []
        if ensemble:
            result = train_ensemble(
                config,
                source=source,
                output=output,
                evaluate_test=evaluate_test,
                callbacks=[*callbacks, *board],
                on_stage=on_stage,
                data_dir=data_dir,
            )
        else:
            assert isinstance(source, TextFiles)
            result = train_on_disk(
                config, source, output=output, callbacks=[*callbacks, *board], on_stage=on_stage
            )
        result.wall_seconds = time.perf_counter() - started
        return _finished(output, result, chief=chief)
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="imdb-rnn-worker-"))
    # One run at a time writes into `output`: a second would corrupt the first's checkpoint.
    lock = folder_lock(output) if output is not None and chief else contextlib.nullcontext()
    try:
        with lock:
            result = _train(
                trainer,
                source=source,
                output=output,
                write_to=(Path(output) if output is not None else None) if chief else scratch,
                evaluate_test=evaluate_test,
                callbacks=callbacks,
                on_stage=on_stage,
                data_dir=data_dir,
                tensorboard_dir=log_dir if chief or log_dir is None else scratch,
                resume=not overwrite,
                stop=stop,
                started=started,
            )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return _finished(output, result, chief=chief)


def _checked_plan(
    config: RunConfig,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    *,
    on_disk: bool,
    strategy: str | tf.distribute.Strategy,
    tensorboard: bool | str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    on_stage: StageCallback | None,
) -> RunConfig:
    """`config` once the run's plan (one model, an ensemble, on disk) is checked against it,
    before any data is read: self-training is dropped, and says so, where no unlabelled texts
    can exist for a plan that cannot self-train.

    Raises:
        ConfigError: for options the plan cannot honour.
        WordVectorsError: if `model.word_vectors` is missing or not a word-vector file.
    """
    if on_disk and not isinstance(source, TextFiles):
        raise ConfigError(
            "on_disk=True streams your own training file: pass source=TextFiles(...)."
        )
    # Self-training needs unlabelled texts; without them (own files and no unlabelled file)
    # it is skipped, and says so, whatever the run.
    no_unlabelled = isinstance(source, TextFiles) and source.unlabelled is None
    if (
        no_unlabelled
        and config.training.pseudo_label_threshold
        and (on_disk or config.training.ensemble_size > 1)
    ):
        if on_stage is not None:
            on_stage(_NO_UNLABELLED)
        config = config.replace(training={"pseudo_label_threshold": 0.0})
    if config.training.pseudo_label_threshold and (on_disk or config.training.ensemble_size > 1):
        raise ConfigError(
            "Self-training (training.pseudo_label_threshold > 0, as in the default preset) "
            "trains one model from memory: for an ensemble or on_disk=True, set "
            "pseudo_label_threshold=0 (or start from the fast preset)."
        )
    if on_disk and config.data.crop_fraction:
        raise ConfigError(
            "Random crops (data.crop_fraction > 0) are made from reviews held in memory: "
            "set on_disk=False or crop_fraction=0."
        )
    if tensorboard is True and output is None:
        raise ConfigError("tensorboard=True writes into output/logs: pass output= as well.")
    if config.model.word_vectors is not None:
        vector_dimension(config.model.word_vectors)  # a missing or bad file, before the data
    if config.training.ensemble_size > 1 and (on_disk or strategy not in ("auto", "default")):
        raise ConfigError(
            "An ensemble (training.ensemble_size > 1) trains on one device, from memory."
        )
    return config


def _finished(
    output: str | os.PathLike[str] | None, result: TrainResult, *, chief: bool
) -> TrainResult:
    """`result`, once the run's mark is removed from `output`: its `model.keras` marks it now."""
    if output is not None and chief:
        (Path(output) / RUN_MARKER).unlink(missing_ok=True)
    return result


def _check_output_rule(
    output: str | os.PathLike[str],
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    config: RunConfig,
) -> None:
    """The output rule (`imdb_rnn.files.check_output_folder`) for a training run: `output` is
    none of the run's inputs (own data, word vectors, teacher, encoder) nor inside one, is not
    and holds no data, and is not inside a model folder.

    Raises:
        ConfigError: naming the input or the model folder.
    """
    # Own data folders are read whole (the run's files would become texts); an aclImdb folder
    # is read in its fixed layout, so only being it or holding it is refused.
    data: list[Any] = []
    inputs: list[Any] = []
    if isinstance(source, TextFiles):
        data = inputs = [source.train, source.valid, source.test, source.unlabelled]
    elif isinstance(source, (str, os.PathLike)) and os.path.lexists(source):
        data = [source]
    training = config.training
    inputs = [*inputs, config.model.word_vectors, training.teacher, training.encoder]
    try:
        check_output_folder(output, inputs=inputs, data=data, what="output=")
    except OutputPathError as error:
        raise ConfigError(str(error)) from None


def _train(
    trainer: Trainer,
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    output: str | os.PathLike[str] | None,
    write_to: Path | None,
    evaluate_test: bool,
    callbacks: Iterable[keras.callbacks.Callback],
    on_stage: StageCallback | None,
    data_dir: str | os.PathLike[str] | None,
    tensorboard_dir: Path | None,
    resume: bool,
    stop: SignalStop | None,
    splits: ImdbSplits | None = None,
    started: float | None = None,
) -> TrainResult:
    """`train`, with the model written to `write_to` (`output`, or a temporary folder on the
    workers of a cluster other than the chief); on `splits` when given (self-training's
    teacher), else on the splits it reads."""
    config = trainer.config
    chief = is_chief(trainer.strategy)
    stage = on_stage or (lambda name: None)
    user_callbacks = list(callbacks)  # the teacher of self-training writes no TensorBoard logs
    callbacks = list(callbacks)
    if tensorboard_dir is not None:
        callbacks.append(tensorboard_callback(tensorboard_dir))
    checkpoint = _run_checkpoint(output, config, resume=resume, chief=chief)
    if splits is None:
        splits = read_training_splits(
            source, config, evaluate_test=evaluate_test, data_dir=data_dir, on_stage=stage
        )
    pseudo_labels = None
    if config.training.pseudo_label_threshold and not splits.sizes.get("unsupervised"):
        stage(_NO_UNLABELLED)
    elif config.training.pseudo_label_threshold:
        splits, pseudo_labels = _self_training(
            trainer,
            splits,
            source=source,
            output=output,
            write_to=write_to,
            callbacks=user_callbacks,
            on_stage=stage,
            data_dir=data_dir,
            resume=resume,
            stop=stop,
        )
        stage(pseudo_labels.describe())
        stage("Training the student (self-training, step 2 of 2)")
    start = time.perf_counter()
    trainer.fit(
        splits,
        callbacks=callbacks,
        on_stage=stage,
        checkpoint_dir=checkpoint.directory if checkpoint is not None else None,
        stop=stop,
        resume=resume,
    )
    train_seconds = time.perf_counter() - start
    stage("Evaluating")
    valid = trainer.evaluate(splits["valid"])
    test = trainer.evaluate(splits["test"]) if evaluate_test and splits.test is not None else None
    result = train_result(
        trainer,
        RunData.of(splits),
        valid=valid,
        test=test,
        train_seconds=train_seconds,
        output=output,
        tensorboard_logs=os.fspath(tensorboard_dir)
        if tensorboard_dir is not None and chief
        else None,
        pseudo_labels=pseudo_labels.to_dict() if pseudo_labels is not None else None,
        wall_seconds=time.perf_counter() - started if started is not None else None,
    )
    return finish_run(
        trainer, result, output=output, write_to=write_to, checkpoint=checkpoint, on_stage=stage
    )


def _run_checkpoint(
    output: str | os.PathLike[str] | None, config: RunConfig, *, resume: bool, chief: bool
) -> Checkpoint | None:
    """The run's checkpoint in `output` (None without one): emptied when not resuming, and
    checked against `config` before any data is read when resuming. Every worker resumes from
    the chief's checkpoint; only the chief deletes it."""
    if output is None:
        return None
    checkpoint = Checkpoint(Path(output) / CHECKPOINT_DIR)
    if not resume and chief:
        checkpoint.remove()
    state = checkpoint.read_state() if resume else None
    if state is not None:  # fail before reading the data if the options differ
        checkpoint.check_resumable(state, config)
    return checkpoint


_NO_UNLABELLED = (
    "No unlabelled texts: self-training (pseudo_label_threshold) is skipped; give "
    "unlabelled texts (TextFiles(unlabelled=PATH)) to use it"
)


def _self_training(
    trainer: Trainer,
    splits: ImdbSplits,
    *,
    source: str | os.PathLike[str] | TextFiles | TfdsText | None,
    output: str | os.PathLike[str] | None,
    write_to: Path | None,
    callbacks: Iterable[keras.callbacks.Callback],
    on_stage: StageCallback,
    data_dir: str | os.PathLike[str] | None,
    resume: bool,
    stop: SignalStop | None,
) -> tuple[ImdbSplits, PseudoLabels]:
    """The teacher's labels for the unlabelled texts, added to `splits.train`. The teacher is
    `training.teacher`, or trained here with the run's recipe into `OUTPUT/teacher/` (reused
    when a resumed run finds it finished there)."""
    training = trainer.config.training
    teacher_dir: Path | None = None
    if training.teacher is not None:
        on_stage(f"Loading the teacher {training.teacher}")
        teacher = Trainer.load(training.teacher)
        teacher_dir = Path(training.teacher)
    else:
        teacher_dir = write_to / TEACHER_DIR if write_to is not None else None
        if teacher_dir is not None and not resume:
            remove_owned(
                teacher_dir,
                [*MODEL_FOLDER_FILES, *(f"{CHECKPOINT_DIR}/{name}" for name in CHECKPOINT_FILES)],
            )
        # A finished teacher: saved, and its checkpoint removed after every file was written
        # (a teacher killed while saving still has its checkpoint, and resumes from it below).
        teacher_config = trainer.config.replace(
            model={"ngram_buckets": training.teacher_ngram_buckets or None},
            training={"pseudo_label_threshold": 0.0},
        )
        fingerprint = {"config": teacher_config.to_dict(), "data": data_fingerprint(splits)}
        if (
            teacher_dir is not None
            and (teacher_dir / MODEL_FILE).exists()
            and not (teacher_dir / CHECKPOINT_DIR / STATE_FILE).exists()
            and _check_teacher(teacher_dir, teacher_config, fingerprint["data"])
        ):
            on_stage(f"Reusing the teacher trained earlier in {teacher_dir}")
            teacher = Trainer.load(teacher_dir)
        else:
            on_stage("Training the teacher (self-training, step 1 of 2)")
            if teacher_dir is not None:  # an earlier teacher's: not this one's
                (teacher_dir / FINGERPRINT_FILE).unlink(missing_ok=True)
            teacher = Trainer(teacher_config, strategy=trainer.strategy)
            _train(
                teacher,
                source=source,
                output=Path(output) / TEACHER_DIR if output is not None else None,
                write_to=teacher_dir,
                evaluate_test=False,
                callbacks=callbacks,
                on_stage=on_stage,
                data_dir=data_dir,
                tensorboard_dir=None,
                resume=resume,
                stop=stop,
                splits=splits,  # read once, for the teacher and the student
            )
            if teacher_dir is not None:
                # Written once the teacher is whole: a teacher without it is trained again.
                write_json(teacher_dir / FINGERPRINT_FILE, fingerprint)
    on_stage(f"Labelling {splits.sizes.get('unsupervised', 0):,} unlabelled texts with the teacher")
    return add_pseudo_labels(
        splits,
        teacher,
        threshold=training.pseudo_label_threshold,
        seed=training.seed,
        teacher_dir=os.fspath(teacher_dir) if teacher_dir is not None else None,
    )


#: What a finished teacher was trained with (its options and its data's fingerprint), for
#: refusing to reuse it in a run of other options or data.
FINGERPRINT_FILE = "fingerprint.json"


def _check_teacher(teacher_dir: Path, teacher_config: RunConfig, data: dict[str, Any]) -> bool:
    """Whether the finished teacher in `teacher_dir` may be reused: True when it was trained
    with `teacher_config` on the same data, False when its fingerprint is missing (a teacher
    killed before it was written: trained again).

    Raises:
        CheckpointMismatchError: if it was trained with other options or on other data.
    """
    try:
        saved = read_json(teacher_dir / FINGERPRINT_FILE, what="The teacher's fingerprint")
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return False
    differences = config_differences(saved["config"], teacher_config)
    differences += data_differences(saved.get("data") or {}, data)
    if differences:
        raise CheckpointMismatchError(
            f"{teacher_dir} holds a teacher trained with other options or data "
            f"({'; '.join(differences)}). Rerun with that run's options to resume it, or pass "
            "resume=False to start over."
        )
    return True
