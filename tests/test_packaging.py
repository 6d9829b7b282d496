"""Tests for imdb_rnn.deploy.packaging (`imdb-rnn package`) and the model card's front matter."""

import json
import os
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from imdb_rnn.cli._app import app
from imdb_rnn.deploy.packaging import installed_models, package_model, resolve_model_dir


def _install(wheel, target):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


@pytest.fixture(scope="module")
def tiny_wheel(tmp_path_factory, trained_model_dir):
    """The shared model packaged by `imdb-rnn package --name tiny`."""
    dist = tmp_path_factory.mktemp("dist")
    result = CliRunner().invoke(
        app, ["package", str(trained_model_dir), "-o", str(dist), "--name", "tiny", "--json"]
    )
    assert result.exit_code == 0, result.output
    wheel = dist / "imdb_rnn_model_tiny-0.1.0-py3-none-any.whl"
    assert json.loads(result.stdout)["wheel"] == str(wheel)
    return wheel


@pytest.mark.slow
def test_a_packaged_model_installs_and_predicts_by_name(
    tmp_path, tiny_wheel, trained_model_dir, monkeypatch
):
    """`imdb-rnn package` writes a wheel that pip installs (no build, no network); installed,
    `imdb_rnn.load(NAME)` and `imdb-rnn predict NAME` find it by name."""
    with zipfile.ZipFile(tiny_wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read("imdb_rnn_model_tiny-0.1.0.dist-info/METADATA").decode()
    assert {"imdb_rnn_model_tiny/model/model.keras", "imdb_rnn_model_tiny/__init__.py"} <= names
    assert "Requires-Dist: imdb-rnn" in metadata and "library_name: imdb-rnn" in metadata
    target = _install(tiny_wheel, tmp_path / "site")
    monkeypatch.syspath_prepend(str(target))
    assert installed_models()["tiny"] == target / "imdb_rnn_model_tiny" / "model"
    import imdb_rnn

    expected = imdb_rnn.load(trained_model_dir)(["a great superb film"])
    assert imdb_rnn.load("tiny")(["a great superb film"]) == expected
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["predict", "tiny", "a great superb film", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["label"] == expected[0]["label"]


@pytest.mark.slow
def test_a_packaged_model_predicts_in_a_fresh_process(tmp_path, tiny_wheel):
    """Installed with pip, the packaged model predicts by name in a new process."""
    target = _install(tiny_wheel, tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{os.environ['PYTHONPATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "imdb_rnn", "predict", "tiny", "a great superb film", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)[0]["label"] in ("neg", "pos")


def test_package_refuses_bad_names_and_folders(tmp_path, trained_model_dir):
    """A name that is not a Python identifier's kind, a bad version and a folder without a
    model are refused; a path that exists is never taken for a name."""
    with pytest.raises(ValueError, match="name"):
        package_model(trained_model_dir, tmp_path, name="Bad-Name")
    with pytest.raises(ValueError, match="version"):
        package_model(trained_model_dir, tmp_path, name="ok", version="one")
    from imdb_rnn.errors import ModelFileError

    with pytest.raises(ModelFileError, match="holds no"):
        package_model(tmp_path, tmp_path / "dist")
    assert resolve_model_dir(trained_model_dir) == trained_model_dir
    assert resolve_model_dir("no_such_model") == type(trained_model_dir)("no_such_model")


def test_model_card_has_hugging_face_front_matter(trained_model_dir):
    """README.md starts with YAML front matter: library_name, tags, datasets, metrics and a
    model-index with the test accuracy."""
    card = (trained_model_dir / "README.md").read_text(encoding="utf-8")
    front, _, body = card.removeprefix("---\n").partition("\n---\n")
    assert card.startswith("---\nlibrary_name: imdb-rnn\n")
    for needle in (
        "pipeline_tag: text-classification",
        "tags:\n- imdb-rnn",
        'datasets:\n- "imdb"',
        "metrics:\n- accuracy",
        "model-index:",
        "split: test",
        "- type: accuracy",
    ):
        assert needle in front, needle
    metrics = json.loads((trained_model_dir / "metrics.json").read_text())
    assert f"value: {metrics['test']['accuracy']:.4f}" in front
    assert body.lstrip().startswith("# run")
