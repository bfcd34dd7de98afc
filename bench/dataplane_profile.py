"""Where (c)'s extra CPU per request goes: instructions per request under callgrind, config by config.

    .venv/bin/python bench/dataplane_profile.py --write docs/benchmarks.md

Each variant is (c)'s rendered config with one part of the hot path put back to plain nginx, so
the differences between neighbours are the cost of that part. Instruction counts (user space:
nginx, OpenSSL, LuaJIT and the JIT's code; not the kernel) are deterministic where wall-clock CPU
on a shared machine is not. Needs valgrind (scripts/setup.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dataplane import BENCH, lua_floor, setup
from dataplane_report import TARGET_TOOLS, write_section

from toolforgectl.adapters.processes import Process, free_port, spawn

LUA = (BENCH.parent / "lua").resolve()
Edit = Callable[[str, str], str]  # (urlproxy.conf text, backend URL) -> text


def _static(text: str, backend: str) -> str:
    upstream = f"upstream profile_static {{ server {backend.split('//')[1]}; keepalive 256; }}\n"
    routed = "proxy_pass http://urlproxy_route;"
    return upstream + text.replace(routed, 'set $urlproxy_tool "t"; proxy_pass http://profile_static;', 1)


def _unmetered(text: str) -> str:
    """(c)'s config without the metrics' log phase (what `metrics: false` renders for the front)."""
    return re.sub(r"\n\s*log_by_lua_file \S+/entry/log_front\.lua;", "", text)


# (name, what it is, edit of (c)'s urlproxy.conf; None: the baseline (a) config)
VARIANTS: list[tuple[str, str, Edit | None]] = [
    ("a", "baseline (a): static proxy_pass, same TLS, headers, log fields", None),
    (
        "static",
        "(c)'s config, routing by `set` + a static keepalive upstream: no Lua",
        lambda t, b: _unmetered(_static(t, b)),
    ),
    ("floor", "+ balancer_by_lua setting a fixed peer: Lua alone", lambda t, b: _unmetered(lua_floor(b)(t))),
    (
        "routing",
        "+ urlproxy's routing (tool name cut from the raw URI, cached lookup, token check, tool variable)",
        lambda t, b: _unmetered(t),
    ),
    ("c", "(c): + the metrics' log phase (counts by class and tool, flushed by a timer)", lambda t, b: t),
]


def prepare(work: Path, name: str, edit: Edit | None, backend: str) -> tuple[Path, int]:
    """A copy of (a)'s or (c)'s config (and of lua/) for `name`; its nginx.conf and https port."""
    root, port = work / f"profile-{name}", free_port()
    if edit is None:
        (root / "run").mkdir(parents=True)
        conf = root / "nginx.conf"
        text = (work / "a" / "nginx.conf").read_text().replace(f"{work / 'a'}/", f"{root / 'run'}/")
        conf.write_text(re.sub(r"listen 127\.0\.0\.1:\d+ ssl", f"listen 127.0.0.1:{port} ssl", text))
        return conf, port
    shutil.copytree(work / "c", root, ignore=shutil.ignore_patterns("*.log", "*.pid", "*.sock"))
    shutil.copytree(LUA, root / "lua", ignore=shutil.ignore_patterns(".luacheckrc"))
    for conf in (root / "conf" / "nginx.conf", root / "conf" / "urlproxy.conf"):
        text = conf.read_text().replace(f"{work / 'c'}/", f"{root}/").replace(str(LUA), str(root / "lua"))
        text = re.sub(
            r"listen 127\.0\.0\.1:\d+( default_server)?;",
            lambda m: f"listen 127.0.0.1:{free_port()}{m[1] or ''};",
            text,
        )
        text = re.sub(r"listen 127\.0\.0\.1:\d+ ssl", f"listen 127.0.0.1:{port} ssl", text)
        conf.write_text(edit(text, backend) if conf.name == "urlproxy.conf" else text)
    settings = root / "conf" / "urlproxy.json"
    # Work done per second, not per request (the metrics flush, the route refresh), would weigh ~50
    # times more per request at callgrind's pace than at full speed: stretch it out as much.
    values = {
        "slow_socket": str(root / "run" / "slow.sock"),
        "metrics_flush_ms": 50 * 1000,
        "cache_ttl": 50 * 60,
    }
    settings.write_text(json.dumps({**json.loads(settings.read_text()), **values}))
    return root / "conf" / "nginx.conf", port


def wrk(port: int, seconds: int) -> str:
    argv = [
        "wrk",
        "-t1",
        "-c8",
        f"-d{seconds}s",
        "-s",
        str(BENCH / "paths.lua"),
        f"https://127.0.0.1:{port}/",
    ]
    env = {"PATH": "/usr/bin:/bin", "BENCH_TOOLS": str(TARGET_TOOLS)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


def instructions_per_request(name: str, conf: Path, port: int, seconds: int, out: Path) -> float:
    """Run nginx (one process) under callgrind; count only a `seconds` wrk run after a warm-up."""
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            "nginx", "-p", str(conf.parent), "-e", "stderr", "-c", str(conf),
            "-g", "daemon off; master_process off;"]  # fmt: skip
    proc: Process = spawn(name, argv, out.with_suffix(".log"), "127.0.0.1", port)
    try:
        # TLS sessions, keepalive pools and LuaJIT's traces; then long enough, at the rate callgrind
        # allows (about 1/50 of nginx's), for every tool to be requested twice: the counted window
        # is the steady state, not each tool's first lookup (slow path and Redis).
        warm = wrk(port, 3)
        rate = int(re.search(r"(\d+) requests in", warm)[1]) / 3  # type: ignore[index]
        wrk(port, min(120, math.ceil(2 * TARGET_TOOLS / max(rate, 1.0))))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
        done = wrk(port, seconds)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
    finally:
        proc.stop(timeout=30)
    if "Non-2xx" in done:
        raise SystemExit(f"profile: {name} answered errors:\n{done}")
    requests = int(re.search(r"(\d+) requests in", done)[1])  # type: ignore[index]
    total = int(re.search(r"^totals: (\d+)", out.read_text(), re.M)[1])  # type: ignore[index]
    return (total - handshakes(out)) / requests


def handshakes(out: Path) -> int:
    """Instructions spent in TLS handshakes: wrk's connections' own, whatever the variant.

    They are a fixed cost per run (8 connections, and one more per `keepalive_requests`), so
    divided by the requests of a run they would make a slower run look dearer per request.
    """
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(out)], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"^\s*([\d,]+) \([^)]*\)\s+\S*:ngx_ssl_handshake ", annotated, re.M)
    return int(found[1].replace(",", "")) if found else 0


def section(counts: dict[str, float], args: argparse.Namespace) -> str:
    """The '## Data plane CPU breakdown' section of docs/benchmarks.md."""
    lines = [
        "## Data plane CPU breakdown",
        "",
        f"Command: `.venv/bin/python bench/dataplane_profile.py --seconds {args.seconds}"
        f" --repeat {args.repeat} --write docs/benchmarks.md`",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Instructions per request of the"
        " front nginx under callgrind (user space only; a warm-up excluded, long enough for every tool"
        " to be requested twice, so the counted window is the steady state; TLS handshakes excluded, and"
        " the metrics flush and route refresh timers stretched 50x as callgrind slows nginx about as"
        " much, so work per second weighs per request what it does at full speed), wrk 8 connections over"
        f" {TARGET_TOOLS} tools, HTTPS; median of {args.repeat} run{'s' if args.repeat != 1 else ''}"
        f" of {args.seconds} s per variant. Each"
        " row adds one part of (c)'s hot path to the row above; the difference is what that part costs."
        " Runs mostly agree within a few hundred, but one can be up to ~2,000 off (LuaJIT's traces and"
        " garbage-collector cycles): read the medians' differences to about 1,000.",
        "",
        "| variant | instructions/request | vs row above | what it adds |",
        "|---|---:|---:|---|",
    ]
    previous = None
    for name, what, _edit in VARIANTS:
        delta = "" if previous is None else f"{counts[name] - previous:+,.0f}"
        lines.append(f"| {name} | {counts[name]:,.0f} | {delta} | {what} |")
        previous = counts[name] if name != "a" else None
    gap = counts["c"] - counts["static"]
    lua = counts["floor"] - counts["static"]
    metrics = counts["c"] - counts["routing"]
    lines += [
        "",
        f"(c) over its own config with static routing: {gap:+,.0f} instructions/request, of which"
        f" {lua:,.0f} ({lua / gap:.0%}) are the Lua phase itself, before urlproxy's code does anything,"
        f" and {metrics:,.0f} ({metrics / gap:.0%}) the metrics.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Profile every variant in turn and print (or --write) the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="Runs per variant; the median is reported.")
    parser.add_argument("--write", type=Path, help="Replace the section of this file.")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="Profile only these variants.")
    parser.add_argument(
        "--keep", type=Path, help="Copy callgrind's output files here (callgrind_annotate reads them)."
    )
    args = parser.parse_args()
    if args.write and args.only:
        parser.error("--write needs every variant: drop --only")
    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        _ports, procs, _store, _cert, backends = setup(work, TARGET_TOOLS)
        try:
            for name in ("a", "b", "c", "d"):  # only the backend and Redis are needed
                procs.pop(name).stop()
            for name, _what, edit in VARIANTS:
                if args.only and name not in args.only:
                    continue
                conf, port = prepare(work, name, edit, backends[0])
                runs = [
                    instructions_per_request(name, conf, port, args.seconds, work / f"{name}-{n}.cg")
                    for n in range(args.repeat)
                ]
                counts[name] = statistics.median(runs)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    for out in work.glob(f"{name}-*.cg"):
                        shutil.copy(out, args.keep / out.name)
                print(f"{name}: {', '.join(f'{r:,.0f}' for r in runs)}", file=sys.stderr)
        finally:
            for process in procs.values():
                process.stop()
    if args.only:
        print("\n".join(f"{name}: {count:,.0f} instructions/request" for name, count in counts.items()))
        return
    text = section(counts, args)
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    main()
