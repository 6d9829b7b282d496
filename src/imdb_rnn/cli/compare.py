"""`imdb-rnn compare`: compare runs (`imdb_rnn.inference.modelinfo.compare_runs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from imdb_rnn.cli._errors import EXIT_DATA, fail
from imdb_rnn.cli._options import JsonOption
from imdb_rnn.cli._render import markup, print_json, runs_table, stderr

__all__ = ["compare"]


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
    from imdb_rnn.inference.modelinfo import compare_runs

    summaries = compare_runs(list(runs))
    if png is not None:
        from imdb_rnn.deploy.plots import save_compared_curves

        histories = {run.name: run.history for run in summaries if run.history.get("loss")}
        if not histories:
            fail("None of these runs has a history.json with losses to draw.", EXIT_DATA)
        save_compared_curves(histories, png, title=f"{len(histories)} runs compared")
    if as_json:
        print_json([run.to_dict() for run in summaries])
        return
    out = Console()
    rows = [
        ((run.name, split), values)
        for run in summaries
        for split, values in (("valid", run.valid), ("test", run.test))
        if values
    ]
    table = runs_table(rows, ("run", "split"), title=f"{len(summaries)} runs")
    out.print(table)
    details = Table(title="Training")
    for column in ("run", "preset", "epochs", "kept epoch", "seconds"):
        details.add_column(column, justify="left" if column in ("run", "preset") else "right")
    for run in summaries:
        details.add_row(
            markup(run.name),
            str(run.preset or ""),
            "" if run.epochs is None else str(run.epochs),
            "" if run.best_epoch is None else str(run.best_epoch),
            "" if run.train_seconds is None else f"{run.train_seconds:.0f}",
        )
    out.print(details)
    if png is not None:
        stderr().print(f"Saved the curves to {markup(png)}.", highlight=False)
