"""Tests for imdb_rnn.deploy.export: a SavedModel that serves raw strings without imdb-rnn."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from imdb_rnn.cli._app import app
from imdb_rnn.deploy import export as export_module
from imdb_rnn.deploy.export import export_saved_model
from imdb_rnn.errors import EXIT_USAGE, ExportTargetError
from imdb_rnn.training.trainer import Trainer

# Runs in a fresh interpreter that cannot import imdb_rnn (whether or not it is installed).
_LOAD_WITHOUT_IMDB_RNN = r"""
import json, os, sys

class _NoImdbRnn:
    def find_spec(self, name, path=None, target=None):
        if name == "imdb_rnn" or name.startswith("imdb_rnn."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, _NoImdbRnn())
try:
    import imdb_rnn  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("imdb_rnn is importable")

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

export_dir, texts_path, out_path = sys.argv[1:]
texts = json.load(open(texts_path, encoding="utf-8"))
serve = tf.saved_model.load(export_dir).signatures["serving_default"]
_, inputs = serve.structured_input_signature
proto = saved_model_pb2.SavedModel()
proto.ParseFromString(open(os.path.join(export_dir, "saved_model.pb"), "rb").read())
meta_graph = proto.meta_graphs[0]
outputs = serve(text=tf.constant(texts))
json.dump(
    {
        "input": [inputs["text"].dtype.name, inputs["text"].shape.as_list()],
        "outputs": {
            k: [v.dtype.name, v.shape.as_list()] for k, v in serve.structured_outputs.items()
        },
        "probability": outputs["probability"].numpy().tolist(),
        "tags": list(meta_graph.meta_info_def.tags),
        "method": meta_graph.signature_def["serving_default"].method_name,
        "imdb_rnn_loaded": any(name.startswith("imdb_rnn") for name in sys.modules),
    },
    open(out_path, "w"),
)
"""


def _hundred_reviews(fixture_reviews):
    """100 reviews: 60 of the fixture's reviews, edge cases, and variants of them."""
    base = [text for _, text in sorted(fixture_reviews.items())][::2][:60]
    odd = [
        "",
        "   ",
        "GREAT!!! SUPERB!!!",
        "awful<br /><br />boring",
        "Café, naïve, 😀 wonderful",
        "odd\x85word and\u2028more",
        "unknownword " * 50,
        "great " * 300,
        "the worst film",
        "a",
    ]
    variants = [text.upper() for text in base[:15]] + [text + " " + text for text in base[15:30]]
    texts = base + odd + variants
    assert len(texts) == 100
    return texts


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_model_dir):
    out = tmp_path_factory.mktemp("export") / "imdb_rnn" / "1"
    export_saved_model(trained_model_dir, out)
    return out


