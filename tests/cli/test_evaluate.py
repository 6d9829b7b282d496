"""`imdb-rnn eval`."""

import json
import shutil

from conftest import (
    build_reviews,
    write_archive,
)
from imdb_rnn.cli import app

from .helpers import parsed_json


def test_eval_confusion_png(runner, tmp_path, trained_model_dir, imdb_archive):
    """eval --confusion-png saves a picture of the confusion matrix that decodes."""
    import matplotlib.image

    path = tmp_path / "confusion.png"
    args = ["eval", str(trained_model_dir), "--data", str(imdb_archive), "--json"]
    parsed_json(runner.invoke(app, [*args, "--confusion-png", str(path)]))
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 300


def test_eval_table(runner, tmp_path, trained_model_dir, imdb_archive):
    """eval without --json renders a table with accuracy and the confusion matrix, and says
    where --confusion-png wrote."""
    picture = tmp_path / "confusion.png"
    args = ["eval", str(trained_model_dir), "--data", str(imdb_archive), "--split", "valid"]
    result = runner.invoke(app, [*args, "--confusion-png", str(picture)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "true pos" in result.stdout
    assert f"Confusion matrix: {picture}" in result.stdout and picture.is_file()


def test_eval_valid_warns_about_a_limited_training_pool(runner, tmp_path, trained_model_dir):
    """`eval --split valid` on a model trained with --limit warns that the full validation split
    holds its training reviews, and names the --limit that gives its own; with it, no warning."""
    model = tmp_path / "limited"
    shutil.copytree(trained_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["data"]["limit"] = 30
    (model / "config.json").write_text(json.dumps(config))
    archive = write_archive(tmp_path / "a.tar.gz", build_reviews(train=20, test=5, unsup=0))
    args = ["eval", str(model), "--data", str(archive), "--split", "valid", "--json"]
    warned = runner.invoke(app, args)
    assert warned.exit_code == 0, warned.output
    assert "warning:" in warned.stderr and "Evaluate with --limit 30" in warned.stderr
    same = runner.invoke(app, [*args, "--limit", "30"])
    assert same.exit_code == 0 and "warning" not in same.stderr


def test_eval_table_for_three_classes(runner, topic_model_dir, topic_files):
    """eval prints per-class metrics and the 3 x 3 confusion matrix with the class names."""
    result = runner.invoke(app, ["eval", str(topic_model_dir), "--test", str(topic_files["test"])])
    assert result.exit_code == 0, result.output
    for needle in ("Per class", "macro F1", "Confusion matrix", "animal", "colour", "number"):
        assert needle in result.stdout
