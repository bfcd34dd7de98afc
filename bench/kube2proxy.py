"""Benchmark kube2proxy: initial sync of N Services and event -> route latency, against raw Redis.

    .venv/bin/python bench/kube2proxy.py                 # 10,000 Services, 1,000 changes, 3 syncs
    .venv/bin/python bench/kube2proxy.py --services 1000 --changes 100 --syncs 1   # a quick look

The daemon runs as its own process against the fake Kubernetes API (toolforgectl.lab.kubeapi,
in this process) and a real redis-server. Sync = from an empty Redis to every route written;
it is reported as the daemon's own list-diff-apply time and as the wall time from process start
(Python start-up and imports included). Latency = from the API accepting a Service change to the
route store changing that tool's hash (seen through Redis keyspace notifications): one change at a
time ("sequential"), a paced stream (--rate changes/s, not waiting for each other) and all changes
fired back to back ("burst": they queue, so this shows throughput). Baselines, same run, same
Redis: the same routes written with raw HSET, one round trip each and pipelined.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolforgectl.adapters.processes import free_port, spawn, start_redis
from toolforgectl.adapters.routestore import K8S_SERVICES, PREFIX, prefix_key
from toolforgectl.lab.kubeapi import FakeKubeApi, service


def cluster_ip(i: int, salt: int = 0) -> str:
    n = i + salt * 7919
    return f"127.96.{(n // 250) % 250}.{n % 250 + 1}"


def watch_routes(client: redis.Redis) -> Any:
    """A subscription to every change of a `prefix:` hash, through Redis keyspace notifications."""
    client.config_set("notify-keyspace-events", "Kh")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"__keyspace@0__:{PREFIX}*")
    return pubsub


def changed_tool(message: dict[str, Any]) -> str:
    """The tool whose hash a keyspace notification is about."""
    return str(message["channel"]).rsplit(PREFIX, 1)[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def raw_hset(client: redis.Redis, n: int) -> dict[str, float]:
    """The same N routes with plain HSETs: one round trip each, then pipelined."""
    started = time.perf_counter()
    for i in range(n):
        client.hset(prefix_key(f"b{i}"), ".*", f"http://{cluster_ip(i)}:8000")
    sequential = time.perf_counter() - started
    client.flushdb()
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.hset(prefix_key(f"b{i}"), ".*", f"http://{cluster_ip(i)}:8000")
    pipe.execute()
    pipelined = time.perf_counter() - started
    client.flushdb()
    return {"sequential_s": sequential, "pipelined_s": pipelined}


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def sync_once(
    workdir: Path, config: Path, port: int, client: redis.Redis, n: int, run: int
) -> dict[str, Any]:
    """Start the daemon on an empty Redis; time until all N routes are there."""
    client.flushdb()
    argv = [sys.executable, "-m", "toolforgectl.daemons.kube2proxy", "--config", str(config), "--proxy", "p1"]
    started = time.perf_counter()
    process = spawn("kube2proxy", argv, workdir / f"kube2proxy-{run}.log", "127.0.0.1", port)
    while client.scard(K8S_SERVICES) < n:
        if not process.alive():
            raise SystemExit(f"kube2proxy exited during the sync; see {process.log}")
        time.sleep(0.01)
    wall = time.perf_counter() - started
    relist = None
    while relist is None or relist == 0:
        relist = metric(port, "kube2proxy_last_relist_seconds")
        time.sleep(0.05)
    return {"wall_s": wall, "relist_s": relist, "process": process}


def latency(api: FakeKubeApi, client: redis.Redis, n: int, changes: int) -> list[float]:
    """Change one Service at a time; time until its tool's hash changes."""
    pubsub = watch_routes(client)
    while pubsub.get_message(timeout=0.1) is not None:
        pass
    samples = []
    for j in range(changes):
        i = (j * 37) % n
        ip = cluster_ip(i, salt=j + 1)
        started = time.perf_counter()
        api.put(service(f"tool-b{i}", f"b{i}", ip))
        while True:
            message = pubsub.get_message(timeout=5)
            if message is None:
                raise SystemExit(f"no route change within 5 s for b{i}")
            if changed_tool(message) == f"b{i}":
                break
        samples.append(time.perf_counter() - started)
        assert client.hget(prefix_key(f"b{i}"), ".*") == f"http://{ip}:8000"
    pubsub.close()
    return samples


