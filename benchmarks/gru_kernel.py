"""Micro-benchmark: one training step of the reference classifier with each way of running the
BiGRU on a CPU, on the same masked batches, side by side.

- `keras`: Keras' own `Bidirectional(GRU)` loop (the reference recipe as written);
- `graph`: `FastBidirectional`'s TensorFlow loop (input projections hoisted out of the loop);
- `native`: `FastBidirectional` with the native kernel (`imdb_rnn.native`), the default.

Prints milliseconds per training step (forward + backward + Adam update) and per inference batch
(forward only, `--eval-batch-size` reviews), best of interleaved rounds, for a few padded lengths,
and the ratios to `keras`. All three have identical weights and give the same outputs (see tests).

Usage:

    python benchmarks/gru_kernel.py [--lengths 64 256 512] [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable
from functools import partial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn import native
from imdb_rnn.config import get_preset
from imdb_rnn.layers import FastBidirectional, sublayers
from imdb_rnn.models import build_classifier

#: How the BiGRU runs on a CPU: Keras' own `Bidirectional(GRU)` loop (the reference recipe as
#: written), `FastBidirectional`'s TensorFlow graph loop, or its native kernel (the default where
#: it builds). `throughput.py` uses these helpers too.
KERNELS = ("keras", "graph", "native")


def kernel_scope(kernel: str) -> contextlib.AbstractContextManager[None]:
    """Functions traced in this block run the BiGRU with `kernel` (with `use_kernel`)."""
    return native.disabled() if kernel == "graph" else contextlib.nullcontext()


def use_kernel(model: keras.Model, kernel: str) -> None:
    """Makes `model`'s BiGRU layers run Keras' own loop for `keras`, else `FastBidirectional`."""
    for layer in sublayers(model):
        if isinstance(layer, FastBidirectional):
            layer.fused = "never" if kernel == "keras" else "auto"


def build(kernel: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_classifier(get_preset("reference").model)
    use_kernel(model, kernel)
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def ms_per_call(kernel: str, calls: int, run: Callable[..., object], *args: object) -> float:
    with kernel_scope(kernel):
        start = time.perf_counter()
        run(*args)
        return 1000 * (time.perf_counter() - start) / calls


def batch(rng: np.random.Generator, size: int, length: int, vocabulary: int) -> np.ndarray:
    """Right-padded ids with lengths spread over the upper half of the batch length."""
    lengths = rng.integers(length // 2, length + 1, size=size)
    ids = rng.integers(2, vocabulary, size=(size, length)).astype("int32")
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not native.available():
        raise SystemExit("the native kernel is unavailable here (see the warning above)")
    vocabulary = get_preset("reference").model.max_tokens
    rng = np.random.default_rng(0)
    header = "".join(f"{k + ' ms':>11}" for k in KERNELS) + f"{'graph x':>9}{'native x':>10}"
    print(f"{'length':>7}{'':>2}{header}")
    for length in args.lengths:
        ids = batch(rng, args.batch_size, length, vocabulary)
        labels = rng.integers(0, 2, size=(args.batch_size, 1)).astype("float32")
        dataset = tf.data.Dataset.from_tensors((ids, labels)).repeat(2)
        eval_ids = tf.constant(batch(rng, args.eval_batch_size, length, vocabulary))
        models = {}
        for kernel in KERNELS:
            model = build(kernel)
            with kernel_scope(kernel):
                model.fit(dataset, verbose=0)  # trace
                model.predict_on_batch(eval_ids)
            models[kernel] = model
        # Interleaved rounds, best of each: robust to other load on a shared machine.
        train: dict[str, list[float]] = {kernel: [] for kernel in KERNELS}
        infer: dict[str, list[float]] = {kernel: [] for kernel in KERNELS}
        for _ in range(args.repeats):
            for kernel, model in models.items():
                train[kernel].append(ms_per_call(kernel, 2, partial(model.fit, dataset, verbose=0)))
                infer[kernel].append(ms_per_call(kernel, 1, model.predict_on_batch, eval_ids))
        for name, rounds in (("train", train), ("infer", infer)):
            ms = {kernel: min(values) for kernel, values in rounds.items()}
            cells = "".join(f"{ms[kernel]:>11.1f}" for kernel in KERNELS)
            ratios = f"{ms['keras'] / ms['graph']:>9.2f}{ms['keras'] / ms['native']:>10.2f}"
            print(f"{length:>7}{name[0]:>2}{cells}{ratios}", flush=True)


if __name__ == "__main__":
    main()
