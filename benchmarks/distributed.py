"""Scaling benchmark: one device, `mirrored` over two devices, and two `multi-worker` processes.

Runs `imdb-rnn train` three times on the same reviews with the same global batch (64 reviews per
step): with the default strategy (batch 64), mirrored over two logical CPU devices (32 per
replica), and as two worker processes on 127.0.0.1 (32 each); then prints the training reviews
per second of each epoch after the first (the first traces the training function) and the test
accuracy. On a CPU, logical devices and local workers share the same cores: this measures the
overhead of distribution, not a speed-up (docs/distributed.md).

Usage:

    python benchmarks/distributed.py --data ../shared/data/imdb/aclImdb_v1.tar.gz --limit 4000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Two logical CPU devices must be configured before TensorFlow starts, so the mirrored run goes
# through this small launcher instead of the `imdb-rnn` entry point.
_TWO_CPUS = (
    "import sys, tensorflow as tf; "
    "cpu = tf.config.list_physical_devices('CPU')[0]; "
    "tf.config.set_logical_device_configuration("
    "cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
    "from imdb_rnn.cli import main; sys.argv = ['imdb-rnn', *sys.argv[1:]]; main()"
)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _summary(output: Path) -> dict[str, Any]:
    metrics = json.loads((output / "metrics.json").read_text())
    later = metrics["epoch_train_seconds"][1:] or metrics["epoch_train_seconds"]
    return {
        "replicas": metrics["replicas"],
        "global_batch_size": metrics["global_batch_size"],
        "epoch_seconds": metrics["epoch_train_seconds"],
        "reviews_per_second": metrics["sizes"]["train"] * len(later) / sum(later),
        "test_accuracy": metrics["test"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="aclImdb_v1.tar.gz or aclImdb/")
    parser.add_argument("--limit", type=int, default=4000, help="reviews per split")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    common = ["--data", args.data, "--limit", str(args.limit), "--epochs", str(args.epochs)]
    common += ["--no-tensorboard", "--json", "--overwrite"]
    per_replica = ["--batch-size", "32"]  # two replicas: 64 reviews per step, as on one device
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        one = Path(root) / "one"
        train = [sys.executable, "-m", "imdb_rnn", "train"]
        subprocess.run(
            [*train, *common, "--output", str(one), "--strategy", "default", "--batch-size", "64"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        results["1 device (default)"] = _summary(one)

        mirrored = Path(root) / "mirrored"
        mirrored_args = ["--output", str(mirrored), "--strategy", "mirrored"]
        subprocess.run(
            [sys.executable, "-c", _TWO_CPUS, "train", *common, *per_replica, *mirrored_args],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        results["2 logical CPU devices (mirrored)"] = _summary(mirrored)

        workers = Path(root) / "workers"
        worker_args = ["--output", str(workers), "--strategy", "multi-worker"]
        cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
        processes = [
            subprocess.Popen(
                [*train, *common, *per_replica, *worker_args],
                env={
                    **env,
                    "TF_CONFIG": json.dumps(
                        {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}}
                    ),
                },
                stdout=subprocess.DEVNULL,
            )
            for i in range(2)
        ]
        if any(process.wait() != 0 for process in processes):
            raise SystemExit("a worker failed")
        results["2 workers on 127.0.0.1 (multi-worker)"] = _summary(workers)

    base = results["1 device (default)"]["reviews_per_second"]
    print(f"{'run':40} {'replicas':>8} {'batch':>6} {'reviews/s':>10} {'ratio':>6} {'test acc':>8}")
    for name, row in results.items():
        print(
            f"{name:40} {row['replicas']:>8} {row['global_batch_size']:>6} "
            f"{row['reviews_per_second']:>10.0f} {row['reviews_per_second'] / base:>6.2f} "
            f"{row['test_accuracy']:>8.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
