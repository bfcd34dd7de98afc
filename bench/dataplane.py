"""Data plane benchmark: (a) static proxy_pass with keepalive, (b) the original per-request Redis lookup,
(c) toolforgectl's urlproxy.lua (metrics on), (d) the floor of any Lua routing; 1 tool and 5,000 tools;
interleaved A B C D A B C D in one run.
Then every variant at the same offered rates (paced.lua), since saturated latency mixes in throughput.

    .venv/bin/python bench/dataplane.py --rounds 5 --duration 6 --write docs/benchmarks.md

Every variant terminates TLS on one nginx worker and proxies to the same backend nginx over loopback,
with the same buffered access log; wrk keeps its connections open, as browsers and clients do.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis
from dataplane_report import VARIANTS, Paced, Results, Sample, median, report, round_steal, write_section

from toolforgectl.adapters import nginx as frontproxy
from toolforgectl.adapters.processes import Process, free_port, spawn, start_redis
from toolforgectl.adapters.routestore import RouteStore, prefix_key
from toolforgectl.core import config, validate
from toolforgectl.core.destinations import Destinations
from toolforgectl.core.models import Attribution

ACTOR = Attribution("bench")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def fill(template: Path, out: Path, **values: object) -> Path:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def start_nginx(conf: Path, run: Path, port: int) -> Process:
    run.mkdir(parents=True, exist_ok=True)
    argv = ["nginx", "-p", str(run), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]
    return spawn(f"nginx {conf.name}", argv, run / "nginx.out", "127.0.0.1", port)


def cpu_seconds(master: int) -> float:
    """User + system CPU of an nginx master's workers so far."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    ticks = 0
    for pid in [master, *map(int, children)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks of the whole machine so far, from /proc/stat's `cpu` line.

    Steal is time the hypervisor ran someone else while this machine's vCPUs had work: a round
    with much of it measures the neighbours, not the variant.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[7], sum(fields)


def to_ms(value: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not found:
        raise SystemExit(f"bench: cannot read wrk latency {value!r}")
    return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[found[2]]


def run_wrk(
    port: int, tools: int, seconds: int, connections: int, master: int, rate: int | None = None
) -> Sample:
    """One wrk run: as fast as responses come back, or at `rate` requests/s offered (paced.lua)."""
    script = BENCH / ("paced.lua" if rate else "paths.lua")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
            f"https://127.0.0.1:{port}/"]  # fmt: skip
    before, (stolen, ticks) = cpu_seconds(master), machine_ticks()
    env = {**os.environ, "BENCH_TOOLS": str(tools), "BENCH_RATE": str(rate or 0)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    used = cpu_seconds(master) - before
    stolen_after, ticks_after = machine_ticks()
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"bench: wrk failed: {done.stderr.strip()[-300:]}")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Sample(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=to_ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=to_ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1)),  # type: ignore[union-attr]
        cpu_us=used / max(total, 1) * 1e6,
        errors=errors,
        steal=(stolen_after - stolen) / max(ticks_after - ticks, 1),
    )


def propagation_ms(
    store: RouteStore,
    port: int,
    cert: Path,
    backends: tuple[str, str],
    times: int,
    write: Callable[[str], object] | None = None,
) -> list[float]:
    """How long after a route write the proxy serves the new backend, polled over one keepalive connection.

    `write(url)` routes the tool to `url`: through the route store by default. Before each write the
    tool is requested so that its cached entry is fresh: the write meets a fresh cache entry (the worst
    case) rather than one an earlier change made stale.
    """
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=ssl.create_default_context(cafile=str(cert))
    )

    def served() -> str:
        conn.request("GET", "/moving/")
        return conn.getresponse().read().decode().strip().rsplit(" ", 1)[-1]

    results = []
    for i in range(times + 1):
        old, new = backends[(i + 1) % 2].rsplit(":", 1)[1], backends[i % 2].rsplit(":", 1)[1]
        time.sleep(random.uniform(0.1, 0.3))  # the watcher has seen the last write; random phase
        served()  # re-reads the entry under the current version
        if i and served() != old:
            raise SystemExit("bench: the cache did not hold the previous route")
        start = time.monotonic()
        if write is None:
            store.set_route("moving", ".*", validate.backend(backends[i % 2]), ACTOR)
        else:
            write(backends[i % 2])
        while served() != new:
            pass
        if i:  # the first write creates the tool; only changes count
            results.append((time.monotonic() - start) * 1000)
    return results


