"""The `imdb-rnn` Typer app: its commands, each in a module of its own, and `main`.

Each command module holds one command function that parses its options, calls one library
function and renders what it returns; this module registers them, and its command group maps
every error for a user's mistake to one line and an exit code (`_errors.report`).
"""

from __future__ import annotations

import signal
import sys
from contextlib import suppress
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from imdb_rnn.cli import (
    compare,
    evaluate,
    export,
    info,
    package,
    predict,
    presets,
    pretrain,
    serve,
    train,
    vectors,
)
from imdb_rnn.cli._errors import EXIT_INTERNAL, fail, report, stdout_closed
from imdb_rnn.cli._render import stderr
from imdb_rnn.errors import ImdbRnnError

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """The command group: a user's mistake (an `ImdbRnnError`) becomes one error line and its
    exit code, an unexpected error one line saying it is a bug (the traceback shows with
    --debug), and Ctrl-C outside training exits with 130 instead of a traceback."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags(command, ctx)
            _literal_help(command, ctx)
            _usage_names(command, ctx)
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
            stdout_closed()
        except (ImdbRnnError, OSError) as error:  # a user's mistake, or the file system's
            report(error)
        except KeyboardInterrupt as error:
            stderr().print("Interrupted.", highlight=False)
            raise typer.Exit(getattr(error, "exit_code", 128 + signal.SIGINT)) from None
        except Exception as error:
            if hasattr(error, "exit_code") or (ctx.obj or {}).get("debug"):
                raise  # a usage error for Typer to report, or --debug
            detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
            fail(
                f"internal error ({type(error).__name__}{': ' + detail if detail else ''}). "
                "This is a bug in imdb-rnn: please report it with the traceback that "
                "'imdb-rnn --debug ...' shows.",
                EXIT_INTERNAL,
            )


def _plain_flags(command: Any, ctx: Any) -> None:
    """Shows flags in `--help` without a value type: Typer labels them `<bool>`, though they
    take no value."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def _usage_names(command: Any, ctx: Any) -> None:
    """Shows the arguments in the usage line as Click and `--help`'s tables name them
    (`MODEL_DIR [TEXTS]...`); Typer writes a required one as `{model_dir}`."""
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = (param.metavar or param.name or "").upper()
            piece = (name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else "")
            param.get_usage_pieces = lambda ctx, piece=piece: [piece]


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
app.command()(train.train)
app.command()(pretrain.pretrain)
app.command()(presets.presets)
app.command("eval")(evaluate.evaluate)
app.command()(predict.predict)
app.command("export")(export.export_model)
app.command()(serve.serve)
app.command()(info.info)
app.command()(compare.compare)
app.command()(package.package)
app.command()(vectors.vectors)

# Exit codes: 2 is a usage error (Typer's own and ours); the others name the kind of failure.


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