def stream_latency(
    api: FakeKubeApi, client: redis.Redis, n: int, changes: int, rate: float, salt: int
) -> tuple[list[float], float]:
    """Fire changes at `rate` per second (0: as fast as the API takes them, a burst) without
    waiting for each other; each one's time until its tool's hash changes."""
    pubsub = watch_routes(client)
    while pubsub.get_message(timeout=0.1) is not None:
        pass
    received: dict[str, float] = {}

    def listen() -> None:
        while len(received) < changes:
            message = pubsub.get_message(timeout=10)
            if message is None:
                return
            received.setdefault(changed_tool(message), time.perf_counter())

    listener = threading.Thread(target=listen)
    listener.start()
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for j in range(changes):
        if rate:
            time.sleep(max(0.0, start + j / rate - time.perf_counter()))
        i = (j * 37) % n
        sent[f"b{i}"] = time.perf_counter()
        api.put(service(f"tool-b{i}", f"b{i}", cluster_ip(i, salt=salt + j)))
    injected = time.perf_counter() - start
    listener.join(timeout=60)
    pubsub.close()
    missing = set(sent) - set(received)
    if missing:
        raise SystemExit(f"{len(missing)} changes never reached the route store")
    return [received[tool] - sent[tool] for tool in sent], injected


def raw_latency(client: redis.Redis, n: int, changes: int) -> list[float]:
    samples = []
    for j in range(changes):
        i = (j * 37) % n
        started = time.perf_counter()
        client.hset(prefix_key(f"b{i}"), ".*", f"http://{cluster_ip(i, salt=j + 1)}:8000")
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--syncs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500, help="changes per second of the paced stream")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-kube2proxy-"))
    redis_process = start_redis(workdir / "redis")
    client = redis.Redis(host="127.0.0.1", port=redis_process.port, decode_responses=True)
    api = FakeKubeApi(bookmark_interval=10).start()
    try:
        result = run(args, workdir, client, api, redis_process.port)
    finally:
        api.stop()
        redis_process.stop()
    print(json.dumps(result, indent=2))


def run(
    args: argparse.Namespace, workdir: Path, client: redis.Redis, api: FakeKubeApi, redis_port: int
) -> Any:
    n = args.services
    for i in range(n):
        api.put(service(f"tool-b{i}", f"b{i}", cluster_ip(i)))
    baseline = [raw_hset(client, n) for _ in range(args.syncs)]
    port = free_port()
    config = workdir / "fleet.yaml"
    settings = {"kubeconfig": str(api.write_kubeconfig(workdir / "kubeconfig")), "metrics_port": port,
                "active_proxy_file": str(workdir / "active-proxy")}  # fmt: skip
    doc = {
        "proxies": [{"name": "p1", "redis": f"redis://127.0.0.1:{redis_port}/0"}],
        "kube2proxy": settings,
        "dataplane": {"allow_loopback_backends": True},  # the fake clusterIPs are on loopback
    }
    config.write_text(yaml.safe_dump(doc))
    syncs = []
    for run_number in range(args.syncs):
        found = sync_once(workdir, config, port, client, n, run_number)
        process = found.pop("process")
        if run_number < args.syncs - 1:
            process.stop()
        syncs.append(found)
    daemon_latency = latency(api, client, n, args.changes)
    paced, _ = stream_latency(api, client, n, args.changes, args.rate, salt=args.changes + 1)
    burst, injected = stream_latency(api, client, n, args.changes, 0, salt=2 * args.changes + 1)
    process.stop()
    base_latency = raw_latency(client, n, args.changes)
    med = statistics.median
    return {
        "services": n,
        "changes": args.changes,
        "sync_relist_s_median": med(s["relist_s"] for s in syncs),
        "sync_wall_s_median": med(s["wall_s"] for s in syncs),
        "baseline_hset_sequential_s_median": med(b["sequential_s"] for b in baseline),
        "baseline_hset_pipelined_s_median": med(b["pipelined_s"] for b in baseline),
        "latency_ms_p50": 1000 * percentile(daemon_latency, 0.5),
        "latency_ms_p99": 1000 * percentile(daemon_latency, 0.99),
        "paced_rate_per_s": args.rate,
        "paced_latency_ms_p50": 1000 * percentile(paced, 0.5),
        "paced_latency_ms_p99": 1000 * percentile(paced, 0.99),
        "burst_injected_in_ms": 1000 * injected,
        "burst_latency_ms_p50": 1000 * percentile(burst, 0.5),
        "burst_latency_ms_p99": 1000 * percentile(burst, 0.99),
        "baseline_hset_ms_p50": 1000 * percentile(base_latency, 0.5),
        "baseline_hset_ms_p99": 1000 * percentile(base_latency, 0.99),
        "syncs": syncs,
    }


if __name__ == "__main__":
    main()
