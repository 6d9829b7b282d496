"""Load benchmark of `imdb-rnn serve`: requests/s and latency with batching on and off.

Starts two real servers as subprocesses on 127.0.0.1 (free ports), one with batching (the
default options) and one with `--no-batching` (one model call per request), then drives them with
1, 8 and 64 concurrent clients. Each client is a thread with its own keep-alive HTTP connection
that sends one review per request to `POST /v1/models/imdb-rnn:predict`, as fast as answers
come back, for `--seconds` per level (and at most `--max-requests` requests). The two servers
take turns level by level, so that load from other processes on a shared machine affects both
alike. Prints, per mode and level, requests/s, p50 and p99 latency, reviews per model call (from
`/healthz`) and requests per CPU second of the server process (which moves less than wall time
when other processes share the machine), then the ratios batching / no batching, and writes it
all as JSON.

The reviews are real test reviews read from the aclImdb archive (`--data`). Before the servers
start, the script times model calls on 1, 8 and 64 reviews in its own process, without HTTP: the
cost per review of a call on one review against a call on a batch bounds what batching can save.

Usage:

    imdb-rnn train --data ../shared/data/imdb/aclImdb_v1.tar.gz --output runs/default
    python benchmarks/serve.py runs/default --data ../shared/data/imdb/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

PATH = "/v1/models/imdb-rnn:predict"


def read_reviews(archive: Path, count: int) -> list[str]:
    """The first `count` test reviews of the archive, alternating neg and pos."""
    found: dict[str, list[str]] = {"neg": [], "pos": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if all(len(texts) >= count // 2 for texts in found.values()):
                break
            match = re.match(r"aclImdb/test/(neg|pos)/", member.name)
            if not match or not member.isfile() or len(found[match[1]]) >= count // 2:
                continue
            stream = tar.extractfile(member)
            assert stream is not None
            found[match[1]].append(stream.read().decode("utf-8"))
    reviews = [text for pair in zip(found["neg"], found["pos"], strict=False) for text in pair]
    if not reviews:
        raise SystemExit(f"No test reviews in {archive}")
    return reviews


class Server:
    """`python -m imdb_rnn serve MODEL --port 0 [options]` in a subprocess."""

    def __init__(self, model: Path, options: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imdb_rnn", "serve", str(model), "--port", "0", *options],
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
        # Keep reading stderr so that the server never blocks on a full pipe.
        threading.Thread(target=self.process.stderr.read, daemon=True).start()

    def get(self, path: str) -> dict[str, Any]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        connection.request("GET", path)
        body = json.loads(connection.getresponse().read())
        connection.close()
        return body

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server process has used so far (Linux), else None."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def drive(
    server: Server, reviews: list[str], *, clients: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """Runs `clients` threads against `server` for `seconds`; returns throughput and latency."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]
    budget = [max_requests]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
        mine: list[float] = []
        start_line.wait()
        sent = 0
        while time.perf_counter() < deadline[0]:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            review = reviews[(index * 7919 + sent) % len(reviews)]
            body = json.dumps({"instances": [review]})
            began = time.perf_counter()
            try:
                connection.request("POST", PATH, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {answer[:200]!r}")
            except Exception as error:  # recorded and reported, not fatal to the run
                with lock:
                    errors.append(str(error))
                connection.close()
                connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
                continue
            mine.append(time.perf_counter() - began)
            sent += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    calls_before = server.get("/healthz")["model_calls"]
    cpu_before = server.cpu_seconds()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_line.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu_after = server.cpu_seconds()
    cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
    calls = server.get("/healthz")["model_calls"] - calls_before
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "clients": clients,
        "requests": len(ordered),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(ordered) / elapsed, 1),
        "p50_ms": round(percentile(0.50), 1),
        "p99_ms": round(percentile(0.99), 1),
        "server_cpu_seconds": round(cpu, 2) if cpu is not None else None,
        "requests_per_server_cpu_second": round(len(ordered) / cpu, 1) if cpu else None,
        "model_calls": calls,
        "reviews_per_model_call": round(len(ordered) / calls, 1) if calls else None,
    }


