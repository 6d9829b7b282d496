"""The examples in the package's docstrings run and print what they show (doctest)."""

import doctest
import importlib
import io
import pkgutil

import pytest

import imdb_rnn

MODULES = [
    "imdb_rnn",
    *sorted(
        info.name
        for info in pkgutil.walk_packages(imdb_rnn.__path__, "imdb_rnn.")
        if not info.name.endswith("__main__")  # importing it runs the command line
    ),
]
# Modules whose docstrings are expected to hold examples: losing them all is a regression.
WITH_EXAMPLES = {
    "imdb_rnn",
    "imdb_rnn.config",
    "imdb_rnn.inference.explain",
    "imdb_rnn.inference.predictions",
    "imdb_rnn.files",
    "imdb_rnn.layers",
    "imdb_rnn.models",
    "imdb_rnn.deploy.plots",
    "imdb_rnn.progress",
    "imdb_rnn.config.toml",
    "imdb_rnn.training.trainer",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    """Every `>>>` example of the module gives the output written under it."""
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.write)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, report.getvalue()
    if name in WITH_EXAMPLES:
        assert results.attempted > 0, f"{name} lost its docstring examples"
