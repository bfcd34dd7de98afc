"""`toolforgectl lab up|down`: a Redis, one front proxy (nginx + Lua), proxylistener and sample tools.

The proxy's files (nginx, urlproxy settings, redis.conf) are rendered from templates/ as for a
proxy VM; its Redis runs from that redis.conf.

Sample tools come up the way a tool's owner starts a webservice, with `webservice start` on the
local backend (lab/webservices.py): each runs under `webservice-runner`, which registers it with
the lab's proxylistener over the real 8282 protocol (token identity) and unregisters it when the
lab stops it. With `monitor`, webservicemonitor keeps them up.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from toolforgectl.adapters import nginx as frontproxy
from toolforgectl.adapters.processes import free_port, spawn, start_redis_from
from toolforgectl.adapters.render import Layout
from toolforgectl.adapters.routestore import RouteStore
from toolforgectl.core import config, tokens
from toolforgectl.core.errors import LabError
from toolforgectl.lab import commands, webservices
from toolforgectl.lab.state import LabState, ProcessRecord, load, remove

LAB_HOST = "127.0.0.1"
PROXY_NAME = "proxy-01"
SAMPLE_TOOLS = ("hello", "echo")


def up(
    directory: Path,
    tools: tuple[str, ...] = SAMPLE_TOOLS,
    dataplane: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = lambda _: None,
    sample_args: tuple[str, ...] = (),
    monitor: bool = False,
) -> LabState:
    """Start the lab in `directory`; on any failure, stop what was started and raise.

    `sample_args` go on every sample tool's command line (lab/sampletool.py's options); with
    `monitor`, webservicemonitor runs too and restarts tools that die."""
    _refuse_if_running(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = LabState(dir=str(directory), config=str(directory / "fleet.yaml"))
    try:
        _start_all(state, directory, tools, dataplane or {}, progress, sample_args, monitor)
    except BaseException:
        down(directory)
        raise
    return state


def down(directory: Path) -> list[ProcessRecord]:
    """Stop every process the lab in `directory` started, newest first; returns what was stopped."""
    state = load(directory)
    if state is None:
        return []
    stopped = []
    monitors = [r for r in state.processes if r.role == "webservicemonitor" and r.running()]
    for record in monitors:  # first, or it restarts the tools being stopped
        record.stop()
    webservices.stop_jobs(directory)
    for record in reversed(state.processes):
        if record.running():  # its pid, or what it started: a runner SIGKILLed leaves its server
            record.stop()
            stopped.append(record)
    remove(directory)
    return stopped


def _refuse_if_running(directory: Path) -> None:
    state = load(directory)
    if state is None:
        return
    if any(record.running() for record in state.processes):  # a leftover child counts: down stops it
        stop = f"{commands.program('toolforgectl')} lab down --dir {commands.quote(directory)}"
        raise LabError(f"a lab already runs in {directory}; stop it with: {stop}")
    remove(directory)


def _start_all(
    state: LabState,
    directory: Path,
    tools: tuple[str, ...],
    dataplane: Mapping[str, Any],
    progress: Callable[[str], None],
    sample_args: tuple[str, ...],
    monitor: bool,
) -> None:
    redis_port = free_port(LAB_HOST)
    redis_url = f"redis://{LAB_HOST}:{redis_port}/0"
    key = directory / "proxylistener" / "key"
    fleet = _write_fleet(directory, redis_url, key, dataplane)
    cert, tls_key = frontproxy.self_signed(directory / "tls")
    fleet = frontproxy.with_tls(fleet, cert, tls_key)
    layout = frontproxy.render_into(fleet, PROXY_NAME, directory / PROXY_NAME)
    progress(
        f"lab: starting redis-server (conf/redis.conf rendered from templates/) on {LAB_HOST}:{redis_port}"
    )
    redis = start_redis_from(
        layout.conf_dir / "redis.conf", LAB_HOST, redis_port, layout.log_dir / "redis.log"
    )
    # redis-server shows "redis-server <address>:<port>" as its command line, not its arguments.
    _record(state, ProcessRecord.of("redis", redis, ["redis-server", f"{LAB_HOST}:{redis_port}"]))
    progress(f"lab: starting nginx for {PROXY_NAME} (rendered from templates/)")
    base = _start_proxy(state, layout, fleet, redis_url, cert)
    progress(f"lab: starting proxylistener on {LAB_HOST}:{fleet.proxylistener.port}")
    _start_listener(state, directory, fleet.proxylistener)
    store = RouteStore.from_url(redis_url)
    webservices.configure(directory, LAB_HOST, _listener_section(directory))
    for tool in tools:
        progress(f"lab: starting sample tool {tool} with `webservice start` (registers over 8282)")
        process, backend = webservices.start_tool(directory, key, store, tool, LAB_HOST, sample_args)
        marks = ["webservice-runner", str(directory / "homes" / tool)]
        _record(state, ProcessRecord.of("tool", process, marks, tool=tool))
        state.tools[tool] = {"backend": backend, "url": f"{base}/{tool}/"}
    if monitor:
        progress("lab: starting webservicemonitor (restarts tools that die)")
        _record(
            state,
            ProcessRecord.of(
                "webservicemonitor",
                webservices.start_monitor(directory, LAB_HOST),
                ["toolforgectl.daemons.webservicemonitor.main", str(directory)],
            ),
        )
    state.save()


def _start_proxy(state: LabState, layout: Layout, fleet: config.Fleet, redis_url: str, cert: Path) -> str:
    """Check and start the proxy's rendered nginx; returns its https base URL."""
    plane = fleet.dataplane
    frontproxy.check_config(layout)
    nginx = frontproxy.start_nginx(layout, LAB_HOST, plane.https_port)
    _record(state, ProcessRecord.of("nginx", nginx, ["nginx", str(layout.nginx_conf)], proxy=PROXY_NAME))
    base = f"https://{LAB_HOST}:{plane.https_port}"
    state.proxies[PROXY_NAME] = {
        "address": LAB_HOST,
        "redis": redis_url,
        "http": f"http://{LAB_HOST}:{plane.http_port}",
        "https": base,
        "internal": f"http://{LAB_HOST}:{plane.internal_port}",
        "certificate": str(cert),
        "conf_dir": str(layout.conf_dir),
    }
    return base


