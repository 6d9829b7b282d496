"""`imdb-rnn pretrain`: pre-train an encoder as language models
(`imdb_rnn.pretraining.pretrain.pretrain`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from imdb_rnn.cli._options import JsonOption
from imdb_rnn.cli._quiet import quiet_tensorflow
from imdb_rnn.cli._render import markup, print_json, stage_printer, stderr, stdout_console

__all__ = ["pretrain"]


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
    quiet_tensorflow()
    console = stderr()
    from imdb_rnn.config import get_preset
    from imdb_rnn.pretraining.pretrain import PretrainConfig

    base = get_preset(preset).replace(
        model={"max_tokens": max_tokens, "embedding_dim": embedding_dim, "rnn_units": rnn_units}
    )
    # A bad value is a ConfigError naming it: the command group reports it (exit 2).
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
    result = _run_pretraining(config, data, output, limit, not overwrite, console)
    if as_json:
        print_json(result.to_dict())
        return
    results = stdout_console()
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
            f"Encoder saved to [bold]{markup(output)}[/] after {result.step:,} steps; train "
            f"from it with: imdb-rnn train --encoder {markup(shlex.quote(str(output)))}",
            highlight=False,
        )
    else:
        results.print(
            f"Stopped after {result.step:,} of {result.total_steps:,} steps (--max-minutes); "
            f"the encoder so far is in [bold]{markup(output)}[/]. Run the same command again "
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

    from imdb_rnn.errors import TrainingInterrupted
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
                on_stage=stage_printer(console, True),
                on_step=on_step,
                on_measure=on_measure,
                stop=stop,
            )
    except TrainingInterrupted as interrupted:
        progress.stop()
        command = shlex.join(["imdb-rnn", *sys.argv[1:]])
        console.print(
            f"[bold yellow]Stopped by {interrupted.signal_name}.[/] The checkpoint and the "
            f"encoder so far are in {markup(output)}.\nTo continue, run the same command "
            f"again: {markup(command)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(interrupted.exit_code) from None
    finally:
        progress.stop()
