"""Tests for imdb_rnn.deploy.plots: the PNG pictures of a run."""

import matplotlib.image
import numpy as np
import pytest

from imdb_rnn.deploy.plots import save_confusion_matrix, save_training_curves

HISTORY = {
    "loss": [0.69, 0.5, 0.4],
    "val_loss": [0.6, 0.45, 0.47],
    "accuracy": [0.55, 0.75, 0.82],
    "val_accuracy": [0.6, 0.78, 0.77],
    "learning_rate": [1e-3, 1e-3, 1e-3],
}


def _decoded(path):
    """The picture as an (height, width, channels) array; fails if it is not a PNG."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_training_curves_png_decodes(tmp_path):
    """The curves picture is a real, wide, non-blank PNG."""
    image = _decoded(save_training_curves(HISTORY, tmp_path / "curves.png", best_epoch=2))
    height, width = image.shape[:2]
    assert (width, height) == (1000, 400)
    assert np.ptp(image[..., :3]) > 0.5  # something was drawn


@pytest.mark.parametrize("classes", [2, 6])
def test_training_curves_have_fixed_scales_and_a_chance_line(classes):
    """Accuracy is drawn from 0 to 1 and loss from 0, each with the chance level (1 / classes,
    ln(classes)): a flat run that learned nothing (loss 0.689 -> 0.693) looks flat."""
    import math

    from imdb_rnn.deploy.plots import _training_curves

    flat = {"loss": [0.689, 0.693], "val_loss": [0.69, 0.692], "accuracy": [0.5, 0.49]}
    figure = _training_curves(flat, best_epoch=None, title=None, classes=classes)
    loss, accuracy = figure.axes
    assert accuracy.get_ylim() == (0.0, 1.0)
    assert loss.get_ylim()[0] == 0.0 and loss.get_ylim()[1] >= math.log(classes)
    for axes, level in ((loss, math.log(classes)), (accuracy, 1 / classes)):
        lines = [line for line in axes.get_lines() if line.get_label().startswith("chance")]
        assert len(lines) == 1 and lines[0].get_ydata()[0] == pytest.approx(level)


def test_training_curves_need_a_loss(tmp_path):
    """An empty history is a ValueError, and no file is left behind."""
    with pytest.raises(ValueError, match="loss"):
        save_training_curves({}, tmp_path / "curves.png")
    assert list(tmp_path.iterdir()) == []


def test_confusion_matrix_png_decodes(tmp_path):
    """The confusion-matrix picture is a real PNG of the expected size, in a new folder."""
    image = _decoded(save_confusion_matrix([[90, 10], [5, 95]], tmp_path / "sub" / "c.png"))
    height, width = image.shape[:2]
    assert (width, height) == (500, 450)


@pytest.mark.parametrize("confusion", [[[1, 2]], [[1, 2], [3]], [[1, -2], [3, 4]]])
def test_confusion_matrix_refuses_bad_shapes(tmp_path, confusion):
    """A matrix that is not 2x2 with non-negative counts is a ValueError."""
    with pytest.raises(ValueError, match="confusion"):
        save_confusion_matrix(confusion, tmp_path / "c.png")


def test_train_saves_curves_beside_the_model(trained_model_dir):
    """train() writes curves.png into the model directory."""
    image = _decoded(trained_model_dir / "curves.png")
    assert image.shape[0] >= 300 and image.shape[1] >= 600
