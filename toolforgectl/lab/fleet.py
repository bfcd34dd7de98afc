"""`toolforgectl lab up|down`: a Redis, one front proxy (nginx + Lua) and sample tools on loopback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from toolforgectl import config
from toolforgectl.lab import frontproxy
from toolforgectl.lab.processes import LabError, Process, free_port, spawn, start_redis
from toolforgectl.lab.state import LabState, ProcessRecord, load, remove
from toolforgectl.routestore import RouteStore

LAB_HOST = "127.0.0.1"
PROXY_NAME = "proxy-01"
SAMPLE_TOOLS = ("hello", "echo")


def up(
    directory: Path,
    tools: tuple[str, ...] = SAMPLE_TOOLS,
    dataplane: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> LabState:
    """Start the lab in `directory`; on any failure, stop what was started and raise."""
    _refuse_if_running(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = LabState(dir=str(directory), config=str(directory / "fleet.yaml"))
    try:
        _start_all(state, directory, tools, dataplane or {}, progress)
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
    for record in reversed(state.processes):
        if record.alive():
            record.stop()
            stopped.append(record)
    remove(directory)
    return stopped


def _refuse_if_running(directory: Path) -> None:
    state = load(directory)
    if state is None:
        return
    if any(record.alive() for record in state.processes):
        raise LabError(
            f"a lab already runs in {directory}; stop it with: toolforgectl lab down --dir {directory}"
        )
    remove(directory)


def _start_all(
    state: LabState,
    directory: Path,
    tools: tuple[str, ...],
    dataplane: Mapping[str, Any],
    progress: Callable[[str], None],
) -> None:
    progress("lab: starting redis-server")
    redis = start_redis(directory / "redis", LAB_HOST)
    _record(state, ProcessRecord.of("redis", redis, ["redis-server", f"{LAB_HOST}:{redis.port}"]))
    redis_url = f"redis://{LAB_HOST}:{redis.port}/0"
    fleet = _write_fleet(directory, redis_url, dataplane)
    progress(f"lab: starting nginx for {PROXY_NAME} (rendered from templates/)")
    base = _start_proxy(state, directory, fleet, redis_url)
    store = RouteStore.from_url(redis_url)
    for tool in tools:
        progress(f"lab: starting sample tool {tool} and registering it")
        backend = _start_tool(state, directory, tool)
        store.set_route(tool, ".*", backend, actor="lab")
        state.tools[tool] = {"backend": backend, "url": f"{base}/{tool}/"}
    state.save()


def _start_proxy(state: LabState, directory: Path, fleet: config.Fleet, redis_url: str) -> str:
    """Render, check and start the proxy's nginx; returns its https base URL."""
    plane = fleet.dataplane
    cert, key = frontproxy.self_signed(directory / "tls")
    layout = frontproxy.render_into(frontproxy.with_tls(fleet, cert, key), PROXY_NAME, directory / PROXY_NAME)
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


def _write_fleet(directory: Path, redis_url: str, dataplane: Mapping[str, Any]) -> config.Fleet:
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
        **dataplane,
    }
    data = {
        "proxies": [{"name": PROXY_NAME, "address": LAB_HOST, "redis": redis_url}],
        "active_proxy": PROXY_NAME,
        "dataplane": settings,
    }
    path = directory / "fleet.yaml"
    path.write_text(
        "# Written by `toolforgectl lab up`.\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return config.load(path)


def _start_tool(state: LabState, directory: Path, tool: str) -> str:
    port = free_port(LAB_HOST)
    argv = [
        sys.executable,
        "-m",
        "toolforgectl.lab.sampletool",
        "--name",
        tool,
        "--host",
        LAB_HOST,
        "--port",
        str(port),
    ]
    process: Process = spawn(f"tool {tool}", argv, directory / "tools" / f"{tool}.log", LAB_HOST, port)
    marks = ["toolforgectl.lab.sampletool", f"--port {port}"]
    _record(state, ProcessRecord.of("tool", process, marks, tool=tool))
    return f"http://{LAB_HOST}:{port}"
