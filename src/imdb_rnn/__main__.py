"""`python -m imdb_rnn` runs the command-line interface."""

from imdb_rnn.cli.commands import main

main()
