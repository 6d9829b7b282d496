"""Self-training: a teacher labels the unlabelled reviews, and the confident ones join training.

With `training.pseudo_label_threshold` above 0, `imdb_rnn.train` first gets a teacher (the saved
model in `training.teacher`, or one trained in the same run with the same recipe and written to
`OUTPUT/teacher/`), lets it score every unlabelled review (IMDB's 50,000 `unsupervised`
reviews, or your `unlabelled` file), and adds those it labels with at least the threshold's
probability to the training split, with its label, shuffled in with the run's seed. The student,
trained on both, is the run's model. Validation and test splits are never labelled by the
teacher. On IMDB this reads better than the teacher, on full reviews and on short ones
(docs/results.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.errors import ConfigError, DataError

__all__ = ["TEACHER_DIR", "PseudoLabels", "Teacher", "add_pseudo_labels", "pseudo_label"]


class Teacher(Protocol):
    """What labels the unlabelled texts: a trained or loaded `Trainer`, or any classifier with
    its classes and their probabilities."""

    @property
    def label_names(self) -> tuple[str, ...]:
        """The classes, in the order of the probabilities' columns."""
        ...

    def class_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """`(texts, classes)` probabilities."""
        ...


#: Where a run that trains its own teacher writes it, inside the output folder.
TEACHER_DIR = "teacher"


@dataclass(frozen=True)
class PseudoLabels:
    """What the teacher added to the training split.

    Attributes:
        unlabelled: unlabelled texts the teacher scored.
        added: those labelled with at least `threshold` probability, added to training.
        per_class: how many of `added` went to each class, by name.
        threshold: the probability a label needed.
        teacher: the teacher's folder (None for a teacher trained in memory).
    """

    unlabelled: int
    added: int
    per_class: dict[str, int]
    threshold: float
    teacher: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        if not self.added:
            return (
                f"The teacher labelled none of the {self.unlabelled:,} unlabelled texts with "
                f"probability >= {self.threshold:g}: the student learns from the labelled texts "
                "alone, as the teacher did"
            )
        classes = ", ".join(f"{name} {count:,}" for name, count in self.per_class.items())
        return (
            f"The teacher labelled {self.added:,} of {self.unlabelled:,} unlabelled texts with "
            f"probability >= {self.threshold:g} ({classes}); they join the training split"
        )


def pseudo_label(
    teacher: Teacher, texts: Sequence[str], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """The texts `teacher` labels with at least `threshold` probability.

    Returns:
        `(indices, labels)`: positions in `texts` and the teacher's class index for each.
    """
    probabilities = teacher.class_probabilities(list(texts))
    if not len(probabilities):
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    keep = np.flatnonzero(probabilities.max(axis=1) >= threshold)
    return keep, probabilities[keep].argmax(axis=1).astype(np.int32)


def _texts_and_labels(dataset: Any) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(int(label))
    return texts, np.asarray(labels, dtype=np.int32)


def add_pseudo_labels(
    splits: ImdbSplits,
    teacher: Teacher,
    *,
    threshold: float,
    seed: int,
    teacher_dir: str | None = None,
) -> tuple[ImdbSplits, PseudoLabels]:
    """The splits with the unlabelled texts `teacher` is sure of added to `train`.

    Args:
        splits: splits holding `train` and `unsupervised`.
        teacher: a trained model with the splits' classes.
        threshold: the probability (of the teacher's most likely class) a text needs.
        seed: shuffles the training texts and the added ones together.
        teacher_dir: the teacher's folder, for the record.

    Raises:
        DataError: without unlabelled texts.
        ConfigError: if the teacher's classes are not the data's.
    """
    import tensorflow as tf

    if splits.unsupervised is None or not splits.sizes.get("unsupervised"):
        raise DataError(
            "Self-training needs unlabelled texts: IMDB's unsupervised split, or your own "
            "file (TextFiles(unlabelled=PATH))."
        )
    if tuple(teacher.label_names) != tuple(splits.label_names):
        raise ConfigError(
            f"The teacher's classes {list(teacher.label_names)} are not the data's "
            f"{list(splits.label_names)}."
        )
    unlabelled = [text.decode("utf-8") for text in splits.texts("unsupervised").as_numpy_iterator()]
    indices, labels = pseudo_label(teacher, unlabelled, threshold)
    texts, train_labels = _texts_and_labels(splits["train"])
    all_texts = np.asarray(texts + [unlabelled[i] for i in indices], dtype=object)
    all_labels = np.concatenate([train_labels, labels])
    order = np.random.default_rng(seed).permutation(len(all_labels))
    train = tf.data.Dataset.from_tensor_slices(
        (tf.constant(all_texts[order].tolist(), dtype=tf.string), all_labels[order])
    )
    counts = np.bincount(labels, minlength=len(splits.label_names))
    added = PseudoLabels(
        unlabelled=len(unlabelled),
        added=len(indices),
        per_class={name: int(n) for name, n in zip(splits.label_names, counts, strict=True)},
        threshold=float(threshold),
        teacher=teacher_dir,
    )
    sizes = {**splits.sizes, "train": len(all_labels)}
    return dataclasses.replace(splits, train=train, sizes=sizes), added
