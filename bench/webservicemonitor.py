"""Benchmark one webservicemonitor pass over N tools, against a floor that only reads the manifests.

    .venv/bin/python bench/webservicemonitor.py                    # 3,000 tools, 5 rounds
    .venv/bin/python bench/webservicemonitor.py --tools 200 --rounds 1   # a quick look

Set-up, in a temp dir: N tool homes, each with a service.manifest (most want a gridengine
webservice; some want none), a `qstat` on PATH that prints a recorded N-job `qstat -u '*' -xml`
(a few jobs in `Eqw`, a few missing), and a `/list` of the tools that have a route, served over
HTTP by this process. One pass = the monitor's own `run_pass` in --dry-run mode (nothing is
restarted; everything else is the real code: every manifest read with its checks, one qstat, one
/list, every decision, a log line per tool it would restart). Floor, same run: the same homes
listed and every manifest opened and read, nothing parsed. Memory: the peak of Python's heap during
the pass (tracemalloc), to show it stays bounded by N, not by anything larger.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolforgectl.core import manifest, qstat
from toolforgectl.core.config import Fleet, Proxy, Webservice
from toolforgectl.core.jobs import Job
from toolforgectl.core.manifest import Manifest
from toolforgectl.daemons.webservicemonitor.main import Monitor
from toolforgectl.daemons.webservicemonitor.metrics import Metrics


def build(root: Path, tools: int) -> tuple[Path, set[str], Path]:
    """N homes with manifests, the qstat XML, and the set of routed tools."""
    homes = root / "homes"
    jobs: list[Job] = []
    routed: set[str] = set()
    for i in range(tools):
        tool = f"tool{i:05d}"
        home = homes / tool
        home.mkdir(parents=True)
        if i % 10 == 9:
            wanted = Manifest({"version": 4})  # stopped: no webservice wanted
        else:
            wanted = Manifest().started("lighttpd", "gridengine", ("--canonical",))
            state = "Eqw" if i % 100 == 3 else "r"
            if i % 100 != 5:  # a few jobs are simply gone
                jobs.append(Job(str(100000 + i), f"lighttpd-{tool}", f"tools.{tool}", state))
            if i % 100 != 7:  # a few routes are gone
                routed.add(tool)
        manifest.write(home / manifest.FILE_NAME, wanted)
    xml = root / "qstat.xml"
    xml.write_text(qstat.render(jobs))
    stub = root / "bin" / "qstat"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\ncat {xml}\n")
    stub.chmod(0o755)
    return homes, routed, stub.parent


def serve_list(routed: set[str]) -> ThreadingHTTPServer:
    """`/list` as the proxy answers it: `{tool: {"status": "active"}}`."""
    body = json.dumps({tool: {"status": "active"} for tool in sorted(routed)}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def floor(homes: Path) -> float:
    """Only the file reads: list the homes, open and read every manifest."""
    started = time.perf_counter()
    for entry in sorted(os.scandir(homes), key=lambda e: e.name):
        with open(os.path.join(entry.path, manifest.FILE_NAME), "rb") as file:
            file.read()
    return time.perf_counter() - started


def one_pass(monitor: Monitor) -> tuple[float, int]:
    """Seconds and peak heap bytes of one dry-run pass."""
    tracemalloc.start()
    started = time.perf_counter()
    monitor.run_pass()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tools", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the pass logs per tool; not what is measured
    with tempfile.TemporaryDirectory(prefix="bench-wsm-") as temp:
        root = Path(temp)
        homes, routed, bin_dir = build(root, args.tools)
        os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
        server = serve_list(routed)
        settings = Webservice(
            home=str(homes / "{tool}"),
            list_url=f"http://127.0.0.1:{server.server_address[1]}/list",
            state_file=str(root / "state.json"),
            metrics_port=0,
        )
        monitor = Monitor(Fleet(proxies=(Proxy(name="bench"),), webservice=settings), Metrics(), dry_run=True)
        floors, passes, peaks = [], [], []
        for _ in range(args.rounds):
            floors.append(floor(homes))
            seconds, peak = one_pass(monitor)
            passes.append(seconds)
            peaks.append(peak)
        server.shutdown()
    listed = sum(1 for i in range(args.tools) if i % 10 != 9 and i % 100 != 5)
    print(f"tools: {args.tools}, jobs in qstat: {listed}, routed: {len(routed)}")
    for n, (f, p, m) in enumerate(zip(floors, passes, peaks, strict=True), 1):
        print(f"round {n}: floor {f * 1000:.0f} ms, pass {p * 1000:.0f} ms, peak heap {m / 2**20:.1f} MiB")
    median_floor, median_pass = statistics.median(floors), statistics.median(passes)
    print(
        f"median: floor {median_floor * 1000:.0f} ms, pass {median_pass * 1000:.0f} ms"
        f" ({median_pass / median_floor:.1f}x the floor), peak heap {max(peaks) / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
