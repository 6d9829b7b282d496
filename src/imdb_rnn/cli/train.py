"""`imdb-rnn train`: train a model and save it (`imdb_rnn.training.workflows.train`)."""

from __future__ import annotations

import shlex
import sys
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from imdb_rnn.cli._errors import EXIT_USAGE, fail, report
from imdb_rnn.cli._inputs import refuse_early, text_files
from imdb_rnn.cli._options import (
    DataOption,
    JsonOption,
    LabelColumnOption,
    SetOption,
    StrictOption,
    TextColumnOption,
    apply_overrides,
    config_options,
    data_file_option,
)
from imdb_rnn.cli._quiet import quiet_tensorflow
from imdb_rnn.cli._render import (
    class_tables,
    kept_epoch,
    markup,
    metrics_table,
    plural,
    print_json,
    show_config as print_config,
    stage_printer,
    stderr,
    stdout_console,
)
from imdb_rnn.config import PRESETS

if TYPE_CHECKING:
    from imdb_rnn.config import RunConfig
    from imdb_rnn.errors import TrainingInterrupted

__all__ = ["train"]


@config_options
def train(
    data: DataOption = None,
    train_file: Annotated[
        Path | None, data_file_option("train", "Labelled training texts:")
    ] = None,
    valid_file: Annotated[
        Path | None,
        data_file_option("valid", "Labelled validation texts (default: carved from --train):"),
    ] = None,
    test_file: Annotated[Path | None, data_file_option("test", "Labelled test texts:")] = None,
    unlabelled_file: Annotated[
        Path | None, data_file_option("unlabelled", "Texts without labels, for the vocabulary:")
    ] = None,
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    strict: StrictOption = False,
    on_disk: Annotated[
        bool,
        typer.Option(
            "--on-disk",
            help="With --train: tokenise the training file once into a cache on disk and stream "
            "it in length-sorted batches, for files larger than memory (no checkpoints).",
        ),
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model directory to write.")
    ] = Path("runs/imdb-rnn"),
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"Starting configuration: {', '.join(PRESETS)} (see 'imdb-rnn presets'). "
            "[default: the config file's preset, else default]",
            show_default=False,
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML run config (e.g. a model directory's config.toml) laid over the preset; "
            "the options below override it.",
            show_default=False,
        ),
    ] = None,
    config_flags: Any = None,
    strategy: Annotated[
        str,
        typer.Option(
            help="Where to train: auto (all GPUs if there are several, else one device), "
            "default (one device), mirrored (all GPUs of this machine) or multi-worker (several "
            "machines, from $TF_CONFIG; see docs/distributed.md). --batch-size is per device: "
            "a step trains on batch size x devices reviews.",
        ),
    ] = "auto",
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace a model, or discard an unfinished run, in --output."
        ),
    ] = False,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="Write TensorBoard logs (loss, accuracy, learning rate per epoch) to "
            "OUTPUT/logs; view them with: tensorboard --logdir OUTPUT/logs",
        ),
    ] = True,
    show_config: Annotated[
        bool,
        typer.Option(
            "--show-config",
            help="Print the resolved config as TOML (JSON with --json) and exit without training.",
        ),
    ] = False,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a model and save it to --output (model.keras, config.json, config.toml,
    history.json, metrics.json).

    Reads the data, adapts the vocabulary, trains with validation after every epoch, evaluates on
    the test split and saves. The config is the preset, then --config's values, then the options
    given here, then each --set SECTION.FIELD=VALUE (any config field). While training, a
    checkpoint in --output/checkpoint/ is updated every --checkpoint-every batches and at every
    epoch end; running the same command again resumes an interrupted run where its checkpoint
    left it. Examples:

        imdb-rnn train --data aclImdb_v1.tar.gz --output runs/default

        imdb-rnn train --preset reference --epochs 3 --limit 2000 --output runs/quick

        imdb-rnn train --config runs/quick/config.toml --output runs/again

        imdb-rnn train --strategy mirrored --output runs/gpus

    Your own data: CSV/TSV (with a header), JSON Lines or one sub-folder per class; the labels
    come from the training file, two or more classes:

        imdb-rnn train --train train.csv --test test.csv --output runs/mine
    """
    console = stderr()
    config = _run_config(config_file, preset, config_flags, overrides or [])
    if show_config:
        print_config(config, as_json=as_json)
        return
    refuse_early(
        output=output,
        overwrite=overwrite,
        data=data,
        data_files=(train_file, valid_file, test_file, unlabelled_file),
        word_vectors=config.model.word_vectors,
    )
    quiet_tensorflow()
    files = text_files(
        data,
        train=train_file,
        valid=valid_file,
        test=test_file,
        unlabelled=unlabelled_file,
        text_column=text_column,
        label_column=label_column,
        strict=strict,
    )
    from imdb_rnn.errors import FolderBusyError, NonFiniteLossError, TrainingInterrupted
    from imdb_rnn.progress import RichProgress
    from imdb_rnn.training.stopping import SignalStop
    from imdb_rnn.training.workflows import train as run_training

    progress = RichProgress(console)
    created = _folders_to_create(output)
    try:
        with SignalStop() as stop:
            result = run_training(
                config,
                source=files if files is not None else data,
                output=output,
                overwrite=overwrite,
                callbacks=[progress],
                on_stage=stage_printer(console, True),
                stop=stop,
                tensorboard=tensorboard,
                strategy=strategy,
                on_disk=on_disk,
            )
        created = []  # the run wrote its model: nothing to tidy
    except TrainingInterrupted as interrupted:
        progress.close()
        _stopped(console, output, interrupted)
    except (NonFiniteLossError, OSError) as error:  # OSError: a full disk while saving
        if isinstance(error, FolderBusyError):
            raise
        progress.close()
        report(error, note=_checkpoint_note(output))
    except ModuleNotFoundError as error:  # tensorboard=True without the package
        fail(str(error), EXIT_USAGE)
    finally:
        _remove_if_left_empty(created)
    progress.close()
    _show_train_result(result, as_json=as_json)


def _run_config(
    config_file: Path | None,
    preset: str | None,
    flags: dict[str, dict[str, Any]],
    overrides: list[str],
) -> RunConfig:
    """The run's config: the preset, then the --config file, then the options, then --set."""
    from imdb_rnn.config.toml import read_config_file, resolve_config
    from imdb_rnn.errors import ConfigError

    file_values = read_config_file(config_file) if config_file is not None else None
    origin = str(config_file) if config_file is not None else "config"
    training_flags = flags.get("training", {})
    if training_flags.get("epochs") is not None and training_flags.get("min_steps") is None:
        # --epochs N trains N epochs: no minimum of batches (--min-steps or --set set one again).
        flags = {**flags, "training": {**training_flags, "min_steps": 0}}
    config = resolve_config(file_values, preset=preset, origin=origin).replace(**flags)
    try:
        return apply_overrides(config, overrides)
    except ConfigError as error:  # in the words of --set, not of the flags
        fail(str(error), EXIT_USAGE, translate=False)