@pytest.mark.slow
def test_export_serves_strings_without_imdb_rnn(
    tmp_path, exported, trained_model_dir, fixture_reviews
):
    """A fresh process without imdb_rnn loads the export; its probabilities match the model's."""
    texts = _hundred_reviews(fixture_reviews)
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_IMDB_RNN, str(exported), "texts.json", "out.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["input"] == ["string", [None]]
    assert result["outputs"]["probability"] == ["float32", [None]]
    assert "serve" in result["tags"] and result["method"] == "tensorflow/serving/predict"
    assert not result["imdb_rnn_loaded"]
    expected = Trainer.load(trained_model_dir).predict_proba(texts)
    np.testing.assert_allclose(result["probability"], expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.5  # the comparison covers confident answers of both kinds


def test_export_records_the_config(exported, trained_model_dir):
    """The export carries the run's config.json in assets.extra/ for the record."""
    copied = exported / "assets.extra" / "imdb_rnn_config.json"
    assert copied.read_text() == (trained_model_dir / "config.json").read_text()


def _earlier_export(out):
    """A folder that looks like an earlier export, with a file to tell it apart."""
    out.mkdir()
    (out / "saved_model.pb").write_bytes(b"old")
    (out / "keep.txt").write_text("mine")
    return out


def test_export_refuses_to_replace_without_overwrite(tmp_path, trained_model_dir):
    """An existing export is kept unless overwrite=True, which replaces it."""
    out = _earlier_export(tmp_path / "out")
    with pytest.raises(FileExistsError):
        export_saved_model(trained_model_dir, out)
    assert (out / "keep.txt").read_text() == "mine"
    export_saved_model(trained_model_dir, out, overwrite=True)
    assert (out / "saved_model.pb").is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary leftovers


def test_overwrite_replaces_only_an_export(tmp_path, trained_model_dir):
    """overwrite=True does not replace a folder that is not an export, nor a file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportTargetError, match="not an export"):
        export_saved_model(trained_model_dir, out, overwrite=True)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ExportTargetError, match="not a folder"):
        export_saved_model(trained_model_dir, tmp_path / "file", overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    assert (tmp_path / "file").read_text() == "mine"


def test_export_never_replaces_the_model_folder_or_a_parent(tmp_path, trained_model_dir):
    """The model folder, its parent and any folder above it are refused as the target, with
    overwrite too, and the model is left whole (the CLI exits with 2)."""
    runs = tmp_path / "runs"
    model = shutil.copytree(trained_model_dir, runs / "m1")
    (runs / "m2").mkdir()
    before = sorted(p.name for p in model.iterdir())
    for target in (model, runs, tmp_path, model / ".." / "m1"):
        with pytest.raises(ExportTargetError, match="outside the model folder"):
            export_saved_model(model, target, overwrite=True)
        result = CliRunner().invoke(app, ["export", str(model), str(target), "--overwrite"])
        assert result.exit_code == EXIT_USAGE, result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in model.iterdir()) == before
    assert (runs / "m2").is_dir()


@pytest.mark.slow
def test_export_removes_what_a_killed_export_left(tmp_path, trained_model_dir):
    """Temporary folders of an export killed with SIGKILL are deleted by the next export; those
    of a running export are kept."""
    code = (
        "import os, sys, time; from imdb_rnn.deploy import export; "
        "export._check_signature = lambda d: os.kill(os.getpid(), 9); "
        "export.export_saved_model(sys.argv[1], sys.argv[2])"
    )
    out = tmp_path / "out"
    killed = subprocess.run(
        [sys.executable, "-c", code, str(trained_model_dir), str(out)],
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.") and left[0].endswith(".tmp")
    running = tmp_path / f".out.{os.getpid()}.abc.tmp"
    running.mkdir()
    export_saved_model(trained_model_dir, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", running.name])


@pytest.mark.slow
def test_failed_export_leaves_the_old_one(tmp_path, trained_model_dir, monkeypatch):
    """An export that fails before the rename leaves the old directory and no temporary files."""
    out = _earlier_export(tmp_path / "out")

    def broken(directory):
        raise RuntimeError("signature check failed")

    monkeypatch.setattr(export_module, "_check_signature", broken)
    with pytest.raises(RuntimeError, match="signature"):
        export_saved_model(trained_model_dir, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_export_made_on_a_gpu_runs_on_a_cpu(tmp_path, monkeypatch, cell):
    """With a GPU visible while tracing (simulated), the export still holds no cuDNN ops, which
    a CPU-only model server could not run."""
    import importlib

    import keras
    import tensorflow as tf

    from imdb_rnn import devices
    from imdb_rnn.config import get_preset
    from imdb_rnn.layers import TextEncoder
    from imdb_rnn.models import build_classifier, build_text_model

    config = get_preset("default").replace(
        model={"cell": cell, "max_tokens": 20, "embedding_dim": 4, "rnn_units": 2}
    )
    encoder = TextEncoder(max_tokens=20)
    encoder.adapt(tf.constant(["a good film", "a bad film"]))
    classifier = build_classifier(config.model)
    Trainer(config, encoder=encoder, classifier=classifier).save(tmp_path / "model")
    monkeypatch.setattr(devices, "gpu_visible", lambda: True)
    keras_tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    monkeypatch.setattr(keras_tf_rnn, "_is_gpu_available", lambda: True)

    # Control: without the export's care, this simulation does put cuDNN ops in the graph.
    text_model = build_text_model(encoder, classifier)
    traced = tf.function(lambda text: text_model(text, training=False)).get_concrete_function(
        tf.TensorSpec([None], tf.string)
    )
    if "CudnnRNN" not in str(traced.graph.as_graph_def()):
        pytest.skip(f"cannot simulate a GPU with Keras {keras.__version__}")

    out = export_saved_model(tmp_path / "model", tmp_path / "export")
    assert b"CudnnRNN" not in (out / "saved_model.pb").read_bytes()


@pytest.mark.slow
def test_export_of_three_classes_serves_label_and_scores(tmp_path, topic_model_dir):
    """A three-class export returns the label name, its score and every class's score."""
    import tensorflow as tf

    out = export_saved_model(topic_model_dir, tmp_path / "out")
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    texts = ["a red and blue film", "the cat and the dog"]
    result = serve(text=tf.constant(texts))
    assert [label.decode() for label in result["label"].numpy()] == ["colour", "animal"]
    expected = Trainer.load(topic_model_dir).class_probabilities(texts)
    np.testing.assert_allclose(result["scores"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(result["score"].numpy(), expected.max(axis=1), atol=1e-5)
    assert json.loads((out / "assets.extra" / "labels.json").read_text()) == [
        "animal",
        "colour",
        "number",
    ]
