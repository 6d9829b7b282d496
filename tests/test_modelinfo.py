"""inference.modelinfo and the `info` / `compare` commands: a look inside models."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from imdb_rnn.cli._app import app
from imdb_rnn.inference.modelinfo import compare_runs, model_info


@pytest.fixture
def runner():
    return CliRunner()


def test_model_info_lists_layers_vocabulary_and_training(trained_model_dir):
    """Layers with shapes and parameters that add up to the model's, the vocabulary and its
    most frequent words, labels, data, config and versions."""
    described = model_info(trained_model_dir, top_words=5)
    kinds = [layer.kind for layer in described.layers]
    assert "Embedding" in kinds and kinds[-1] == "Dense"
    assert sum(layer.params for layer in described.layers) == described.total_params > 0
    embedding = described.layers[kinds.index("Embedding")]
    assert embedding.output_shape == "(None, None, 8)" and embedding.params == 50 * 8
    assert described.vocabulary_size == 32 and len(described.top_words) == 5
    assert "[UNK]" not in described.top_words
    assert described.labels == ["neg", "pos"] and described.sizes["train"] == 72
    assert described.config["model"]["rnn_units"] == 4
    assert set(described.metrics) == {"valid", "test"} and "keras" in described.versions


def test_info_renders_a_table_and_json(runner, trained_model_dir):
    """`info` prints the layer table, the model facts and the metrics; --json the same data."""
    result = runner.invoke(app, ["info", str(trained_model_dir)])
    assert result.exit_code == 0, result.output
    for needle in (
        "Layer (type)",
        "Output Shape",
        "embedding (Embedding)",
        "Total params",
        "most frequent",
        "vocabulary",
        "ROC-AUC",
        "model.rnn_units",
        "keras",
    ):
        assert needle in result.stdout, needle
    data = json.loads(runner.invoke(app, ["info", str(trained_model_dir), "--json"]).stdout)
    assert data["labels"] == ["neg", "pos"] and data["layers"][1]["kind"] == "Embedding"


def test_compare_renders_one_table_and_one_picture(
    runner, tmp_path, trained_model_dir, topic_model_dir
):
    """`compare` prints one row per run and split, and --png overlays their curves."""
    picture = tmp_path / "compared.png"
    args = ["compare", str(trained_model_dir), str(topic_model_dir), "--png", str(picture)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("valid") == 2 and result.stdout.count("test") >= 2
    assert "ROC" in result.stdout and "ECE" in result.stdout
    assert picture.read_bytes()[:4] == b"\x89PNG"
    runs = json.loads(runner.invoke(app, [*args[:3], "--json"]).stdout)
    assert [run["name"] for run in runs] == [
        f"{trained_model_dir.parent.name}/run",
        f"{topic_model_dir.parent.name}/run",
    ]


def test_compare_names_runs_of_the_same_folder_name_by_path(tmp_path, trained_model_dir):
    """Two folders called `run` are told apart by their parents, else their paths; a folder
    that is no run is refused."""
    other = tmp_path / "a" / trained_model_dir.parent.name / "run"
    shutil.copytree(trained_model_dir, other)
    names = [run.name for run in compare_runs([trained_model_dir, other])]
    assert names == [str(trained_model_dir), str(other)]
    from imdb_rnn.errors import ModelFileError

    with pytest.raises(ModelFileError, match="holds no"):
        compare_runs([tmp_path])