def _folders_to_create(output: Path) -> list[Path]:
    """The folders that writing into `output` creates: it and its missing parents."""
    created = []
    folder = output.absolute()
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    return created


def _remove_if_left_empty(created: list[Path]) -> None:
    """Removes the folders a failed run created, deepest first, where it wrote no file into
    them (a failed run leaves no empty folder behind; a checkpoint is kept). The run's own mark
    (`modeldir.RUN_MARKER`) is no file of the user's: in a folder the run created, it goes."""
    from imdb_rnn.modeldir import RUN_MARKER

    for path in created:
        if path.is_dir() and not path.is_symlink():
            marker = path / RUN_MARKER
            if marker.is_file() and not marker.is_symlink():
                marker.unlink()
            inner = sorted(path.rglob("*"), key=lambda item: len(item.parts), reverse=True)
            for folder in inner:
                if folder.is_dir() and not folder.is_symlink():
                    with suppress(OSError):
                        folder.rmdir()  # only if empty: never a file
        with suppress(OSError):
            path.rmdir()


def _show_train_result(result: Any, *, as_json: bool) -> None:
    """Prints a `TrainResult` on stdout, as eval and predict print theirs (stages and progress
    stay on stderr): its `to_dict()` with --json, else the test metrics and a summary."""
    if as_json:
        print_json(result.to_dict())
        return
    results = stdout_console()
    output = Path(result.output) if result.output is not None else None
    if not result.chief:
        results.print(
            f"This worker's part is done after {plural(result.epochs, 'epoch')} on "
            f"{result.replicas} "
            "replicas; the chief saves the model.",
            highlight=False,
        )
        return
    if result.test is not None:
        results.print(metrics_table(result.test.to_dict(), "Test split"))
        for table in class_tables(result.test.to_dict()):
            results.print(table)
    speed = f"{result.train_examples_per_second:,.0f} reviews/s"
    if result.wall_seconds is not None:
        # All told: a self-training teacher, reading, evaluating, not the saved model alone.
        took = (
            f"in {result.wall_seconds:.0f} s all told (training this model: "
            f"{result.train_seconds:.0f} s, {speed})"
        )
    else:
        took = f"in {result.train_seconds:.0f} s ({speed})"
    results.print(
        f"Saved to [bold]{markup(output)}[/] after {plural(result.epochs, 'epoch')} "
        f"({kept_epoch(result.best_epoch, result.epochs)}) {took}."
    )
    if result.strategy != "default":
        results.print(
            f"Trained with the {result.strategy} strategy on {result.replicas} "
            f"replica{'s' if result.replicas > 1 else ''}, {result.global_batch_size} reviews "
            "per step.",
            highlight=False,
        )
    if output is not None:
        results.print(f"Training curves: [bold]{markup(output / 'curves.png')}[/]", highlight=False)
    if result.tensorboard_logs is not None:
        command = shlex.join(["tensorboard", "--logdir", result.tensorboard_logs])
        results.print(f"TensorBoard: [bold]{markup(command)}[/]", highlight=False)


def _checkpoint_note(output: Path, subject: str = "The last good checkpoint") -> str | None:
    """Says in one sentence what the checkpoint in `output` holds, or None without one."""
    from imdb_rnn.errors import CheckpointError
    from imdb_rnn.training.checkpoints import CHECKPOINT_DIR, Checkpoint

    folder = output / CHECKPOINT_DIR
    try:
        state = Checkpoint(folder).read_state()
    except CheckpointError:
        return None
    return f"{subject} ({state.describe()}) is kept in {folder}." if state else None


def _stopped(console: Console, output: Path, interrupted: TrainingInterrupted) -> NoReturn:
    """Reports a run stopped by a signal, with the command that resumes it, and exits with
    128 + the signal number."""
    command = shlex.join(["imdb-rnn", *(arg for arg in sys.argv[1:] if arg != "--overwrite")])
    note = _checkpoint_note(output, "Its checkpoint")
    hint = (
        f"To resume, run the same command again: {command}"
        if note
        else "Nothing was saved to resume; run the command again to start over."
    )
    note = note or "No checkpoint was written."
    console.print(
        f"[bold yellow]Stopped by {interrupted.signal_name}.[/] {markup(note)}\n{markup(hint)}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(interrupted.exit_code)
