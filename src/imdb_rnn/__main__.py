"""`python -m imdb_rnn` runs the command-line interface."""

from imdb_rnn.cli import main

main()
