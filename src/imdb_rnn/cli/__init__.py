"""The `imdb-rnn` command line: a Typer app (`imdb_rnn.cli.commands`) that drives the library.

Importing it imports no TensorFlow: each command imports what it needs when it runs.
"""

from imdb_rnn.cli.commands import app, main

__all__ = ["app", "main"]
