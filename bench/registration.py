"""Benchmark: proxylistener registrations/s and latency (token mode, 50 concurrent clients).

Baseline in the same run: a bare redis-py HSET loop against the same Redis, which is the floor
cost of the write itself. Each registration is one TCP connection carrying the four-line token
request, answered `ok` after the listener verified the token, applied the rules, and written the
route through RouteStore (one Lua script: token generation check, HSET, version INCR, audit
XADD and PUBLISH).

    .venv/bin/python bench/registration.py [--requests 5000] [--clients 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
import yaml

from toolforgectl.adapters.processes import Process, free_port, spawn, start_redis
from toolforgectl.adapters.routestore import prefix_key
from toolforgectl.core import tokens

KEY = b"b" * 32


def start_listener(tmp: Path, redis_port: int) -> Process:
    """proxylistener in token mode on a free loopback port, metrics off, logging to a file."""
    (tmp / "key").write_bytes(KEY)
    (tmp / "key").chmod(0o600)
    section = {"listen": "127.0.0.1", "token_key_file": str(tmp / "key"), "metrics_port": 0}
    section["max_connections"] = 1024
    section["max_connections_per_source"] = 1024  # every client of the benchmark is on 127.0.0.1
    # The clients register 127.0.0.1, as the lab's tools do.
    config = {
        "proxies": [{"name": "bench"}],
        "proxylistener": section,
        "dataplane": {"allow_loopback_backends": True},
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [str(Path(sys.executable).parent / "proxylistener"), "--config", str(tmp / "config.yaml")]
    argv += ["--port", str(port), "--redis", f"redis://127.0.0.1:{redis_port}/0"]
    return spawn("proxylistener", argv, tmp / "proxylistener.log", "127.0.0.1", port)


def hset_baseline(port: int, count: int) -> tuple[float, list[float]]:
    """Sequential HSETs with redis-py: (ops/s, latencies in seconds)."""
    client = redis.Redis(host="127.0.0.1", port=port)
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        client.hset(prefix_key(f"base{i % 50}"), ".*", f"http://127.0.0.1:{20000 + i % 40000}")
        latencies.append(time.perf_counter() - t0)
    return count / (time.perf_counter() - started), latencies


async def _register(port: int, payload: bytes) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    reply = await reader.read()
    writer.close()
    if reply != b"ok":
        raise RuntimeError(f"registration failed: {reply!r}")
    return time.perf_counter() - t0


async def registrations(port: int, count: int, clients: int) -> tuple[float, list[float]]:
    """`count` registrations from `clients` concurrent loops: (registrations/s, latencies)."""
    # Two backends per tool, alternated: each registration changes the route, so each one is the
    # full write (a registration of the route already in place writes nothing, and is cheaper).
    tokens_of = [tokens.mint(KEY, f"bench{c}", 0) for c in range(clients)]
    payloads = [
        [f"register\n.*\nhttp://127.0.0.1:{20000 + 2 * c + i}\n{tokens_of[c]}\n".encode() for i in (0, 1)]
        for c in range(clients)
    ]
    latencies: list[float] = []

    async def client(c: int) -> None:
        for n in range(count // clients):
            latencies.append(await _register(port, payloads[c][n % 2]))

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


def p(latencies: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        store = start_redis(tmp / "redis")
        listener = start_listener(tmp, store.port)
        try:
            rows = []
            for round_no in range(1, args.rounds + 1):
                base_rate, base_lat = hset_baseline(store.port, args.requests)
                rate, lat = asyncio.run(registrations(listener.port, args.requests, args.clients))
                rows.append((base_rate, p(base_lat, 0.99), rate, p(lat, 0.5), p(lat, 0.99)))
                print(
                    f"round {round_no}: HSET loop {base_rate:,.0f}/s (p99 {p(base_lat, 0.99):.2f} ms); "
                    f"registrations {rate:,.0f}/s (p50 {p(lat, 0.5):.1f} ms, p99 {p(lat, 0.99):.1f} ms)"
                )
        finally:
            listener.stop()
            store.stop()
    medians = [statistics.median(column) for column in zip(*rows, strict=True)]
    print(
        f"median of {args.rounds}: HSET loop {medians[0]:,.0f}/s (p99 {medians[1]:.2f} ms); "
        f"registrations {medians[2]:,.0f}/s (p50 {medians[3]:.1f} ms, p99 {medians[4]:.1f} ms); "
        f"registrations/HSET = {medians[2] / medians[0]:.2f}"
    )


if __name__ == "__main__":
    main()
