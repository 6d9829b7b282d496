"""Load benchmark of `imdb-rnn serve`: requests/s and latency with batching on and off.

Starts two real servers as subprocesses on 127.0.0.1 (free ports), one with batching (the
default options) and one with `--no-batching` (one model call per request), then drives them with
1, 8 and 64 concurrent clients. Each client is a coroutine with its own keep-alive HTTP/1.1
connection (all on one asyncio loop in this process, which takes little of the CPU the server
shares) that sends one review per request to `POST /v1/models/imdb-rnn:predict`, headers and
body in one write, as fast as answers come back, for `--seconds` per level (and at most
`--max-requests` requests). The two servers take turns, `--rounds` times per level (the level's
seconds split between the turns), so that load from other processes on a shared machine affects
both alike. Prints, per mode and level, requests/s, p50 and
p99 latency, reviews per model call (from `/healthz`), requests per CPU second of the server
process (which moves less than wall time when other processes share the machine) and the CPU
seconds of the clients, then the ratios batching / no batching, and writes it all as JSON.

The reviews are real test reviews read from the aclImdb archive (`--data`). Before the servers
start, the script times model calls on the same 64 reviews in calls of 1, 8 and 64, in its own
process, without HTTP: the cost per review of a call on one review against a call on a batch
bounds what batching can save.

Usage:

    imdb-rnn train --data ../shared/data/imdb/aclImdb_v1.tar.gz --output runs/default
    python benchmarks/serve.py runs/default --data ../shared/data/imdb/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import asyncio
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


def request_bytes(host: str, port: int, review: str) -> bytes:
    """One whole keep-alive HTTP/1.1 predict request, headers and body, as one buffer (sent in
    one write: a body sent after its headers waits for the server's delayed ACK, about 40 ms,
    under Nagle's algorithm)."""
    body = json.dumps({"instances": [review]}).encode("utf-8")
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _client(
    server: Server,
    requests: list[bytes],
    index: int,
    state: dict[str, Any],
    latencies: list[float],
    errors: list[str],
) -> None:
    """One client: one keep-alive connection, one request at a time, as fast as answers come."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    sent = 0
    await state["start"].wait()
    try:
        while time.perf_counter() < state["deadline"] and state["budget"] > 0:
            state["budget"] -= 1
            request = requests[(index * 7919 + sent) % len(requests)]
            began = time.perf_counter()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
                answer = await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"{status}: {answer[:200]!r}")
            except Exception as error:  # recorded and reported, not fatal to the run
                errors.append(str(error) or type(error).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection(server.host, server.port)
                continue
            latencies.append(time.perf_counter() - began)
            sent += 1
    finally:
        writer.close()


def drive(
    server: Server, reviews: list[str], *, clients: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """Runs `clients` concurrent clients against `server` for `seconds`; returns throughput,
    latency and the CPU seconds of the server and of the clients (see `summarize`)."""
    return summarize(
        clients,
        [measure(server, reviews, clients=clients, seconds=seconds, max_requests=max_requests)],
    )


def measure(
    server: Server, reviews: list[str], *, clients: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """One period of load: the raw latencies, errors, seconds, CPU seconds and model calls.

    The clients are coroutines on one asyncio loop in this process, each with its own
    keep-alive connection, sending prepared request bytes and reading answers by their
    Content-Length: a load generator that takes little of the CPU the server shares.
    """
    requests = [request_bytes(server.host, server.port, review) for review in reviews]
    latencies: list[float] = []
    errors: list[str] = []

    async def run() -> tuple[float, float | None, int, float]:
        state: dict[str, Any] = {"start": asyncio.Event(), "deadline": 0.0, "budget": max_requests}
        tasks = [
            asyncio.create_task(_client(server, requests, i, state, latencies, errors))
            for i in range(clients)
        ]
        await asyncio.sleep(0.2)  # connections open before the clock starts
        calls_before = server.get("/healthz")["model_calls"]
        cpu_before, own_before = server.cpu_seconds(), time.process_time()
        began = time.perf_counter()
        state["deadline"] = began + seconds
        state["start"].set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        cpu_after, own = server.cpu_seconds(), time.process_time() - own_before
        cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
        return elapsed, cpu, server.get("/healthz")["model_calls"] - calls_before, own

    elapsed, cpu, calls, client_cpu = asyncio.run(run())
    return {
        "latencies": latencies,
        "errors": errors,
        "seconds": elapsed,
        "server_cpu_seconds": cpu,
        "client_cpu_seconds": client_cpu,
        "model_calls": calls,
    }


def summarize(clients: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests/s, p50 and p99 latency, CPU seconds and reviews per model call over all the
    periods of `measure` given (their requests and seconds summed), and each period's
    requests/s."""
    ordered = sorted(latency for part in parts for latency in part["latencies"])
    errors = [error for part in parts for error in part["errors"]]
    elapsed = sum(part["seconds"] for part in parts)
    cpus = [part["server_cpu_seconds"] for part in parts]
    cpu = sum(cpus) if None not in cpus else None
    client_cpu = sum(part["client_cpu_seconds"] for part in parts)
    calls = sum(part["model_calls"] for part in parts)

    def percentile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "clients": clients,
        "requests": len(ordered),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(ordered) / elapsed, 1),
        "requests_per_second_by_round": [
            round(len(part["latencies"]) / part["seconds"], 1) for part in parts
        ],
        "p50_ms": round(percentile(0.50), 2),
        "p99_ms": round(percentile(0.99), 2),
        "server_cpu_seconds": round(cpu, 2) if cpu is not None else None,
        "requests_per_server_cpu_second": round(len(ordered) / cpu, 1) if cpu else None,
        "client_cpu_seconds": round(client_cpu, 2),
        "model_calls": calls,
        "reviews_per_model_call": round(len(ordered) / calls, 1) if calls else None,
    }


