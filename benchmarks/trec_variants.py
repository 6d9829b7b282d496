"""TREC variants: validation accuracy of one recipe, for choosing settings on TREC questions.

Trains one model on `train.csv` of the TREC question set (validation carved with the fixed
seed, as `imdb-rnn train` does) and prints its validation accuracy as one JSON line; the
validation and test logits go to `--logits` (a `.npz`) so that ensembles of runs can be scored
afterwards without training again. The test logits are for the recipe finally chosen only.

A variant is a JSON object: `preset` (default `short`), `config` (sections of the config to
replace, as `RunConfig.replace` takes them), and, for ideas that are not library options and
were tried only here (patched in for this process): `unknown_word_rate` (training replaces
that share of known words by the out-of-vocabulary id), `standardize` (`keep_case`,
`punctuation_tokens`, `stem`: other text standardisations), `suffix` (each word followed by a
token of its last N characters, the pair's embeddings summed), `conv` (`{"filters": F,
"widths": [...]}`: a max-pooled convolution branch beside the BiGRU), `label_smoothing`.

Usage:

    python benchmarks/trec_variants.py short_s1 '{"config": {"training": {"seed": 1}}}'
    python benchmarks/trec_variants.py stem '{"standardize": "stem"}' --logits stem.npz
    python benchmarks/trec_variants.py glove \
        '{"config": {"model": {"word_vectors": "glove.6B.50d.txt"}, "training": {"seed": 2}}}'
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

TREC = Path(os.environ.get("TREC_DATA", "../shared/data/trec"))
PUNCTUATION = r"([!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~'])"


def patch(spec: dict[str, Any]) -> None:
    """Patches the library for the experiment-only ideas of `spec` (this process only)."""
    import keras
    import tensorflow as tf

    import imdb_rnn.layers as layers
    import imdb_rnn.training.trainer as trainer_module
    from imdb_rnn.layers import MaskedPooling, recurrent_stack
    from imdb_rnn.models import build_classifier

    style = spec.get("standardize")
    suffix = spec.get("suffix")

    def standardize(texts: tf.Tensor) -> tf.Tensor:
        lowered = texts if style == "keep_case" else tf.strings.lower(texts)
        lowered = tf.strings.regex_replace(lowered, layers._LINE_BREAKS, " ")
        if style == "punctuation_tokens":
            return tf.strings.regex_replace(lowered, PUNCTUATION, r" \1 ")
        lowered = tf.strings.regex_replace(lowered, layers.PUNCTUATION, "")
        if style == "stem":
            return tf.strings.regex_replace(lowered, r"\b(\w{3,}?)(ing|ed|es|s)\b", r"\1")
        if suffix:
            lowered = tf.strings.strip(tf.strings.regex_replace(lowered, r"\s+", " "))
            pattern = rf"(\S*?)(\S{{1,{suffix}}})(\s|$)"
            return tf.strings.regex_replace(lowered, pattern, r"\1\2 #\2\3")
        return lowered

    if style or suffix:
        layers.imdb_standardize = standardize  # read when TextEncoder builds its vectorizer

    class UnknownWords(keras.layers.Layer):
        def __init__(self, rate: float) -> None:
            super().__init__()
            self.rate = rate
            self.seeds = keras.random.SeedGenerator(7)

        def call(self, ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
            if not training:
                return ids
            drop = keras.random.uniform(tf.shape(ids), seed=self.seeds) < self.rate
            return tf.where(drop & (ids > 1), tf.ones_like(ids), ids)

    class Pairs(keras.layers.Layer):
        def call(self, ids: tf.Tensor) -> tf.Tensor:
            ids = tf.pad(ids, [[0, 0], [0, tf.shape(ids)[1] % 2]])
            return tf.reshape(ids, [tf.shape(ids)[0], -1, 2])

    class SumPairs(keras.layers.Layer):
        def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
            return tf.reduce_sum(inputs[0], axis=2)

        def compute_mask(self, inputs: list[tf.Tensor], mask: Any = None) -> tf.Tensor:
            return inputs[1][:, :, 0] > 0

    def head(config: Any, x: Any, num_classes: int) -> Any:
        for units in config.dense_units:
            if config.dropout:
                x = keras.layers.Dropout(config.dropout)(x)
            x = keras.layers.Dense(units, activation="relu")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout)(x)
        return keras.layers.Dense(num_classes)(x)

    def build(config: Any, *, num_classes: int = 2, word_vectors: Any = None) -> keras.Model:
        ids = keras.Input(shape=(None,), dtype="int32")
        rnn = {
            "cell": config.cell,
            "rnn_units": config.rnn_units,
            "num_rnn_layers": config.num_rnn_layers,
            "pooling": config.pooling,
            "dropout": config.dropout,
        }
        if suffix:
            pairs = Pairs()(ids)
            embedded = keras.layers.Embedding(config.max_tokens, config.embedding_dim)(pairs)
            x = recurrent_stack(SumPairs()([embedded, pairs]), **rnn)
            return keras.Model(ids, head(config, x, num_classes))
        if spec.get("conv"):
            embedded = keras.layers.Embedding(
                config.max_tokens, config.embedding_dim, mask_zero=True
            )(ids)
            features = [recurrent_stack(embedded, **rnn)]
            mask = keras.ops.greater(ids, 0)
            for width in spec["conv"]["widths"]:
                convolved = keras.layers.Conv1D(
                    spec["conv"]["filters"], width, padding="same", activation="relu"
                )(embedded)
                features.append(MaskedPooling("max")(convolved, mask=mask))
            x = keras.layers.Concatenate()(features)
            return keras.Model(ids, head(config, x, num_classes))
        model = build_classifier(config, num_classes=num_classes, word_vectors=word_vectors)
        if not spec.get("unknown_word_rate"):
            return model
        return keras.Model(ids, model(UnknownWords(spec["unknown_word_rate"])(ids)))

    trainer_module.build_classifier = build  # type: ignore[assignment]

    smoothing = spec.get("label_smoothing")
    if smoothing:

        class Smoothed(keras.losses.Loss):
            def __init__(self, from_logits: bool = True, **kwargs: Any) -> None:
                super().__init__(**kwargs)

            def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
                labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
                one_hot = tf.one_hot(labels, tf.shape(y_pred)[-1])
                return keras.losses.categorical_crossentropy(
                    one_hot, y_pred, from_logits=True, label_smoothing=smoothing
                )

        keras.losses.SparseCategoricalCrossentropy = Smoothed  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name")
    parser.add_argument("spec", nargs="?", default="{}", help="The variant, as JSON.")
    parser.add_argument("--logits", type=Path, default=None, help="Write logits here (.npz).")
    args = parser.parse_args()
    spec = json.loads(args.spec)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    patch(spec)
    from imdb_rnn.config import get_preset
    from imdb_rnn.data.sources import TextFiles, load_text_files
    from imdb_rnn.training.trainer import Trainer

    config = get_preset(spec.get("preset", "short")).replace(**spec.get("config", {}))
    files = TextFiles(train=TREC / "train.csv", test=TREC / "test.csv")
    splits = load_text_files(
        files, splits=["train", "valid", "test"], valid_fraction=config.data.valid_fraction
    )
    trainer = Trainer(config)
    start = time.perf_counter()
    trainer.fit(splits)
    valid = trainer.evaluate(splits["valid"])
    print(
        json.dumps(
            {
                "name": args.name,
                "spec": spec,
                "valid_accuracy": round(valid.accuracy * 100, 2),
                "best_epoch": trainer.best_epoch,
                "epochs": len(trainer.history.get("loss", [])),
                "seconds": round(time.perf_counter() - start),
            }
        ),
        flush=True,
    )
    if args.logits is not None:
        texts = {
            name: [text.decode() for text, _ in splits[name].as_numpy_iterator()]
            for name in ("valid", "test")
        }
        labels = {
            name: np.array([label for _, label in splits[name].as_numpy_iterator()])
            for name in ("valid", "test")
        }
        np.savez(
            args.logits,
            valid=trainer.predict_logits(texts["valid"]),
            valid_labels=labels["valid"],
            test=trainer.predict_logits(texts["test"]),
            test_labels=labels["test"],
        )


if __name__ == "__main__":
    main()
