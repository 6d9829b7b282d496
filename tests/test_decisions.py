"""Tests for decisions: class weights, ranking and calibration metrics, and a tuned threshold
saved with the model that predict, serve and the export use."""

import json
import random
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_review, tiny_config
from imdb_rnn.cli._app import app
from imdb_rnn.config import CONFIG_VERSION, RunConfig, TrainingConfig
from imdb_rnn.errors import ConfigError
from imdb_rnn.inference import calibration
from imdb_rnn.inference.decision import DECISION_FILE, Decision, read_decision, write_decision


@pytest.fixture
def runner():
    return CliRunner()


# -- class weights -------------------------------------------------------------------------------


def test_class_weight_config_is_normalised_validated_and_saved():
    """A mapping is written as 'label=weight,...'; bad specs are refused; the config is v8."""
    assert TrainingConfig(class_weight={"neg": 1, "pos": 9.5}).class_weight == "neg=1,pos=9.5"
    assert TrainingConfig(class_weight="balanced").class_weight == "balanced"
    for bad in ("heavy", "neg=-1", "pos=", "", {"pos": "x"}):
        with pytest.raises(ConfigError, match="class_weight"):
            TrainingConfig(class_weight=bad)
    config = RunConfig().replace(training={"class_weight": "neg=1,pos=4"})
    values = config.to_dict()
    assert values["version"] == CONFIG_VERSION == 9
    assert RunConfig.from_dict(values).training.class_weight == "neg=1,pos=4"


def _imbalanced_splits():
    import tensorflow as tf

    from imdb_rnn import ImdbSplits

    rng = random.Random(3)

    def pairs(negative, positive):
        rows = [(make_review(rng, "neg"), 0) for _ in range(negative)]
        rows += [(make_review(rng, "pos"), 1) for _ in range(positive)]
        rng.shuffle(rows)
        return tf.data.Dataset.from_tensor_slices(([t for t, _ in rows], [y for _, y in rows]))

    train, test = pairs(90, 10), pairs(30, 30)
    sizes = {"train": 100, "valid": 60, "test": 60, "unsupervised": 100}
    unlabelled = train.map(lambda text, label: (text, -1))
    return ImdbSplits(train, test, test, unlabelled, sizes=sizes, source="90/10")


@pytest.mark.slow
def test_balanced_class_weights_raise_the_minority_recall():
    """On a 90/10 set, class_weight='balanced' weighs pos 5.0 and neg 0.56, and the minority
    class's recall on a balanced test set rises."""
    from imdb_rnn import Trainer

    splits = _imbalanced_splits()
    recalls = {}
    for weights in (None, "balanced"):
        config = tiny_config(epochs=2, class_weight=weights).replace(model={"dense_units": ()})
        trainer = Trainer(config, strategy="default")
        trainer.fit(splits)
        recalls[weights] = trainer.evaluate(splits["test"]).per_class[1]["recall"]
        if weights:
            assert trainer.class_weights == pytest.approx([100 / 180, 5.0])
    assert recalls["balanced"] > recalls[None] + 0.2, recalls


def test_class_weights_from_counts():
    """Balanced weights from class counts (as `train --on-disk` counts them); named weights."""
    from imdb_rnn import Trainer

    balanced = Trainer(tiny_config(class_weight="balanced"), strategy="default")
    assert balanced.class_weights_from_counts([90, 10]) == pytest.approx([100 / 180, 5.0])
    named = Trainer(tiny_config(class_weight="pos=3"), strategy="default")
    assert named.class_weights_from_counts([0, 0]) == [1.0, 3.0]
    assert Trainer(tiny_config(), strategy="default").class_weights_from_counts([1, 1]) is None


def test_class_weight_naming_an_unknown_class_is_refused():
    """Explicit weights must name the model's classes."""
    from imdb_rnn import Trainer

    config = tiny_config(epochs=1, class_weight="neg=1,positive=3")
    with pytest.raises(ConfigError, match="positive"):
        Trainer(config, strategy="default").fit(_imbalanced_splits())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--class-weight", "heavy", "--output", "{tmp}/run"], "class_weight"),
        (["eval", "{topics}", "--test", "{test}", "--tune-threshold", "f1"], "two-class"),
    ],
    ids=["bad-class-weight", "threshold-for-three-classes"],
)
def test_decision_mistakes_get_one_clear_line(
    runner, tmp_path, topic_model_dir, topic_files, args, needle
):
    """A bad --class-weight and --tune-threshold on a three-class model are usage errors."""
    args = [
        arg.replace("{tmp}", str(tmp_path))
        .replace("{topics}", str(topic_model_dir))
        .replace("{test}", str(topic_files["test"]))
        for arg in args
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output


# -- metrics -------------------------------------------------------------------------------------


def test_auc_average_precision_and_ties():
    """ROC-AUC counts ties half; average precision matches the step-wise PR area."""
    assert calibration.roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert calibration.roc_auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert calibration.roc_auc(np.array([0.1, 0.9]), np.array([1, 1])) is None
    scores, labels = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])
    assert calibration.average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2)
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    assert calibration.macro_roc_auc(probabilities, np.array([0, 1, 2])) == 1.0