def raw_hset(store: RouteStore) -> Callable[[str], object]:
    """Route `moving` as redis-cli, an original-era daemon or replication does: one HSET, no version bump."""
    client = redis.Redis.from_url(store.url)
    return lambda url: client.hset(prefix_key("moving"), ".*", url)


def hot_tool_share(
    store: RouteStore, port: int, cert: Path, log: Path, backends: tuple[str, str], seconds: float = 5,
    rate: int = 50,
) -> tuple[float, int]:  # fmt: skip
    """With `rate` raw HSETs a second to other tools, the share of a hot tool's requests the front
    routed from its cache (path=front in the access log), and how many requests that was."""
    client = redis.Redis.from_url(store.url)
    client.hset(prefix_key("hot"), ".*", backends[0])
    stop = threading.Event()

    def writes() -> None:
        for n in itertools.count():
            if stop.wait(1 / rate):
                return
            client.hset(prefix_key(f"cold{n % 100}"), ".*", backends[n // 100 % 2])  # a change each time

    tls = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls)
    marker = f"/hot/run{time.time_ns()}-"
    for _ in range(20):  # a new tool's first request reads Redis on the slow path; then it is cached
        conn.request("GET", "/hot/warm-up")
        conn.getresponse().read()
        time.sleep(0.01)
    writer = threading.Thread(target=writes)
    sent, end = 0, time.monotonic() + seconds
    writer.start()
    try:
        while time.monotonic() < end:
            conn.request("GET", f"{marker}{sent}")
            conn.getresponse().read()
            sent += 1
    finally:
        stop.set()
        writer.join()
    deadline = time.monotonic() + 10  # the access log is buffered (flushed every second)
    while True:
        lines = [line for line in log.read_text().splitlines() if f" {marker}" in line]
        if len(lines) >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    front = sum("path=front" in line for line in lines)
    return front / max(sent, 1), sent


def bulk_load(store: RouteStore, tools: int, backend: str) -> None:
    """Route `.*` of tool0 .. tool<tools-1> to `backend` with raw HSETs in one pipeline."""
    # Not set_route: its audit entry and version bump per write would dominate thousands of writes.
    pipe = redis.Redis.from_url(store.url).pipeline(transaction=False)
    for n in range(tools):
        pipe.hset(prefix_key(f"tool{n}"), ".*", backend)
    pipe.execute()


def list_ms(store: RouteStore, port: int, tools: int, times: int = 5) -> tuple[float, float, int]:
    """/list at `tools` tools: median ms right after a route change (SCAN), and when unchanged (cached)."""
    bulk_load(store, tools, "http://127.0.0.1:9")

    def fetch() -> tuple[float, int]:
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/list")
        body = conn.getresponse().read()
        conn.close()
        return (time.monotonic() - start) * 1000, len(json.loads(body))

    cold, warm, count = [], [], 0
    for i in range(times):
        # A new backend each time: a write that changes nothing would not bump the version.
        store.set_route("listbench", ".*", validate.backend(f"http://127.0.0.1:{9 + i % 2}"), ACTOR)
        time.sleep(0.2)  # let the watcher see it
        took, count = fetch()
        cold.append(took)
        warm.append(fetch()[0])
    return statistics.median(cold), statistics.median(warm), count


def setup(
    work: Path, tools: int
) -> tuple[dict[str, int], dict[str, Process], RouteStore, Path, tuple[str, str]]:
    procs: dict[str, Process] = {}
    backend_port, backend_port2 = free_port(), free_port()
    conf = fill(BENCH / "backend.conf.tmpl", work / "backend" / "nginx.conf", RUN=work / "backend",
                PORT=backend_port, PORT2=backend_port2)  # fmt: skip
    procs["backend"] = start_nginx(conf, work / "backend", backend_port)
    procs["redis"] = start_redis(work / "redis")
    # The bench's backends are on loopback, as the lab's tools are.
    loopback = Destinations(allow_loopback=True)
    store = RouteStore.from_url(f"redis://127.0.0.1:{procs['redis'].port}/0", destinations=loopback)
    backend = f"http://127.0.0.1:{backend_port}"
    bulk_load(store, tools, backend)
    cert, key = frontproxy.self_signed(work / "tls")
    ports = {v: free_port() for v in VARIANTS}
    static = "proxy_pass http://static_backend;"
    lookup = (
        "access_by_lua_file " + str(BENCH / "original_urlproxy.lua") + ";\n            proxy_pass $backend;"
    )
    for variant, location in (("a", static), ("b", lookup)):
        run = work / variant
        conf = fill(BENCH / "baseline.conf.tmpl", run / "nginx.conf", RUN=run, BENCH=BENCH,
                    PORT=ports[variant], REDIS_PORT=procs["redis"].port, BACKEND_PORT=backend_port,
                    CERT=cert, KEY=key, LOCATION=location)  # fmt: skip
        procs[variant] = start_nginx(conf, run, ports[variant])
    ports["list"] = free_port()
    procs["c"] = start_ours(work, store, ports["c"], ports["list"], cert, key)
    require_metrics(ports["list"])
    procs["d"] = start_ours(work, store, ports["d"], free_port(), cert, key, "d", lua_floor(backend))
    return ports, procs, store, cert, (backend, f"http://127.0.0.1:{backend_port2}")


def start_ours(
    work: Path, store: RouteStore, port: int, internal: int, cert: Path, key: Path,
    name: str = "c", edit: Callable[[str], str] | None = None,
) -> Process:  # fmt: skip
    """(c): our rendered data plane in work/<name>; `edit` changes its urlproxy.conf (variant d)."""
    redis_port = urlsplit(store.url).port
    text = (
        f"proxies: [{{name: bench, address: 127.0.0.1, redis: 'redis://127.0.0.1:{redis_port}/0'}}]\n"
        f"dataplane: {{https_port: {port}, http_port: {free_port()}, internal_port: {internal},"
        f" worker_processes: '1', user: '{'root' if os.geteuid() == 0 else ''}',"
        " allow_loopback_backends: true, metrics: true}\n"
    )
    fleet = frontproxy.with_tls(config.parse(text, "bench"), cert, key)
    layout = frontproxy.render_into(fleet, "bench", work / name)
    if edit:
        site = layout.conf_dir / "urlproxy.conf"
        site.write_text(edit(site.read_text()))
    return frontproxy.start_nginx(layout, "127.0.0.1", port)


def require_metrics(internal: int) -> None:
    """Stop unless (c) serves /metrics: its figures must include what counting costs (issue 10, D.3)."""
    conn = http.client.HTTPConnection("127.0.0.1", internal, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    if response.status != 200 or "urlproxy_requests_total" not in body:
        raise SystemExit(f"bench: (c) must run with metrics on; /metrics answered {response.status}")


def lua_floor(backend: str) -> Callable[[str], str]:
    """(d): (c)'s site with its routing replaced by a fixed peer; what any Lua routing costs at least.

    The front's balancer_by_lua only calls set_current_peer with constants, and the log's tool field
    is set by nginx (`set`), so what is left over (a) is the Lua phase itself and (c)'s config.
    """
    host, port = backend.removeprefix("http://").rsplit(":", 1)
    fixed = f'balancer_by_lua_block {{ require("ngx.balancer").set_current_peer("{host}", {port}) }}'

    def edit(text: str) -> str:
        routed = "proxy_pass http://urlproxy_route;"
        text = re.sub(r"balancer_by_lua_file \S+/entry/route\.lua;", lambda _: fixed, text, count=1)
        return text.replace(routed, 'set $urlproxy_tool "t"; ' + routed, 1)

    return edit


def saturated_round(
    ports: dict[str, int], procs: dict[str, Process], tools: int, rnd: int, args: argparse.Namespace
) -> dict[str, Sample]:  # fmt: skip
    """One round of every variant as fast as it answers; run again (up to --retries times) while
    the hypervisor stole more than --max-steal of the machine in any of its runs. The variants of a
    round always run together, so a kept round compares them under the same conditions; the round
    with the least steal is kept."""
    best: dict[str, Sample] = {}
    for attempt in range(args.retries + 1):
        samples: dict[str, Sample] = {}
        for v in VARIANTS:
            samples[v] = run_wrk(ports[v], tools, args.duration, args.connections, procs[v].pid)
            samples[v].attempt = attempt
            print(f"tools={tools} round={rnd} {v}: {samples[v]}", file=sys.stderr)
        if not best or round_steal(samples) < round_steal(best):
            best = samples
        if round_steal(samples) <= args.max_steal:
            break
    for sample in best.values():
        sample.runs = attempt + 1
    return best


def paced_rounds(
    ports: dict[str, int], procs: dict[str, Process], saturated: dict[str, list[Sample]],
    args: argparse.Namespace,
) -> Paced:  # fmt: skip
    """Every variant at the same offered rates (fractions of (a)'s saturated req/s), interleaved."""
    peak = median(saturated["a"], "rps")
    rates = [int(peak * fraction / 100) for fraction in args.paced]
    paced: Paced = {rate: {v: [] for v in VARIANTS} for rate in rates}
    tools = max(args.tools)
    for rnd in range(args.rounds):
        for rate in rates:
            for v in VARIANTS:
                sample = run_wrk(ports[v], tools, args.duration, args.paced_connections, procs[v].pid, rate)
                paced[rate][v].append(sample)
                print(f"paced {rate}/s round={rnd} {v}: {sample}", file=sys.stderr)
    return paced


def main() -> None:
    """Run the interleaved rounds and print (or --write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tools", type=int, nargs="+", default=[1, 5000])
    parser.add_argument(
        "--paced",
        type=int,
        nargs="*",
        default=[50, 80],
        help="Offered loads, in percent of (a)'s saturated req/s at the most tools.",
    )
    parser.add_argument(
        "--paced-connections",
        type=int,
        default=32,
        help="Connections for the paced runs (more adds wrk-side tail latency).",
    )
    parser.add_argument(
        "--max-steal",
        type=float,
        default=0.05,
        help="Run a saturated round again when the hypervisor stole more than this share of the machine.",
    )
    parser.add_argument("--retries", type=int, default=2, help="Extra runs of a round over --max-steal.")
    parser.add_argument("--list-tools", type=int, default=10000, help="Tools in Redis when timing /list.")
    parser.add_argument("--write", type=Path, help="Replace the '## Data plane' section of this file.")
    args = parser.parse_args()
    load = "before: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="bench-dataplane-") as tmp:
        ports, procs, store, cert, backends = setup(Path(tmp), max(args.tools))
        try:
            for tools in args.tools:
                results[tools] = {v: [] for v in VARIANTS}
                for v in VARIANTS:  # warm-up: caches, TLS sessions, keepalive pools
                    run_wrk(ports[v], tools, 1, args.connections, procs[v].pid)
                for rnd in range(args.rounds):
                    for v, sample in saturated_round(ports, procs, tools, rnd, args).items():
                        results[tools][v].append(sample)
            paced = paced_rounds(ports, procs, results[max(args.tools)], args)
            prop = propagation_ms(store, ports["c"], cert, backends, 20)
            raw = propagation_ms(store, ports["c"], cert, backends, 50, raw_hset(store))
            access_log = Path(tmp) / "c" / "logs" / "access.log"
            share = hot_tool_share(store, ports["c"], cert, access_log, backends)
            listing = list_ms(store, ports["list"], args.list_tools)
        finally:
            for process in procs.values():
                process.stop()
    load += "; after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    section = report(results, paced, args, (prop, raw, share), listing, load)
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    main()
