"""Accuracy ablations: train variants of a preset on the real data and compare them on the
validation split only (the test split is never used here, so it cannot leak into choices).

Each variant is a list of `section.field=value` overrides applied to the base preset. Prints a
table (validation accuracy and loss with the kept weights, epochs run, best epoch, wall time,
parameters) and writes JSON. Each variant trains one model with `Trainer.fit`: a preset's
self-training (`training.pseudo_label_threshold`, applied by `imdb_rnn.train`) is not run here;
`benchmarks/self_training.py` measures it.

Usage:

    python benchmarks/ablation.py --data ../shared/data/imdb/aclImdb_v1.tar.gz --preset default \\
        --variant "" --variant "model.pooling=final" --variant "data.max_length=256"
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras

from imdb_rnn.config import RunConfig, get_preset
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.training.trainer import Trainer


def parse_overrides(text: str) -> dict[str, dict[str, Any]]:
    """`model.rnn_units=96,data.max_length=none` -> {"model": {"rnn_units": 96}, ...}."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, raw = item.partition("=")
        section, _, name = key.partition(".")
        if raw.lower() == "none":
            value: Any = None
        else:
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw
        overrides.setdefault(section, {})[name] = value
    return overrides


def apply(base: RunConfig, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    values = base.to_dict()
    for section, fields in overrides.items():
        values[section].update(fields)  # None values are kept (e.g. max_length=none)
    return RunConfig.from_dict(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--variant", action="append", dest="variants", default=None)
    parser.add_argument(
        "--valid-split",
        choices=("random", "film"),
        default=None,
        help="how validation reviews are chosen (data.valid_split). Default: the preset's",
    )
    parser.add_argument(
        "--short-texts",
        action="store_true",
        help="also measure each variant on the validation reviews cut to their first sentence, "
        "last sentence and first 30 words (the crops of short_texts.py)",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/ablation.json"))
    args = parser.parse_args()
    variants = args.variants or [""]

    base = get_preset(args.preset)
    if args.valid_split is not None:
        base = base.replace(data={"valid_split": args.valid_split})
    splits = load_imdb(
        args.data, splits=["train", "valid", "unsupervised"], valid_split=base.data.valid_split
    )
    valid_crops: dict[str, list[str]] | None = None
    if args.short_texts:
        import sys

        import numpy as np

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from short_texts import accuracies, crops_of, split_arrays

        valid_texts, valid_labels = split_arrays(splits["valid"])
        valid_crops = crops_of(valid_texts)
    rows = []
    for text in variants:
        config = apply(base, parse_overrides(text))
        keras.backend.clear_session()
        print(f"running [{text or 'base'}] ...", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer = Trainer(config)
        history = trainer.fit(splits)
        valid = trainer.evaluate(splits["valid"])
        seconds = time.perf_counter() - start
        assert trainer.classifier is not None
        row = {
            "variant": text or "base",
            "val_accuracy": valid.accuracy,
            "val_loss": valid.loss,
            "epochs": len(history["loss"]),
            "best_epoch": trainer.best_epoch,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu_start,
            "parameters": trainer.classifier.count_params(),
            "val_accuracy_per_epoch": history["val_accuracy"],
            "epoch_train_seconds": trainer.epoch_train_seconds,
            "config": config.to_dict(),
        }
        if valid_crops is not None:
            row["val_short_texts"] = accuracies(
                lambda texts, t=trainer: (t.predict_logits(texts) >= 0).astype(np.int32),
                valid_crops,
                valid_labels,
            )
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"preset": args.preset, "rows": rows}, indent=2) + "\n")

    print(
        f"\n{'variant':<60}{'val acc':>9}{'val loss':>9}{'epochs':>7}{'best':>5}"
        f"{'seconds':>9}{'params':>9}"
    )
    for row in rows:
        print(
            f"{row['variant']:<60}{row['val_accuracy']:>9.4f}{row['val_loss']:>9.4f}{row['epochs']:>7}"
            f"{row['best_epoch']:>5}{row['seconds']:>9.0f}{row['parameters']:>9}"
        )


if __name__ == "__main__":
    main()