def model_call_times(model: Path, reviews: list[str], sizes: list[int]) -> dict[str, Any]:
    """Milliseconds of one model call as the server makes it (no HTTP), for a few batch sizes:
    what batching can save at most. Best of 5 calls on the same reviews."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from imdb_rnn.serve import _Model
    from imdb_rnn.trainer import Trainer

    runner = _Model(Trainer.load(model))
    times = {}
    for size in sizes:
        batch = reviews[:size]
        runner.logits(batch)  # trace
        best = min(_timed(runner.logits, batch) for _ in range(5))
        times[str(size)] = {
            "ms_per_call": round(best * 1000, 2),
            "ms_per_review": round(best * 1000 / size, 3),
        }
    runner.executor.shutdown()
    return times


def _timed(function: Any, *args: Any) -> float:
    began = time.perf_counter()
    function(*args)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model directory written by 'imdb-rnn train'")
    parser.add_argument("--data", type=Path, required=True, help="aclImdb_v1.tar.gz")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=15.0, help="per level and mode")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per level and mode")
    parser.add_argument("--reviews", type=int, default=1000, help="distinct reviews sent")
    parser.add_argument(
        "--server-options",
        default="",
        help="extra options of the batching server, e.g. '--max-wait-ms 0 --max-batch-size 32'",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/serve.json"))
    args = parser.parse_args()

    reviews = read_reviews(args.data, args.reviews)
    calls = model_call_times(args.model, reviews, [1, 8, 64])
    for size, timing in calls.items():
        print(
            f"model call, {size:>2} reviews: {timing['ms_per_call']:7.2f} ms "
            f"({timing['ms_per_review']:.3f} ms per review)",
            flush=True,
        )
    modes = {"batching": args.server_options.split(), "no batching": ["--no-batching"]}
    servers = {name: Server(args.model, options) for name, options in modes.items()}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
    try:
        for server in servers.values():  # warm up: trace the model for a few batch shapes
            drive(server, reviews, clients=8, seconds=3, max_requests=200)
        for clients in args.clients:
            for name, server in servers.items():
                row = drive(
                    server,
                    reviews,
                    clients=clients,
                    seconds=args.seconds,
                    max_requests=args.max_requests,
                )
                results[name].append(row)
                print(
                    f"{name:>12} {clients:>3} clients: {row['requests_per_second']:8.1f} req/s  "
                    f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                    f"{row['reviews_per_model_call'] or 0:5.1f} reviews/call  "
                    f"{row['requests_per_server_cpu_second'] or 0:7.1f} req/CPU-s  "
                    f"({row['requests']} requests, {row['errors']} errors)",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    ratios = {
        str(on["clients"]): round(on["requests_per_second"] / off["requests_per_second"], 2)
        for on, off in zip(results["batching"], results["no batching"], strict=True)
        if off["requests_per_second"]
    }
    cpu_ratios = {
        str(on["clients"]): round(
            on["requests_per_server_cpu_second"] / off["requests_per_server_cpu_second"], 2
        )
        for on, off in zip(results["batching"], results["no batching"], strict=True)
        if on["requests_per_server_cpu_second"] and off["requests_per_server_cpu_second"]
    }
    for clients, ratio in ratios.items():
        print(
            f"{clients:>3} clients: batching gives {ratio}x the requests/s of no batching, "
            f"{cpu_ratios.get(clients)}x the requests per server CPU second"
        )
    document = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
        },
        "args": {key: str(value) for key, value in vars(args).items()},
        "model_config": json.loads((args.model / "config.json").read_text(encoding="utf-8")),
        "model_call_times": calls,
        "results": results,
        "throughput_ratio_batching_over_no_batching": ratios,
        "cpu_efficiency_ratio_batching_over_no_batching": cpu_ratios,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
