"""The command line's earlier single module, kept so that `imdb_rnn.cli.commands` imports keep
working: the app, `main` and the exit codes. The commands live in one module each
(`imdb_rnn.cli.train`, `imdb_rnn.cli.predict`, ...), the app in `imdb_rnn.cli._app`.
"""

from __future__ import annotations

from imdb_rnn.cli._app import app, main
from imdb_rnn.cli._render import (
    class_tables as _class_tables,  # noqa: F401
    prediction_table as _prediction_table,  # noqa: F401
    print_explanations as _print_explanations,  # noqa: F401
)
from imdb_rnn.errors import (
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_MODEL,
    EXIT_USAGE,
)

__all__ = [
    "EXIT_DATA",
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_IO",
    "EXIT_MODEL",
    "EXIT_USAGE",
    "app",
    "main",
]
