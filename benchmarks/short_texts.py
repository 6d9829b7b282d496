"""Short reviews: accuracy on the test split cut to its first sentence, its last sentence and
its first 30 words, for saved imdb-rnn models and for the bag-of-n-grams baselines.

The crops (`crop`): `<br />` tags become spaces; sentences end after `.`, `!` or `?` followed
by whitespace; words are split on whitespace. Every model sees the same 25,000 crops of each
kind, and the full reviews, in one run.

Usage:

    python benchmarks/short_texts.py --data ../shared/data/imdb/aclImdb_v1.tar.gz \\
        --model runs/default --baselines
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

CROPS = ("full", "first_sentence", "last_sentence", "first_30_words")

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _clean(text: str) -> str:
    return _HTML_BREAK.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    """The sentences of a review: split after `.`, `!` or `?` followed by whitespace.

    >>> sentences("Great film.<br /><br />Really! Why? Not sure")
    ['Great film.', 'Really!', 'Why?', 'Not sure']
    """
    return [part for part in _SENTENCE_END.split(_clean(text)) if part]


def crop(text: str, kind: str) -> str:
    """Cuts a review to one of `CROPS`.

    >>> crop("Bad start. Great end!", "last_sentence")
    'Great end!'
    >>> crop("one two three", "first_30_words")
    'one two three'
    """
    if kind == "full":
        return text
    if kind == "first_30_words":
        return " ".join(_clean(text).split()[:30])
    parts = sentences(text) or [""]
    if kind == "first_sentence":
        return parts[0]
    if kind == "last_sentence":
        return parts[-1]
    raise ValueError(f"Expected kind to be one of {list(CROPS)}. Received: kind={kind!r}")


def crops_of(texts: Sequence[str]) -> dict[str, list[str]]:
    """Every crop of every review, keyed by crop kind."""
    return {kind: [crop(text, kind) for text in texts] for kind in CROPS}


def split_arrays(dataset: Any) -> tuple[list[str], np.ndarray]:
    """Review strings and labels of an unbatched `(text, label)` dataset from `load_imdb`."""
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(int(label))
    return texts, np.asarray(labels, dtype=np.int32)


def accuracies(
    predict: Callable[[list[str]], np.ndarray], crops: dict[str, list[str]], labels: np.ndarray
) -> dict[str, float]:
    """Accuracy of `predict` (texts -> predicted 0/1 labels) on each crop."""
    return {kind: float(np.mean(predict(texts) == labels)) for kind, texts in crops.items()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--model", action="append", default=[], help="saved model directory")
    parser.add_argument("--baselines", action="store_true", help="also fit and run the baselines")
    parser.add_argument(
        "--fit-on",
        choices=("train", "train+valid"),
        default="train",
        help="what the baselines are fitted on (default: train, as imdb-rnn)",
    )
    parser.add_argument(
        "--split",
        choices=("test", "valid"),
        default="test",
        help="reviews to measure on (default: test; valid for choosing recipes)",
    )
    parser.add_argument(
        "--valid-split",
        choices=("random", "film"),
        default="random",
        help="how the validation reviews are held out of train (data.valid_split)",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/short_texts.json"))
    args = parser.parse_args()
    if not args.model and not args.baselines:
        parser.error("nothing to measure: pass --model DIR and/or --baselines")

    from imdb_rnn.data.imdb import load_imdb

    splits = load_imdb(args.data, splits=["train", "valid", "test"], valid_split=args.valid_split)
    test_texts, test_labels = split_arrays(splits[args.split])
    crops = crops_of(test_texts)
    words = {kind: float(np.mean([len(t.split()) for t in texts])) for kind, texts in crops.items()}
    print("mean words per review:", json.dumps(words), flush=True)
    rows: list[dict[str, Any]] = []

    def record(name: str, scores: dict[str, float], extra: dict[str, Any]) -> None:
        row = {"model": name, **{k: round(v, 4) for k, v in scores.items()}, **extra}
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "split": args.split,
                    "valid_split": args.valid_split,
                    "mean_words": words,
                    "reviews": len(test_labels),
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )

    for directory in args.model:
        from imdb_rnn.training.trainer import Trainer

        trainer = Trainer.load(directory)
        start, cpu = time.perf_counter(), _cpu_seconds()
        scores = accuracies(
            lambda texts, t=trainer: (t.predict_logits(texts) >= 0).astype(np.int32),
            crops,
            test_labels,
        )
        record(
            f"imdb-rnn {directory}",
            scores,
            {
                "preset": trainer.config.preset,
                "seconds": round(time.perf_counter() - start, 1),
                "cpu_seconds": round(_cpu_seconds() - cpu, 1),
            },
        )

    if args.baselines:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from baselines import BASELINES, fit_texts

        train_texts, train_labels = fit_texts(splits, args.fit_on)
        for name, make in BASELINES.items():
            start, cpu = time.perf_counter(), _cpu_seconds()
            model = make().fit(train_texts, train_labels)
            fit_seconds, fit_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            scores = accuracies(lambda texts, m=model: m.predict(texts), crops, test_labels)
            record(
                name,
                scores,
                {
                    "fit_on": args.fit_on,
                    "training_reviews": len(train_labels),
                    "fit_seconds": round(fit_seconds, 1),
                    "fit_cpu_seconds": round(fit_cpu, 1),
                },
            )

    header = f"{'model':<40}" + "".join(f"{kind:>16}" for kind in CROPS)
    print("\n" + header)
    for row in rows:
        print(f"{row['model']:<40}" + "".join(f"{row[kind]:>16.4f}" for kind in CROPS))


if __name__ == "__main__":
    main()
