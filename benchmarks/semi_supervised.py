"""Accuracy levers beyond the supervised recipe, measured on the validation split only: ways to
use the 50,000 unlabelled reviews, and ensembles.

Each lever starts from a preset (`default` unless `--preset`) and prints one JSON row per
variant: validation accuracy and loss per epoch, the accuracy of the kept epoch (lowest
validation loss, as early stopping keeps), and seconds. Rows are appended to `--output`.

- `ppmi`: word vectors learned here from train + unlabelled text before training: a positive
  pointwise mutual information matrix of word co-occurrences (window `--window`, 1/distance
  weights, context smoothing 0.75), reduced by a randomised SVD to `embedding_dim` columns,
  scaled to standard deviation `--scale`, set as the embedding's initial weights (optionally
  frozen).
- `lm`: the embedding and the bidirectional GRU pre-trained as two language models on
  unlabelled + train reviews (the forward state at t predicts token t+1, the backward state token
  t-1; sampled softmax), for `--lm-epochs`, then fine-tuned with the preset's recipe.
- `self-training`: a model trained with the preset labels the unlabelled reviews; those it labels
  with probability >= `--threshold` join the training set of a new model trained from scratch.
- `seeds`: the preset trained with several seeds; accuracy of each model and of the average of
  their logits (an ensemble), for every epoch.

Usage:

    python benchmarks/semi_supervised.py ppmi --data ../shared/data/imdb/aclImdb_v1.tar.gz
    python benchmarks/semi_supervised.py ppmi --freeze --data ...
    python benchmarks/semi_supervised.py lm --data ...
    python benchmarks/semi_supervised.py self-training --data ...
    python benchmarks/semi_supervised.py seeds --seeds 42,43,44 --data ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from imdb_rnn.config import RunConfig, get_preset
from imdb_rnn.data.batching import (
    TokenizedSplit,
    length_sorted_batches,
    sorted_window_batches,
    tokenize,
)
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.layers import FastBidirectional, TextEncoder
from imdb_rnn.training.trainer import Trainer


def fit_from(
    trainer: Trainer,
    splits: ImdbSplits,
    *,
    initial: dict[str, list[np.ndarray]] | None = None,
    frozen: tuple[str, ...] = (),
    train: TokenizedSplit | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> dict[str, list[float]]:
    """Trains `trainer`'s recipe with some layers' initial weights set (and maybe frozen), on
    `train` (default: the train split); early stopping on validation loss, best weights kept."""
    config = trainer.config
    epochs = config.training.epochs
    split = train if train is not None else tokenize(splits["train"], trainer._encoder())
    batches = sorted_window_batches(
        split,
        batch_size=config.data.batch_size,
        shuffle_buffer=config.data.shuffle_buffer,
        seed=config.training.seed,
        epochs=epochs,
    )
    steps = int(batches.cardinality()) // epochs
    keras.utils.set_random_seed(config.training.seed)
    model = trainer.build(steps)
    for name, weights in (initial or {}).items():
        model.get_layer(name).set_weights(weights)
    if frozen:
        for name in frozen:
            model.get_layer(name).trainable = False
        model = trainer.build(steps)  # recompile with the frozen layers
    valid, _, _ = trainer._eval_batches(splits["valid"], config.data.pipeline)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=config.training.early_stopping_patience or epochs,
        restore_best_weights=True,
    )
    history = model.fit(
        batches,
        validation_data=valid,
        epochs=epochs,
        steps_per_epoch=steps,
        callbacks=[stopping, *(callbacks or [])],
        verbose=0,
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def summary(history: dict[str, list[float]]) -> dict[str, Any]:
    kept = int(np.argmin(history["val_loss"]))
    return {
        "val_accuracy_per_epoch": [round(v, 4) for v in history["val_accuracy"]],
        "val_loss_per_epoch": [round(v, 4) for v in history["val_loss"]],
        "train_accuracy_per_epoch": [round(v, 4) for v in history["accuracy"]],
        "kept_epoch": kept + 1,
        "val_accuracy": round(history["val_accuracy"][kept], 4),
    }


# -- ppmi ------------------------------------------------------------------------------------


def ppmi_vectors(
    encoder: TextEncoder,
    corpus: tf.data.Dataset,
    *,
    vocabulary: int,
    dim: int,
    window: int,
    seed: int = 0,
) -> np.ndarray:
    """Word vectors (`vocabulary` x dim, as the embedding's rows) from the PPMI matrix of
    `corpus`, by randomised SVD, scaled by the square root of the singular values."""
    split = tokenize(corpus, encoder.with_options(max_length=None))
    ids = split.ids.values.numpy().astype(np.int64)
    lengths = split.lengths
    # `window` zeros after each review, so that no window spans two reviews.
    flat = np.zeros(int((lengths + window).sum()), np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths + window)[:-1]])
    offsets = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    flat[np.repeat(starts, lengths) + offsets] = ids
    counts = np.zeros(vocabulary * vocabulary, np.float32)
    for distance in range(1, window + 1):
        left, right = flat[:-distance], flat[distance:]
        keep = (left > 1) & (right > 1)  # neither padding nor out-of-vocabulary
        counts += (
            np.bincount(
                left[keep] * vocabulary + right[keep], minlength=vocabulary * vocabulary
            ).astype(np.float32)
            / distance
        )
    matrix = counts.reshape(vocabulary, vocabulary)
    matrix += matrix.T
    total = matrix.sum()
    rows = matrix.sum(axis=1) / total
    contexts = matrix.sum(axis=0) ** 0.75
    contexts /= contexts.sum()
    with np.errstate(divide="ignore"):
        pmi = (
            np.log(np.maximum(matrix, 1e-30) / total)
            - np.log(np.maximum(rows, 1e-30))[:, None]
            - np.log(np.maximum(contexts, 1e-30))[None, :]
        )
    pmi = np.where(matrix > 0, np.maximum(pmi, 0), 0).astype(np.float32)
    del matrix, counts
    basis = np.random.default_rng(seed).standard_normal((vocabulary, dim + 32)).astype(np.float32)
    for _ in range(4):
        basis, _ = np.linalg.qr(pmi @ basis)
    left_vectors, singular, _ = np.linalg.svd(basis.T @ pmi, full_matrices=False)
    return (basis @ left_vectors)[:, :dim] * np.sqrt(singular[:dim])[None, :]


def run_ppmi(args: argparse.Namespace, config: RunConfig, splits: ImdbSplits) -> dict[str, Any]:
    trainer = Trainer(config)
    encoder = trainer.adapt(splits)
    start = time.perf_counter()
    vectors = ppmi_vectors(
        encoder,
        splits.texts("train", "unsupervised"),
        vocabulary=config.model.max_tokens,
        dim=config.model.embedding_dim,
        window=args.window,
    )
    vectors = vectors / vectors.std() * args.scale
    vectors[:2] = 0.0  # padding and out-of-vocabulary
    vector_seconds = time.perf_counter() - start
    history = fit_from(
        trainer,
        splits,
        initial={"embedding": [vectors.astype(np.float32)]},
        frozen=("embedding",) if args.freeze else (),
    )
    return {
        "lever": "ppmi",
        "window": args.window,
        "scale": args.scale,
        "frozen": args.freeze,
        "vector_seconds": round(vector_seconds),
        **summary(history),
    }


# -- lm --------------------------------------------------------------------------------------


def pretrain_language_models(
    config: RunConfig,
    encoder: TextEncoder,
    corpus: tf.data.Dataset,
    *,
    epochs: float,
    learning_rate: float,
    sampled: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Trains an embedding + FastBidirectional(GRU) as forward and backward language models;
    returns their weights and the loss every 100 steps."""
    model_config = config.model
    units = model_config.rnn_units
    embedding = keras.layers.Embedding(
        model_config.max_tokens, model_config.embedding_dim, mask_zero=True
    )
    recurrent = FastBidirectional(keras.layers.GRU(units, return_sequences=True))
    token_ids = keras.Input((None,), dtype="int32")
    model = keras.Model(token_ids, recurrent(embedding(token_ids)))
    softmax_weights = tf.Variable(tf.random.normal([model_config.max_tokens, units], stddev=0.05))
    softmax_biases = tf.Variable(tf.zeros([model_config.max_tokens]))
    split = tokenize(
        corpus, encoder.with_options(max_length=config.data.max_length, truncation="tail")
    )
    batches = sorted_window_batches(split, batch_size=config.data.batch_size, seed=1)
    total = int(int(batches.cardinality()) * epochs)
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(learning_rate, total), clipnorm=1.0
    )
    variables = [*model.trainable_variables, softmax_weights, softmax_biases]

    @tf.function(reduce_retracing=True)
    def step(ids: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            states = model(ids, training=True)
            forward, backward = states[:, :, :units], states[:, :, units:]
            has_next = ids[:, 1:] > 0
            inputs = tf.concat(
                [
                    tf.boolean_mask(forward[:, :-1], has_next),  # predicts the next token
                    tf.boolean_mask(backward[:, 1:], has_next),  # predicts the previous token
                ],
                axis=0,
            )
            labels = tf.concat(
                [tf.boolean_mask(ids[:, 1:], has_next), tf.boolean_mask(ids[:, :-1], has_next)],
                axis=0,
            )
            loss = tf.reduce_mean(
                tf.nn.sampled_softmax_loss(
                    softmax_weights,
                    softmax_biases,
                    tf.cast(labels, tf.int64)[:, None],
                    inputs,
                    sampled,
                    model_config.max_tokens,
                )
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    losses: list[float] = []
    done = 0
    while done < total:
        for ids, _ in batches:
            losses.append(float(step(ids)))
            done += 1
            if done >= total:
                break
    curve = [round(float(np.mean(losses[i : i + 100])), 3) for i in range(0, len(losses), 100)]
    return embedding.get_weights(), recurrent.get_weights(), curve


def run_lm(args: argparse.Namespace, config: RunConfig, splits: ImdbSplits) -> dict[str, Any]:
    trainer = Trainer(config)
    encoder = trainer.adapt(splits)
    keras.utils.set_random_seed(config.training.seed)
    start = time.perf_counter()
    embedding, recurrent, curve = pretrain_language_models(
        config,
        encoder,
        splits.texts("unsupervised", "train"),
        epochs=args.lm_epochs,
        learning_rate=args.lm_learning_rate,
        sampled=args.sampled,
    )
    pretrain_seconds = time.perf_counter() - start
    history = fit_from(
        trainer,
        splits,
        initial={"embedding": embedding, "bidirectional_gru_0": recurrent},
    )
    return {
        "lever": "lm",
        "lm_epochs": args.lm_epochs,
        "lm_learning_rate": args.lm_learning_rate,
        "sampled": args.sampled,
        "lm_loss_every_100_steps": curve,
        "pretrain_seconds": round(pretrain_seconds),
        **summary(history),
    }


# -- self-training -----------------------------------------------------------------------------


def run_self_training(
    args: argparse.Namespace, config: RunConfig, splits: ImdbSplits
) -> dict[str, Any]:
    teacher = Trainer(config)
    teacher_history = teacher.fit(splits)
    assert teacher.classifier is not None
    encoder = teacher._encoder()
    unlabelled = tokenize(splits["unsupervised"], encoder)
    batches, order = length_sorted_batches(unlabelled, batch_size=config.data.eval_batch_size)
    logits = np.empty(len(unlabelled), np.float32)
    logits[order] = teacher.classifier.predict(batches, verbose=0)[:, 0]
    probability = 1.0 / (1.0 + np.exp(-logits))
    confident = np.maximum(probability, 1.0 - probability) >= args.threshold
    train = tokenize(splits["train"], encoder)
    combined = TokenizedSplit(
        tf.concat([train.ids, tf.ragged.boolean_mask(unlabelled.ids, confident)], axis=0),
        np.concatenate([train.labels, (probability[confident] > 0.5).astype(np.int32)]),
    )
    student = Trainer(config.replace(training={"epochs": args.student_epochs}), encoder=encoder)
    history = fit_from(student, splits, train=combined)
    return {
        "lever": "self-training",
        "threshold": args.threshold,
        "pseudo_labelled": int(confident.sum()),
        "pseudo_positive_share": round(float((probability[confident] > 0.5).mean()), 4),
        "teacher_val_accuracy": summary(teacher_history)["val_accuracy"],
        "student_epochs": args.student_epochs,
        **summary(history),
    }


# -- seeds -------------------------------------------------------------------------------------


class _RecordLogits(keras.callbacks.Callback):
    """Stores the validation logits after every epoch under `(seed, epoch)`."""

    def __init__(self, valid: tf.data.Dataset, store: dict[Any, np.ndarray], seed: int) -> None:
        super().__init__()
        self.valid, self.store, self.seed = valid, store, seed

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.store[self.seed, epoch + 1] = self.model.predict(self.valid, verbose=0)[:, 0]


def run_seeds(args: argparse.Namespace, config: RunConfig, splits: ImdbSplits) -> dict[str, Any]:
    seeds = [int(seed) for seed in args.seeds.split(",")]
    encoder = Trainer(config).adapt(splits)
    logits: dict[tuple[int, int], np.ndarray] = {}
    labels: np.ndarray | None = None
    histories = {}
    for seed in seeds:
        trainer = Trainer(config.replace(training={"seed": seed}), encoder=encoder)
        valid, valid_labels, _ = trainer._eval_batches(splits["valid"], "sorted")
        labels = valid_labels

        histories[seed] = summary(
            fit_from(trainer, splits, callbacks=[_RecordLogits(valid, logits, seed)])
        )
    assert labels is not None

    def accuracy(values: np.ndarray) -> float:
        return round(float(((values > 0) == labels).mean()), 4)

    epochs = sorted({epoch for _, epoch in logits})
    return {
        "lever": "seeds",
        "seeds": seeds,
        "per_seed": {str(seed): history for seed, history in histories.items()},
        "ensemble_val_accuracy_per_epoch": [
            accuracy(sum(logits[seed, epoch] for seed in seeds)) for epoch in epochs
        ],
        "ensemble_of_kept_epochs": accuracy(
            sum(logits[seed, histories[seed]["kept_epoch"]] for seed in seeds)
        ),
        "mean_single_kept": round(
            float(np.mean([histories[seed]["val_accuracy"] for seed in seeds])), 4
        ),
    }


LEVERS = {
    "ppmi": run_ppmi,
    "lm": run_lm,
    "self-training": run_self_training,
    "seeds": run_seeds,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("lever", choices=sorted(LEVERS))
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--window", type=int, default=5, help="ppmi: co-occurrence window")
    parser.add_argument("--scale", type=float, default=0.1, help="ppmi: std of the vectors")
    parser.add_argument("--freeze", action="store_true", help="ppmi: freeze the embedding")
    parser.add_argument("--lm-epochs", type=float, default=1.0)
    parser.add_argument("--lm-learning-rate", type=float, default=2e-3)
    parser.add_argument("--sampled", type=int, default=512, help="lm: sampled softmax classes")
    parser.add_argument("--learning-rate", type=float, default=None, help="fine-tuning LR")
    parser.add_argument("--threshold", type=float, default=0.9, help="self-training")
    parser.add_argument("--student-epochs", type=int, default=2, help="self-training")
    parser.add_argument("--seeds", default="42,43,44", help="seeds: comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="reviews per split (smoke runs)")
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/semi_supervised.json")
    )
    args = parser.parse_args()

    config = get_preset(args.preset)
    if args.learning_rate is not None:
        config = config.replace(training={"learning_rate": args.learning_rate})
    splits = load_imdb(args.data, splits=["train", "valid", "unsupervised"], limit=args.limit)
    start = time.perf_counter()
    row = LEVERS[args.lever](args, config, splits)
    row = {
        **row,
        "preset": args.preset,
        "learning_rate": config.training.learning_rate,
        "seconds": round(time.perf_counter() - start),
    }
    print(json.dumps(row), flush=True)
    rows = json.loads(args.output.read_text())["rows"] if args.output.exists() else []
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"rows": [*rows, row]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
