"""Learning curve: the default preset against the bag-of-n-grams baselines at several sizes of
labelled data, each scored on the full 25,000-review test split.

For each size N, the first N reviews of the shuffled IMDB training split (fixed seed) are written
to a CSV file, and `imdb-rnn train --train train_N.csv --test test.csv` runs exactly as a user
with N labelled reviews of their own would run it (default preset, default epochs; validation is
carved from the N reviews; no unlabelled texts). The baselines (`baselines.py`: TF-IDF + logistic
regression, NBSVM-bi) are fitted on all N reviews, validation included, which favours them.
Times are whole `imdb-rnn train` jobs (wall and CPU of the child process), measured side by side
with the baselines in one run.

Usage:

    python benchmarks/learning_curve.py --data ../shared/data/imdb/aclImdb_v1.tar.gz
    python benchmarks/learning_curve.py --data ... --sizes 1000,4000 --train-args "--epochs 3"
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _write_csv(path: Path, texts: list[str], labels: np.ndarray, names: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for text, label in zip(texts, labels, strict=True):
            writer.writerow([text, names[int(label)]])
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_imdb_rnn(train_csv: Path, test_csv: Path, output: Path, extra: list[str]) -> dict[str, Any]:
    """Runs `imdb-rnn train` on the files; returns its test accuracy and costs."""
    command = [
        sys.executable,
        "-m",
        "imdb_rnn",
        "train",
        "--train",
        str(train_csv),
        "--test",
        str(test_csv),
        "--output",
        str(output),
        "--overwrite",
        *extra,
    ]
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"imdb-rnn train failed ({done.returncode}):\n{done.stderr[-3000:]}")
    metrics = json.loads((output / "metrics.json").read_text())
    return {
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "valid_accuracy": round(metrics["valid"]["accuracy"], 4),
        "epochs": metrics["epochs"],
        "ngrams": metrics.get("ngrams"),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(_children_cpu() - cpu, 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--sizes", default="1000,4000,22500")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed of the training pool")
    parser.add_argument(
        "--train-args", default="", help="extra options for imdb-rnn train, e.g. '--epochs 3'"
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for the CSVs and runs")
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/learning_curve.json")
    )
    args = parser.parse_args()

    from baselines import BASELINES
    from short_texts import split_arrays

    from imdb_rnn.data.imdb import load_imdb
    from imdb_rnn.data.splits import LABEL_NAMES

    splits = load_imdb(args.data, splits=["train", "valid", "test"])
    pool_texts, pool_labels = split_arrays(splits["train"])
    more_texts, more_labels = split_arrays(splits["valid"])
    pool_texts, pool_labels = pool_texts + more_texts, np.concatenate([pool_labels, more_labels])
    order = np.random.default_rng(args.seed).permutation(len(pool_texts))
    test_texts, test_labels = split_arrays(splits["test"])
    names = list(LABEL_NAMES)
    work = args.work or Path(tempfile.mkdtemp(prefix="imdb-rnn-curve-"))
    work.mkdir(parents=True, exist_ok=True)
    test_csv = _write_csv(work / "test.csv", test_texts, test_labels, names)
    rows = []
    for size in (int(value) for value in args.sizes.split(",")):
        chosen = order[:size]
        texts = [pool_texts[i] for i in chosen]
        labels = pool_labels[chosen]
        train_csv = _write_csv(work / f"train_{size}.csv", texts, labels, names)
        row: dict[str, Any] = {"training_reviews": size, "train_args": args.train_args}
        for name, make in BASELINES.items():
            start = time.perf_counter()
            model = make().fit(texts, labels)
            accuracy = float(np.mean(model.predict(test_texts) == test_labels))
            row[name] = {
                "test_accuracy": round(accuracy, 4),
                "fit_seconds": round(time.perf_counter() - start, 1),
            }
        row["imdb-rnn"] = run_imdb_rnn(
            train_csv, test_csv, work / f"run_{size}", shlex.split(args.train_args)
        )
        best = max(row[name]["test_accuracy"] for name in BASELINES)
        row["margin_over_best_baseline"] = round(row["imdb-rnn"]["test_accuracy"] - best, 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
