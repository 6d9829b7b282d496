"""Shared by the command-line tests: tiny model options and result checks."""

import json

TINY = [
    "--max-tokens",
    "50",
    "--embedding-dim",
    "8",
    "--rnn-units",
    "4",
    "--dense-units",
    "4",
    "--batch-size",
    "8",
    "--learning-rate",
    "0.01",
    # The default's adversarial epsilon is sized for 64-d embeddings of 256-token reviews.
    "--adversarial-epsilon",
    "0",
    "--word-dropout",
    "0",
    # The default's self-training would train every model twice.
    "--pseudo-label-threshold",
    "0",
]


def parsed_json(result):
    """The JSON document a successful command printed on stdout."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_clear_line(result, code, needle):
    """The command failed with `code`, saying `needle` on stderr."""
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    # Stage lines ("» Reading data") may come first; the problem itself is one line.
    problem = [line for line in result.stderr.splitlines() if line and not line.startswith("»")]
    assert len(problem) == 1 and problem[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)
