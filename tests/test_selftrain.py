"""Self-training (`training.selftrain`): pseudo-labels from a teacher, through `imdb_rnn.train`."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import build_reviews, tiny_config, write_archive
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.errors import ConfigError, DataError
from imdb_rnn.modeldir import MODEL_FILE
from imdb_rnn.training.selftrain import TEACHER_DIR, add_pseudo_labels, pseudo_label
from imdb_rnn.training.workflows import train


class FixedTeacher:
    """A stand-in teacher: positive probability from the words it sees."""

    label_names = ("neg", "pos")

    def class_probabilities(self, texts):
        positive = np.array(
            [0.95 if "great" in t else 0.02 if "awful" in t else 0.6 for t in texts], np.float64
        )
        return np.stack([1 - positive, positive], axis=1)


def test_pseudo_label_keeps_only_confident_texts():
    texts = ["a great film", "so-so", "awful", "great but awful"]
    indices, labels = pseudo_label(FixedTeacher(), texts, 0.9)
    assert indices.tolist() == [0, 2, 3]
    assert labels.tolist() == [1, 0, 1]
    indices, _ = pseudo_label(FixedTeacher(), texts, 0.55)
    assert indices.tolist() == [0, 1, 2, 3]
    assert pseudo_label(FixedTeacher(), [], 0.9)[0].tolist() == []


def test_add_pseudo_labels_extends_train_only(imdb_archive):
    """The confident unlabelled reviews join train with the teacher's labels; valid and test
    are untouched; the same seed gives the same order."""
    splits = load_imdb(imdb_archive)
    teacher = FixedTeacher()
    unlabelled = [t.decode() for t in splits.texts("unsupervised").as_numpy_iterator()]
    expected, _ = pseudo_label(teacher, unlabelled, 0.9)
    assert 0 < len(expected) < len(unlabelled)
    extended, added = add_pseudo_labels(splits, teacher, threshold=0.9, seed=3)
    assert added.added == len(expected) and added.unlabelled == len(unlabelled)
    assert sum(added.per_class.values()) == added.added
    assert extended.sizes["train"] == splits.sizes["train"] + added.added
    pairs = [(t.decode(), int(y)) for t, y in extended["train"].as_numpy_iterator()]
    assert len(pairs) == extended.sizes["train"]
    originals = {(t.decode(), int(y)) for t, y in splits["train"].as_numpy_iterator()}
    new = [(text, label) for text, label in pairs if (text, label) not in originals]
    assert all(label == int("great" in text) for text, label in new)
    assert extended.valid is splits.valid and extended.test is splits.test
    again, _ = add_pseudo_labels(splits, teacher, threshold=0.9, seed=3)
    assert [t for t, _ in again["train"].as_numpy_iterator()] == [t.encode() for t, _ in pairs]
    assert "probability >= 0.9" in added.describe()


def test_add_pseudo_labels_refuses_missing_texts_and_other_classes(imdb_archive):
    splits = load_imdb(imdb_archive, splits=["train", "valid"])
    with pytest.raises(DataError, match="unlabelled"):
        add_pseudo_labels(splits, FixedTeacher(), threshold=0.9, seed=0)
    teacher = FixedTeacher()
    teacher.label_names = ("bad", "good")
    with pytest.raises(ConfigError, match="classes"):
        add_pseudo_labels(load_imdb(imdb_archive), teacher, threshold=0.9, seed=0)


def test_config_checks_the_threshold_and_teacher():
    with pytest.raises(ConfigError, match="pseudo_label_threshold"):
        tiny_config(pseudo_label_threshold=1.5)
    with pytest.raises(ConfigError, match="pseudo_label_threshold above 0"):
        tiny_config(teacher="runs/teacher")


@pytest.mark.slow
def test_train_trains_a_teacher_then_a_student_and_reuses_the_teacher(tmp_path, imdb_archive):
    """`train` with a threshold writes the teacher into output/teacher, labels the unlabelled
    reviews with it and trains the saved student on both; a run resumed in that folder reuses
    the finished teacher, and `training.teacher` names one to use."""
    config = tiny_config(epochs=1, pseudo_label_threshold=0.5)
    output = tmp_path / "run"
    stages: list[str] = []
    result = train(config, source=imdb_archive, output=output, on_stage=stages.append)
    assert (output / TEACHER_DIR / MODEL_FILE).exists() and (output / MODEL_FILE).exists()
    assert "Training the teacher (self-training, step 1 of 2)" in stages
    pseudo = result.pseudo_labels
    assert pseudo is not None and pseudo["unlabelled"] == 30 and pseudo["added"] == 30
    assert result.sizes["train"] == 72 + 30
    assert result.to_dict()["pseudo_labels"]["teacher"] == str(output / TEACHER_DIR)
    assert "labelled 30 of 30 unlabelled texts" in (output / "README.md").read_text()
    assert result.wall_seconds > result.train_seconds  # the whole job, the teacher's training too

    # A student killed before it was saved: the folder holds only the finished teacher.
    for path in output.iterdir():
        if path.name != TEACHER_DIR:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    stages.clear()
    again = train(config, source=imdb_archive, output=output, on_stage=stages.append)
    assert any(stage.startswith("Reusing the teacher trained earlier") for stage in stages)
    assert "Training the teacher (self-training, step 1 of 2)" not in stages
    assert again.history == result.history
    _the_teacher_is_not_reused_with_other_options_or_data(output, config, imdb_archive)

    named = config.replace(training={"teacher": str(output / TEACHER_DIR)})
    stages.clear()
    third = train(named, source=imdb_archive, output=tmp_path / "named", on_stage=stages.append)
    assert f"Loading the teacher {output / TEACHER_DIR}" in stages
    assert not (tmp_path / "named" / TEACHER_DIR).exists()
    assert third.history == result.history


def _the_teacher_is_not_reused_with_other_options_or_data(output, config, imdb_archive):
    """A student killed before it was saved, rerun with other options (`--epochs`, `--seed`,
    `--max-tokens`, `--limit`) or on other data: the finished teacher is not reused ("Reusing
    the teacher trained earlier" with no check), the run is refused and the teacher kept."""
    from imdb_rnn.errors import CheckpointMismatchError

    (output / MODEL_FILE).unlink()
    teacher = (output / TEACHER_DIR / MODEL_FILE).read_bytes()
    for changed in (
        config.replace(training={"epochs": 2}),
        config.replace(training={"seed": 7}),
        config.replace(model={"max_tokens": 40}),
        config.replace(data={"limit": 30}),
    ):
        with pytest.raises(CheckpointMismatchError, match="teacher trained with other options"):
            train(changed, source=imdb_archive, output=output)
    other = write_archive(output.parent / "other.tar.gz", build_reviews(seed=5))
    with pytest.raises(CheckpointMismatchError, match="other training texts"):
        train(config, source=other, output=output)
    assert (output / TEACHER_DIR / MODEL_FILE).read_bytes() == teacher


def test_self_training_refuses_ensembles(imdb_archive):
    config = tiny_config(pseudo_label_threshold=0.9, ensemble_size=2)
    with pytest.raises(ConfigError, match="one model"):
        train(config, source=imdb_archive)


@pytest.mark.slow
def test_own_data_without_unlabelled_texts_trains_without_self_training(tmp_path):
    """The default preset self-trains; a source without unlabelled texts trains one model and
    says that self-training was skipped, instead of failing."""
    from imdb_rnn.data.sources import TextFiles

    rows = ["text,label"] + [
        f"{'great fine' if i % 2 else 'awful poor'} film {i},{'pos' if i % 2 else 'neg'}"
        for i in range(40)
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    stages: list[str] = []
    result = train(
        tiny_config(epochs=1, pseudo_label_threshold=0.9),
        source=TextFiles(train=tmp_path / "train.csv"),
        on_stage=stages.append,
    )
    assert result.pseudo_labels is None
    assert any(stage.startswith("No unlabelled texts: self-training") for stage in stages)
    assert not any("teacher" in stage for stage in stages)


@pytest.mark.slow
def test_a_recurrent_student_of_a_hybrid_teacher(tmp_path, imdb_archive):
    """`training.teacher_ngram_buckets` makes the teacher a hybrid; the saved student is the
    recurrent classifier alone (the `recurrent` preset's recipe)."""
    from imdb_rnn.training.trainer import Trainer

    config = tiny_config(epochs=1, pseudo_label_threshold=0.5, teacher_ngram_buckets=256)
    output = tmp_path / "run"
    result = train(config, source=imdb_archive, output=output)
    teacher = Trainer.load(output / TEACHER_DIR)
    student = Trainer.load(output)
    assert teacher.classifier.layers[-1].name == "blend"
    assert "blend" not in [layer.name for layer in student.classifier.layers]
    assert result.ngrams is None and result.pseudo_labels["added"] > 0


@pytest.mark.parametrize(
    "options",
    [{"on_disk": True}, pytest.param({"ensemble_size": 2}, marks=pytest.mark.slow)],
    ids=["on-disk", "ensemble"],
)
@pytest.mark.slow
def test_on_disk_and_ensembles_without_unlabelled_texts_skip_self_training(
    tmp_path, topic_files, options
):
    """`train --on-disk` (or an ensemble) under the default preset, with no unlabelled file,
    trains without self-training and says so, instead of asking to turn it off."""
    from imdb_rnn.data.sources import TextFiles

    config = tiny_config(epochs=1, pseudo_label_threshold=0.9)
    if "ensemble_size" in options:
        config = config.replace(training={"ensemble_size": options["ensemble_size"]})
    stages: list[str] = []
    result = train(
        config,
        source=TextFiles(train=topic_files["train"], test=topic_files["test"]),
        output=tmp_path / "run",
        on_disk=options.get("on_disk", False),
        on_stage=stages.append,
    )
    assert result.pseudo_labels is None and (tmp_path / "run" / MODEL_FILE).is_file()
    assert any(stage.startswith("No unlabelled texts: self-training") for stage in stages)
    assert result.wall_seconds >= result.train_seconds


def test_a_teacher_that_labels_nothing_says_so():
    """Zero pseudo-labels are reported as such: the student learns from the labelled texts
    alone."""
    from imdb_rnn.training.selftrain import PseudoLabels

    none = PseudoLabels(unlabelled=2000, added=0, per_class={"neg": 0, "pos": 0}, threshold=0.9)
    assert none.describe().startswith("The teacher labelled none of the 2,000 unlabelled texts")
    assert "labelled texts alone" in none.describe()
