"""Fixtures of the command-line tests."""

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner():
    return CliRunner()
