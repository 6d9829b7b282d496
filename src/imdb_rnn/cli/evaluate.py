"""`imdb-rnn eval`: evaluate a saved model (`imdb_rnn.inference.workflows.evaluate`, or
`imdb_rnn.inference.tuning.tune_decision` to tune its threshold or calibrate it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from imdb_rnn.cli._errors import EXIT_USAGE, fail
from imdb_rnn.cli._inputs import checked_output, is_tfds, refuse_early, text_files
from imdb_rnn.cli._options import (
    DataOption,
    JsonOption,
    LabelColumnOption,
    ModelDirArgument,
    StrictOption,
    TextColumnOption,
    in_flags,
)
from imdb_rnn.cli._quiet import quiet_tensorflow
from imdb_rnn.cli._render import (
    class_tables,
    markup,
    metrics_table,
    print_json,
    stage_printer,
    stderr,
    stdout_console,
)

__all__ = ["Split", "ThresholdMetric", "evaluate"]


class ThresholdMetric(str, Enum):
    """The metrics `--tune-threshold` maximises."""

    accuracy = "accuracy"
    f1 = "f1"
    balanced_accuracy = "balanced_accuracy"
    precision = "precision"
    recall = "recall"
    youden = "youden"


class Split(str, Enum):
    """The labelled splits of `--data`."""

    test = "test"
    valid = "valid"


def evaluate(
    model_dir: ModelDirArgument,
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
        fail(f"--limit must be at least 1 (got {limit}).", EXIT_USAGE)
    if confusion_png is not None:
        confusion_png = checked_output(
            confusion_png, inputs=[model_dir, test_file, data], what="--confusion-png"
        )
    if reliability_png is not None:
        reliability_png = checked_output(
            reliability_png, inputs=[model_dir, test_file, data], what="--reliability-png"
        )
    refuse_early(model_dir=model_dir, data=data, data_files=(test_file,))
    quiet_tensorflow()  # before text_files, which imports it
    files = text_files(
        data,
        test=test_file,
        text_column=text_column,
        label_column=label_column,
        strict=strict,
        needs_train=False,
    )
    if files is not None and not is_tfds(files) and split != Split.test:
        fail("--split applies to --data; --test names the file to evaluate on.", EXIT_USAGE)
    own_file = files is not None and not is_tfds(files)
    split_name = "test file" if own_file else f"{split.value} split"
    console = stderr()
    source = files if files is not None else data
    on_stage = stage_printer(console, not as_json)
    with _overlap_warnings(console):
        if tune_threshold is not None or calibrate:
            tuned = _tuned(model_dir, source, split, tune_threshold, calibrate, limit, on_stage)
            result = tuned.after
        else:
            from imdb_rnn.inference.workflows import evaluate as run_evaluation

            tuned = None
            result = run_evaluation(
                model_dir, source=source, split=split.value, limit=limit, on_stage=on_stage
            )
    _save_pictures(
        result,
        f"{model_dir.name} on the {split_name}",
        "reviews" if files is None else "texts",
        confusion_png=confusion_png,
        reliability_png=reliability_png,
    )
    metrics = result.to_dict()
    if tuned is not None:
        metrics["decision"] = tuned.decision.to_dict()
    if as_json:
        print_json(metrics)
        return
    out = stdout_console()
    out.print(metrics_table(metrics, f"{markup(model_dir)} on the {markup(split_name)}"))
    if tuned is not None:
        out.print(_saved_decision(tuned, calibrate), highlight=False, soft_wrap=True)
    for table in class_tables(metrics):
        out.print(table)
    if confusion_png is not None:
        out.print(f"Confusion matrix: [bold]{markup(confusion_png)}[/]", highlight=False)


@contextmanager
def _overlap_warnings(console: Console) -> Iterator[None]:
    """Shows the `ValidationOverlapWarning`s of the block as warning lines, in flags."""
    import warnings

    from imdb_rnn.errors import ValidationOverlapWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ValidationOverlapWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, ValidationOverlapWarning):
            text = markup(in_flags(str(warning.message)))
            console.print(f"[yellow]warning:[/] {text}", highlight=False)


def _tuned(
    model_dir: Path,
    source: Any,
    split: Split,
    metric: ThresholdMetric | None,
    calibrate: bool,
    limit: int | None,
    on_stage: Callable[[str], None],
) -> Any:
    """`tune_decision`'s result: the threshold and temperature saved, and the metrics."""
    from imdb_rnn.inference.tuning import tune_decision

    try:
        return tune_decision(
            model_dir,
            source=source,
            split=split.value,
            metric=metric.value if metric is not None else None,
            calibrate=calibrate,
            limit=limit,
            on_stage=on_stage,
        )
    except ValueError as error:  # a plain ValueError: a model that takes no threshold
        if "threshold" not in str(error):
            raise
        fail(f"--tune-threshold: {error}", EXIT_USAGE)


def _save_pictures(
    result: Any,
    subject: str,
    texts: str,
    *,
    confusion_png: Path | None,
    reliability_png: Path | None,
) -> None:
    """Draws the reliability diagram and the confusion matrix of an evaluation, where asked."""
    if reliability_png is not None:
        from imdb_rnn.deploy.plots import save_reliability_diagram

        save_reliability_diagram(
            result.reliability,
            reliability_png,
            title=f"{subject}: expected calibration error {result.ece:.3f}",
        )
    if confusion_png is not None:
        from imdb_rnn.deploy.plots import MAX_CONFUSION_CLASSES, save_confusion_matrix

        if len(result.labels) > MAX_CONFUSION_CLASSES:
            fail(
                f"--confusion-png draws up to {MAX_CONFUSION_CLASSES} classes; this model "
                f"has {len(result.labels):,}: read the matrix from --json instead.",
                EXIT_USAGE,
            )
        save_confusion_matrix(
            result.confusion,
            confusion_png,
            labels=result.labels,
            title=f"{subject}: accuracy {result.accuracy:.1%} ({result.examples:,} {texts})",
        )


def _saved_decision(tuned: Any, calibrate: bool) -> str:
    """What `--tune-threshold` and `--calibrate` saved, and where, in one sentence."""
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
    return f"Saved {markup(', '.join(saved))} in {markup(tuned.path)}."