def test_calibration_error_and_temperature():
    """Over-confident logits have a large ECE; the fitted temperature (> 1) lowers it."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    # Scores ~ N(+-1, 1): the calibrated logit is 2 x score; 4 x score is twice too confident.
    hot = ((labels * 2 - 1) + rng.normal(0, 1.0, 2000)) * 4

    def ece(values):
        p = 1 / (1 + np.exp(-values))
        return calibration.expected_calibration_error(np.stack([1 - p, p], axis=1), labels)

    temperature = calibration.fit_temperature(hot, labels)
    assert 1.7 < temperature < 2.3
    assert ece(hot / temperature) < ece(hot) / 3


def test_tune_threshold_maximises_the_metric():
    """The tuned threshold separates the classes when it can; recall prefers a low one."""
    scores, labels = np.array([0.1, 0.2, 0.3, 0.35, 0.9]), np.array([0, 0, 1, 1, 1])
    assert calibration.tune_threshold(scores, labels, "accuracy") == (0.3, 1.0)
    assert calibration.tune_threshold(scores, labels, "f1") == (0.3, 1.0)
    with pytest.raises(ValueError, match="metric"):
        calibration.tune_threshold(scores, labels, "auc")


@pytest.mark.slow
def test_eval_reports_auc_and_calibration_and_draws_the_reliability_diagram(
    runner, tmp_path, trained_model_dir, imdb_archive, topic_model_dir, topic_files
):
    """eval --json has roc_auc, pr_auc and ece (two classes) and the macro AUC (three);
    --reliability-png writes a PNG."""
    picture = tmp_path / "reliability.png"
    args = ["eval", str(trained_model_dir), "--data", str(imdb_archive)]
    result = runner.invoke(app, [*args, "--json", "--reliability-png", str(picture)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert 0 <= metrics["roc_auc"] <= 1 and 0 <= metrics["pr_auc"] <= 1 and metrics["ece"] >= 0
    assert metrics["threshold"] == 0.5 and len(metrics["reliability"]) == 10
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = runner.invoke(app, args).stdout
    assert "ROC-AUC" in table and "PR-AUC" in table and "ECE" in table
    three = runner.invoke(
        app, ["eval", str(topic_model_dir), "--test", str(topic_files["test"]), "--json"]
    )
    metrics = json.loads(three.stdout)
    assert 0 <= metrics["roc_auc"] <= 1 and metrics["pr_auc"] is None


# -- a tuned threshold ---------------------------------------------------------------------------


@pytest.fixture
def tuned_copy(tmp_path, trained_model_dir):
    """A copy of the shared model, free to get a decision."""
    copy = tmp_path / "model"
    shutil.copytree(trained_model_dir, copy)
    return copy


def test_eval_tune_threshold_saves_the_decision_and_the_card_says_it(
    runner, tuned_copy, imdb_archive
):
    """eval --tune-threshold f1 --split valid --calibrate writes decision.json and the card."""
    args = ["eval", str(tuned_copy), "--data", str(imdb_archive), "--split", "valid"]
    result = runner.invoke(app, [*args, "--tune-threshold", "f1", "--calibrate"])
    assert result.exit_code == 0, result.output
    assert "Saved threshold" in result.stdout and DECISION_FILE in result.stdout
    decision = read_decision(tuned_copy)
    assert 0 <= decision.threshold <= 1 and decision.metric == "f1"
    assert decision.split == "valid" and decision.temperature > 0
    assert "## Decision" in (tuned_copy / "README.md").read_text(encoding="utf-8")
    again = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert again["threshold"] == pytest.approx(decision.threshold)


@pytest.mark.slow
def test_a_saved_threshold_changes_what_predict_serve_and_the_export_answer(runner, tuned_copy):
    """A positive review is pos at 0.5; with a saved threshold of 1.0 predict (CLI and
    Python), serve and the SavedModel export all answer neg."""
    import tensorflow as tf
    from starlette.testclient import TestClient

    import imdb_rnn
    from imdb_rnn.deploy.export import export_saved_model
    from imdb_rnn.deploy.serve import create_app

    review = "great wonderful superb moving brilliant film"
    assert imdb_rnn.load(tuned_copy)([review])[0]["label"] == "pos"
    write_decision(tuned_copy, Decision(threshold=1.0, metric="precision", split="valid"))
    assert imdb_rnn.load(tuned_copy)([review])[0]["label"] == "neg"
    assert imdb_rnn.load(tuned_copy, threshold=0.5)([review])[0]["label"] == "pos"
    result = runner.invoke(app, ["predict", str(tuned_copy), review, "--json"])
    assert json.loads(result.stdout)[0]["label"] == "neg"
    with TestClient(create_app(tuned_copy)) as client:
        body = {"instances": [review]}
        answer = client.post("/v1/models/imdb-rnn:predict", json=body).json()
        assert answer["predictions"][0]["label"] == "neg"
        assert answer["predictions"][0]["probability"] > 0.5
    exported = export_saved_model(tuned_copy, tuned_copy.parent / "export")
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    outputs = serve(text=tf.constant([review]))
    assert outputs["label"].numpy().tolist() == [b"neg"]
    assert float(outputs["probability"][0]) > 0.5
