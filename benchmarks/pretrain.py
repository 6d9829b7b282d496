"""Language-model pre-training, then fine-tuning: what pre-training buys, on the by-film
validation split (the test split is never loaded here).

Two steps:

- `lm`: pre-trains an encoder (`imdb_rnn.pretrain`, as `imdb-rnn pretrain`) on the
  training reviews of the by-film split and the 50,000 unlabelled reviews, and prints the
  validation perplexity curve. Resumable: rerun the same command after an interruption.
- `finetune`: trains variants of a preset (default: `default` with `training.encoder` set to
  `--encoder`) on the by-film split, as `benchmarks/ablation.py` does, prints validation accuracy
  per epoch and the kept epoch's, and saves each model under `--save-dir` so that the chosen one
  can then be measured once on the test split and its short crops:
  `python benchmarks/short_texts.py --model SAVE_DIR/N ...`.

Rows are appended to `--output` (JSON).

Usage:

    python benchmarks/pretrain.py lm --data ../shared/data/imdb/aclImdb_v1.tar.gz \\
        --encoder runs/lm --epochs 4 --max-minutes 45
    python benchmarks/pretrain.py finetune --data ../shared/data/imdb/aclImdb_v1.tar.gz \\
        --encoder runs/lm --variant "" --variant "training.layer_lr_decay=2.6" \\
        --save-dir runs/finetune
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

sys.path.insert(0, str(Path(__file__).parent))
from ablation import apply, parse_overrides

from imdb_rnn.config import get_preset
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.models import build_classifier
from imdb_rnn.pretraining.pretrain import PretrainConfig, encoder_vocabulary, pretrain, read_encoder
from imdb_rnn.training.trainer import Trainer


def append_row(path: Path, row: dict[str, Any]) -> None:
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": [*rows, row]}, indent=2) + "\n")


def run_lm(args: argparse.Namespace) -> None:
    base = get_preset(args.preset)
    config = PretrainConfig.for_model(
        base.model,
        vocabulary_source=base.data.vocabulary_source,
        valid_split="film",
        epochs=args.epochs,
        sampled_classes=args.sampled_classes,
        sequence_length=args.sequence_length,
        learning_rate=args.learning_rate,
        max_minutes=args.max_minutes,
    )
    start, cpu_start = time.perf_counter(), time.process_time()

    def on_measure(entry: dict[str, float]) -> None:
        print(json.dumps(entry), flush=True)

    result = pretrain(args.data, args.encoder, config=config, on_measure=on_measure)
    row = {
        "step": "lm",
        "encoder": str(args.encoder),
        "complete": result.complete,
        "steps": result.step,
        "total_steps": result.total_steps,
        "train_tokens_per_epoch": result.tokens,
        "curve": result.curve,
        "train_seconds": round(result.seconds),
        "seconds": round(time.perf_counter() - start),
        "cpu_seconds": round(time.process_time() - cpu_start),
        "config": config.to_dict(),
    }
    print(json.dumps(row), flush=True)
    append_row(args.output, row)


def run_finetune(args: argparse.Namespace) -> None:
    base = get_preset(args.preset).replace(
        data={"valid_split": "film"}, training={"encoder": str(args.encoder)}
    )
    splits = load_imdb(args.data, splits=["train", "valid", "unsupervised"], valid_split="film")
    for index, text in enumerate(args.variants or [""]):
        config = apply(base, parse_overrides(text))
        keras.backend.clear_session()
        print(f"running [{text or 'base'}] ...", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer = Trainer(config)
        if args.embedding_only:
            # Only the embedding starts from the encoder; the GRU keeps its random start.
            classifier = build_classifier(config.model)
            vectors = read_encoder(args.encoder).embedding
            # Rescaled (as benchmarks/semi_supervised.py does for PPMI vectors): the language
            # model's vectors are several times larger than a fresh embedding's.
            vectors = vectors / vectors[2:].std() * args.embedding_std
            classifier.get_layer("embedding").set_weights([vectors])
            trainer = Trainer(
                config,
                encoder=encoder_vocabulary(args.encoder, config),
                classifier=classifier,
            )
        history = trainer.fit(splits)
        valid = trainer.evaluate(splits["valid"])
        seconds = time.perf_counter() - start
        saved = trainer.save(args.save_dir / str(index)) if args.save_dir else None
        row = {
            "step": "finetune",
            "variant": text or "base",
            "embedding_only": args.embedding_only,
            "embedding_std": args.embedding_std if args.embedding_only else None,
            "val_accuracy": valid.accuracy,
            "val_loss": valid.loss,
            "epochs": len(history["loss"]),
            "best_epoch": trainer.best_epoch,
            "val_accuracy_per_epoch": history["val_accuracy"],
            "val_loss_per_epoch": history["val_loss"],
            "seconds": round(seconds),
            "cpu_seconds": round(time.process_time() - cpu_start),
            "saved": str(saved) if saved else None,
            "config": config.to_dict(),
        }
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
        append_row(args.output, row)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=("lm", "finetune"))
    parser.add_argument("--data", default=os.environ.get("IMDB_RNN_DATA"))
    parser.add_argument("--encoder", type=Path, default=Path("runs/lm"))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--epochs", type=int, default=4, help="lm: passes over the text")
    parser.add_argument("--max-minutes", type=float, default=None, help="lm: time budget")
    parser.add_argument("--sampled-classes", type=int, default=512, help="lm")
    parser.add_argument("--sequence-length", type=int, default=128, help="lm")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="lm")
    parser.add_argument("--variant", action="append", dest="variants", default=None)
    parser.add_argument(
        "--embedding-only",
        action="store_true",
        help="finetune: start only the embedding from the encoder (the GRU from random weights)",
    )
    parser.add_argument("--embedding-std", type=float, default=0.1, help="--embedding-only")
    parser.add_argument("--save-dir", type=Path, default=None, help="finetune: keep the models")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/pretrain.json"))
    args = parser.parse_args()
    {"lm": run_lm, "finetune": run_finetune}[args.step](args)


if __name__ == "__main__":
    main()
