"""`imdb-rnn info`: show what a model is (`imdb_rnn.inference.modelinfo.model_info`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imdb_rnn.cli._errors import EXIT_USAGE, fail
from imdb_rnn.cli._options import JsonOption, ModelDirArgument
from imdb_rnn.cli._quiet import quiet_tensorflow
from imdb_rnn.cli._render import markup, print_json, runs_table

__all__ = ["info"]


def info(
    model_dir: ModelDirArgument,
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
        fail(f"--top-words must be at least 0 (got {top_words}).", EXIT_USAGE)
    quiet_tensorflow()
    from imdb_rnn.inference.modelinfo import model_info

    described = model_info(model_dir, top_words=top_words)
    if as_json:
        print_json(described.to_dict())
        return
    out = Console()
    layers = Table(title=f"{markup(model_dir)}: layers")
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
            runs_table(
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
                    config.add_row(f"{section}.{key}", markup(value))
    out.print(config)
