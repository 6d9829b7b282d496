"""Self-training on the unlabelled reviews: what pseudo-labels buy, on the by-film validation
split (the test split is never loaded here).

A teacher (a preset, trained on the labelled training reviews, or a saved model given with
`--teacher`) labels the 50,000 unlabelled reviews; those it labels with probability at least
`--threshold` (or at most 1 - threshold) join the training reviews with the teacher's label,
shuffled in with a fixed seed, and a student of the same recipe is trained on both. Each variant
is a student config (`section.field=value` overrides of the preset, as in `ablation.py`).

Usage:

    python benchmarks/self_training.py --data ../shared/data/imdb/aclImdb_v1.tar.gz \\
        --teacher runs/teacher --teacher-variant "data.max_length=none" \\
        --variant "data.max_length=none" --threshold 0.9
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablation import apply, parse_overrides
from short_texts import accuracies, crops_of, split_arrays

from imdb_rnn.config import get_preset
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.training.selftrain import add_pseudo_labels
from imdb_rnn.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--preset", default="default")
    parser.add_argument(
        "--teacher", type=Path, required=True, help="saved teacher (made if absent)"
    )
    parser.add_argument("--teacher-variant", default="", help="overrides for a teacher to train")
    parser.add_argument("--variant", action="append", dest="variants", default=None)
    parser.add_argument("--threshold", type=float, action="append", default=None)
    parser.add_argument("--save-dir", type=Path, default=None, help="save each student here")
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/self_training.json")
    )
    args = parser.parse_args()
    thresholds = args.threshold or [0.9]

    base = get_preset(args.preset).replace(data={"valid_split": "film"})
    splits = load_imdb(
        args.data, splits=["train", "valid", "unsupervised"], valid_split=base.data.valid_split
    )
    valid_texts, valid_labels = split_arrays(splits["valid"])
    valid_crops = crops_of(valid_texts)
    rows: list[dict[str, Any]] = []

    def measure(name: str, trainer: Trainer, extra: dict[str, Any]) -> None:
        valid = trainer.evaluate(splits["valid"])
        row = {
            "model": name,
            "val_accuracy": valid.accuracy,
            "val_loss": valid.loss,
            "val_accuracy_per_epoch": trainer.history.get("val_accuracy", []),
            "best_epoch": trainer.best_epoch,
            "val_short_texts": accuracies(
                lambda texts: (trainer.predict_logits(texts) >= 0).astype(np.int32),
                valid_crops,
                valid_labels,
            ),
            **extra,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"preset": args.preset, "rows": rows}, indent=2) + "\n")

    if (args.teacher / "config.json").exists():
        teacher = Trainer.load(args.teacher)
        print(f"teacher: {args.teacher}", flush=True)
    else:
        config = apply(base, parse_overrides(args.teacher_variant))
        start, cpu = time.perf_counter(), time.process_time()
        teacher = Trainer(config)
        teacher.fit(splits)
        teacher.save(args.teacher)
        measure(
            f"teacher [{args.teacher_variant or 'base'}]",
            teacher,
            {
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu,
                "config": config.to_dict(),
            },
        )

    for threshold in thresholds:
        start = time.perf_counter()
        student_splits, added = add_pseudo_labels(splits, teacher, threshold=threshold, seed=0)
        info = {
            "unlabelled": added.unlabelled,
            "pseudo_labelled": added.added,
            "pseudo_positive": added.per_class["pos"],
            "labelling_seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps({"threshold": threshold, **info}), flush=True)
        for index, text in enumerate(args.variants or [""]):
            config = apply(base, parse_overrides(text))
            keras.backend.clear_session()
            start, cpu = time.perf_counter(), time.process_time()
            student = Trainer(config)
            student.fit(student_splits)
            extra = {
                "threshold": threshold,
                **info,
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu,
                "epoch_train_seconds": student.epoch_train_seconds,
                "config": config.to_dict(),
            }
            measure(f"student [{text or 'base'}] threshold {threshold}", student, extra)
            if args.save_dir is not None:
                student.save(args.save_dir / f"{threshold}-{index}")


if __name__ == "__main__":
    main()
