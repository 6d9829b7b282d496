"""The `imdb-rnn` command line: a Typer app (`imdb_rnn.cli._app`) with one module per command.

Importing it imports no TensorFlow: each command imports what it needs when it runs.
"""

from imdb_rnn.cli._app import app, main

__all__ = ["app", "main"]
