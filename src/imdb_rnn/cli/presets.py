"""`imdb-rnn presets`: list the presets, or print one as TOML (`imdb_rnn.config.get_preset`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imdb_rnn.cli._options import JsonOption
from imdb_rnn.cli._render import print_json, show_config

__all__ = ["presets"]

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
    from imdb_rnn.config import PRESETS, get_preset

    if name is not None:
        show_config(get_preset(name), as_json=as_json)
        return
    if as_json:
        print_json({key: get_preset(key).to_dict() for key in PRESETS})
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
