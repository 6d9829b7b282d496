"""`imdb-rnn`: train, evaluate and use a bidirectional-GRU sentiment classifier on IMDB reviews.

Each command parses its options and calls one library function; TensorFlow is imported only
when a command runs, so `imdb-rnn --help` stays fast.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

if TYPE_CHECKING:
    from imdb_rnn.checkpoints import TrainingInterrupted

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """The command group: an unexpected error becomes one line saying it is a bug (the traceback
    shows with --debug), and Ctrl-C outside training exits with 130 instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as error:
            _stderr().print("Interrupted.", highlight=False)
            raise typer.Exit(getattr(error, "exit_code", 128 + signal.SIGINT)) from None
        except Exception as error:
            if hasattr(error, "exit_code") or (ctx.obj or {}).get("debug"):
                raise  # a usage error for Typer to report, or --debug
            detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
            _fail(
                f"internal error ({type(error).__name__}{': ' + detail if detail else ''}). "
                "This is a bug in imdb-rnn: please report it with the traceback that "
                "'imdb-rnn --debug ...' shows.",
                EXIT_INTERNAL,
            )


app = typer.Typer(
    name="imdb-rnn",
    help="Train, evaluate and use a bidirectional-GRU sentiment classifier on IMDB movie reviews.",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

# Exit codes: 2 is a usage error (Typer's own and ours); the others name the kind of failure.
# A run stopped by a signal exits with 128 + the signal number (130 SIGINT, 143 SIGTERM).
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_MODEL = 4
EXIT_IO = 5
EXIT_DIVERGED = 6

#: Longer reviews are refused by `predict` (the longest IMDB review has about 14,000).
MAX_REVIEW_CHARACTERS = 100_000


class Split(str, Enum):
    test = "test"
    valid = "valid"


def _stderr() -> Console:
    return Console(stderr=True)


def _fail(message: str, code: int) -> NoReturn:
    _stderr().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turns the library's errors for a user's mistake into one line on stderr and an exit code."""
    from imdb_rnn.config import ConfigError
    from imdb_rnn.datasets import DataError
    from imdb_rnn.models import ModelFileError

    try:
        yield
    except ConfigError as error:
        _fail(str(error), EXIT_USAGE)
    except DataError as error:
        _fail(str(error), EXIT_DATA)
    except ModelFileError as error:
        _fail(str(error), EXIT_MODEL)
    except OSError as error:
        _fail(_os_error_message(error), EXIT_IO)


def _os_error_message(error: OSError) -> str:
    return f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up lines (no GPU, oneDNN) are noise on the CPU; users can override.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _stage_printer(console: Console, enabled: bool) -> Callable[[str], None]:
    def show(name: str) -> None:
        if enabled:
            console.print(f"[dim]»[/] {name}", highlight=False)

    return show


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("loss", "accuracy", "precision", "recall", "f1"):
        table.add_row(key, f"{metrics[key]:.4f}")
    table.add_row("examples", f"{metrics['examples']:,}")
    table.add_row("seconds", f"{metrics['seconds']:.1f}")
    table.add_row("examples/s", f"{metrics['examples_per_second']:,.0f}")
    (tn, fp), (fn, tp) = metrics["confusion"]
    table.add_row(
        "confusion", f"true neg {tn:,}  false pos {fp:,}\nfalse neg {fn:,}  true pos {tp:,}"
    )
    return table


DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or 'tfds'. "
        "Default: $IMDB_RNN_DATA, else TensorFlow Datasets (downloads once).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")
]


@app.command()
def train(
    data: DataOption = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model directory to write.")
    ] = Path("runs/imdb-rnn"),
    preset: Annotated[
        str | None,
        typer.Option(
            help="Starting configuration: default, reference or deep (see 'imdb-rnn presets'). "
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
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs. [default: preset's]", show_default=False)
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="Use at most N reviews per split (quick runs).", show_default=False),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Training batch size (of each device, with --strategy). [default: preset's]",
            show_default=False,
        ),
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="Input pipeline: sorted, bucketed or plain. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Keep at most N tokens per review. [default: preset's]", show_default=False
        ),
    ] = None,
    truncation: Annotated[
        str | None,
        typer.Option(
            help="Tokens kept when truncating: head or tail. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    valid_split: Annotated[
        str | None,
        typer.Option(
            help="Validation reviews: random (10 % of train) or film (whole films held out, "
            "so that validation shares no film with training, as test does; needs the local "
            "archive). [default: preset's]",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Vocabulary size. [default: preset's]", show_default=False)
    ] = None,
    embedding_dim: Annotated[
        int | None, typer.Option(help="Embedding width. [default: preset's]", show_default=False)
    ] = None,
    cell: Annotated[
        str | None,
        typer.Option(help="Recurrent cell: gru or lstm. [default: preset's]", show_default=False),
    ] = None,
    rnn_units: Annotated[
        int | None,
        typer.Option(help="Units per direction. [default: preset's]", show_default=False),
    ] = None,
    num_rnn_layers: Annotated[
        int | None,
        typer.Option(help="Stacked Bidirectional layers. [default: preset's]", show_default=False),
    ] = None,
    dense_units: Annotated[
        list[int] | None,
        typer.Option(
            help="Hidden Dense widths (repeat the option for more layers). [default: preset's]",
            show_default=False,
        ),
    ] = None,
    pooling: Annotated[
        str | None,
        typer.Option(
            help="final, max, mean or final_max_mean. [default: preset's]", show_default=False
        ),
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(help="Dropout rate in [0, 1). [default: preset's]", show_default=False),
    ] = None,
    word_dropout: Annotated[
        float | None,
        typer.Option(
            help="Rate at which whole words are dropped in training, in [0, 1). "
            "[default: preset's]",
            show_default=False,
        ),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(help="Adam learning rate. [default: preset's]", show_default=False),
    ] = None,
    adversarial_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Adversarial training on the embeddings: L2 norm of each review's "
            "perturbation; 0 is off (about twice the cost per step). [default: preset's]",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed for everything. [default: preset's]", show_default=False),
    ] = None,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic",
            help="Use only deterministic TensorFlow kernels (for exact repeats on a GPU; "
            "CPU runs repeat exactly without it).",
        ),
    ] = False,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            help="Write a resumable checkpoint every N batches (and at every epoch end). "
            "[default: 200]",
            show_default=False,
        ),
    ] = None,
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
    as_json: JsonOption = False,
) -> None:
    """Train a model and save it to --output (model.keras, config.json, config.toml,
    history.json, metrics.json).

    Reads the data, adapts the vocabulary, trains with validation after every epoch, evaluates on
    the test split and saves. The config is the preset, then --config's values, then the options
    given here. While training, a checkpoint in --output/checkpoint/ is updated every
    --checkpoint-every batches and at every epoch end; running the same command again resumes an
    interrupted run where its checkpoint left it. Examples:

        imdb-rnn train --data aclImdb_v1.tar.gz --output runs/default

        imdb-rnn train --preset reference --epochs 3 --limit 2000 --output runs/quick

        imdb-rnn train --config runs/quick/config.toml --output runs/again

        imdb-rnn train --strategy mirrored --output runs/gpus
    """
    if epochs is not None and epochs < 1:
        _fail(f"--epochs must be at least 1 (got {epochs}).", EXIT_USAGE)
    if limit is not None and limit < 1:
        _fail(f"--limit must be at least 1 (got {limit}).", EXIT_USAGE)
    if not show_config and (output / "model.keras").exists() and not overwrite:
        _fail(
            f"{output} already holds a model; pass --overwrite to replace it "
            "or choose another --output.",
            EXIT_USAGE,
        )
    _quiet_tensorflow()
    console = _stderr()
    with _user_errors():
        from imdb_rnn.tomlconfig import read_config_file, resolve_config

        file_values = read_config_file(config_file) if config_file is not None else None
        origin = str(config_file) if config_file is not None else "config"
        config = resolve_config(file_values, preset=preset, origin=origin).replace(
            data={
                "limit": limit,
                "batch_size": batch_size,
                "pipeline": pipeline,
                "max_length": max_length,
                "truncation": truncation,
                "valid_split": valid_split,
            },
            model={
                "max_tokens": max_tokens,
                "embedding_dim": embedding_dim,
                "cell": cell,
                "rnn_units": rnn_units,
                "num_rnn_layers": num_rnn_layers,
                "dense_units": tuple(dense_units) if dense_units else None,
                "pooling": pooling,
                "dropout": dropout,
                "word_dropout": word_dropout,
            },
            training={
                "epochs": epochs,
                "learning_rate": learning_rate,
                "adversarial_epsilon": adversarial_epsilon,
                "seed": seed,
                "checkpoint_every_steps": checkpoint_every,
                "deterministic": deterministic or None,
            },
        )
        if show_config:
            _show_config(config, as_json=as_json)
            return
        from imdb_rnn.distribute import STRATEGIES, cluster_task

        if strategy not in STRATEGIES:
            _fail(
                f"--strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r}).",
                EXIT_USAGE,
            )
        # Only the chief of a cluster writes into --output (the others' logs are temporary).
        chief = strategy != "multi-worker" or cluster_task().is_chief
        _check_writable(output)
        log_dir = _tensorboard_dir(output, enabled=tensorboard, empty=chief)
        from imdb_rnn.checkpoints import NonFiniteLossError, SignalStop, TrainingInterrupted
        from imdb_rnn.progress import RichProgress
        from imdb_rnn.trainer import train as run_training

        progress = RichProgress(console)
        try:
            with SignalStop() as stop:
                result = run_training(
                    config,
                    source=data,
                    output=output,
                    callbacks=[progress],
                    on_stage=_stage_printer(console, True),
                    resume=not overwrite,
                    stop=stop,
                    tensorboard_dir=log_dir,
                    strategy=strategy,
                )
        except TrainingInterrupted as interrupted:
            progress.close()
            _stopped(console, output, interrupted)
        except NonFiniteLossError as error:
            progress.close()
            _fail(f"{error} {_checkpoint_note(output) or ''}".rstrip(), EXIT_DIVERGED)
        except OSError as error:  # a full disk while saving a checkpoint or the model
            progress.close()
            _fail(f"{_os_error_message(error)}. {_checkpoint_note(output) or ''}".rstrip(), EXIT_IO)
    summary = {
        "output": result.output,
        "preset": config.preset,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "train_examples_per_second": result.train_examples_per_second,
        "history": result.history,
        "valid": result.valid.to_dict() if result.valid else None,
        "test": result.test.to_dict() if result.test else None,
        "tensorboard_logs": str(log_dir) if log_dir is not None else None,
        "decode_errors": result.decode_errors,
        "strategy": result.strategy,
        "replicas": result.replicas,
        "global_batch_size": result.global_batch_size,
        "chief": result.chief,
    }
    if as_json:
        _print_json(summary)
        return
    if not result.chief:
        console.print(
            f"This worker's part is done after {result.epochs} epochs on {result.replicas} "
            f"replicas; the chief saves the model to [bold]{output}[/].",
            highlight=False,
        )
        return
    if result.test is not None:
        console.print(_metrics_table(result.test.to_dict(), "Test split"))
    console.print(
        f"Saved to [bold]{output}[/] after {result.epochs} epochs "
        f"(best epoch {result.best_epoch}) in {result.train_seconds:.0f} s "
        f"({result.train_examples_per_second:,.0f} reviews/s)."
    )
    if result.strategy != "default":
        console.print(
            f"Trained with the {result.strategy} strategy on {result.replicas} "
            f"replica{'s' if result.replicas > 1 else ''}, {result.global_batch_size} reviews "
            "per step.",
            highlight=False,
        )
    console.print(f"Training curves: [bold]{output / 'curves.png'}[/]", highlight=False)
    if log_dir is not None:
        console.print(f"TensorBoard: [bold]tensorboard --logdir {log_dir}[/]", highlight=False)


def _tensorboard_dir(output: Path, *, enabled: bool, empty: bool = True) -> Path | None:
    """OUTPUT/logs, emptied first (unless `empty` is False: a worker that is not the chief
    leaves the chief's folder alone): TensorBoard would draw an earlier run's events (a replaced
    model's, or a failed run's) as part of this one."""
    if not enabled:
        return None
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        _fail(
            "TensorBoard logging needs the tensorboard package: pip install tensorboard "
            "(or pass --no-tensorboard).",
            EXIT_USAGE,
        )
    log_dir = output / "logs"
    if empty and log_dir.is_dir():
        import shutil

        shutil.rmtree(log_dir)
    return log_dir


def _show_config(config: Any, *, as_json: bool) -> None:
    if as_json:
        _print_json(config.to_dict())
        return
    from imdb_rnn.tomlconfig import config_to_toml

    sys.stdout.write(config_to_toml(config))
    sys.stdout.flush()


_PRESET_NOTES = {
    "default": "the best measured recipe on CPU (early stopping, learning rate 1e-3)",
    "reference": "the reference recipe (TensorFlow's RNN text-classification tutorial, GRU)",
    "deep": "two stacked Bidirectional layers with dropout",
}


@app.command()
def presets(
    name: Annotated[
        str | None,
        typer.Argument(help="Preset to print as TOML; leave out to list them.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the presets, or print one as a TOML config to edit and pass to 'train --config'.

    Examples:

        imdb-rnn presets

        imdb-rnn presets reference > run.toml && imdb-rnn train --config run.toml
    """
    # Not _user_errors(): it imports TensorFlow, which listing presets does not need.
    from imdb_rnn.config import PRESETS, ConfigError, get_preset

    if name is not None:
        try:
            config = get_preset(name)
        except ConfigError as error:
            _fail(str(error), EXIT_USAGE)
        _show_config(config, as_json=as_json)
        return
    if as_json:
        _print_json({key: get_preset(key).to_dict() for key in PRESETS})
        return
    table = Table(title="Presets (imdb-rnn presets NAME prints one as TOML)")
    for column in ("name", "cell x layers", "units", "learning rate", "epochs", "what"):
        table.add_column(column)
    for key in PRESETS:
        config = get_preset(key)
        table.add_row(
            key,
            f"{config.model.cell} x {config.model.num_rnn_layers}",
            str(config.model.rnn_units),
            f"{config.training.learning_rate:g}",
            str(config.training.epochs),
            _PRESET_NOTES.get(key, ""),
        )
    Console().print(table)


def _checkpoint_note(output: Path, subject: str = "The last good checkpoint") -> str | None:
    """Says in one sentence what the checkpoint in `output` holds, or None without one."""
    from imdb_rnn.checkpoints import CHECKPOINT_DIR, Checkpoint, CheckpointError

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
        f"[bold yellow]Stopped by {interrupted.signal_name}.[/] {note}\n{hint}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(interrupted.exit_code)


def _check_writable(output: Path) -> None:
    """Fails before training if the model directory cannot be created or written (a test file
    is written and removed: permissions, read-only file systems and full disks all show)."""
    from imdb_rnn.files import write_text

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _fail(f"Cannot create the output directory {output}: {error.strerror}.", EXIT_IO)
    probe = output / ".imdb-rnn-write-test"
    try:
        write_text(probe, "imdb-rnn checks that it can write here before training.\n")
        probe.unlink()
    except OSError as error:
        _fail(f"Cannot write into the output directory {output}: {error.strerror}.", EXIT_IO)


@app.command("eval")
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    data: DataOption = None,
    split: Annotated[Split, typer.Option(help="Which labelled split to evaluate on.")] = Split.test,
    limit: Annotated[
        int | None, typer.Option(help="Evaluate on at most N reviews.", show_default=False)
    ] = None,
    confusion_png: Annotated[
        Path | None,
        typer.Option(
            "--confusion-png",
            help="Also save the confusion matrix as a PNG picture at this path.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a saved model: loss, accuracy, precision, recall, F1, confusion matrix, speed.

    Examples:

        imdb-rnn eval runs/default --data aclImdb_v1.tar.gz --split test

        imdb-rnn eval runs/default --data aclImdb_v1.tar.gz --confusion-png confusion.png
    """
    if limit is not None and limit < 1:
        _fail(f"--limit must be at least 1 (got {limit}).", EXIT_USAGE)
    _quiet_tensorflow()
    console = _stderr()
    with _user_errors():
        from imdb_rnn.trainer import evaluate as run_evaluation

        result = run_evaluation(
            model_dir,
            source=data,
            split=split.value,
            limit=limit,
            on_stage=_stage_printer(console, not as_json),
        )
        if confusion_png is not None:
            from imdb_rnn.plots import save_confusion_matrix

            save_confusion_matrix(
                result.confusion,
                confusion_png,
                title=f"{model_dir.name} on the {split.value} split: "
                f"accuracy {result.accuracy:.1%} ({result.examples:,} reviews)",
            )
    metrics = result.to_dict()
    if as_json:
        _print_json(metrics)
        return
    Console().print(_metrics_table(metrics, f"{model_dir} on the {split.value} split"))


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Reviews to classify; '-' reads one review per line from stdin.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Read one review per line from this file.", show_default=False
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show which words pushed each prediction, and by how much: the change in "
            "P(pos) when the word is removed (green: towards positive, red: towards negative).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Classify reviews as positive or negative, with the probability of positive.

    Examples:

        imdb-rnn predict runs/default "A moving, beautifully acted film."

        cat reviews.txt | imdb-rnn predict runs/default - --json

        imdb-rnn predict runs/default --explain "Great cast, but a dull, dull plot."
    """
    reviews: list[str] = []
    for text in texts or []:
        if text == "-":
            stdin = getattr(sys.stdin, "buffer", None)
            raw = stdin.read() if stdin is not None else sys.stdin.read().encode("utf-8")
            reviews.extend(_review_lines(raw, "The standard input"))
        elif not text.strip():
            _fail(f"Review {len(reviews) + 1} is empty: give some text to classify.", EXIT_USAGE)
        else:
            reviews.append(text)
    if file is not None:
        try:
            raw = file.read_bytes()
        except OSError as error:
            _fail(f"Cannot read {file}: {error.strerror}.", EXIT_IO)
        reviews.extend(_review_lines(raw, str(file)))
    if not reviews:
        _fail("No reviews to classify: pass texts, '-' for stdin, or --file PATH.", EXIT_USAGE)
    for number, review in enumerate(reviews, start=1):
        if len(review) > MAX_REVIEW_CHARACTERS:
            _fail(
                f"Review {number} has {len(review):,} characters; imdb-rnn classifies reviews "
                f"of up to {MAX_REVIEW_CHARACTERS:,} (the longest IMDB review has about "
                "14,000). Shorten it.",
                EXIT_USAGE,
            )
    _quiet_tensorflow()
    with _user_errors():
        if explain:
            from imdb_rnn.explain import predict_and_explain as run_prediction
        else:
            from imdb_rnn.trainer import predict as run_prediction
        from imdb_rnn.trainer import prepare_native_kernel

        errors = Console(stderr=True)
        prepare_native_kernel(on_stage=lambda message: errors.print(f"[dim]{message}...[/]"))
        predictions = run_prediction(model_dir, reviews)
    if as_json:
        _print_json(predictions)
        return
    if explain:
        _print_explanations(predictions)
        return
    table = Table(title="Predictions")
    table.add_column("label")
    table.add_column("P(pos)", justify="right")
    table.add_column("review", overflow="ellipsis", no_wrap=True, max_width=60)
    for item in predictions:
        colour = "green" if item["label"] == "pos" else "red"
        # Text, not markup: a review may hold brackets such as "[/]".
        table.add_row(
            f"[{colour}]{item['label']}[/]", f"{item['probability']:.3f}", Text(item["text"])
        )
    Console().print(table)


_TOP_WORDS = 8


def _print_explanations(predictions: list[dict[str, Any]]) -> None:
    """Prints each review with its words coloured by weight, then its strongest words."""
    from imdb_rnn.explain import words_of

    console = Console()
    for number, item in enumerate(predictions, 1):
        weights = {entry["word"]: entry["weight"] for entry in item["explanation"]}
        largest = max((abs(weight) for weight in weights.values()), default=0.0)
        colour = "green" if item["label"] == "pos" else "red"
        console.print(
            Text.assemble(
                f"{number}. ",
                (item["label"], f"bold {colour}"),
                f"  P(pos) {item['probability']:.3f}",
            )
        )
        # The review as written, each token coloured by the weight of the word(s) it holds.
        tokens = item["text"].split()
        if not item["explanation"]:
            console.print(Text("   (no words)", style="dim"))
        else:
            text = Text("   ")
            for token, words in zip(tokens, words_of(tokens), strict=True):
                weight = max((weights.get(word, 0.0) for word in words), key=abs, default=0.0)
                text.append(token, style=_weight_style(weight, largest))
                text.append(" ")
            console.print(text)
        for sign, label in ((1, "towards pos"), (-1, "towards neg")):
            # Weights that would print as 0.000 say nothing.
            top = [e for e in item["explanation"] if sign * e["weight"] >= 5e-4][:_TOP_WORDS]
            if top:
                line = Text()
                line.append(f"   {label}: ", style="dim")
                for entry in top:
                    line.append(entry["word"], style="green" if sign > 0 else "red")
                    line.append(f" {entry['weight']:+.3f}  ")
                console.print(line)
        console.print()


def _weight_style(weight: float, largest: float) -> str:
    """Green for words that pushed towards positive, red towards negative; bold when strong."""
    if largest <= 1e-4 or abs(weight) < 0.1 * largest:
        return ""
    colour = "green" if weight > 0 else "red"
    return f"bold {colour}" if abs(weight) >= 0.5 * largest else colour


@app.command("export")
def export_model(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    out_dir: Annotated[
        Path, typer.Argument(help="SavedModel directory to create (for TF Serving: NAME/1).")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT_DIR if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export a model as a TensorFlow SavedModel for serving: raw review strings in,
    probabilities out, no imdb-rnn needed to load it.

    The 'serving_default' signature takes 'text' (a batch of strings) and returns 'probability'
    (of a positive review) and 'logit'; load it with
    tf.saved_model.load(OUT_DIR).signatures['serving_default'] or TensorFlow Serving. Example:

        imdb-rnn export runs/default serving/imdb_rnn/1
    """
    if out_dir.exists() and not overwrite:
        _fail(
            f"{out_dir} already exists; pass --overwrite to replace it or choose another OUT_DIR.",
            EXIT_USAGE,
        )
    _quiet_tensorflow()
    console = _stderr()
    with _user_errors():
        from imdb_rnn.export import export_saved_model

        if not as_json:
            console.print("[dim]»[/] Exporting", highlight=False)
        export_saved_model(model_dir, out_dir, overwrite=overwrite)
    summary = {
        "output": str(out_dir),
        "signature": "serving_default",
        "inputs": {"text": "string [batch]"},
        "outputs": {"probability": "float32 [batch]", "logit": "float32 [batch]"},
    }
    if as_json:
        _print_json(summary)
        return
    console.print(
        f"Exported to [bold]{out_dir}[/]: signature 'serving_default', "
        "text (strings) -> probability, logit.",
        highlight=False,
    )


def _review_lines(raw: bytes, source: str) -> list[str]:
    """The non-blank lines of a text, decoded as UTF-8 or else Latin-1 (which cannot fail) for
    legacy files; binary data (NUL bytes) is refused."""
    if b"\x00" in raw:
        _fail(
            f"{source} is not text (it holds NUL bytes): give one review per line, "
            "as UTF-8 or Latin-1 text.",
            EXIT_DATA,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    # Only line feeds separate reviews: reviews hold U+0085 and U+2028, which splitlines() splits.
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _version_callback(value: bool) -> None:
    if value:
        from imdb_rnn import __version__

        typer.echo(f"imdb-rnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of an unexpected error (to report a bug)."
        ),
    ] = False,
) -> None:
    """Train, evaluate and use a bidirectional-GRU sentiment classifier on IMDB movie reviews."""
    ctx.obj = {"debug": debug}


def main() -> None:
    """Console entry point."""
    app()
