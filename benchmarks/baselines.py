"""Bag-of-n-grams baselines on the same splits as imdb-rnn: what a user could pick instead.

- `tfidf-lr`: TF-IDF of unigrams and bigrams (min_df 2, max_df 0.9, sublinear tf) and
  logistic regression (C 8).
- `nbsvm-bi`: NBSVM-bi (Wang & Manning 2012): binary unigram + bigram counts scaled by the
  naive-Bayes log-count ratio (alpha 1), then a liblinear logistic regression (C 0.1).

Both read `<br />` as a space and use scikit-learn's default tokenisation (words of two or more
word characters, lower-cased). The splits come from `imdb_rnn.data.imdb.load_imdb`, so train,
validation and test are exactly those of `imdb-rnn train`. scikit-learn is in the `bench` extra
(`pip install -e ".[bench]"`), never a dependency of imdb-rnn itself.

Usage:

    python benchmarks/baselines.py --data ../shared/data/imdb/aclImdb_v1.tar.gz
    python benchmarks/baselines.py --data ... --fit-on train+valid   # all 25,000 reviews
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

try:
    from scipy import sparse
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
except ModuleNotFoundError as error:  # pragma: no cover - depends on the environment
    raise SystemExit(
        f"The baselines need scikit-learn ({error}): pip install -e '.[bench]'"
    ) from None

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def preprocess(text: str) -> str:
    """Lower-cases a review and turns `<br />` tags into spaces."""
    return _HTML_BREAK.sub(" ", text).lower()


def tfidf_lr() -> Pipeline:
    """TF-IDF uni+bigrams (min_df 2, max_df 0.9, sublinear tf) -> logistic regression C 8."""
    return make_pipeline(
        TfidfVectorizer(
            preprocessor=preprocess, ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True
        ),
        LogisticRegression(C=8, solver="liblinear", max_iter=1000),
    )


class NBSVM(ClassifierMixin, BaseEstimator):
    """NBSVM-bi: binary uni+bigram counts scaled by the NB log-count ratio, then logistic
    regression (Wang & Manning 2012, with the logistic loss in place of the hinge loss).

    Args:
        alpha: smoothing of the feature counts. Default 1.0.
        C: inverse regularisation strength of the logistic regression. Default 0.1.
    """

    def __init__(self, alpha: float = 1.0, C: float = 0.1) -> None:
        self.alpha = alpha
        self.C = C

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> NBSVM:
        labels = np.asarray(labels)
        self.vectorizer_ = CountVectorizer(preprocessor=preprocess, ngram_range=(1, 2), binary=True)
        features = self.vectorizer_.fit_transform(texts)
        positive = self.alpha + np.asarray(features[labels == 1].sum(axis=0)).ravel()
        negative = self.alpha + np.asarray(features[labels == 0].sum(axis=0)).ravel()
        self.ratio_ = np.log((positive / positive.sum()) / (negative / negative.sum()))
        self.classifier_ = LogisticRegression(C=self.C, solver="liblinear", max_iter=1000)
        self.classifier_.fit(self._scaled(texts), labels)
        self.classes_ = self.classifier_.classes_
        return self

    def _scaled(self, texts: Sequence[str]) -> Any:
        return self.vectorizer_.transform(texts) @ sparse.diags(self.ratio_)

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        return self.classifier_.decision_function(self._scaled(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.classifier_.predict(self._scaled(texts))


BASELINES: dict[str, Callable[[], Any]] = {"tfidf-lr": tfidf_lr, "nbsvm-bi": NBSVM}


def fit_texts(splits: Any, fit_on: str) -> tuple[list[str], np.ndarray]:
    """The reviews and labels a baseline is fitted on: `train` or `train+valid`."""
    from short_texts import split_arrays

    texts, labels = split_arrays(splits["train"])
    if fit_on == "train+valid":
        more_texts, more_labels = split_arrays(splits["valid"])
        texts, labels = texts + more_texts, np.concatenate([labels, more_labels])
    return texts, labels


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--fit-on", choices=("train", "train+valid"), default="train")
    parser.add_argument(
        "--valid-split",
        choices=("random", "film"),
        default="random",
        help="how the validation reviews are chosen (see DataConfig.valid_split)",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/baselines.json"))
    args = parser.parse_args()

    from short_texts import split_arrays

    from imdb_rnn.data.imdb import load_imdb

    splits = load_imdb(
        args.data, splits=["train", "valid", "test"], **_split_option(args.valid_split)
    )
    train_texts, train_labels = fit_texts(splits, args.fit_on)
    evaluated = {name: split_arrays(splits[name]) for name in ("valid", "test")}
    rows = []
    for name, make in BASELINES.items():
        start, cpu = time.perf_counter(), _cpu_seconds()
        model = make().fit(train_texts, train_labels)
        row: dict[str, Any] = {
            "model": name,
            "fit_on": args.fit_on,
            "valid_split": args.valid_split,
            "training_reviews": len(train_labels),
            "fit_seconds": round(time.perf_counter() - start, 1),
            "fit_cpu_seconds": round(_cpu_seconds() - cpu, 1),
        }
        for split, (texts, labels) in evaluated.items():
            row[f"{split}_accuracy"] = round(float(np.mean(model.predict(texts) == labels)), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


def _split_option(valid_split: str) -> dict[str, str]:
    # Only passed when asked for, so the script also runs against code without the option.
    return {} if valid_split == "random" else {"valid_split": valid_split}


if __name__ == "__main__":
    main()
