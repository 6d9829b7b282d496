"""How the commands print: consoles, escaping, the metrics and prediction tables, explanations.

Results go to stdout (tables, or one JSON document with --json); stages, progress, warnings and
errors go to stderr. Text from the user or a model (a path, a review, a label) is printed as
written: never read as Rich markup, its control characters shown escaped.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "class_tables",
    "kept_epoch",
    "markup",
    "metrics_table",
    "plural",
    "prediction_table",
    "print_explanations",
    "print_json",
    "printable",
    "runs_table",
    "show_config",
    "stage_printer",
    "stderr",
    "stdout_console",
    "table_console",
]


def stderr() -> Console:
    """The console for stages, progress, warnings and errors."""
    return _wide_console(stderr=True)


def stdout_console() -> Console:
    """The console for results."""
    return _wide_console(stderr=False)


def _wide_console(*, stderr: bool) -> Console:
    """A console on stdout (or stderr) whose lines are not cut at 80 columns, Rich's width for
    a file or a pipe, in mid-phrase."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=100_000)
    return console


def markup(value: object) -> str:
    """`value` as text that Rich prints as written: a path or review holding `[/]` or
    `[bold red]` is not read as markup, nor its control characters by the terminal."""
    from rich.markup import escape

    return escape(printable(str(value)))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters (ANSI escape sequences start with one) shown as `\\x1b`
    instead of being sent to the terminal, which would act on them."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def stage_printer(console: Console, enabled: bool) -> Callable[[str], None]:
    """The library's `on_stage` callback: each stage as a dim line on `console`, in flags."""
    from imdb_rnn.cli._options import in_flags

    def show(name: str) -> None:
        if enabled:
            console.print(f"[dim]»[/] {markup(in_flags(name))}", highlight=False)

    return show


def print_json(value: Any) -> None:
    """Prints `value` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """The metrics of an evaluation (`EvaluationResult.to_dict()`) as a two-column table."""
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


def class_tables(metrics: dict[str, Any]) -> list[Table]:
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
            Text(printable(str(row["label"]))),
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            f"{row['support']:,}",
        )
    table.add_section()
    table.add_row("macro F1", "", "", f"{metrics['macro_f1']:.4f}", f"{metrics['examples']:,}")
    tables = [table]
    labels = [printable(str(label)) for label in metrics.get("labels", [])]
    if labels != ["neg", "pos"]:
        confusion = Table(title="Confusion matrix (rows: true class, columns: predicted)")
        confusion.add_column("true \\ predicted")
        for label in labels:
            confusion.add_column(Text(label), justify="right")
        for label, counts in zip(labels, metrics["confusion"], strict=True):
            confusion.add_row(Text(label), *(f"{count:,}" for count in counts))
        tables.append(confusion)
    return tables


def plural(count: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def kept_epoch(kept: int, epochs: int) -> str:
    """Which epoch's weights were saved: the last one, or the best on validation before it
    (early stopping restored it)."""
    return f"kept epoch {kept}" + (", the best on validation" if kept < epochs else "")


def show_config(config: Any, *, as_json: bool) -> None:
    """Prints a `RunConfig` on stdout as TOML, or as JSON with `as_json`."""
    if as_json:
        print_json(config.to_dict())
        return
    from imdb_rnn.config.toml import config_to_toml

    sys.stdout.write(config_to_toml(config))
    sys.stdout.flush()


def table_console(out: Any) -> Console:
    """A console for tables on `out`: the terminal's width, and never cut to 80 columns when
    `out` is a file or a pipe."""
    console = Console(file=out)
    if not console.is_terminal:
        console = Console(file=out, width=100_000)
    return console


def prediction_table(
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
                Text(f"({item['reason']}) {printable(item['text'])}", style="yellow"),
            )
            continue
        colour = "green" if item["label"] == labels[-1] else "red" if binary else "bold"
        score = item["probability"] if binary else item["score"]
        known = item["known_words"]
        # Text, not markup: a review may hold brackets such as "[/]".
        table.add_row(
            Text(printable(item["label"]), style=colour),
            f"{score:.3f}",
            Text(f"{known}" if known else "0 (none)", style="" if known else "yellow"),
            Text(printable(item["text"])),
        )
    return table


_TOP_WORDS = 8


def print_explanations(
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
        explained = printable(item.get("explained", "pos"))
        two_classes = "probability" in item
        if two_classes:
            others = [printable(name) for name in item["scores"] if printable(name) != explained]
            colour = "green" if printable(item["label"]) == explained else "red"
            towards = [(1, f"towards {explained}"), (-1, f"towards {others[0]}")]
            score = f"  P({explained}) {item['probability']:.3f}"
        else:
            colour = "bold"
            towards = [(1, f"towards {explained}"), (-1, f"away from {explained}")]
            score = f"  P({explained}) {item['score']:.3f}"
        label = printable(item["label"])
        console.print(Text.assemble(f"{number}. ", (label, f"bold {colour}"), score))
        # The review as written, each token coloured by the weight of the word(s) it holds.
        tokens = item["text"].split()
        if not item["explanation"]:
            console.print(Text("   (no words)", style="dim"))
        elif item.get("known_words") == 0:
            console.print(Text(f"   {printable(item['text'])}", style="dim"))
            console.print(Text("   no known words: the model knows none of them", style="yellow"))
            console.print()
            continue
        else:
            text = Text("   ")
            for token, words in zip(tokens, words_of(tokens), strict=True):
                weight = max((weights.get(word, 0.0) for word in words), key=abs, default=0.0)
                text.append(printable(token), style=_weight_style(weight, largest))
                text.append(" ")
            console.print(text)
        for sign, label in towards:
            # Weights that would print as 0.000 say nothing.
            top = [e for e in item["explanation"] if sign * e["weight"] >= 5e-4][:_TOP_WORDS]
            if top:
                line = Text()
                line.append(f"   {label}: ", style="dim")
                for entry in top:
                    line.append(printable(entry["word"]), style="green" if sign > 0 else "red")
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


def runs_table(
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
        table.add_row(*(markup(label) for label in labels), *cells)
    return table