def model_call_times(model: Path, reviews: list[str], sizes: list[int]) -> dict[str, Any]:
    """Milliseconds of model calls as the server makes them (no HTTP): the same `max(sizes)`
    reviews classified in calls of each size, best of 3 passes. What batching can save at most
    is the ratio of the cost per review between calls of one review and calls of many."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from imdb_rnn.deploy.serve import _Model
    from imdb_rnn.training.trainer import Trainer

    runner = _Model(Trainer.load(model))
    sample = reviews[: max(sizes)]
    times = {}
    for size in sizes:
        chunks = [sample[start : start + size] for start in range(0, len(sample), size)]
        runner.logits(chunks[0])  # trace

        def one_pass(chunks: list[list[str]] = chunks) -> None:
            for chunk in chunks:
                runner.logits(chunk)

        best = min(_timed(one_pass) for _ in range(3))
        times[str(size)] = {
            "ms_per_call": round(best * 1000 / len(chunks), 2),
            "ms_per_review": round(best * 1000 / len(sample), 3),
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="the seconds of a level are split into this many turns of each mode, alternating",
    )
    parser.add_argument("--max-requests", type=int, default=20_000, help="per level and mode")
    parser.add_argument("--reviews", type=int, default=1000, help="distinct reviews sent")
    parser.add_argument(
        "--server-options",
        default="",
        help="extra options of the batching server, e.g. '--max-wait-ms 0 --max-batch-size 32'",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/serve.json"))
    args = parser.parse_args()

    load_at_start = os.getloadavg()
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
            parts: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
            for _ in range(args.rounds):  # the modes take turns, round after round
                for name, server in servers.items():
                    parts[name].append(
                        measure(
                            server,
                            reviews,
                            clients=clients,
                            seconds=args.seconds / args.rounds,
                            max_requests=args.max_requests // args.rounds,
                        )
                    )
            for name in modes:
                row = summarize(clients, parts[name])
                results[name].append(row)
                print(
                    f"{name:>12} {clients:>3} clients: {row['requests_per_second']:8.1f} req/s  "
                    f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                    f"{row['reviews_per_model_call'] or 0:5.1f} reviews/call  "
                    f"{row['requests_per_server_cpu_second'] or 0:7.1f} req/CPU-s  "
                    f"clients {row['client_cpu_seconds']:.1f} CPU-s  "
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
            "load_average_at_start": load_at_start,
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
