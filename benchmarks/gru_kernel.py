"""Micro-benchmark: one training step of the reference classifier with `FastBidirectional`'s CPU
loop against Keras' own `Bidirectional(GRU)` path, on the same masked batches, side by side.

Prints milliseconds per training step (forward + backward + Adam update, best of interleaved
rounds) for a few padded lengths and the ratio. Both models have identical weights and give the
same outputs (see tests).

Usage:

    python benchmarks/gru_kernel.py [--lengths 64 256 512] [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import get_preset
from imdb_rnn.layers import FastBidirectional
from imdb_rnn.models import build_classifier


def set_fused(model: keras.Model, mode: str) -> None:
    for layer in model.layers:
        if isinstance(layer, FastBidirectional):
            layer.fused = mode


def fit_ms(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, verbose=0)
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = get_preset("reference").model
    rng = np.random.default_rng(0)
    print(f"{'length':>7}{'keras ms':>10}{'fast ms':>10}{'speedup':>9}")
    for length in args.lengths:
        # Right-padded ids with lengths spread over the upper half of the batch length.
        lengths = rng.integers(length // 2, length + 1, size=args.batch_size)
        ids = rng.integers(2, config.max_tokens, size=(args.batch_size, length)).astype("int32")
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
        labels = rng.integers(0, 2, size=(args.batch_size, 1)).astype("float32")
        dataset = tf.data.Dataset.from_tensors((ids, labels)).repeat(2)
        models = {}
        for mode in ("never", "always"):
            keras.utils.set_random_seed(0)
            model = build_classifier(config)
            set_fused(model, mode)
            model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
            model.fit(dataset, verbose=0)  # trace
            models[mode] = model
        # Interleaved rounds, best of each: robust to other load on a shared machine.
        rounds: dict[str, list[float]] = {mode: [] for mode in models}
        for _ in range(args.repeats):
            for mode, model in models.items():
                rounds[mode].append(fit_ms(model, dataset, 2))
        timings = {mode: min(values) for mode, values in rounds.items()}
        print(
            f"{length:>7}{timings['never']:>10.1f}{timings['always']:>10.1f}"
            f"{timings['never'] / timings['always']:>9.2f}"
        )


if __name__ == "__main__":
    main()