def _record(state: LabState, record: ProcessRecord) -> None:
    # Saved after every start, so `lab down` can clean up even after a crash half-way.
    state.processes.append(record)
    state.save()


def _start_listener(state: LabState, directory: Path, listener: config.ProxyListener) -> None:
    """proxylistener for the lab's proxy, configured from the lab's fleet.yaml."""
    argv = [
        sys.executable,
        "-m",
        "toolforgectl.daemons.proxylistener.main",
        "--config",
        str(directory / "fleet.yaml"),
    ]
    process = spawn(
        "proxylistener", argv, directory / "proxylistener" / "proxylistener.log", LAB_HOST, listener.port
    )
    marks = ["toolforgectl.daemons.proxylistener.main", str(directory / "fleet.yaml")]
    _record(state, ProcessRecord.of("proxylistener", process, marks, proxy=PROXY_NAME))
    state.proxies[PROXY_NAME]["proxylistener"] = f"{LAB_HOST}:{listener.port}"


def _listener_section(directory: Path) -> dict[str, Any]:
    """The proxylistener section of the lab's fleet.yaml, as written."""
    return dict(yaml.safe_load((directory / "fleet.yaml").read_text(encoding="utf-8"))["proxylistener"])


def _write_fleet(directory: Path, redis_url: str, key: Path, dataplane: Mapping[str, Any]) -> config.Fleet:
    """The lab's fleet config, written where `--config` can find it, with free ports."""
    settings = {
        "http_port": free_port(LAB_HOST),
        "https_port": free_port(LAB_HOST),
        "internal_port": free_port(LAB_HOST),
        "worker_processes": "1",
        # As root, nginx would run workers as www-data, who cannot read a private lab dir; unprivileged,
        # nginx ignores `user` anyway.
        "user": "root" if os.geteuid() == 0 else "",
        "access_log_buffer": "",
        # The lab's tools run on the proxy's host, at 127.0.0.1 (on a proxy VM, loopback is the proxy).
        "allow_loopback_backends": True,
        **dataplane,
    }
    key.parent.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        tokens.write_secret(key, secrets.token_bytes(32))
    listener = {
        "listen": LAB_HOST,
        "port": free_port(LAB_HOST),
        "metrics_address": LAB_HOST,
        "metrics_port": free_port(LAB_HOST),
        "redis": redis_url,
        "identity": ["token"],
        "token_key_file": str(key),
        "active_proxy_file": str(directory / "active-proxy"),
    }
    (directory / "active-proxy").write_text(PROXY_NAME, encoding="utf-8")
    data = {
        "proxies": [{"name": PROXY_NAME, "address": LAB_HOST, "redis": redis_url}],
        "active_proxy": PROXY_NAME,
        "dataplane": settings,
        "proxylistener": listener,
    }
    path = directory / "fleet.yaml"
    path.write_text(
        "# Written by `toolforgectl lab up`.\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return config.load(path)
