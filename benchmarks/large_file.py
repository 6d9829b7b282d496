"""Large-file benchmark: train on a generated CSV of millions of rows with bounded memory.

Writes a CSV of `--rows` made-up texts (two classes, 5-40 words each, from a 5,000-word
vocabulary), then trains a small model on it with `imdb_rnn.training.ondisk.train_on_disk` (what
`imdb-rnn train --train FILE --on-disk` runs): one streamed pass adapts the vocabulary, a second
tokenises into a cache on disk, training streams length-sorted batches from it. Prints the file
size, the peak resident memory of this process (`ru_maxrss`), the time of each stage and the
training reviews per second, and writes them as JSON.

Usage:

    python benchmarks/large_file.py --rows 3000000
    python benchmarks/large_file.py --rows 200000 --json benchmarks/results/large_file_small.json

Peak memory is the process's maximum resident set size over the whole run (TensorFlow itself
takes several hundred MB); compare it with the size of the file and with a smaller `--rows`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import tempfile
import threading
import time
from pathlib import Path


def write_file(path: Path, rows: int, seed: int = 0) -> int:
    """Writes `rows` made-up labelled texts as CSV; returns its size in bytes."""
    rng = random.Random(seed)
    words = [f"w{index}" for index in range(5000)]
    cues = {"pos": ["great", "superb", "moving"], "neg": ["awful", "dull", "boring"]}
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("text,label\n")
        for _ in range(rows):
            label = "pos" if rng.random() < 0.5 else "neg"
            tokens = rng.choices(words, k=rng.randint(5, 40))
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(cues[label]))
            stream.write(f"{' '.join(tokens)},{label}\n")
    return path.stat().st_size


def peak_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class ResidentSampler(threading.Thread):
    """Samples this process's resident memory by kind (`/proc/self/status`: anonymous, i.e. the
    heap, and file-backed, i.e. memory-mapped files) every `interval` seconds and keeps the peak
    of each, so that growth can be told apart: a memory map's pages count as resident once read,
    though the kernel may drop them at any time."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks: dict[str, float] = {"RssAnon": 0.0, "RssFile": 0.0}
        self._stop_event = threading.Event()

    def sample(self) -> dict[str, float]:
        values = {}
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    key, _, rest = line.partition(":")
                    if key in self.peaks:
                        values[key] = int(rest.split()[0]) / 1024  # kB
        except OSError:  # not Linux
            return {}
        for key, value in values.items():
            self.peaks[key] = max(self.peaks[key], value)
        return values

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        self._stop_event.set()
        self.join()
        self.sample()
        return {f"peak_{key}_megabytes": value for key, value in self.peaks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workdir", type=Path, default=None, help="Default: a temporary folder.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from imdb_rnn.config import get_preset
    from imdb_rnn.data.sources import TextFiles
    from imdb_rnn.training.ondisk import train_on_disk

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imdb-rnn-large-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "large.csv"
    start = time.perf_counter()
    size = write_file(data, args.rows)
    write_seconds = time.perf_counter() - start
    print(f"wrote {args.rows:,} rows, {size / 1e6:,.1f} MB, in {write_seconds:.0f} s", flush=True)
    baseline = peak_megabytes()
    config = get_preset("default").replace(
        data={"batch_size": args.batch_size, "eval_batch_size": 4096, "max_length": 64},
        model={"max_tokens": 5000, "embedding_dim": 16, "rnn_units": 16, "dense_units": (16,)},
        training={"epochs": args.epochs, "early_stopping_patience": 1000},
    )
    stages: dict[str, float] = {}
    last = [time.perf_counter(), "start"]

    sampler = ResidentSampler()
    sampler.start()

    def on_stage(name: str) -> None:
        now = time.perf_counter()
        stages[str(last[1])] = now - float(last[0])
        last[0], last[1] = now, name
        current = sampler.sample()
        kinds = ", ".join(f"{key} {value:,.0f} MB" for key, value in current.items())
        print(f"» {name} (peak so far {peak_megabytes():,.0f} MB; now {kinds})", flush=True)

    start = time.perf_counter()
    result = train_on_disk(config, TextFiles(train=data), on_stage=on_stage)
    total = time.perf_counter() - start
    on_stage("done")
    kinds = sampler.stop()
    report = {
        "rows": args.rows,
        "file_megabytes": size / 1e6,
        "peak_resident_megabytes": peak_megabytes(),
        "peak_before_training_megabytes": baseline,
        **kinds,
        "seconds_total": total,
        "stage_seconds": {k: v for k, v in stages.items() if k != "start"},
        "train_reviews_per_second": result.train_examples_per_second,
        "train_rows": result.sizes["train"],
        "valid_accuracy": result.valid.accuracy if result.valid else None,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.workdir is None:
        data.unlink()


if __name__ == "__main__":
    main()
