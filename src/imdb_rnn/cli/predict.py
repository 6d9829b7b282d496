"""`imdb-rnn predict`: classify texts with a saved model (`imdb_rnn.inference.predictor.load`,
then `Predictor.predict` chunk by chunk)."""

from __future__ import annotations

import io
import itertools
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from imdb_rnn.cli._errors import EXIT_DATA, EXIT_USAGE, fail
from imdb_rnn.cli._inputs import checked_output, refuse_early
from imdb_rnn.cli._options import JsonOption, ModelDirArgument, TextColumnOption
from imdb_rnn.cli._quiet import quiet_tensorflow
from imdb_rnn.cli._render import (
    markup,
    prediction_table,
    print_explanations,
    stderr,
    table_console,
)

__all__ = ["MAX_REVIEW_CHARACTERS", "InputFormat", "OutputFormat", "predict"]

#: Longer reviews are refused by `predict` (the longest IMDB review has about 14,000); in a file,
#: such a row is written unscored, with its reason.
MAX_REVIEW_CHARACTERS = 100_000


class InputFormat(str, Enum):
    """The formats `--file` and stdin are read in."""

    lines = "lines"
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


class OutputFormat(str, Enum):
    """The formats predictions are written in."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"


#: Texts predicted together when streaming a file.
_CHUNK = 1024


def predict(
    model_dir: ModelDirArgument,
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
    # '-' (as a text or as --file) streams the standard input in chunks, never read whole.
    from_stdin = file is not None and str(file) == "-"
    if from_stdin:
        file = None
    reviews, from_stdin = _given_texts(texts or [], from_stdin=from_stdin)
    if as_json and output_format not in (None, OutputFormat.json):
        fail("--json is --format json: give one of them.", EXIT_USAGE)
    chosen = output_format or (OutputFormat.json if as_json else OutputFormat.table)
    if threshold is not None and not 0 <= threshold <= 1:
        fail(f"--threshold must be between 0 and 1 (got {threshold}).", EXIT_USAGE)
    if output_file is not None:
        output_file = checked_output(output_file, inputs=[model_dir, file], what="--output")
    if keep_columns is not None and id_column is not None:
        fail("--id-column keeps one column, --keep-columns several: give one of them.", EXIT_USAGE)
    kept = [name.strip() for name in keep_columns.split(",")] if keep_columns else None
    if file is not None and not file.is_file():
        if file.exists():  # a device such as /dev/zero, a FIFO or a folder
            fail(f"{file} is not a regular file: give a file of texts.", EXIT_DATA)
        fail(f"Cannot read {file}: No such file.", EXIT_DATA)
    if not reviews and file is None and not from_stdin:
        fail("No reviews to classify: pass texts, '-' for stdin, or --file PATH.", EXIT_USAGE)
    refuse_early(model_dir=model_dir)
    quiet_tensorflow()
    stream = _texts_to_classify(reviews, file, input_format, text_column, from_stdin=from_stdin)
    # The first chunk is read (and checked) before the model loads.
    first = list(itertools.islice(stream, _CHUNK))
    if len(first) < _CHUNK and not any(row.text is not None for row in first):
        fail("No reviews to classify: pass texts, '-' for stdin, or --file PATH.", EXIT_USAGE)
    from imdb_rnn.devices import prepare_native_kernel
    from imdb_rnn.inference.predictor import load

    errors = Console(stderr=True)
    prepare_native_kernel(on_stage=lambda message: errors.print(f"[dim]{markup(message)}...[/]"))
    try:  # a plain ValueError: the model cannot take a threshold
        predictor = load(model_dir, threshold=threshold)
    except ValueError as error:
        if "threshold" not in str(error):
            raise
        fail(f"--threshold: {error}", EXIT_USAGE)
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


def _given_texts(texts: list[str], *, from_stdin: bool) -> tuple[list[str], bool]:
    """The reviews given on the command line (none empty), and whether stdin is read too
    ('-' among them)."""
    reviews: list[str] = []
    for text in texts:
        if text == "-":
            if from_stdin:
                fail("The standard input can be read once: give '-' or '--file -'.", EXIT_USAGE)
            from_stdin = True
        elif not text.strip():
            fail(f"Review {len(reviews) + 1} is empty: give some text to classify.", EXIT_USAGE)
        else:
            reviews.append(text)
    return reviews, from_stdin


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
            fail(
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
    from imdb_rnn.data.textio import prediction_writer
    from imdb_rnn.inference.batch import predict_rows
    from imdb_rnn.inference.explain import explained_rows

    errors = stderr()
    progress = _progress_bar(errors, enabled=progress_total is not None)
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
        console = table_console(out)
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
                _show_chunk(console, shown, predictor.labels, explain=explain, first=number + 1)
            number += len(chunk)
            progress.update(task, completed=inputs[-1].position, rows=number)
        if writer is not None:
            writer.close()
    _warn_about_rows(errors, number, unknown, unscored)


def _progress_bar(errors: Console, *, enabled: bool) -> Any:
    """A transient progress bar of the bytes of a file read (shown on a terminal only)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("Classifying"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} texts"),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=not enabled or not errors.is_terminal,
    )


def _show_chunk(
    console: Console,
    rows: list[dict[str, Any]],
    labels: tuple[str, ...],
    *,
    explain: bool,
    first: int,
) -> None:
    """A chunk's predictions as a table (the first with its title), or explained."""
    if explain:
        print_explanations(rows, console=console, first=first)
    else:
        table = prediction_table(rows, labels, first=first == 1, wide=not console.is_terminal)
        console.print(table)


def _warn_about_rows(errors: Console, number: int, unknown: int, unscored: Counter[str]) -> None:
    """Warns about the texts without a known word and the rows that could not be scored."""
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
            f"scored ({markup(reasons)}): written with empty scores and their reason.",
            highlight=False,
        )
