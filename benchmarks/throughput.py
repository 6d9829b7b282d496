"""Throughput benchmark: the plain (reference) pipeline against the default pipeline.

Trains the same model (the reference preset's BiGRU: 10k vocabulary, 64-d embedding, 64 units,
Dense(64), batch 64) on the same fixed set of real training reviews, once per pipeline variant, in
one process, the variants taking turns epoch by epoch (so that load from other processes on a
shared machine affects them alike), and prints for each:

- training reviews per second, over the epochs after the first (the first epoch traces the
  training function for new batch shapes);
- input-pipeline-only reviews per second (one pass over the training batches with no model), to
  show how the time splits between input pipeline and model;
- evaluation reviews per second on the test split (tokenising included; best of alternating
  rounds);
- test accuracy after the same number of epochs;

and the ratios to the plain pipeline, by wall time and by this process's CPU time (the CPU-time
ratio barely moves when other processes share the machine). Writes the result as JSON too.

Usage:

    python benchmarks/throughput.py --data ../shared/data/imdb/aclImdb_v1.tar.gz
    python benchmarks/throughput.py --data ... --variant plain:kernel=keras --variant bucketed \\
        --variant sorted:max_length=256:truncation=tail:kernel=graph

By default the plain variant is the reference recipe as written (random batches tokenised every
epoch, Keras' `Bidirectional(GRU)`), and the default variant is what `imdb-rnn train` runs
(sorted batches, 256-token tails, the native GRU kernel, imdb-rnn's epoch loop). `kernel=`
picks how a variant runs the BiGRU: `keras`, `graph` (`FastBidirectional`'s TensorFlow loop) or
`native`; `loop=` how it trains: `fit` (Keras' `fit`, as the reference recipe does) or `epoch`
(`imdb_rnn.training.loop.EpochLoop`, what `imdb-rnn train` runs; the default variant's). Variants in
between show what each part contributes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf

# The script's folder is on sys.path when it runs.
from gru_kernel import KERNELS, kernel_scope, use_kernel

from imdb_rnn import native
from imdb_rnn.config import DataConfig, get_preset
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.layers import TextEncoder
from imdb_rnn.training.loop import EpochLoop
from imdb_rnn.training.trainer import Trainer


def parse_variant(text: str) -> dict[str, Any]:
    """`bucketed:max_length=400:truncation=tail:kernel=graph` -> DataConfig overrides plus the
    kernel (default `native`)."""
    pipeline, *options = text.split(":")
    values: dict[str, Any] = {"pipeline": pipeline}
    for option in options:
        key, _, value = option.partition("=")
        values[key] = int(value) if value.isdigit() else (None if value == "none" else value)
    kernel = values.setdefault("kernel", "native")
    if kernel not in KERNELS:
        raise SystemExit(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if values.setdefault("loop", "fit") not in ("fit", "epoch"):
        raise SystemExit(f"loop must be fit or epoch, got {values['loop']!r}")
    DataConfig(**{k: v for k, v in values.items() if k not in ("kernel", "loop")})
    return values


def label(variant: dict[str, Any]) -> str:
    extras = [f"{k}={v}" for k, v in variant.items() if k != "pipeline"]
    return ":".join([variant["pipeline"], *extras])


def input_only_seconds(batches: tf.data.Dataset) -> float:
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


class Run:
    """One variant's trainer, batches and timings."""

    def __init__(
        self,
        variant: dict[str, Any],
        splits: ImdbSplits,
        base_encoder: TextEncoder,
        args: argparse.Namespace,
    ) -> None:
        self.variant = variant
        self.kernel = variant["kernel"]
        data = {k: v for k, v in variant.items() if k not in ("kernel", "loop")}
        self.config = get_preset("reference").replace(
            data={**data, "limit": None},
            training={
                "epochs": args.epochs,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
            },
        )
        encoder = base_encoder.with_options(
            max_length=self.config.data.max_length, truncation=self.config.data.truncation
        )
        self.trainer = Trainer(self.config, encoder=encoder)
        keras.utils.set_random_seed(args.seed)
        self.batches = self.trainer.training_batches(splits["train"], seed=args.seed)
        self.input_seconds = input_only_seconds(self.batches)
        self.classifier = self.trainer.build(int(self.batches.cardinality()))
        use_kernel(self.classifier, self.kernel)
        if self.kernel == "native" and not native.available():
            raise SystemExit("the native kernel is unavailable here (see the warning above)")
        # loop=epoch: imdb-rnn's own epoch loop (what `imdb-rnn train` runs), one epoch per
        # call, validating on one batch of 64 reviews (counted in its time); loop=fit: Keras'
        # `fit`, as the reference recipe trains.
        self.loop = None
        self.validation = self.trainer.training_batches(splits["valid"].take(64), seed=0)
        if variant.get("loop", "fit") == "epoch":
            self.loop = EpochLoop(
                self.classifier,
                config=self.config.replace(training={"epochs": 1}),
                steps_per_epoch=int(self.batches.cardinality()),
                train_size=splits.sizes["train"],
            )
        self.epoch_seconds: list[float] = []
        self.epoch_cpu_seconds: list[float] = []
        self.eval_rounds: list[Any] = []
        self.eval_cpu_seconds: list[float] = []

    def train_epoch(self, epoch: int) -> None:
        start, cpu_start = time.perf_counter(), time.process_time()
        with kernel_scope(self.kernel):
            if self.loop is not None:
                self.loop.run(self.batches, validation=self.validation)
            else:
                self.classifier.fit(
                    self.batches, epochs=epoch + 1, initial_epoch=epoch, verbose=0, shuffle=False
                )
        self.epoch_seconds.append(time.perf_counter() - start)
        self.epoch_cpu_seconds.append(time.process_time() - cpu_start)

    def evaluate(self, test: tf.data.Dataset) -> None:
        cpu_start = time.process_time()
        with kernel_scope(self.kernel):
            self.eval_rounds.append(self.trainer.evaluate(test))
        self.eval_cpu_seconds.append(time.process_time() - cpu_start)

    def summary(self, n_train: int) -> dict[str, Any]:
        later, later_cpu = self.epoch_seconds[1:], self.epoch_cpu_seconds[1:]
        best_eval = min(self.eval_rounds, key=lambda result: result.seconds)
        n_test = best_eval.examples
        return {
            "variant": label(self.variant),
            "config": self.config.to_dict()["data"],
            "epochs": len(self.epoch_seconds),
            "epoch_train_seconds": self.epoch_seconds,
            "train_reviews_per_second": n_train * len(later) / sum(later),
            "train_reviews_per_cpu_second": n_train * len(later_cpu) / sum(later_cpu),
            "epoch_train_cpu_seconds": self.epoch_cpu_seconds,
            "input_only_reviews_per_second": n_train / self.input_seconds,
            "eval_reviews_per_second": best_eval.examples_per_second,
            "eval_seconds_per_round": [result.seconds for result in self.eval_rounds],
            "eval_reviews_per_cpu_second": n_test / min(self.eval_cpu_seconds),
            "test_accuracy": best_eval.accuracy,
            "test_loss": best_eval.loss,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=os.environ.get("IMDB_RNN_DATA"), help="aclImdb archive or folder"
    )
    parser.add_argument(
        "--train-size", type=int, default=10_000, help="training reviews (fixed subset)"
    )
    parser.add_argument(
        "--test-size", type=int, default=None, help="test reviews (default: all 25,000)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant (>= 2)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eval-rounds", type=int, default=2, help="evaluation rounds (best kept)")
    parser.add_argument(
        "--variant",
        action="append",
        dest="variants",
        help="pipeline[:key=value...], e.g. plain:kernel=keras, bucketed:max_length=400, "
        "sorted:max_length=256:truncation=tail:kernel=graph; kernel is one of "
        f"{', '.join(KERNELS)} (default native) (default variants: plain:kernel=keras, the "
        "reference recipe as written, and the default pipeline)",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    default_data = DataConfig()
    variants = (
        [parse_variant(v) for v in args.variants]
        if args.variants
        else [
            {"pipeline": "plain", "kernel": "keras"},
            {
                "pipeline": default_data.pipeline,
                "max_length": default_data.max_length,
                "truncation": default_data.truncation,
                "kernel": "native",
                "loop": "epoch",
            },
        ]
    )

    full = load_imdb(args.data, splits=["train", "valid", "test", "unsupervised"])
    test_size = args.test_size or full.sizes["test"]
    splits = ImdbSplits(
        train=full.train.take(args.train_size).cache(),
        valid=full.valid.cache(),
        test=full.test.take(test_size).cache(),
        unsupervised=full.unsupervised,
        sizes={
            **full.sizes,
            "train": min(args.train_size, full.sizes["train"]),
            "test": min(test_size, full.sizes["test"]),
        },
        source=full.source,
    )
    base_encoder = TextEncoder(max_tokens=get_preset("reference").model.max_tokens)
    base_encoder.adapt(full.unsupervised.map(lambda text, label: text))

    # Variants advance epoch by epoch in turn, and evaluation rounds alternate, so that a change
    # in the machine's load affects every variant alike.
    runs = [Run(variant, splits, base_encoder, args) for variant in variants]
    for epoch in range(args.epochs):
        for run in runs:
            run.train_epoch(epoch)
            print(
                f"{label(run.variant)}: epoch {epoch + 1} {run.epoch_seconds[-1]:.1f} s", flush=True
            )
    for _ in range(args.eval_rounds):
        for run in runs:
            run.evaluate(splits["test"])
    results = [run.summary(splits.sizes["train"]) for run in runs]
    for result in results:
        print(json.dumps({k: v for k, v in result.items() if k != "config"}), flush=True)

    # Ratios are to the first variant (the reference recipe by default).
    plain = results[0]
    for r in results:
        r["train_speedup"] = r["train_reviews_per_second"] / plain["train_reviews_per_second"]
        r["eval_speedup"] = r["eval_reviews_per_second"] / plain["eval_reviews_per_second"]
        r["train_cpu_speedup"] = (
            r["train_reviews_per_cpu_second"] / plain["train_reviews_per_cpu_second"]
        )
        r["eval_cpu_speedup"] = (
            r["eval_reviews_per_cpu_second"] / plain["eval_reviews_per_cpu_second"]
        )
        r["accuracy_delta_points"] = 100 * (r["test_accuracy"] - plain["test_accuracy"])

    columns = [
        "train/s",
        "input/s",
        "eval/s",
        "train x",
        "eval x",
        "train xcpu",
        "eval xcpu",
        "test acc",
        "delta",
    ]
    print()
    print(
        f"train reviews: {splits.sizes['train']}, test reviews: {splits.sizes['test']}, "
        f"epochs: {args.epochs}"
    )
    print(f"{'variant':<40}" + "".join(f"{c:>10}" for c in columns))
    for r in results:
        cells = [
            f"{r['train_reviews_per_second']:.0f}",
            f"{r['input_only_reviews_per_second']:.0f}",
            f"{r['eval_reviews_per_second']:.0f}",
            f"{r['train_speedup']:.2f}",
            f"{r['eval_speedup']:.2f}",
            f"{r['train_cpu_speedup']:.2f}",
            f"{r['eval_cpu_speedup']:.2f}",
            f"{r['test_accuracy']:.4f}",
            f"{r['accuracy_delta_points']:+.2f}",
        ]
        print(f"{r['variant']:<40}" + "".join(f"{c:>10}" for c in cells))
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
