"""What a request costs `imdb-rnn serve` besides the model: the server with an instant model.

Starts the served app (`imdb_rnn.deploy.serve.create_app`, on uvicorn as `imdb-rnn serve` runs it)
twice in subprocesses, batching on and off, with the model call replaced by one that returns
zeros at once, and drives each with 1 and 64 concurrent clients as `benchmarks/serve.py` does.
The server's CPU seconds per request are then HTTP, JSON, routing and the hand-over to the model
thread: the part of a request that batching cannot save. With `serve.py`'s model call times it
splits a request's cost into model and the rest.

Usage:

    python benchmarks/serve_overhead.py runs/default --data ../shared/data/imdb/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import serve as load  # benchmarks/serve.py, beside this file


def serve_instantly(model: Path, batching: bool) -> None:
    """Runs the app with an instant model on a free port (the subprocess's side)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from imdb_rnn.deploy.serve import (
        ServeOptions,
        bind_socket,
        create_app,
        listening_url,
        run_server,
    )
    from imdb_rnn.training.trainer import Trainer

    app = create_app(model, trainer=Trainer.load(model), options=ServeOptions(batching=batching))
    runner = app.state.model

    def instant(texts: list[str]) -> np.ndarray:
        runner.calls += 1
        return np.zeros(len(texts))

    runner.logits = instant
    sock = bind_socket("127.0.0.1", 0)
    print(f"Serving instant on {listening_url(sock)} (instant model)", file=sys.stderr, flush=True)
    run_server(app, sock)


class InstantServer(load.Server):
    """This script in a subprocess, serving with an instant model."""

    def __init__(self, model: Path, batching: bool) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(model), "--serve", "on" if batching else "off"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        lines = []
        for line in self.process.stderr:
            lines.append(line)
            if line.startswith("Serving "):
                url = line.split(" on ", 1)[1].split(" ", 1)[0]
                host, port = url.removeprefix("http://").rsplit(":", 1)
                self.host, self.port = host, int(port)
                break
        else:
            raise SystemExit("The server stopped before listening:\n" + "".join(lines))
        threading.Thread(target=self.process.stderr.read, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model directory written by 'imdb-rnn train'")
    parser.add_argument("--data", type=Path, help="aclImdb_v1.tar.gz")
    parser.add_argument("--seconds", type=float, default=6.0, help="per level and mode")
    parser.add_argument("--serve", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/serve_overhead.json")
    )
    args = parser.parse_args()
    if args.serve is not None:
        serve_instantly(args.model, args.serve == "on")
        return
    if args.data is None:
        parser.error("--data is required")
    reviews = load.read_reviews(args.data, 1000)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, batching in (("batching", True), ("no batching", False)):
        server = InstantServer(args.model, batching)
        try:
            load.drive(server, reviews, clients=8, seconds=2, max_requests=500)  # warm up
            results[name] = []
            for clients in (1, 64):
                row = load.drive(
                    server, reviews, clients=clients, seconds=args.seconds, max_requests=10**6
                )
                cpu = row["requests_per_server_cpu_second"]
                row["server_cpu_us_per_request"] = round(1e6 / cpu) if cpu else None
                results[name].append(row)
                print(
                    f"{name:>12} {clients:>3} clients: {row['requests_per_second']:8.1f} req/s  "
                    f"p50 {row['p50_ms']:6.2f} ms  "
                    f"{row['server_cpu_us_per_request']} us of server CPU per request  "
                    f"{row['reviews_per_model_call']} reviews/call",
                    flush=True,
                )
        finally:
            server.stop()
    document = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
